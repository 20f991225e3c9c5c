// Slow suite: adding a node to a 3-node cluster that holds 100,000 keys,
// under a steady write load. Reports the time the join takes, the bytes and
// items streamed, and write latency during the move against no move. Bounded
// and self-cleaning like every integration test; not part of the default run.
//
//   meson test -C build --suite slow integ_membership_bench_test --verbose
#include <gtest/gtest.h>

#include <cstdlib>
#include <iostream>

#include "membership_checks.h"

namespace monju::itest {
namespace {

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}

TEST(MembershipBenchTest, JoinAFourthNodeToAClusterOf100kKeys) {
  const int keys = EnvInt("MONJU_BENCH_KEYS", 100000);
  const int value_bytes = EnvInt("MONJU_BENCH_VALUE_BYTES", 100);
  RaftClusterOptions o;
  o.max_nodes = 4;
  o.initial = 3;
  o.partitions = 256;
  o.vnodes = 64;
  RaftCluster cluster(o);
  ASSERT_TRUE(cluster.Start());
  ASSERT_TRUE(cluster.WaitSettled(1));

  // Load the keys, four writers.
  const std::string value(value_bytes, 'x');
  std::atomic<int> next{0}, failed{0};
  auto load_start = Clock::now();
  std::vector<std::thread> loaders;
  for (int t = 0; t < 4; ++t)
    loaders.emplace_back([&, t] {
      auto client = cluster.local().Client(t % 3, 10000);
      for (int i; (i = next++) < keys;) {
        try {
          api::WriteResult res;
          client->put(res, "bench-" + std::to_string(i), "s", value, "", 0);
        } catch (const std::exception&) {
          ++failed;
          client = cluster.local().Client(t % 3, 10000);
        }
      }
    });
  for (auto& l : loaders) l.join();
  const double load_s = std::chrono::duration<double>(Clock::now() - load_start).count();
  std::cout << "[bench] loaded " << keys << " keys of " << value_bytes << " bytes in " << load_s << " s ("
            << failed.load() << " failed)\n";
  ASSERT_EQ(failed.load(), 0);

  // A steady write load: first without a move, then during the join.
  WriteLoad load(&cluster, 2, 100, "bench-load");
  load.Start();
  std::this_thread::sleep_for(15s);  // the no-move baseline (a measurement window, not a wait)
  ASSERT_TRUE(cluster.StartJoiner(3));
  membership::RingReply before;
  ASSERT_TRUE(cluster.TryRing(0, &before));
  const int64_t begin_epoch = cluster.Epoch(3) + 1;
  load.SetPhase("move");
  const auto join_start = Clock::now();
  ProcessResult join = cluster.Admin(3, {"join"}, 900s);
  const double join_s = std::chrono::duration<double>(Clock::now() - join_start).count();
  load.SetPhase("after");
  load.Stop();
  membership::NodeProgress progress;
  ASSERT_TRUE(cluster.TryProgress(3, begin_epoch, &progress));
  const int64_t bytes = progress.stream.bytes, items = progress.stream.items, stream_ms = progress.stream.elapsed_ms;
  ASSERT_EQ(join.exit_code, 0) << join.Describe();
  ASSERT_TRUE(cluster.WaitSettled(4));
  membership::RingReply after;
  ASSERT_TRUE(cluster.TryRing(0, &after));
  MoveReport moves = CompareRings(before, after);
  LatencySummary steady = Summarize(load.Latencies("steady"));
  LatencySummary move = Summarize(load.Latencies("move"));
  std::cout << "[measure] join of n4 to 3 nodes holding " << keys << " keys: " << join_s << " s (streaming "
            << stream_ms / 1000.0 << " s), " << items << " items, " << bytes << " bytes streamed ("
            << bytes / (1 << 20) << " MiB; every gained partition is copied from each old owner that is up)\n"
            << "[measure] partition replicas moved: " << moves.slots_moved << " of " << moves.slots_total
            << " (fraction " << moves.fraction() << ", ideal 0.25)\n"
            << "[measure] put latency, no move:     " << steady.ToString() << "\n"
            << "[measure] put latency, during move: " << move.ToString() << "\n";
  auto acked = load.Acked();
  ASSERT_TRUE(AllReadBack(cluster, acked));
  ASSERT_TRUE(KeysOnExactlyTheirOwners(cluster, acked, 120s));
}

}  // namespace
}  // namespace monju::itest
