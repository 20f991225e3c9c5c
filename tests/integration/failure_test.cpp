// Failures: nodes killed and restarted, data surviving restarts, and peers
// started with different cluster parameters. Each test runs its own cluster.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <signal.h>

#include <algorithm>

#include "cluster_harness.h"

namespace monju::itest {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int kRequestTimeoutMs = 2000;
// A request must come back within the server's request timeout plus this.
constexpr auto kLivenessSlack = 2000ms;
constexpr auto kRecovery = 20s;

class FailureTest : public ::testing::Test {
 protected:
  void TearDown() override { MONJU_DUMP_LOGS_ON_FAILURE(cluster_.get()); }

  LocalCluster& StartCluster(ClusterOptions options = {}) {
    options.request_timeout_ms = kRequestTimeoutMs;
    cluster_ = std::make_unique<LocalCluster>(std::move(options));
    auto started = cluster_->Start();
    EXPECT_TRUE(started);
    if (!started) throw std::runtime_error("cluster did not start");
    return *cluster_;
  }

  // Asserts that the call failed with Unavailable or QuorumFailed, quickly.
  static void ExpectFastQuorumError(const CallResult& r, const std::string& what) {
    EXPECT_TRUE(r.outcome == Outcome::kUnavailable || r.outcome == Outcome::kQuorumFailed)
        << what << ": expected Unavailable or QuorumFailed, got " << OutcomeName(r.outcome) << " " << r.message;
    EXPECT_LE(r.elapsed, std::chrono::milliseconds(kRequestTimeoutMs) + kLivenessSlack)
        << what << " took " << r.elapsed.count() << " ms";
  }

  std::unique_ptr<LocalCluster> cluster_;
};

std::string Key(int n) { return "key-" + std::to_string(n); }

// (e) One of three down: R=2/W=2 still works through the live nodes. Two down:
// requests fail fast with Unavailable/QuorumFailed. Restarting restores service.
TEST_F(FailureTest, QuorumWithNodesDownAndRecovery) {
  LocalCluster& c = StartCluster();
  const std::string pk = "fail-e";

  for (int n = 0; n < 5; ++n) {
    CallResult r = TryPut(c, n % 3, pk, Key(n), "before-" + std::to_string(n));
    ASSERT_TRUE(r.ok()) << r.message;
  }

  c.Kill(2);
  for (int node : {0, 1}) {
    for (int n = 10 * (node + 1); n < 10 * (node + 1) + 5; ++n) {
      api::WriteResult wr;
      CallResult put = TryPut(c, node, pk, Key(n), "one-down-" + std::to_string(n), "", 2, &wr);
      EXPECT_TRUE(put.ok()) << "put via n" << node + 1 << " with n3 down: " << OutcomeName(put.outcome) << " "
                            << put.message;
      EXPECT_FALSE(wr.context.empty());
      api::GetResult g;
      CallResult get = TryGet(c, 1 - node, pk, Key(n), 2, &g);
      EXPECT_TRUE(get.ok()) << "get via n" << 2 - node << " with n3 down: " << get.message;
      EXPECT_THAT(g.values, ElementsAre("one-down-" + std::to_string(n)));
    }
    // Data written before the failure is still readable.
    api::GetResult g;
    CallResult get = TryGet(c, node, pk, Key(1), 0, &g);
    EXPECT_TRUE(get.ok()) << get.message;
    EXPECT_THAT(g.values, ElementsAre("before-1"));
  }
  // Asking for all three replicas cannot succeed.
  ExpectFastQuorumError(TryGet(c, 0, pk, Key(1), 3), "get r=3 with n3 down");
  ExpectFastQuorumError(TryPut(c, 1, pk, Key(99), "x", "", 3), "put w=3 with n3 down");
  // A query still works with R=2.
  CallResult q = Call([&] {
    api::QueryResult res;
    c.Client(0)->query(res, pk, "key-1", "", 100, true, 0);
    EXPECT_GE(res.items.size(), 6u);  // key-1, key-10..14
  });
  EXPECT_TRUE(q.ok()) << q.message;

  c.Kill(1);
  ASSERT_TRUE(c.IsRunning(0));
  for (int attempt = 0; attempt < 3; ++attempt) {
    ExpectFastQuorumError(TryPut(c, 0, pk, "two-down-" + std::to_string(attempt), "x"),
                          "put with two nodes down, attempt " + std::to_string(attempt));
    ExpectFastQuorumError(TryGet(c, 0, pk, Key(1)), "get with two nodes down, attempt " + std::to_string(attempt));
    ExpectFastQuorumError(Call([&] {
                            api::QueryResult res;
                            c.Client(0)->query(res, pk, "", "", 10, true, 0);
                          }),
                          "query with two nodes down, attempt " + std::to_string(attempt));
    ExpectFastQuorumError(Call([&] {
                            api::WriteResult res;
                            c.Client(0)->remove(res, pk, Key(1), "", 0);
                          }),
                          "remove with two nodes down, attempt " + std::to_string(attempt));
  }
  // The one live replica can still answer r=1 (it saw every acknowledged write
  // made while n3 was down: those needed n1 and n2).
  {
    api::GetResult g;
    CallResult r1 = TryGet(c, 0, pk, Key(12), 1, &g);
    EXPECT_TRUE(r1.ok()) << "get r=1 with one live replica: " << r1.message;
    EXPECT_THAT(g.values, ElementsAre("one-down-12"));
  }
  ASSERT_TRUE(c.IsRunning(0)) << "n1 died: " << c.ExitDescription(0);

  // Restart both; service comes back (every node reaches every replica).
  ASSERT_TRUE(c.StartNode(1));
  ASSERT_TRUE(c.StartNode(2));
  for (int node = 0; node < 3; ++node) {
    CallResult last;
    bool recovered = PollUntil(
        [&] {
          last = TryPut(c, node, pk, "after-restart-" + std::to_string(node), "ok", "", 3);
          return last.ok();
        },
        kRecovery, 50ms);
    EXPECT_TRUE(recovered) << "put w=3 via n" << node + 1 << " after restarts; last: " << OutcomeName(last.outcome)
                           << " " << last.message;
  }
  for (int node = 0; node < 3; ++node) {
    for (int n : {0, 1, 4, 10, 14, 20, 24}) {
      api::GetResult g;
      CallResult r = TryGet(c, node, pk, Key(n), 3, &g);
      EXPECT_TRUE(r.ok()) << "get r=3 via n" << node + 1 << " " << Key(n) << ": " << r.message;
      EXPECT_TRUE(g.found) << Key(n);
      EXPECT_EQ(g.values.size(), 1u) << Key(n);
    }
  }
}

// (f) Data survives SIGTERM of the whole cluster, and acknowledged writes
// survive SIGKILL of a node. Each node's own copy is checked by reading it
// alone (r=1 with the other nodes down).
// --read-fanout quorum asks R replicas; one that stops answering (SIGSTOP,
// not yet suspected: probes are off) must not hold up the read, because the
// third replica is asked after the speculation delay.
TEST_F(FailureTest, QuorumReadsAskTheThirdReplicaWhenOneStopsAnswering) {
  ClusterOptions options;
  options.extra_flags = {"--read-fanout", "quorum", "--read-speculate-ms", "20", "--probe-interval-ms", "60000"};
  LocalCluster& c = StartCluster(std::move(options));
  // One pk per key: the pk places the key, so they spread over partitions.
  constexpr int kKeys = 20;
  auto pk = [](int n) { return "fail-speculate-" + std::to_string(n); };
  for (int n = 0; n < kKeys; ++n) ASSERT_TRUE(TryPut(c, 0, pk(n), "sk", "v-" + std::to_string(n), "", 3).ok());

  ASSERT_EQ(kill(c.pid(1), SIGSTOP), 0);
  for (int n = 0; n < kKeys; ++n) {
    api::GetResult g;
    CallResult get = TryGet(c, 0, pk(n), "sk", 2, &g);
    EXPECT_TRUE(get.ok()) << "get " << pk(n) << " with n2 stopped: " << OutcomeName(get.outcome) << " "
                          << get.message;
    EXPECT_THAT(g.values, ElementsAre("v-" + std::to_string(n)));
  }
  const int64_t speculative = AdminClient(c, 0).Stats()["reads.speculative"];
  ASSERT_EQ(kill(c.pid(1), SIGCONT), 0);
  // Every key sits on all three nodes; n1 asks n2 first wherever n2 comes
  // before n3 in the partition's preference list.
  EXPECT_GE(speculative, 1) << "no read asked a third replica";
}

TEST_F(FailureTest, DataSurvivesRestarts) {
  LocalCluster& c = StartCluster();
  const std::string pk = "fail-f";
  constexpr int kKeys = 20;
  for (int n = 0; n < kKeys; ++n) {
    CallResult r = TryPut(c, n % 3, pk, Key(n), "value-" + std::to_string(n), "", 3);
    ASSERT_TRUE(r.ok()) << "put w=3: " << r.message;
  }
  // A removed key must stay removed.
  {
    api::GetResult g;
    ASSERT_TRUE(TryGet(c, 0, pk, Key(7), 0, &g).ok());
    CallResult rm = Call([&] {
      api::WriteResult res;
      c.Client(1)->remove(res, pk, Key(7), g.context, 3);
    });
    ASSERT_TRUE(rm.ok()) << rm.message;
  }

  auto read_all = [&](int node, int r, int first, int count, const std::string& when) {
    for (int n = first; n < first + count; ++n) {
      api::GetResult g;
      CallResult res = TryGet(c, node, pk, Key(n), r, &g);
      ASSERT_TRUE(res.ok()) << when << ": get r=" << r << " via n" << node + 1 << " " << Key(n) << ": "
                            << OutcomeName(res.outcome) << " " << res.message;
      if (n == 7) {
        EXPECT_FALSE(g.found) << when << ": removed key came back via n" << node + 1;
      } else {
        EXPECT_TRUE(g.found) << when << ": " << Key(n) << " lost (via n" << node + 1 << ", r=" << r << ")";
        EXPECT_THAT(g.values, ElementsAre("value-" + std::to_string(n))) << when << " via n" << node + 1;
      }
    }
  };
  // Waits until node answers r=3 (the others have noticed the restarts).
  auto wait_r3 = [&](int node) {
    CallResult last;
    bool ok = PollUntil(
        [&] {
          last = TryGet(c, node, pk, Key(0), 3);
          return last.ok();
        },
        kRecovery, 50ms);
    EXPECT_TRUE(ok) << "n" << node + 1 << " cannot read r=3 after restart: " << OutcomeName(last.outcome) << " "
                    << last.message;
    return ok;
  };

  // 1. SIGTERM everything, start again.
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(c.Stop(i));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(c.StartNode(i));
  for (int i = 0; i < 3; ++i) {
    if (!wait_r3(i)) return;
    read_all(i, 3, 0, kKeys, "after SIGTERM restart");
  }
  // n3's own copy, alone.
  c.Kill(0);
  c.Kill(1);
  read_all(2, 1, 0, kKeys, "n3 alone after SIGTERM restart");
  ASSERT_TRUE(c.StartNode(0));
  ASSERT_TRUE(c.StartNode(1));
  // n3 saw n1 and n2 fail and skips them for up to a second (its peer
  // quarantine): wait until every coordinator reaches every replica again.
  if (!wait_r3(0) || !wait_r3(1) || !wait_r3(2)) return;

  // 2. Writes acknowledged with W=3, then SIGKILL n2 right away.
  for (int n = kKeys; n < 2 * kKeys; ++n) {
    CallResult r = TryPut(c, n % 3, pk, Key(n), "value-" + std::to_string(n), "", 3);
    ASSERT_TRUE(r.ok()) << "put w=3: " << r.message;
  }
  c.Kill(1);
  ASSERT_TRUE(c.StartNode(1));
  if (!wait_r3(1) || !wait_r3(0) || !wait_r3(2)) return;
  read_all(1, 3, 0, 2 * kKeys, "after SIGKILL restart of n2");
  // n2's own copy, alone.
  c.Kill(0);
  c.Kill(2);
  read_all(1, 1, 0, 2 * kKeys, "n2 alone after SIGKILL restart");
  // And a write through the lone node with W=1 works, then everyone returns.
  CallResult w1 = TryPut(c, 1, pk, "lonely", "w1", "", 1);
  EXPECT_TRUE(w1.ok()) << "put w=1 with one live replica: " << w1.message;
  ASSERT_TRUE(c.StartNode(0));
  ASSERT_TRUE(c.StartNode(2));
  for (int i = 0; i < 3; ++i) {
    if (!wait_r3(i)) return;
    api::GetResult g;
    CallResult r = TryGet(c, i, pk, "lonely", 3, &g);
    EXPECT_TRUE(r.ok()) << r.message;
    EXPECT_THAT(g.values, ElementsAre("w1")) << "via n" << i + 1;
  }
  // Restart (SIGTERM, same flags and data) one more node while the others serve.
  ASSERT_TRUE(c.Restart(0));
  if (!wait_r3(0)) return;
  read_all(0, 3, 0, 2 * kKeys, "after Restart of n1");
}

// (k) Peers with other cluster parameters must not take part silently:
// requests needing the odd node's replica fail, and it logs the mismatch.
class MismatchTest : public FailureTest {
 protected:
  void ExpectRefused(LocalCluster& c) {
    const std::string pk = "fail-k";
    for (int attempt = 0; attempt < 3; ++attempt) {
      CallResult put = TryPut(c, 0, pk, "k" + std::to_string(attempt), "v", "", 3);
      EXPECT_FALSE(put.ok()) << "put w=3 through n1 succeeded although n3's cluster parameters differ";
      ExpectFastQuorumError(put, "put w=3 through n1");
      CallResult get = TryGet(c, 1, pk, "k0", 3);
      EXPECT_FALSE(get.ok()) << "get r=3 through n2 succeeded although n3's cluster parameters differ";
      ExpectFastQuorumError(get, "get r=3 through n2");
    }
    // Through n3 itself: a read needs peers under n3's wrong parameters and
    // must fail. A write may be forwarded by n3 to an owner (over the public
    // API), which then coordinates it under the right parameters: acceptable
    // only if the value really lands where n1 and n2 expect it.
    CallResult via3_get = TryGet(c, 2, pk, "k0", 2);
    EXPECT_FALSE(via3_get.ok()) << "get r=2 through the mismatched n3 succeeded";
    CallResult via3 = TryPut(c, 2, pk, "via-n3", "v", "", 2);
    if (via3.ok()) {
      api::GetResult g;
      CallResult check = TryGet(c, 0, pk, "via-n3", 2, &g);
      EXPECT_TRUE(check.ok()) << check.message;
      EXPECT_THAT(g.values, ElementsAre("v")) << "a put through n3 succeeded but n1/n2 cannot read it";
    } else {
      EXPECT_NE(via3.outcome, Outcome::kTransport) << via3.message;
    }

    // n3 says why, in its log.
    bool logged = PollUntil(
        [&] {
          std::string log = c.ReadLog(2);
          std::transform(log.begin(), log.end(), log.begin(), [](unsigned char ch) { return std::tolower(ch); });
          return log.find("mismatch") != std::string::npos || log.find("parameters differ") != std::string::npos ||
                 log.find("fingerprint") != std::string::npos;
        },
        5s, 50ms);
    EXPECT_TRUE(logged) << "n3's log does not mention the mismatch:\n" << c.LogTail(2);
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(c.IsRunning(i)) << "n" << i + 1 << " " << c.ExitDescription(i);
  }
};

TEST_F(MismatchTest, DifferentPartitionCount) {
  ClusterOptions o;
  o.node_flags[2] = {"--partitions", "128"};
  o.wait_all_connected = false;
  ExpectRefused(StartCluster(o));
}

TEST_F(MismatchTest, DifferentPeerList) {
  ClusterOptions o;
  o.wait_all_connected = false;
  // n3 believes in a fourth member (never started).
  o.nodes_seeing_a_phantom = {2};
  ExpectRefused(StartCluster(o));
}

}  // namespace
}  // namespace monju::itest
