// With more nodes than N, a node that is not a replica of a key forwards the
// write to one that is; reads are coordinated anywhere.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>

#include <atomic>
#include <memory>
#include <mutex>
#include <map>
#include <condition_variable>
#include <set>
#include <thread>
#include <vector>

#include "cluster_harness.h"
#include "config/node_config.h"
#include "membership.h"

namespace monju::itest {
namespace {

TEST(ForwardingTest, EveryNodeServesEveryKeyInAFiveNodeCluster) {
  ClusterOptions options;
  options.nodes = 5;
  options.n = 3;
  LocalCluster cluster(options);
  ASSERT_TRUE(cluster.Start());

  // 100 keys spread over the partitions: with N=3 of 5, each node coordinates
  // some writes itself and forwards the others.
  for (int k = 0; k < 100; ++k) {
    std::string pk = "fwd-" + std::to_string(k);
    api::WriteResult written;
    CallResult r = TryPut(cluster, k % 5, pk, "s", "v" + std::to_string(k), "", 0, &written);
    ASSERT_TRUE(r.ok()) << pk << " through " << cluster.id(k % 5) << ": " << r.message;
    EXPECT_FALSE(written.context.empty());
  }
  for (int k = 0; k < 100; ++k) {
    std::string pk = "fwd-" + std::to_string(k);
    api::GetResult got;
    CallResult r = TryGet(cluster, (k + 2) % 5, pk, "s", 2, &got);
    ASSERT_TRUE(r.ok()) << pk << ": " << r.message;
    ASSERT_EQ(got.values.size(), 1u) << pk;
    EXPECT_EQ(got.values[0], "v" + std::to_string(k));
  }
  // A write through a non-owner that carries the read's context replaces the
  // value (no false sibling from the forwarding hop).
  for (int k = 0; k < 20; ++k) {
    std::string pk = "fwd-" + std::to_string(k);
    api::GetResult got;
    ASSERT_TRUE(TryGet(cluster, k % 5, pk, "s", 2, &got).ok());
    ASSERT_TRUE(TryPut(cluster, (k + 1) % 5, pk, "s", "second", got.context).ok());
    ASSERT_TRUE(TryGet(cluster, (k + 3) % 5, pk, "s", 2, &got).ok());
    ASSERT_EQ(got.values.size(), 1u) << pk;
    EXPECT_EQ(got.values[0], "second");
  }
  // An overwrite needs no context: through any node, owner or not (then
  // forwarded), it replaces the siblings that blind puts left.
  // (w = 3: every replica, the overwrite's coordinator too, holds both.)
  for (int k = 0; k < 20; ++k) {
    std::string pk = "fwd-over-" + std::to_string(k);
    ASSERT_TRUE(TryPut(cluster, k % 5, pk, "s", "first", "", 3).ok());
    ASSERT_TRUE(TryPut(cluster, (k + 1) % 5, pk, "s", "blind", "", 3).ok());
    api::GetResult got;
    ASSERT_TRUE(TryGet(cluster, k % 5, pk, "s", 3, &got).ok());
    ASSERT_EQ(got.values.size(), 2u) << pk << ": a blind put makes a sibling";
    api::WriteResult written;
    CallResult over = Call([&] { cluster.Client((k + 2) % 5)->overwrite(written, pk, "s", "over", 3); });
    ASSERT_TRUE(over.ok()) << pk << " through " << cluster.id((k + 2) % 5) << ": " << over.message;
    EXPECT_FALSE(written.context.empty());
    for (int node = 0; node < 5; ++node) {
      ASSERT_TRUE(TryGet(cluster, node, pk, "s", 3, &got).ok());
      EXPECT_EQ(got.values, std::vector<std::string>{"over"}) << pk << " read through " << cluster.id(node);
    }
  }
  // Bad input is refused as for a put.
  CallResult bad = Call([&] {
    api::WriteResult ignored;
    cluster.Client(0)->overwrite(ignored, "", "s", "v", 0);
  });
  EXPECT_EQ(bad.outcome, Outcome::kInvalidRequest) << bad.message;
  MONJU_DUMP_LOGS_ON_FAILURE(&cluster);
}


// The one owner (N = 1) of pk in the view node i of `c` was started with
// (with `vnodes` per member).
std::string OwnerIn(const LocalCluster& c, int i, uint32_t vnodes, const std::string& pk) {
  std::vector<PeerAddress> members;
  Status parsed = ParsePeers(c.PeersFlagFor(i), &members);
  EXPECT_TRUE(parsed.ok()) << parsed.ToString();
  auto view = ClusterView::Create(members, vnodes, NodeConfig{}.partitions, 1);
  EXPECT_TRUE(view.ok()) << view.status().ToString();
  if (!view.ok()) return "";
  const auto& owners = view.value()->WriteOwners(view.value()->ring().PartitionOf(pk));
  return view.value()->members()[owners.at(0)].id;
}

// Two nodes whose views differ (n2 was given a third member that n1 does not
// know, and fewer ring tokens per member): for some keys each believes the
// other the owner. A forwarded write
// is never forwarded again, so such a write is refused at once, NotOwner
// turned into Unavailable naming both nodes, instead of bouncing between them
// until their forwarding queues fill or the request times out. Keys both
// views give to one node are forwarded to it and written.
TEST(ForwardingTest, NodesWhoseViewsDifferNeverPassAWriteBackAndForth) {
  ClusterOptions options;
  options.nodes = 2;
  options.n = 1;
  options.r = 1;
  options.w = 1;
  options.nodes_seeing_a_phantom = {1};
  options.node_flags[1] = {"--vnodes", "8"};
  options.wait_all_connected = false;
  LocalCluster cluster(options);
  ASSERT_TRUE(cluster.Start());

  std::vector<std::string> crossed, toward_phantom, agreed;  // keys n1 gives to n2, by n2's owner
  for (int k = 0; k < 400 && (crossed.size() < 3 || toward_phantom.size() < 3 || agreed.size() < 3); ++k) {
    std::string pk = "views-" + std::to_string(k);
    if (OwnerIn(cluster, 0, NodeConfig{}.vnodes, pk) != "n2") continue;
    const std::string second = OwnerIn(cluster, 1, 8, pk);
    (second == "n1" ? crossed : second == "n2" ? agreed : toward_phantom).push_back(pk);
  }
  ASSERT_GE(crossed.size(), 3u);
  ASSERT_GE(toward_phantom.size(), 3u);
  ASSERT_GE(agreed.size(), 3u);

  auto applied = [&](int i) {
    std::map<std::string, int64_t> stats;
    std::string error;
    EXPECT_TRUE(TryStats(cluster, i, &stats, &error)) << error;
    return StatOf(stats, "storage.applied");
  };
  const int64_t applied_before[2] = {applied(0), applied(1)};
  for (const std::string& pk : crossed) {
    // Through n1 (n1 -> n2, which gives it back to n1) and through n2 (n2 -> n1, which gives it back to n2).
    for (int via = 0; via < 2; ++via) {
      const std::string self = cluster.id(via), other = cluster.id(1 - via);
      CallResult r = TryPut(cluster, via, pk, "s", "bounced", "", 0);
      EXPECT_EQ(r.outcome, Outcome::kUnavailable) << pk << " through " << self << ": " << r.message;
      EXPECT_THAT(r.message, ::testing::HasSubstr(other + " does not replicate the key in its membership view either "
                                                  "(forwarded by " + self + ")"))
          << pk << " through " << self;
    }
  }
  for (const std::string& pk : toward_phantom) {
    CallResult r = TryPut(cluster, 0, pk, "s", "lost", "", 0);
    EXPECT_EQ(r.outcome, Outcome::kUnavailable) << pk << ": " << r.message;
    EXPECT_THAT(r.message, ::testing::HasSubstr("n2 does not replicate the key")) << pk;
  }
  // Nothing refused was written anywhere.
  EXPECT_EQ(applied(0), applied_before[0]);
  EXPECT_EQ(applied(1), applied_before[1]);

  for (const std::string& pk : agreed) {
    api::WriteResult written;
    CallResult r = TryPut(cluster, 0, pk, "s", "agreed", "", 0, &written);
    ASSERT_TRUE(r.ok()) << pk << ": " << r.message;
    EXPECT_EQ(written.acked_by, std::vector<std::string>{"n2"}) << pk;
    api::GetResult got;
    ASSERT_TRUE(TryGet(cluster, 1, pk, "s", 1, &got).ok()) << pk;
    EXPECT_EQ(got.values, std::vector<std::string>{"agreed"}) << pk;
  }
  EXPECT_EQ(applied(1), applied_before[1] + static_cast<int64_t>(agreed.size()));
  MONJU_DUMP_LOGS_ON_FAILURE(&cluster);
}

// A forwarded write waits for the owner's answer. Were that wait on a server
// thread, nodes forwarding to each other with every server thread so taken
// would each wait for the other until the call timed out. Here every node
// has one server thread and forwards writes to the others all at once.
TEST(ForwardingTest, NodesForwardingToEachOtherAllAtOnceDoNotWaitForEachOther) {
  constexpr int kNodes = 4;
  constexpr int kKeys = 120;
  constexpr int kWritesPerNode = 40;
  ClusterOptions options;
  options.nodes = kNodes;
  options.n = 3;
  options.extra_flags = {"--worker-threads", "1"};
  LocalCluster cluster(options);
  ASSERT_TRUE(cluster.Start());

  // A key's owners: with all up, a w = 3 write is acknowledged by exactly them.
  auto pk = [](int k) { return "cross-" + std::to_string(k); };
  std::vector<std::vector<std::string>> foreign(kNodes);  // keys node i does not own
  for (int k = 0; k < kKeys; ++k) {
    api::WriteResult written;
    CallResult r = TryPut(cluster, k % kNodes, pk(k), "s", "first", "", 3, &written);
    ASSERT_TRUE(r.ok()) << pk(k) << ": " << r.message;
    ASSERT_EQ(written.acked_by.size(), 3u) << pk(k);
    std::set<std::string> owners(written.acked_by.begin(), written.acked_by.end());
    for (int i = 0; i < kNodes; ++i)
      if (!owners.count(cluster.id(i))) foreign[i].push_back(pk(k));
  }
  for (int i = 0; i < kNodes; ++i) ASSERT_FALSE(foreign[i].empty()) << cluster.id(i) << " owns every key";

  // Each node at once gets writes it must forward, each on its own connection.
  std::atomic<int> failed{0};
  std::vector<std::string> failures(kNodes);
  std::vector<std::thread> writers;
  for (int i = 0; i < kNodes; ++i) {
    writers.emplace_back([&, i] {
      for (int n = 0; n < kWritesPerNode; ++n) {
        const std::string& key = foreign[i][n % foreign[i].size()];
        std::vector<std::thread> burst;  // two calls in flight per node
        CallResult results[2];
        for (int j = 0; j < 2; ++j)
          burst.emplace_back([&, j] {
            results[j] = Call([&] {
              api::WriteResult ignored;
              cluster.Client(i)->overwrite(ignored, key, "s", "v" + std::to_string(n), 0);
            });
          });
        for (auto& t : burst) t.join();
        for (const CallResult& r : results)
          if (!r.ok() && failed.fetch_add(1) < 4) failures[i] += "\n  " + key + ": " + r.message;
      }
    });
  }
  for (auto& t : writers) t.join();
  std::string all;
  for (const auto& f : failures) all += f;
  EXPECT_EQ(failed.load(), 0) << "forwarded writes failed, for example:" << all;

  // Every key took its last write; reads from any node agree.
  for (int i = 0; i < kNodes; ++i) {
    api::GetResult got;
    ASSERT_TRUE(TryGet(cluster, (i + 1) % kNodes, foreign[i][0], "s", 2, &got).ok());
    EXPECT_FALSE(got.values.empty());
  }
  MONJU_DUMP_LOGS_ON_FAILURE(&cluster);
}


// Writes for forwarding are bounded (--forward-threads times 32, queued or
// under way): past that a write is refused at once with Unavailable, and so
// is one that waited longer than the request timeout for a thread. Neither
// is sent; every write answered OK is written.
TEST(ForwardingTest, AFullForwardingQueueRefusesWritesAndLosesNone) {
  constexpr int kNodes = 4;
  constexpr int kQueueBound = 32;  // 1 forwarding thread
  constexpr int kWrites = kQueueBound + 16;
  ClusterOptions options;
  options.nodes = kNodes;
  options.n = 3;
  options.request_timeout_ms = 1000;
  options.node_flags[0] = {"--forward-threads", "1", "--fault-injection"};
  LocalCluster cluster(options);
  ASSERT_TRUE(cluster.Start());

  // Keys n1 does not own (a w = 3 write is acknowledged by exactly the owners).
  std::vector<std::string> foreign;
  for (int k = 0; foreign.size() < kWrites && k < 1000; ++k) {
    const std::string pk = "queued-" + std::to_string(k);
    api::WriteResult written;
    CallResult r = TryPut(cluster, 1, pk, "s", "first", "", 3, &written);
    ASSERT_TRUE(r.ok()) << pk << ": " << r.message;
    if (std::find(written.acked_by.begin(), written.acked_by.end(), cluster.id(0)) == written.acked_by.end())
      foreign.push_back(pk);
  }
  ASSERT_EQ(foreign.size(), size_t(kWrites));

  // Each of n1's calls to another node now waits 300 ms first: a forward
  // takes at least that, so within the 1 s timeout its one thread forwards
  // a few writes and the rest of the queue expires.
  std::map<std::string, admin::LinkFaultSpec> slow;
  for (int i = 1; i < kNodes; ++i) {
    admin::LinkFaultSpec f;
    f.delay_ms = 300;
    slow[cluster.id(i)] = f;
  }
  ASSERT_TRUE(Call([&] { AdminClient(cluster, 0).SetLinkFaults(slow); }).ok());

  // Connected first, then released together: all arrive while the queue is full.
  std::vector<std::unique_ptr<MonjuKVClient>> clients;
  for (int k = 0; k < kWrites; ++k) clients.push_back(cluster.Client(0, 30000));
  std::vector<CallResult> results(kWrites);
  std::mutex mu;
  std::condition_variable go_cv;
  bool go = false;
  std::vector<std::thread> writers;
  for (int k = 0; k < kWrites; ++k)
    writers.emplace_back([&, k] {
      {
        std::unique_lock<std::mutex> lock(mu);
        go_cv.wait(lock, [&] { return go; });
      }
      results[k] = Call([&] {
        api::WriteResult ignored;
        clients[k]->overwrite(ignored, foreign[k], "s", "second", 0);
      });
    });
  {
    std::lock_guard<std::mutex> lock(mu);
    go = true;
  }
  go_cv.notify_all();
  for (auto& t : writers) t.join();
  ASSERT_TRUE(Call([&] { AdminClient(cluster, 0).SetLinkFaults({}); }).ok());

  int queue_full = 0, waited = 0, ok = 0;
  for (int k = 0; k < kWrites; ++k) {
    const CallResult& r = results[k];
    if (r.ok()) {
      ++ok;
      continue;
    }
    EXPECT_EQ(r.outcome, Outcome::kUnavailable) << foreign[k] << ": " << r.message;
    if (r.message.find("node overloaded: forward queue full") != std::string::npos) {
      ++queue_full;
    } else if (r.message.find("ms to be forwarded (limit 1000 ms)") != std::string::npos) {
      ++waited;
    } else {
      ADD_FAILURE() << foreign[k] << ": " << r.message;
    }
  }
  std::cout << "[measure] " << ok << " forwarded, " << queue_full << " refused at once (queue full), " << waited
            << " refused after waiting past the timeout\n";
  EXPECT_GE(queue_full, kWrites - kQueueBound) << "more writes were taken than the queue holds";
  EXPECT_GE(waited, 1) << "no queued write outlived the request timeout";
  EXPECT_GE(ok, 1) << "none was forwarded";
  // What was answered OK was written; what was refused was not.
  for (int k = 0; k < kWrites; ++k) {
    api::GetResult got;
    ASSERT_TRUE(TryGet(cluster, 1, foreign[k], "s", 3, &got).ok()) << foreign[k];
    EXPECT_EQ(got.values, std::vector<std::string>{results[k].ok() ? "second" : "first"}) << foreign[k];
  }
  MONJU_DUMP_LOGS_ON_FAILURE(&cluster);
}


// A node told to stop answers the writes still queued for forwarding
// ("node stopping", never sent) while their clients can read it, finishes
// the forward under way, and exits cleanly.
TEST(ForwardingTest, AStoppingNodeAnswersItsQueuedForwards) {
  constexpr int kNodes = 4;
  constexpr int kWrites = 16;
  ClusterOptions options;
  options.nodes = kNodes;
  options.n = 3;
  options.request_timeout_ms = 10000;  // queued writes do not expire meanwhile
  options.node_flags[0] = {"--forward-threads", "1", "--fault-injection"};
  LocalCluster cluster(options);
  ASSERT_TRUE(cluster.Start());

  std::vector<std::string> foreign;
  for (int k = 0; foreign.size() < kWrites && k < 1000; ++k) {
    const std::string pk = "stopping-" + std::to_string(k);
    api::WriteResult written;
    CallResult r = TryPut(cluster, 1, pk, "s", "first", "", 3, &written);
    ASSERT_TRUE(r.ok()) << pk << ": " << r.message;
    if (std::find(written.acked_by.begin(), written.acked_by.end(), cluster.id(0)) == written.acked_by.end())
      foreign.push_back(pk);
  }
  ASSERT_EQ(foreign.size(), size_t(kWrites));
  std::map<std::string, admin::LinkFaultSpec> slow;
  for (int i = 1; i < kNodes; ++i) {
    admin::LinkFaultSpec f;
    f.delay_ms = 300;
    slow[cluster.id(i)] = f;
  }
  ASSERT_TRUE(Call([&] { AdminClient(cluster, 0).SetLinkFaults(slow); }).ok());

  std::vector<std::unique_ptr<MonjuKVClient>> clients;
  for (int k = 0; k < kWrites; ++k) clients.push_back(cluster.Client(0, 30000));
  std::vector<CallResult> results(kWrites);
  std::atomic<int> answered{0};
  std::vector<std::thread> writers;
  for (int k = 0; k < kWrites; ++k)
    writers.emplace_back([&, k] {
      results[k] = Call([&] {
        api::WriteResult ignored;
        clients[k]->overwrite(ignored, foreign[k], "s", "second", 0);
      });
      ++answered;
    });
  // Once the first forward is done, the others are queued behind the thread.
  ASSERT_TRUE(PollUntil([&] { return answered.load() > 0; }, 20s));
  EXPECT_TRUE(cluster.Stop(0));
  for (auto& t : writers) t.join();

  int stopping = 0;
  for (int k = 0; k < kWrites; ++k) {
    const CallResult& r = results[k];
    if (r.ok() || r.outcome == Outcome::kTransport) continue;  // written, or not known
    EXPECT_EQ(r.outcome, Outcome::kUnavailable) << foreign[k] << ": " << r.message;
    EXPECT_THAT(r.message, ::testing::HasSubstr("node stopping")) << foreign[k];
    ++stopping;
  }
  int ok = 0;
  for (const CallResult& r : results) ok += r.ok() ? 1 : 0;
  std::cout << "[measure] " << ok << " forwarded, " << stopping << " answered \"node stopping\", "
            << kWrites - ok - stopping << " cut off\n";
  EXPECT_GE(stopping, 1) << "no queued write was answered before the node went";
  for (int k = 0; k < kWrites; ++k) {
    if (results[k].outcome == Outcome::kTransport) continue;
    api::GetResult got;
    ASSERT_TRUE(TryGet(cluster, 1, foreign[k], "s", 2, &got).ok()) << foreign[k];
    EXPECT_EQ(got.values, std::vector<std::string>{results[k].ok() ? "second" : "first"}) << foreign[k];
  }
  MONJU_DUMP_LOGS_ON_FAILURE(&cluster);
}

}  // namespace
}  // namespace monju::itest
