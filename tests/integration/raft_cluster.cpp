#include "raft_cluster.h"

#include <thread>

#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/protocol/TMultiplexedProtocol.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TSocket.h>

namespace monju::itest {
namespace {

using apache::thrift::protocol::TBinaryProtocol;
using apache::thrift::protocol::TMultiplexedProtocol;
using apache::thrift::transport::TFramedTransport;
using apache::thrift::transport::TSocket;

std::unique_ptr<membership::MonjuMembershipClient> MembershipClient(uint16_t port, int timeout_ms) {
  auto socket = std::make_shared<TSocket>("127.0.0.1", port);
  socket->setConnTimeout(timeout_ms);
  socket->setRecvTimeout(timeout_ms);
  socket->setSendTimeout(timeout_ms);
  auto transport = std::make_shared<TFramedTransport>(socket);
  transport->open();
  return std::make_unique<membership::MonjuMembershipClient>(
      std::make_shared<TMultiplexedProtocol>(std::make_shared<TBinaryProtocol>(transport), "membership"));
}

ClusterOptions LocalOptions(const RaftClusterOptions& o) {
  ClusterOptions c;
  c.nodes = o.max_nodes;
  c.n = o.n;
  c.r = o.r;
  c.w = o.w;
  c.request_timeout_ms = o.request_timeout_ms;
  c.extra_flags = o.extra_flags;
  c.ready_timeout = o.ready_timeout;
  return c;
}

}  // namespace

RaftCluster::RaftCluster(RaftClusterOptions options)
    : options_(std::move(options)), local_([this] {
        ClusterOptions c = LocalOptions(options_);
        c.base_args = [this](int i) { return BaseArgs(i); };
        return c;
      }()) {
  // Raft ports distinct from the client and peer ports LocalCluster picked.
  std::set<uint16_t> taken;
  for (int i = 0; i < options_.max_nodes; ++i) taken.insert({local_.port(i), local_.peer_port(i)});
  for (int attempt = 0; attempt < 20 && static_cast<int>(raft_ports_.size()) < options_.max_nodes; ++attempt) {
    raft_ports_.clear();
    for (uint16_t p : PickFreePorts(options_.max_nodes))
      if (!taken.count(p)) raft_ports_.push_back(p);
  }
  if (static_cast<int>(raft_ports_.size()) != options_.max_nodes) throw std::runtime_error("no free ports");
}

std::vector<std::string> RaftCluster::BaseArgs(int i) const {
  std::vector<std::string> a = {"--id",          id(i),
                                "--listen",      addr(i),
                                "--data",        local_.data_dir(i),
                                "--raft-listen", "127.0.0.1:" + std::to_string(raft_port(i)),
                                "-R",            std::to_string(options_.r),
                                "-W",            std::to_string(options_.w),
                                "--vnodes",      std::to_string(options_.vnodes),
                                "--request-timeout-ms", std::to_string(options_.request_timeout_ms)};
  if (auto it = joiners_.find(i); it != joiners_.end()) {
    a.push_back("--join");
    a.push_back(addr(it->second));
    a.push_back("--peer-port");
    a.push_back(std::to_string(local_.peer_port(i)));
    return a;
  }
  std::string peers, raft_peers;
  for (int k = 0; k < options_.initial; ++k) {
    peers += (k ? "," : "") + id(k) + "=" + addr(k) + "/" + std::to_string(local_.peer_port(k));
    raft_peers += (k ? "," : "") + id(k) + "=127.0.0.1:" + std::to_string(raft_port(k));
  }
  for (const std::string& f : {std::string("--peers"), peers, std::string("--raft-peers"), raft_peers,
                               std::string("-N"), std::to_string(options_.n), std::string("--partitions"),
                               std::to_string(options_.partitions), std::string("--raft-voters"),
                               std::to_string(options_.voters)})
    a.push_back(f);
  return a;
}

::testing::AssertionResult RaftCluster::Start() {
  for (int i = 0; i < options_.initial; ++i) {
    auto s = local_.StartNode(i);
    if (!s) return s;
  }
  for (int i = 0; i < options_.initial; ++i) {
    auto s = WaitEpochAtLeast(i, 1, options_.ready_timeout);
    if (!s) return s;
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult RaftCluster::StartJoiner(int i) {
  int via = -1;
  for (int k = 0; k < max_nodes() && via < 0; ++k)
    if (k != i && local_.IsRunning(k)) via = k;
  if (via < 0) return ::testing::AssertionFailure() << "no running node to join through";
  joiners_[i] = via;
  return local_.StartNode(i);
}

bool RaftCluster::TryMembers(int i, membership::MembersReply* out, std::string* error) const {
  try {
    MembershipClient(local_.port(i), 5000)->members(*out);
    return true;
  } catch (const std::exception& e) {
    if (error) *error = DescribeException(e);
    return false;
  }
}

bool RaftCluster::TryRing(int i, membership::RingReply* out, std::string* error) const {
  try {
    MembershipClient(local_.port(i), 5000)->ring(*out);
    return true;
  } catch (const std::exception& e) {
    if (error) *error = DescribeException(e);
    return false;
  }
}

bool RaftCluster::TryProgress(int i, int64_t change_epoch, membership::NodeProgress* out, std::string* error) const {
  try {
    MembershipClient(local_.port(i), 5000)->progress(*out, change_epoch);
    return true;
  } catch (const std::exception& e) {
    if (error) *error = DescribeException(e);
    return false;
  }
}

int64_t RaftCluster::Epoch(int i) const {
  membership::MembersReply r;
  return TryMembers(i, &r) ? r.epoch : -1;
}

::testing::AssertionResult RaftCluster::WaitEpochAtLeast(int i, int64_t epoch,
                                                         std::chrono::milliseconds timeout) const {
  int64_t last = -1;
  if (PollUntil([&] { return (last = Epoch(i)) >= epoch; }, timeout, 50ms)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << id(i) << " is at epoch " << last << ", not " << epoch << " after "
                                       << timeout.count() << " ms\n"
                                       << local_.LogTail(i);
}

::testing::AssertionResult RaftCluster::WaitSettled(int64_t epoch, std::chrono::milliseconds timeout) {
  std::string why;
  bool ok = PollUntil(
      [&] {
        int64_t seen = -1;
        for (int i = 0; i < max_nodes(); ++i) {
          if (!local_.IsRunning(i)) continue;
          membership::MembersReply r;
          std::string error;
          if (!TryMembers(i, &r, &error)) {
            why = id(i) + ": " + error;
            return false;
          }
          if (!r.change.empty() || r.epoch < epoch || (seen >= 0 && r.epoch != seen)) {
            why = id(i) + " at epoch " + std::to_string(r.epoch) + (r.change.empty() ? "" : ", change " + r.change);
            return false;
          }
          seen = r.epoch;
        }
        return true;
      },
      timeout, 100ms);
  if (ok) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "not settled at epoch >= " << epoch << " after " << timeout.count()
                                       << " ms: " << why << "\n"
                                       << local_.AllLogTails(30);
}

ProcessResult RaftCluster::Admin(int i, const std::vector<std::string>& args, std::chrono::milliseconds timeout) const {
  std::vector<std::string> a = {"--addr", addr(i), "admin"};
  a.insert(a.end(), args.begin(), args.end());
  return RunCli(a, timeout);
}

}  // namespace monju::itest
