// Command-line parsing for the `monju` client. Pure: no I/O, never throws.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace monju::cli {

enum class Command { kPut, kGet, kRm, kQuery, kStatus, kStats, kRepair, kAdmin };

struct CliOptions {
  Command command = Command::kGet;
  std::string host = "127.0.0.1";
  uint16_t port = 7001;
  int timeout_ms = 5000;
  bool json = false;

  std::string pk;
  std::string sk;     // put, get, rm
  std::string value;  // put

  int32_t r = 0;  // 0: the node's default
  int32_t w = 0;

  // put/rm: which context to write with. Neither set: read it first.
  std::optional<std::string> context;  // decoded bytes from --context
  bool blind = false;
  bool overwrite = false;  // put: the overwrite call (no read, no context)

  // query
  std::string prefix;
  std::string start;
  int32_t limit = 0;  // 0: the server's default (100)
  bool descending = false;

  // repair
  int32_t partition = -1;      // -1: every partition the node replicates
  std::string node;            // "": every co-owner
  bool pause = false;          // pause background anti-entropy instead
  bool resume = false;         // resume it instead

  // admin: membership of a Raft-managed cluster (see cli_admin.h)
  std::string admin_action;             // join | leave | replace | abort | members | ring
  std::vector<std::string> admin_args;  // leave ID; replace DEAD_ID NEW_ID
  bool no_wait = false;                 // join/leave/replace/abort: return once begun
  int wait_s = 3600;                    // ... else follow the change at most this long
};

// repair waits for every exchange: its default timeout is longer.
inline constexpr int kDefaultRepairTimeoutMs = 600000;

struct ParsedCli {
  enum class Action { kRun, kHelp, kError } action = Action::kRun;
  CliOptions options;  // valid when kRun; options.json is set as far as parsed
  std::string text;    // help text, or one error line (without "monju: ")
};

inline constexpr const char* kDefaultAddr = "127.0.0.1:7001";

// env_addr: the value of MONJU_ADDR, or null when unset.
ParsedCli ParseCliArgs(int argc, const char* const* argv, const char* env_addr);

const char* CommandName(Command command);

}  // namespace monju::cli
