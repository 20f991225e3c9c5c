#include "cli_args.h"

#include <boost/program_options.hpp>
#include <sstream>
#include <string_view>
#include <vector>

#include "common/base64.h"
#include "config/node_config.h"

namespace po = boost::program_options;

namespace monju::cli {
namespace {

constexpr int kMaxTimeoutMs = 600000;

const char* const kUsage =
    "monju: client for a Monju key-value cluster\n"
    "\n"
    "Usage:\n"
    "  monju [options] put PK SK VALUE\n"
    "  monju [options] get PK SK\n"
    "  monju [options] rm PK SK\n"
    "  monju [options] query PK [--prefix P] [--start S] [--limit N] [--desc]\n"
    "  monju [options] status     the ring, each peer's state as the node sees it, pending hints\n"
    "  monju [options] stats      the node's counters\n"
    "  monju [options] admin members | ring           membership of a Raft-managed cluster\n"
    "  monju [options] admin join                     on a node started with --join: join the cluster\n"
    "  monju [options] admin leave ID                 decommission member ID (its data moves first)\n"
    "  monju [options] admin replace DEAD_ID NEW_ID   on node NEW_ID (started with --join): replace DEAD_ID\n"
    "  monju [options] admin abort                    undo a change that is still streaming\n"
    "  monju [options] repair [--partition P] [--node ID]\n"
    "                             anti-entropy now: the node's partitions (or P) with\n"
    "                             every co-owner (or ID); prints what each exchange did\n"
    "  monju [options] repair --pause | --resume\n"
    "                             pause or resume the node's background anti-entropy\n"
    "\n"
    "put and rm first read the key (with -r) and write with the context of what\n"
    "they read, so they replace exactly the values a get would show. --context\n"
    "writes with a context from an earlier get/put instead; --blind writes with\n"
    "none (the new value becomes a sibling of whatever is stored). put\n"
    "--overwrite replaces what the coordinating replica holds in one call,\n"
    "with no read (a value written concurrently elsewhere may stay a sibling).\n"
    "Put `--` before arguments that start with '-'.\n"
    "\n"
    "Exit codes: 0 ok, 1 not found (get), 2 invalid input, 3 quorum or\n"
    "availability failure (repair: some exchange failed), 4 cannot connect.\n"
    "\n"
    "Options";

// The raw values as parsed, before checks that involve several options.
struct RawArgs {
  std::vector<std::string> positional;
  std::string addr;
  std::string context_b64;
  bool has_context = false;
  bool has_w = false;
  bool has_query_option = false;
  std::string first_query_option;
  bool has_no_wait = false;
  bool has_wait_s = false;
  bool has_repair_option = false;
  std::string first_repair_option;
  bool has_timeout = false;
};

po::options_description MakeDescription(CliOptions& o, RawArgs& raw) {
  po::options_description desc(kUsage);
  // clang-format off
  desc.add_options()
    ("help,h", "print this help and exit")
    ("addr", po::value(&raw.addr), "HOST:PORT of any node (default $MONJU_ADDR, else 127.0.0.1:7001)")
    ("read-quorum,r", po::value(&o.r), "R for this request (0: the node's default)")
    ("write-quorum,w", po::value(&o.w), "W for this request (put, rm; 0: the node's default)")
    ("context", po::value(&raw.context_b64), "put, rm: write with this base64 context")
    ("blind", po::bool_switch(&o.blind), "put, rm: write with no context")
    ("overwrite", po::bool_switch(&o.overwrite), "put: one call, no read: replace what the coordinating replica holds")
    ("json", po::bool_switch(&o.json), "print one JSON object instead of text")
    ("timeout-ms", po::value(&o.timeout_ms)->default_value(o.timeout_ms), "connect/send/receive timeout (repair: 600000, admin: 30000)")
    ("prefix", po::value(&o.prefix), "query: only sort keys starting with P")
    ("start", po::value(&o.start), "query: start at this sort key (inclusive)")
    ("limit", po::value(&o.limit), "query: at most N items (0: 100; at most 1000)")
    ("desc", po::bool_switch(&o.descending), "query: descending sort-key order")
    ("no-wait", po::bool_switch(&o.no_wait), "admin join/leave/replace/abort: return once the change began")
    ("wait-s", po::value(&o.wait_s)->default_value(o.wait_s), "admin join/leave/replace/abort: follow the change at most this long")
    ("partition", po::value(&o.partition), "repair: only this partition")
    ("node", po::value(&o.node), "repair: only with this co-owner")
    ("pause", po::bool_switch(&o.pause), "repair: pause background anti-entropy")
    ("resume", po::bool_switch(&o.resume), "repair: resume background anti-entropy");
  // clang-format on
  return desc;
}

ParsedCli Error(ParsedCli out, std::string text) {
  out.action = ParsedCli::Action::kError;
  out.text = std::move(text);
  return out;
}

bool ParseCommand(const std::string& word, Command* command) {
  if (word == "put") *command = Command::kPut;
  else if (word == "get") *command = Command::kGet;
  else if (word == "rm") *command = Command::kRm;
  else if (word == "query") *command = Command::kQuery;
  else if (word == "status") *command = Command::kStatus;
  else if (word == "stats") *command = Command::kStats;
  else if (word == "repair") *command = Command::kRepair;
  else if (word == "admin") *command = Command::kAdmin;
  else return false;
  return true;
}

size_t ExpectedOperands(Command command) {
  switch (command) {
    case Command::kPut: return 3;
    case Command::kGet: return 2;
    case Command::kRm: return 2;
    case Command::kQuery: return 1;
    case Command::kStatus:
    case Command::kStats:
    case Command::kRepair: return 0;
    case Command::kAdmin: return 0;  // checked by AdminOperands
  }
  return 0;
}

// admin ACTION [ARGS]: empty when well-formed, else the error.
std::string AdminOperands(const std::vector<std::string>& operands, CliOptions* o) {
  static const char* const kUsageLine =
      "admin takes members, ring, join, leave ID, replace DEAD_ID NEW_ID or abort; see --help";
  if (operands.empty()) return kUsageLine;
  o->admin_action = operands[0];
  o->admin_args.assign(operands.begin() + 1, operands.end());
  size_t want = 0;
  if (o->admin_action == "leave") want = 1;
  else if (o->admin_action == "replace") want = 2;
  else if (o->admin_action != "members" && o->admin_action != "ring" && o->admin_action != "join" &&
           o->admin_action != "abort")
    return "unknown admin command '" + o->admin_action + "'; " + kUsageLine;
  if (o->admin_args.size() != want)
    return "admin " + o->admin_action + " takes " +
           (want == 0 ? std::string("no arguments") : want == 1 ? std::string("ID") : std::string("DEAD_ID NEW_ID")) +
           ", got " + std::to_string(o->admin_args.size()) + " argument(s)";
  return "";
}

const char* OperandSyntax(Command command) {
  switch (command) {
    case Command::kPut: return "PK SK VALUE";
    case Command::kGet: return "PK SK";
    case Command::kRm: return "PK SK";
    case Command::kQuery: return "PK";
    case Command::kStatus:
    case Command::kStats: return "no arguments";
    case Command::kRepair: return "no arguments (options --partition, --node, --pause, --resume)";
    case Command::kAdmin: return "an admin command";
  }
  return "";
}

void FillOperands(const std::vector<std::string>& operands, CliOptions* o) {
  if (operands.empty()) return;
  o->pk = operands[0];
  if (operands.size() > 1) o->sk = operands[1];
  if (operands.size() > 2) o->value = operands[2];
}

// Options that only make sense for some commands. Empty when all is well.
std::string CheckOptionsFit(const CliOptions& o, const RawArgs& raw) {
  bool is_write = o.command == Command::kPut || o.command == Command::kRm;
  if (raw.has_query_option && o.command != Command::kQuery)
    return raw.first_query_option + ": only valid with query";
  if (raw.has_repair_option && o.command != Command::kRepair)
    return raw.first_repair_option + ": only valid with repair";
  if (o.pause && o.resume) return "--pause and --resume exclude each other";
  if ((o.pause || o.resume) && (o.partition != -1 || !o.node.empty()))
    return std::string(o.pause ? "--pause" : "--resume") + ": not valid with --partition or --node";
  if (o.command == Command::kRepair && o.partition < -1) return "--partition: must be 0 or more";
  if (!is_write && raw.has_w) return "-w: only valid with put and rm";
  bool is_admin = o.command == Command::kStatus || o.command == Command::kStats || o.command == Command::kRepair ||
                  o.command == Command::kAdmin;
  if (is_admin && o.r != 0) return "-r: not valid with status, stats, repair and admin";
  if (o.command != Command::kAdmin && (raw.has_no_wait || raw.has_wait_s))
    return std::string(raw.has_no_wait ? "--no-wait" : "--wait-s") + ": only valid with admin";
  if (!is_write && (raw.has_context || o.blind))
    return std::string(raw.has_context ? "--context" : "--blind") + ": only valid with put and rm";
  if (raw.has_context && o.blind) return "--context and --blind exclude each other";
  if (o.overwrite && o.command != Command::kPut) return "--overwrite: only valid with put";
  if (o.overwrite && (raw.has_context || o.blind))
    return std::string("--overwrite and ") + (raw.has_context ? "--context" : "--blind") + " exclude each other";
  return "";
}

void NoteRepairOptions(const po::variables_map& vm, RawArgs* raw) {
  for (const char* name : {"partition", "node", "pause", "resume"}) {
    bool given = vm.count(name) && !vm[name].defaulted();
    if (std::string(name) == "pause" || std::string(name) == "resume") given = given && vm[name].as<bool>();
    if (given && !raw->has_repair_option) {
      raw->has_repair_option = true;
      raw->first_repair_option = std::string("--") + name;
    }
  }
}

void NoteQueryOptions(const po::variables_map& vm, RawArgs* raw) {
  for (const char* name : {"prefix", "start", "limit", "desc"}) {
    bool given = vm.count(name) && !vm[name].defaulted();
    if (std::string(name) == "desc") given = given && vm[name].as<bool>();
    if (given && !raw->has_query_option) {
      raw->has_query_option = true;
      raw->first_query_option = std::string("--") + name;
    }
  }
}

}  // namespace

const char* CommandName(Command command) {
  switch (command) {
    case Command::kPut: return "put";
    case Command::kGet: return "get";
    case Command::kRm: return "rm";
    case Command::kQuery: return "query";
    case Command::kStatus: return "status";
    case Command::kStats: return "stats";
    case Command::kRepair: return "repair";
    case Command::kAdmin: return "admin";
  }
  return "?";
}

ParsedCli ParseCliArgs(int argc, const char* const* argv, const char* env_addr) {
  ParsedCli out;
  CliOptions& o = out.options;
  RawArgs raw;
  raw.addr = env_addr && *env_addr ? env_addr : kDefaultAddr;
  po::options_description desc = MakeDescription(o, raw);
  po::options_description hidden;
  hidden.add_options()("args", po::value(&raw.positional));
  po::options_description all;
  all.add(desc).add(hidden);
  po::positional_options_description positional;
  positional.add("args", -1);

  po::variables_map vm;
  try {
    int style = po::command_line_style::default_style & ~po::command_line_style::allow_guessing;
    po::store(po::command_line_parser(argc, argv).options(all).positional(positional).style(style).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    // Options were not stored: still answer in JSON when it was asked for.
    for (int i = 1; i < argc; ++i)
      if (std::string_view(argv[i]) == "--json") o.json = true;
    return Error(out, e.what());
  }
  if (vm.count("help")) {
    std::ostringstream ss;
    ss << desc;
    out.action = ParsedCli::Action::kHelp;
    out.text = ss.str();
    return out;
  }
  raw.has_context = vm.count("context") > 0;
  raw.has_w = vm.count("write-quorum") > 0;
  raw.has_no_wait = o.no_wait;
  raw.has_wait_s = vm.count("wait-s") && !vm["wait-s"].defaulted();
  NoteQueryOptions(vm, &raw);
  NoteRepairOptions(vm, &raw);
  raw.has_timeout = vm.count("timeout-ms") && !vm["timeout-ms"].defaulted();

  if (raw.positional.empty())
    return Error(out, "missing command (put, get, rm, query, status, stats, repair or admin); see --help");
  if (!ParseCommand(raw.positional[0], &o.command))
    return Error(out, "unknown command '" + raw.positional[0] +
                          "' (put, get, rm, query, status, stats, repair or admin); see --help");
  std::vector<std::string> operands(raw.positional.begin() + 1, raw.positional.end());
  if (o.command == Command::kAdmin) {
    if (std::string why = AdminOperands(operands, &o); !why.empty()) return Error(out, why);
    // A change may wait for a new Raft leader and for its commit.
    if (!raw.has_timeout) o.timeout_ms = 30000;
    if (o.wait_s < 1 || o.wait_s > 7 * 24 * 3600) return Error(out, "--wait-s: must be 1..604800");
  } else if (operands.size() != ExpectedOperands(o.command))
    return Error(out, std::string(CommandName(o.command)) + " takes " + OperandSyntax(o.command) + ", got " +
                          std::to_string(operands.size()) + " argument(s); see --help");
  if (o.command != Command::kAdmin) FillOperands(operands, &o);

  if (Status s = ParseHostPort(raw.addr, &o.host, &o.port); !s.ok())
    return Error(out, "--addr: " + s.message());
  if (o.command == Command::kRepair && !raw.has_timeout) o.timeout_ms = kDefaultRepairTimeoutMs;
  if (o.timeout_ms < 1 || o.timeout_ms > kMaxTimeoutMs)
    return Error(out, "--timeout-ms: must be 1.." + std::to_string(kMaxTimeoutMs));
  if (std::string why = CheckOptionsFit(o, raw); !why.empty()) return Error(out, why);
  if (raw.has_context) {
    std::optional<std::string> bytes = Base64Decode(raw.context_b64);
    if (!bytes) return Error(out, "--context: not valid base64");
    o.context = std::move(*bytes);
  }
  return out;
}

}  // namespace monju::cli
