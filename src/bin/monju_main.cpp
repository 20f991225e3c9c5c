// monju: the command-line client. Talks MonjuKV (TSocket + TFramedTransport +
// TBinaryProtocol) to one node, which coordinates the request.
#include <thrift/TApplicationException.h>
#include <thrift/TConfiguration.h>
#include <thrift/TOutput.h>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/protocol/TMultiplexedProtocol.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TSocket.h>
#include <thrift/transport/TTransportException.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>

#include "MonjuAdmin.h"
#include "MonjuKV.h"
#include "MonjuMembership.h"
#include "cli_admin.h"
#include "cli_args.h"
#include "cli_output.h"
#include "common/status.h"
#include "net/client_transport.h"
#include "net/thrift_limits.h"

namespace monju::cli {
namespace {

using apache::thrift::TApplicationException;
using apache::thrift::TConfiguration;
using apache::thrift::TException;
using apache::thrift::protocol::TBinaryProtocol;
using apache::thrift::transport::TFramedTransport;
using apache::thrift::transport::TSocket;
using apache::thrift::transport::TTransportException;

// Replies can hold up to 1000 items of large values: allow big frames.
constexpr int kMaxMessageBytes = 256 << 20;

std::string AddrOf(const CliOptions& o) { return o.host + ":" + std::to_string(o.port); }

// One connection to one node; closed on destruction.
class Session {
 public:
  explicit Session(const CliOptions& o) {
    auto config = std::make_shared<TConfiguration>(kMaxMessageBytes, kMaxMessageBytes);
    socket_ = std::make_shared<TSocket>(o.host, o.port, config);
    ConfigureClientSocket(*socket_, {o.timeout_ms, o.timeout_ms});
    transport_ = FramedClientTransport(socket_, config);
    auto protocol = LimitedProtocol(transport_, kMaxMessageBytes);
    client_ = std::make_unique<api::MonjuKVClient>(protocol);
    admin_ = std::make_unique<admin::MonjuAdminClient>(
        std::make_shared<apache::thrift::protocol::TMultiplexedProtocol>(protocol, "admin"));
    membership_ = std::make_unique<membership::MonjuMembershipClient>(
        std::make_shared<apache::thrift::protocol::TMultiplexedProtocol>(protocol, "membership"));
  }
  ~Session() {
    try {
      if (transport_->isOpen()) transport_->close();
    } catch (const TException&) {  // closing a broken connection: nothing to do
    }
  }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  void Open() { transport_->open(); }  // throws TTransportException
  api::MonjuKVClient& client() { return *client_; }
  admin::MonjuAdminClient& admin() { return *admin_; }
  membership::MonjuMembershipClient& membership() { return *membership_; }

 private:
  std::shared_ptr<TSocket> socket_;
  std::shared_ptr<TFramedTransport> transport_;
  std::unique_ptr<api::MonjuKVClient> client_;
  std::unique_ptr<admin::MonjuAdminClient> admin_;
  std::unique_ptr<membership::MonjuMembershipClient> membership_;
};

void Print(const std::string& text) { std::fwrite(text.data(), 1, text.size(), stdout); }

void PrintJson(const nlohmann::json& value) { Print(DumpJson(value) + "\n"); }

int Report(const CliError& error, bool json) {
  std::fflush(stdout);
  std::cerr << HumanError(error) << std::endl;
  if (json) PrintJson(JsonError(error));
  return error.exit_code;
}

// The context a put/rm writes with: given, none, or the one a read returns now.
std::string ResolveContext(api::MonjuKVClient& client, const CliOptions& o) {
  if (o.blind) return "";
  if (o.context) return *o.context;
  api::GetResult current;
  client.get(current, o.pk, o.sk, o.r);
  return current.context;
}

int RunGet(api::MonjuKVClient& client, const CliOptions& o) {
  api::GetResult result;
  client.get(result, o.pk, o.sk, o.r);
  ReadView view{result.found, std::move(result.values), std::move(result.context)};
  if (o.json) PrintJson(JsonGet(o, view));
  else Print(HumanGet(view));
  if (view.found) return kExitOk;
  if (!o.json) {
    std::fflush(stdout);
    std::cerr << "monju: not found" << std::endl;
  }
  return kExitNotFound;
}

int RunWrite(api::MonjuKVClient& client, const CliOptions& o) {
  api::WriteResult result;
  if (o.overwrite) {
    client.overwrite(result, o.pk, o.sk, o.value, o.w);
  } else {
    std::string context = ResolveContext(client, o);
    if (o.command == Command::kPut) client.put(result, o.pk, o.sk, o.value, context, o.w);
    else client.remove(result, o.pk, o.sk, context, o.w);
  }
  WriteView view{std::move(result.context), std::move(result.acked_by), result.used_fallback,
                 std::move(result.hinted_for)};
  if (o.json) PrintJson(JsonWrite(o, view));
  else Print(HumanWrite(view));
  return kExitOk;
}

int RunStatus(admin::MonjuAdminClient& admin, const CliOptions& o) {
  admin::NodeStatus status;
  admin.status(status);
  StatusView view;
  view.id = status.id;
  view.ring = status.ring;
  view.sloppy_quorum = status.sloppy_quorum;
  view.pending_hints_total = status.pending_hints_total;
  view.repair_paused = status.repair_paused;
  for (const auto& p : status.peers) {
    auto owned = status.partitions_owned.find(p.id);
    view.peers.push_back({p.id, p.address, p.state, p.phi, p.ms_since_heard, p.pending_hints,
                          owned == status.partitions_owned.end() ? 0 : owned->second});
  }
  if (o.json) PrintJson(JsonStatus(view));
  else Print(HumanStatus(view));
  return kExitOk;
}

int RunStats(admin::MonjuAdminClient& admin, const CliOptions& o) {
  std::map<std::string, int64_t> stats;
  admin.stats(stats);
  if (o.json) PrintJson(JsonStats(stats));
  else Print(HumanStats(stats));
  return kExitOk;
}

int RunRepair(admin::MonjuAdminClient& admin, const CliOptions& o) {
  if (o.pause || o.resume) {
    const bool was = admin.set_repair_paused(o.pause);
    if (o.json) {
      nlohmann::json obj = nlohmann::json::object();
      obj["op"] = "repair";
      obj["paused"] = o.pause;
      obj["was_paused"] = was;
      PrintJson(obj);
    } else {
      Print(std::string("background anti-entropy ") + (o.pause ? "paused" : "running") + " (was " +
            (was ? "paused" : "running") + ")\n");
    }
    return kExitOk;
  }
  admin::RepairResult result;
  admin.repair(result, o.partition, o.node);
  RepairView view;
  view.elapsed_ms = result.elapsed_ms;
  view.trees_rebuilt = result.trees_rebuilt;
  bool failed = false;
  for (const admin::ExchangeResult& e : result.exchanges) {
    ExchangeView x;
    x.partition = e.partition;
    x.peer = e.peer;
    x.ok = e.ok;
    x.error = e.error;
    x.different = e.different;
    x.leaves_different = e.leaves_different;
    x.keys_different = e.keys_different;
    x.keys_sent = e.keys_sent;
    x.keys_received = e.keys_received;
    x.versions_sent = e.versions_sent;
    x.versions_received = e.versions_received;
    x.withheld = e.withheld;
    x.bytes_sent = e.bytes_sent;
    x.bytes_received = e.bytes_received;
    x.round_trips = e.round_trips;
    x.elapsed_ms = e.elapsed_ms;
    failed |= !e.ok;
    view.exchanges.push_back(std::move(x));
  }
  if (o.json) PrintJson(JsonRepair(view));
  else Print(HumanRepair(view));
  return failed ? kExitUnavailable : kExitOk;
}

int RunQuery(api::MonjuKVClient& client, const CliOptions& o) {
  api::QueryResult result;
  client.query(result, o.pk, o.prefix, o.start, o.limit, !o.descending, o.r);
  QueryView view;
  view.next_start_sk = std::move(result.next_start_sk);
  for (api::Item& item : result.items)
    view.items.push_back({std::move(item.sk), std::move(item.values), std::move(item.context)});
  if (o.json) PrintJson(JsonQuery(o, view));
  else Print(HumanQuery(view));
  return kExitOk;
}

int Dispatch(Session& session, const CliOptions& o) {
  api::MonjuKVClient& client = session.client();
  switch (o.command) {
    case Command::kStatus: return RunStatus(session.admin(), o);
    case Command::kStats: return RunStats(session.admin(), o);
    case Command::kRepair: return RunRepair(session.admin(), o);
    case Command::kGet: return RunGet(client, o);
    case Command::kPut:
    case Command::kRm: return RunWrite(client, o);
    case Command::kQuery: return RunQuery(client, o);
    case Command::kAdmin: return RunAdmin(session.membership(), o);
  }
  return kExitInvalid;
}

CliError TransportError(const CliOptions& o, const TTransportException& e) {
  if (e.getType() == TTransportException::TIMED_OUT)
    return {"transport", "no reply from " + AddrOf(o) + " within " + std::to_string(o.timeout_ms) + " ms",
            kExitConnect, {}, {}, ""};
  return {"transport", std::string(e.what()) + " (talking to " + AddrOf(o) + ")", kExitConnect, {}, {}, ""};
}

// Runs the request, turning every failure into its exit code.
int Call(Session& session, const CliOptions& o) {
  try {
    return Dispatch(session, o);
  } catch (const api::InvalidRequest& e) {
    return Report({"invalid", e.why, kExitInvalid, {}, {}, ""}, o.json);
  } catch (const api::Unavailable& e) {
    return Report({"unavailable", e.why, kExitUnavailable, e.needed, e.alive, "alive"}, o.json);
  } catch (const api::QuorumFailed& e) {
    return Report({"quorum_failed", e.why, kExitUnavailable, e.needed, e.acked, "acked"}, o.json);
  } catch (const api::TimedOut& e) {
    return Report({"timed_out", e.why, kExitUnavailable, {}, {}, ""}, o.json);
  } catch (const admin::AdminError& e) {
    const bool invalid = e.code == static_cast<int32_t>(Status::Code::kInvalidArgument);
    return Report({invalid ? "invalid" : "repair", e.why, invalid ? kExitInvalid : kExitUnavailable, {}, {}, ""},
                  o.json);
  } catch (const membership::MembershipError& e) {
    const bool refused = e.code == static_cast<int32_t>(Status::Code::kInvalidArgument) ||
                         e.code == static_cast<int32_t>(Status::Code::kMismatch) ||
                         e.code == static_cast<int32_t>(Status::Code::kNotFound);
    return Report({refused ? "refused" : "unavailable", e.why, refused ? kExitInvalid : kExitUnavailable, {}, {}, ""},
                  o.json);
  } catch (const TTransportException& e) {
    return Report(TransportError(o, e), o.json);
  } catch (const TException& e) {  // TApplicationException, TProtocolException
    return Report({"rpc", std::string(e.what()) + " (talking to " + AddrOf(o) + ")", kExitConnect, {}, {}, ""},
                  o.json);
  }
}

int Run(const CliOptions& o) {
  Session session(o);
  try {
    session.Open();
  } catch (const TTransportException& e) {
    return Report({"connect", AddrOf(o) + ": " + e.what(), kExitConnect, {}, {}, ""},
                  o.json);
  }
  return Call(session, o);
}

}  // namespace
}  // namespace monju::cli

int main(int argc, char** argv) {
  using namespace monju::cli;
  // Thrift logs transport trouble itself; we report each failure as one line.
  apache::thrift::GlobalOutput.setOutputFunction([](const char*) {});
  ParsedCli parsed = ParseCliArgs(argc, argv, std::getenv("MONJU_ADDR"));
  switch (parsed.action) {
    case ParsedCli::Action::kHelp:
      std::cout << parsed.text << std::endl;
      return kExitOk;
    case ParsedCli::Action::kError:
      return Report({"usage", parsed.text, kExitInvalid, {}, {}, ""}, parsed.options.json);
    case ParsedCli::Action::kRun:
      break;
  }
  try {
    return Run(parsed.options);
  } catch (const std::exception& e) {
    return Report({"internal", e.what(), kExitConnect, {}, {}, ""}, parsed.options.json);
  }
}
