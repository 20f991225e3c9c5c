// Integration-test harness: real monjud processes on 127.0.0.1, real TCP,
// real LMDB files in a fresh temp dir.
//
// - LocalCluster starts N nodes (fork + execv of $MONJUD), waits for each to
//   answer, and kills every process it started when destroyed. The temp dir
//   is removed too, unless MONJU_KEEP_TEST_DIRS is set.
// - Every wait is a poll against a deadline; nothing sleeps for a fixed time
//   to "let things settle".
// - RunProcess runs a binary (monjud with bad flags, the monju CLI) and
//   captures its exit code, stdout and stderr.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "MonjuAdmin.h"
#include "MonjuKV.h"
#include "MonjuReplica.h"
#include "clock/causal.h"

namespace monju::itest {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using api::MonjuKVClient;

// Paths from the environment (meson sets them); the test fails when unset.
std::string MonjudPath();
std::string CliPath();

// Ports that were free on 127.0.0.1 a moment ago (all distinct).
std::vector<uint16_t> PickFreePorts(int count);

// A fresh directory under /tmp; removed (recursively) by the destructor
// unless MONJU_KEEP_TEST_DIRS is set.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "monju-itest");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct ProcessResult {
  bool started = false;      // fork/exec worked
  bool timed_out = false;    // killed by us at the deadline
  bool exited = false;       // exited normally (else killed by a signal)
  int exit_code = -1;        // when exited
  int signal = 0;            // when killed by a signal
  std::string out, err;
  std::chrono::milliseconds elapsed{0};
  std::string Describe() const;  // for failure messages
};

// Runs path with args (argv[0] = path), stdin from /dev/null; kills it with
// SIGKILL at the deadline.
ProcessResult RunProcess(const std::string& path, const std::vector<std::string>& args,
                         std::chrono::milliseconds timeout = 20s);

// Runs the monju CLI.
ProcessResult RunCli(const std::vector<std::string>& args, std::chrono::milliseconds timeout = 20s);

// A connected client with ~5 s connect/send/recv timeouts.
std::unique_ptr<MonjuKVClient> ConnectClient(uint16_t port, int timeout_ms = 5000);

struct ClusterOptions {
  int nodes = 3;
  int n = 3;
  int r = 2;
  int w = 2;
  int request_timeout_ms = 2000;
  int map_size_mb = 1024;         // 0: do not pass --map-size-mb
  std::string log_level;          // "": MONJU_TEST_LOG_LEVEL, else not passed
  std::vector<std::string> extra_flags;                     // every node
  std::map<int, std::vector<std::string>> node_flags;       // by node index (0-based)
  // Node i starts with this RLIMIT_NOFILE {soft, hard} (set in the child).
  std::map<int, std::pair<uint64_t, uint64_t>> node_open_file_limit;
  // Node i's --peers also lists one member that never starts (n<nodes+1>),
  // with ports reserved together with the cluster's so none collide.
  std::set<int> nodes_seeing_a_phantom;
  // When set, node i's flags up to (not including) the common ones below
  // (map size, log level, extra and node flags) instead of --id ... --peers
  // ... -N -R -W: Raft-managed clusters build their own (raft_cluster.h).
  std::function<std::vector<std::string>(int node)> base_args;
  std::chrono::milliseconds ready_timeout = 15s;
  // After start, wait until every node answers get(r = N): every node then
  // believes every replica alive. Off for clusters that cannot get there.
  bool wait_all_connected = true;
};

class LocalCluster {
 public:
  explicit LocalCluster(ClusterOptions options = {});
  ~LocalCluster();
  LocalCluster(const LocalCluster&) = delete;
  LocalCluster& operator=(const LocalCluster&) = delete;

  // Starts every node and waits until each is ready (and, when asked, until
  // every node reaches every replica).
  ::testing::AssertionResult Start();

  int size() const { return static_cast<int>(nodes_.size()); }
  const ClusterOptions& options() const { return options_; }
  std::string id(int i) const { return "n" + std::to_string(i + 1); }
  uint16_t port(int i) const { return nodes_.at(i).port; }            // clients
  uint16_t peer_port(int i) const { return nodes_.at(i).peer_port; }  // node-to-node (MonjuReplica)
  std::string addr(int i) const { return "127.0.0.1:" + std::to_string(port(i)); }
  std::string dir() const { return dir_.path(); }
  std::string data_dir(int i) const { return dir() + "/" + id(i); }
  std::string log_path(int i) const { return dir() + "/" + id(i) + ".log"; }
  std::string peers_flag() const;             // the cluster's real peer list
  std::string PeersFlagFor(int i) const;      // what node i is given
  std::vector<std::string> Args(int i) const;  // argv[1..] of node i
  pid_t pid(int i) const { return nodes_.at(i).pid; }

  // Starts node i (not running) and waits until it is ready.
  ::testing::AssertionResult StartNode(int i);
  // Polls until node i answers a request (any reply or Unavailable/QuorumFailed
  // /TimedOut/InvalidRequest), or fails at the deadline / when it exits.
  ::testing::AssertionResult WaitReady(int i, std::chrono::milliseconds timeout);
  // Polls until each running node answers get(r = N).
  ::testing::AssertionResult WaitAllConnected(std::chrono::milliseconds timeout = 15s);

  // SIGKILL + waitpid.
  void Kill(int i);
  // SIGTERM; waits up to `grace` for the exit, then SIGKILL. Fails when the
  // node did not exit by itself with status 0 within the grace period.
  ::testing::AssertionResult Stop(int i, std::chrono::milliseconds grace = 10s);
  // Stop (if running) then StartNode: same flags, same data dir.
  ::testing::AssertionResult Restart(int i);
  // True while the process exists (reaps it when it exited).
  bool IsRunning(int i);
  // How the last process of node i ended ("" while running).
  std::string ExitDescription(int i) const { return nodes_.at(i).exit_description; }

  std::unique_ptr<MonjuKVClient> Client(int i, int timeout_ms = 5000) const { return ConnectClient(port(i), timeout_ms); }

  std::string ReadLog(int i) const;
  std::string LogTail(int i, int lines = 40) const;
  // Every node's log tail, for failure output.
  std::string AllLogTails(int lines = 40) const;

 private:
  struct Node {
    uint16_t port = 0;
    uint16_t peer_port = 0;
    pid_t pid = -1;
    std::string exit_description;
  };
  ::testing::AssertionResult Spawn(int i);
  void Reap(int i, int status);

  ClusterOptions options_;
  TempDir dir_;
  std::vector<Node> nodes_;
  uint16_t phantom_port_ = 0;
  uint16_t phantom_peer_port_ = 0;
};

// Polls fn every ~20 ms until it returns true or the deadline passes.
bool PollUntil(const std::function<bool()>& fn, std::chrono::milliseconds timeout,
               std::chrono::milliseconds interval = 20ms);

// A readable name for the exception a call threw ("InvalidRequest: why", ...).
std::string DescribeException(const std::exception& e);

// Which API error a call ended with.
enum class Outcome { kOk, kInvalidRequest, kUnavailable, kQuorumFailed, kTimedOut, kTransport, kOther };
const char* OutcomeName(Outcome outcome);

struct CallResult {
  Outcome outcome = Outcome::kOk;
  std::string message;
  std::chrono::milliseconds elapsed{0};
  bool ok() const { return outcome == Outcome::kOk; }
};

// Runs fn, classifying what it throws and timing it.
CallResult Call(const std::function<void()>& fn);

// Convenience wrappers on a fresh connection to node i.
CallResult TryPut(const LocalCluster& c, int i, const std::string& pk, const std::string& sk, const std::string& value,
                  const std::string& context = "", int32_t w = 0, api::WriteResult* out = nullptr);
CallResult TryGet(const LocalCluster& c, int i, const std::string& pk, const std::string& sk, int32_t r = 0,
                  api::GetResult* out = nullptr);

// Bytes shown safely in messages.
std::string Printable(const std::string& bytes, size_t max = 80);

// ---------------------------------------------------------------- admin, replica, resources

// MonjuAdmin (multiplexed as "admin") of node i, on its own connection.
// Calls throw like any Thrift call (TTransportException when the node is down).
class AdminClient {
 public:
  AdminClient(const LocalCluster& c, int i, int timeout_ms = 5000);
  explicit AdminClient(uint16_t port, int timeout_ms = 5000);
  admin::NodeStatus Status();
  std::map<std::string, int64_t> Stats();
  // Replaces the node's injected link faults (it must run with --fault-injection).
  void SetLinkFaults(const std::map<std::string, admin::LinkFaultSpec>& faults);

 private:
  std::shared_ptr<admin::MonjuAdminClient> client_;
};

// Node i's counters; false (with *error set when given) when the call failed.
bool TryStats(const LocalCluster& c, int i, std::map<std::string, int64_t>* out, std::string* error = nullptr);
bool TryStatus(const LocalCluster& c, int i, admin::NodeStatus* out, std::string* error = nullptr);
// A counter by name, 0 when absent.
int64_t StatOf(const std::map<std::string, int64_t>& stats, const std::string& name);
// Sum of one counter over every running node (nodes that do not answer count 0).
int64_t SumStat(LocalCluster& c, const std::string& name);
// State of `peer` as node `observer` sees it ("alive", "suspect", "down",
// "self"), "" when the status call failed or the peer is not listed.
std::string PeerState(const LocalCluster& c, int observer, const std::string& peer);
// Polls until node `observer` reports `peer` in `state`.
::testing::AssertionResult WaitPeerState(const LocalCluster& c, int observer, const std::string& peer,
                                         const std::string& state, std::chrono::milliseconds timeout = 15s);
// Polls until every running node other than `peer`'s own reports it in `state`.
::testing::AssertionResult WaitAllSee(LocalCluster& c, int peer_index, const std::string& state,
                                      std::chrono::milliseconds timeout = 15s);
// Polls until every running node reports hints.pending == 0.
::testing::AssertionResult WaitHintsDrained(LocalCluster& c, std::chrono::milliseconds timeout = 60s);

// MonjuReplica (multiplexed as "replica", on node i's peer port): reads ONE node's copy,
// bypassing any coordinator (so no read repair happens). The cluster
// fingerprint comes from the node's admin status.
class ReplicaClient {
 public:
  ReplicaClient(const LocalCluster& c, int i, int timeout_ms = 5000);
  // The key's siblings on this node, tombstones included; empty when absent.
  // Throws std::runtime_error when the bytes do not decode.
  SiblingSet Read(const std::string& pk, const std::string& sk);
  // Every item of pk on this node (sk -> siblings, tombstones included),
  // paging through MonjuReplica.scan. Throws like Read.
  std::map<std::string, SiblingSet> ScanPk(const std::string& pk);
  // MonjuReplica.apply_many of the items (unstamped: never fenced); throws
  // what the call throws.
  std::vector<rpc::ApplyOutcome> ApplyMany(const std::vector<rpc::KeyedVersion>& items);
  // MonjuReplica.read_many of (pk, sk) pairs, the same way.
  std::vector<rpc::ReadOutcome> ReadMany(const std::vector<std::pair<std::string, std::string>>& keys);

 private:
  std::shared_ptr<rpc::MonjuReplicaClient> client_;
  int64_t fingerprint_ = 0;
};

// One-shot ReplicaClient(c, i).Read(pk, sk).
SiblingSet ReplicaRead(const LocalCluster& c, int i, const std::string& pk, const std::string& sk);
// Same, classifying failures instead of throwing.
::testing::AssertionResult TryReplicaRead(const LocalCluster& c, int i, const std::string& pk, const std::string& sk,
                                          SiblingSet* out);
// "absent", "tombstone", or the live values, for messages.
std::string DescribeSiblings(const SiblingSet& s);

// VmRSS of a process in KiB (from /proc/<pid>/status), -1 when unknown.
int64_t VmRssKiB(pid_t pid);
// Peak VmRSS of a process in KiB (VmHWM), -1 when unknown.
int64_t VmHwmKiB(pid_t pid);
// A "Field:" line of /proc/<pid>/status in KiB, -1 when unknown.
int64_t ProcStatusKiB(pid_t pid, const std::string& field);
// Bytes under a directory: apparent (sum of file sizes) and allocated on disk.
struct DirUsage {
  uint64_t apparent = 0;
  uint64_t allocated = 0;
};
DirUsage DirectoryUsage(const std::string& path);

// Latency summary of a set of measurements, in microseconds.
struct LatencySummary {
  size_t count = 0;
  double p50_ms = 0, p99_ms = 0, max_ms = 0, mean_ms = 0;
  std::string ToString() const;
};
LatencySummary Summarize(std::vector<std::chrono::microseconds> samples);

// Base fixture behaviour: on failure, print each node's log tail.
#define MONJU_DUMP_LOGS_ON_FAILURE(cluster_ptr)                                                 \
  do {                                                                                          \
    if (::testing::Test::HasFailure() && (cluster_ptr) != nullptr)                              \
      std::cerr << "==== node logs (" << (cluster_ptr)->dir() << ") ====\n"                    \
                << (cluster_ptr)->AllLogTails() << std::flush;                                  \
  } while (0)

// A suite whose tests share one 3-node cluster (each test uses its own keys).
// The cluster starts before the suite's first test and stops after its last;
// a failed start fails every test with the reason, and a failed test prints
// the node logs.
class SharedClusterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    cluster_ = new LocalCluster(ClusterOptions{});
    auto started = cluster_->Start();
    if (!started) start_error_ = new std::string(started.message());
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
    delete start_error_;
    start_error_ = nullptr;
  }
  void SetUp() override {
    if (start_error_ != nullptr) FAIL() << "cluster did not start: " << *start_error_;
  }
  void TearDown() override { MONJU_DUMP_LOGS_ON_FAILURE(cluster_); }

  static inline LocalCluster* cluster_ = nullptr;
  static inline std::string* start_error_ = nullptr;
};

}  // namespace monju::itest
