// monju-bench end to end: a few seconds of load against a real 3-node
// cluster must finish with zero errors and sane numbers in its --json output.
// Not a timing test: only the shape and consistency of the results count.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <nlohmann/json.hpp>

#include "cluster_harness.h"

namespace monju::itest {
namespace {

using nlohmann::json;

std::string BenchPath() {
  const char* p = getenv("MONJU_BENCH");
  return p ? p : "";
}

class BenchSmokeTest : public SharedClusterTest {
 protected:
  std::string Addrs() const {
    return cluster_->addr(0) + "," + cluster_->addr(1) + "," + cluster_->addr(2);
  }
  // Runs monju-bench with `args` (plus the cluster and --json); parses stdout.
  json Run(std::vector<std::string> args, int expected_exit = 0) {
    args.insert(args.begin(), {"--driver", "monju", "--addr", Addrs(), "--json", "--progress", "0"});
    ProcessResult r = RunProcess(BenchPath(), args, 60s);
    EXPECT_TRUE(r.exited) << r.Describe();
    EXPECT_EQ(r.exit_code, expected_exit) << r.Describe();
    json doc = json::parse(r.out, nullptr, false);
    EXPECT_FALSE(doc.is_discarded()) << "stdout is not JSON: " << r.out;
    return doc;
  }
};

// Percentiles must be ordered and bounded by the maximum.
void ExpectSaneLatencies(const json& op, const std::string& name) {
  SCOPED_TRACE(name + ": " + op.dump());
  EXPECT_GT(op["ok"].get<uint64_t>(), 0u);
  EXPECT_EQ(op["errors"].get<uint64_t>(), 0u);
  EXPECT_GT(op["p50_us"].get<uint64_t>(), 0u);
  EXPECT_LE(op["p50_us"].get<uint64_t>(), op["p95_us"].get<uint64_t>());
  EXPECT_LE(op["p95_us"].get<uint64_t>(), op["p99_us"].get<uint64_t>());
  EXPECT_LE(op["p99_us"].get<uint64_t>(), op["p999_us"].get<uint64_t>());
  EXPECT_LE(op["p999_us"].get<uint64_t>(), op["max_us"].get<uint64_t>());
  EXPECT_GT(op["ops_per_s"].get<double>(), 0.0);
}

TEST_F(BenchSmokeTest, WorkloadAAgainstThreeNodesHasNoErrors) {
  ASSERT_FALSE(BenchPath().empty()) << "MONJU_BENCH is not set";
  json doc = Run({"--workload", "a", "--records", "600", "--rows-per-pk", "10", "--threads", "6", "--duration", "3",
                  "--warmup", "1", "--seed", "7", "--value-size", "100"});
  ASSERT_TRUE(doc.is_object());
  EXPECT_EQ(doc["seed"], 7);
  EXPECT_EQ(doc["threads"], 6);
  EXPECT_EQ(doc["mix"], "read 50% update 50%");
  const json& load = doc["load"];
  EXPECT_EQ(load["ok"], 600) << "every record is inserted once";
  EXPECT_EQ(load["errors"], 0) << load.dump();
  ExpectSaneLatencies(load["ops"]["insert"], "insert");
  const json& run = doc["run"];
  EXPECT_EQ(run["errors"], 0) << run.dump();
  EXPECT_NEAR(run["seconds"].get<double>(), 3.0, 0.01) << "the measured window is the duration";
  ExpectSaneLatencies(run["ops"]["read"], "read");
  ExpectSaneLatencies(run["ops"]["update"], "update");
  const uint64_t reads = run["ops"]["read"]["ok"], updates = run["ops"]["update"]["ok"];
  EXPECT_EQ(run["ok"].get<uint64_t>(), reads + updates);
  // A 50/50 mix: neither side may be starved (loose bounds, any machine).
  EXPECT_GT(reads * 3, updates);
  EXPECT_GT(updates * 3, reads);
  EXPECT_NEAR(run["ops_per_s"].get<double>(), double(reads + updates) / run["seconds"].get<double>(), 1.0);
  // The cluster really served them: every node coordinated some requests.
  for (int i = 0; i < 3; ++i) {
    std::map<std::string, int64_t> stats;
    ASSERT_TRUE(TryStats(*cluster_, i, &stats));
    EXPECT_GT(StatOf(stats, "requests.get") + StatOf(stats, "requests.put"), 0) << "node " << i;
    // The node's own latency figures cover every request it coordinated, and
    // every commit of its store.
    EXPECT_EQ(StatOf(stats, "latency.put_us.count"), StatOf(stats, "requests.put")) << "node " << i;
    EXPECT_EQ(StatOf(stats, "latency.get_us.count"), StatOf(stats, "requests.get")) << "node " << i;
    EXPECT_LE(StatOf(stats, "latency.put_us.p50"), StatOf(stats, "latency.put_us.p99")) << "node " << i;
    EXPECT_LE(StatOf(stats, "latency.put_us.p99"), StatOf(stats, "latency.put_us.max")) << "node " << i;
    EXPECT_GT(StatOf(stats, "latency.put_us.max"), 0) << "node " << i;
    EXPECT_EQ(StatOf(stats, "storage.commit_us.count"), StatOf(stats, "storage.commits")) << "node " << i;
    EXPECT_EQ(StatOf(stats, "storage.apply_wait_us.count"), StatOf(stats, "storage.applied")) << "node " << i;
    EXPECT_GE(StatOf(stats, "storage.batch_ops.max"), 1) << "node " << i;
    // The run took less than a minute: the recent windows hold what it did.
    EXPECT_GT(StatOf(stats, "latency.put_us.recent.count"), 0) << "node " << i;
    EXPECT_LE(StatOf(stats, "latency.put_us.recent.count"), StatOf(stats, "latency.put_us.count")) << "node " << i;
    EXPECT_GT(StatOf(stats, "storage.commit_us.recent.count"), 0) << "node " << i;
  }
}

TEST_F(BenchSmokeTest, QueryAndOperationCountRun) {
  ASSERT_FALSE(BenchPath().empty()) << "MONJU_BENCH is not set";
  // Records of the first test, queried: 10 per pk, so each query sees up to 5.
  json doc = Run({"--phase", "both", "--workload", "query", "--records", "300", "--rows-per-pk", "10",
                  "--query-limit", "5", "--threads", "3", "--duration", "0", "--operations", "200", "--warmup", "0",
                  "--seed", "11"});
  ASSERT_TRUE(doc.is_object());
  const json& run = doc["run"];
  EXPECT_EQ(run["errors"], 0) << run.dump();
  EXPECT_EQ(run["ok"], 200) << "exactly the operations asked for";
  ExpectSaneLatencies(run["ops"]["query"], "query");
  EXPECT_EQ(run["query_items"], 200 * 5) << "every loaded pk holds 10 items; a query returns its limit";
}

TEST_F(BenchSmokeTest, UnreachableClusterIsReportedNotHidden) {
  ASSERT_FALSE(BenchPath().empty()) << "MONJU_BENCH is not set";
  const uint16_t closed = PickFreePorts(1).at(0);
  ProcessResult r = RunProcess(BenchPath(), {"--addr", "127.0.0.1:" + std::to_string(closed), "--records", "10",
                                             "--threads", "2", "--duration", "1", "--warmup", "0", "--json",
                                             "--progress", "0"},
                               30s);
  EXPECT_TRUE(r.exited) << r.Describe();
  EXPECT_EQ(r.exit_code, 4) << r.Describe();
  json doc = json::parse(r.out, nullptr, false);
  ASSERT_FALSE(doc.is_discarded()) << r.out;
  EXPECT_EQ(doc["load"]["connect_failures"], 2);
  EXPECT_EQ(doc["load"]["errors"], 2);
  EXPECT_EQ(doc["load"]["ok"], 0);
}

TEST_F(BenchSmokeTest, BadArgumentsAreRefused) {
  ASSERT_FALSE(BenchPath().empty()) << "MONJU_BENCH is not set";
  for (const auto& args : std::vector<std::vector<std::string>>{{"--workload", "z"},
                                                                {"--distribution", "normal"},
                                                                {"--mix", "1:2"},
                                                                {"--threads", "0"},
                                                                {"--duration", "0"},
                                                                {"--driver", "memcached"},
                                                                {"--driver", "etcd", "--addr", "127.0.0.1:1"}}) {
    ProcessResult r = RunProcess(BenchPath(), args, 10s);
    EXPECT_TRUE(r.exited) << r.Describe();
    EXPECT_EQ(r.exit_code, 2) << r.Describe();
    EXPECT_NE(r.err.find("monju-bench: "), std::string::npos) << r.Describe();
  }
}

}  // namespace
}  // namespace monju::itest
