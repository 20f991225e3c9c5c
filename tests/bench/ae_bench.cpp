// Anti-entropy cost (Google Benchmark): two replicas in one process, each a
// real LMDB store with its Merkle trees, 100,000 keys each (Q = 256, so trees
// of depth 3), values of 100 bytes.
//
//   BM_TreeRebuildFromItems  building every partition's tree from the items'
//                       digests, as a node does at start (or after a crash).
//   BM_TreeUpdates      what the store's writer pays per committed change:
//                       1,000 changes at random keys of the Q trees, then
//                       every root read, as an exchange pass would.
//   BM_ExchangeInSync   a full pass (every partition) between equal replicas.
//   BM_ExchangeOnePct   a full pass after 1% of the keys got a newer version
//                       on one replica: keys and payload bytes moved against
//                       the data size. The difference is made anew (untimed)
//                       before every iteration.
//   BM_SchedulerRound   the scheduler's first round over Q partitions with 2
//                       co-owners each (2Q exchanges of empty, equal trees):
//                       what picking the next pair costs as Q grows.
//
// The peers are called in process (no Thrift, no network): the times are the
// algorithm's and LMDB's; payload bytes are counted as the exchange counts
// them for the wire. tests/integration/anti_entropy_cost_test.cpp (suite
// slow) measures the same over real processes.
//
//   meson test -C build --benchmark --suite bench --verbose
//   build/tests/bench/monju_ae_bench --benchmark_filter=OnePct
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "clock/clock_digest.h"
#include "clock/codec.h"
#include "common/clock.h"
#include "exchange.h"
#include "local_peer.h"
#include "partition_trees.h"
#include "ring/ring.h"
#include "replica.h"
#include "scheduler.h"

namespace monju {
namespace {

constexpr uint32_t kPartitions = 256;
constexpr int kKeys = 100000;
const std::string kValue(100, 'v');

class BenchReplica {
 public:
  explicit BenchReplica(const std::string& id, uint32_t partitions = kPartitions) {
    char tmpl[] = "/tmp/monju-ae-bench-XXXXXX";
    if (!mkdtemp(tmpl)) abort();
    dir_ = tmpl;
    StorageOptions so;
    so.path = dir_ + "/data";
    so.map_size_bytes = 4ull << 30;
    so.digest = &ClockDigest;
    so.digest_name = kClockDigestName;
    auto store = DataStore::Open(so);
    if (!store.ok()) abort();
    auto r = Replica::Open(id, std::move(store.value()), 1);
    if (!r.ok()) abort();
    replica_ = std::move(r.value());
    trees_ = std::make_unique<PartitionTrees>(&replica_->store(), partitions);
    if (!trees_->Install().ok()) abort();
    peer_ = std::make_unique<LocalExchangePeer>(replica_.get(), trees_.get(), &wall_);
  }
  ~BenchReplica() {
    peer_.reset();
    trees_->Uninstall();
    replica_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  void Load(const std::vector<std::pair<ItemKey, Version>>& items) {
    for (size_t i = 0; i < items.size(); i += 4096) {
      std::vector<std::pair<ItemKey, Version>> part(items.begin() + i,
                                                    items.begin() + std::min(items.size(), i + 4096));
      for (const Status& s : replica_->ApplyBatch(part))
        if (!s.ok()) abort();
    }
  }
  uint64_t DataBytes() {
    uint64_t n = 0;
    std::string cursor;
    for (;;) {
      std::vector<RawItem> items;
      std::string next;
      if (!replica_->ScanAll(cursor, 10000, &items, &next).ok()) abort();
      for (auto& i : items) n += i.pk.size() + i.sk.size() + i.record.size();
      if (next.empty()) return n;
      cursor = next;
    }
  }
  PartitionTrees& trees() { return *trees_; }
  LocalExchangePeer& peer() { return *peer_; }

 private:
  std::string dir_;
  SystemWallClock wall_;
  std::unique_ptr<Replica> replica_;
  std::unique_ptr<PartitionTrees> trees_;
  std::unique_ptr<LocalExchangePeer> peer_;
};

ItemKey KeyOf(const Ring& ring, int k) {
  std::string pk = "user-" + std::to_string(k / 4);
  const uint32_t partition = ring.PartitionOf(pk);
  return {partition, std::move(pk), "item-" + std::to_string(k % 4)};
}

Version VersionOf(const std::string& actor, uint64_t counter, const CausalContext& past) {
  Version v;
  v.dot = {actor, counter};
  v.past = past;
  v.value = kValue;
  return v;
}

// Two replicas holding the same 100,000 keys.
struct Pair {
  Pair() : a("a"), b("b") {
    ring = Ring::Build({"a", "b"}, 64, kPartitions, 2).value();
    std::vector<std::pair<ItemKey, Version>> items;
    items.reserve(kKeys);
    for (int k = 0; k < kKeys; ++k) items.push_back({KeyOf(*ring, k), VersionOf("w/1", k + 1, {})});
    a.Load(items);
    b.Load(items);
    data_bytes = a.DataBytes();
  }
  static Pair& Get() {
    static Pair* pair = new Pair();  // kept for the process: building it is the slow part
    return *pair;
  }
  // A newer version of `count` distinct keys, on b only.
  void Diverge(int count) {
    if (current.empty()) {
      current.resize(kKeys);
      for (int k = 0; k < kKeys; ++k) current[k] = VersionOf("w/1", k + 1, {}).FullContext();
    }
    std::vector<int> keys(kKeys);
    for (int k = 0; k < kKeys; ++k) keys[k] = k;
    std::shuffle(keys.begin(), keys.end(), rng);
    std::vector<std::pair<ItemKey, Version>> items;
    for (int i = 0; i < count; ++i) {
      const int k = keys[i];
      Version v = VersionOf("bench/1", ++counter, current[k]);
      current[k] = v.FullContext();
      items.push_back({KeyOf(*ring, k), std::move(v)});
    }
    b.Load(items);
  }
  ExchangeStats ExchangeAll() {
    ExchangeStats sum;
    for (uint32_t p = 0; p < kPartitions; ++p) {
      ExchangeStats s = RunExchange(p, a.peer().format(), a.peer(), b.peer(), nullptr);
      if (!s.status.ok()) abort();
      sum.keys_different += s.keys_different;
      sum.keys_sent += s.keys_sent;
      sum.keys_received += s.keys_received;
      sum.versions_sent += s.versions_sent;
      sum.versions_received += s.versions_received;
      sum.bytes_sent += s.bytes_sent;
      sum.bytes_received += s.bytes_received;
      sum.round_trips += s.round_trips;
      sum.leaves_different += s.leaves_different;
    }
    return sum;
  }

  BenchReplica a, b;
  std::shared_ptr<const Ring> ring;
  uint64_t data_bytes = 0;
  std::mt19937_64 rng{12345};
  uint64_t counter = 0;
  std::vector<CausalContext> current;  // per key: the context of its latest version
};

// What a start (or crash recovery) does for every partition: build the tree
// from one snapshot of the items' digests (PartitionTrees::Install is this over
// all partitions).
void BM_TreeRebuildFromItems(benchmark::State& state) {
  Pair& pair = Pair::Get();
  for (auto _ : state) {
    for (uint32_t p = 0; p < kPartitions; ++p) {
      auto r = pair.a.trees().Rebuild(p);
      if (!r.ok() || r.value()) state.SkipWithError("rebuild failed or found a difference");
    }
  }
  state.counters["keys"] = double(pair.a.trees().items());
  state.SetItemsProcessed(state.iterations() * pair.a.trees().items());
}
BENCHMARK(BM_TreeRebuildFromItems)->Unit(benchmark::kMillisecond)->Iterations(5);

void BM_TreeUpdates(benchmark::State& state) {
  std::vector<MerkleTree> trees(kPartitions, MerkleTree(MerkleTree::DepthFor(kPartitions)));
  std::mt19937_64 rng(7);
  struct Item {
    uint32_t partition;
    uint64_t key_hash, digest;
  };
  std::vector<Item> items(kKeys);
  for (Item& item : items) {
    item = {uint32_t(rng() % kPartitions), rng(), rng() | 1};
    trees[item.partition].Update(item.key_hash, 0, item.digest);
  }
  constexpr int kChanges = 1000;
  uint64_t roots = 0;
  for (auto _ : state) {
    for (int i = 0; i < kChanges; ++i) {
      Item& item = items[rng() % items.size()];
      const uint64_t next = rng() | 1;
      trees[item.partition].Update(item.key_hash, item.digest, next);
      item.digest = next;
    }
    for (const MerkleTree& tree : trees) roots += tree.Root();
  }
  benchmark::DoNotOptimize(roots);
  state.SetItemsProcessed(state.iterations() * kChanges);
}
BENCHMARK(BM_TreeUpdates)->Unit(benchmark::kMicrosecond);

void BM_ExchangeInSync(benchmark::State& state) {
  Pair& pair = Pair::Get();
  ExchangeStats last;
  for (auto _ : state) last = pair.ExchangeAll();
  if (last.keys_different != 0) state.SkipWithError("replicas were not in sync");
  state.counters["round_trips"] = double(last.round_trips);
  state.counters["bytes_moved"] = double(last.bytes_sent + last.bytes_received);
  state.counters["data_bytes"] = double(pair.data_bytes);
}
BENCHMARK(BM_ExchangeInSync)->Unit(benchmark::kMillisecond)->Iterations(5);

void BM_ExchangeOnePct(benchmark::State& state) {
  Pair& pair = Pair::Get();
  const int diff = static_cast<int>(state.range(0));
  ExchangeStats last;
  for (auto _ : state) {
    state.PauseTiming();
    pair.Diverge(diff);
    state.ResumeTiming();
    last = pair.ExchangeAll();
  }
  const double moved = double(last.bytes_sent + last.bytes_received);
  state.counters["keys_different"] = double(last.keys_different);
  state.counters["keys_sent"] = double(last.keys_sent);
  state.counters["keys_received"] = double(last.keys_received);
  state.counters["bytes_sent"] = double(last.bytes_sent);
  state.counters["bytes_received"] = double(last.bytes_received);
  state.counters["data_bytes"] = double(pair.data_bytes);
  state.counters["moved_pct_of_data"] = 100.0 * moved / double(pair.data_bytes);
  state.counters["bytes_per_diff_key"] = last.keys_different ? moved / double(last.keys_different) : 0;
  state.counters["round_trips"] = double(last.round_trips);
}
// 1% of 100,000, then 0.1% and 10% to show the cost follows the difference.
BENCHMARK(BM_ExchangeOnePct)->Arg(kKeys / 100)->Arg(kKeys / 1000)->Arg(kKeys / 10)->Unit(benchmark::kMillisecond)->Iterations(3);

// Q partitions, all replicated here, each with co-owners b and c, both
// answered by this node's own peer (so every exchange finds equal trees).
class SelfDirectory final : public ExchangeDirectory {
 public:
  SelfDirectory(uint32_t partitions, ExchangePeer* self) : partitions_(partitions), self_(self) {}
  std::vector<uint32_t> OwnedPartitions() override {
    std::vector<uint32_t> out(partitions_);
    for (uint32_t p = 0; p < partitions_; ++p) out[p] = p;
    return out;
  }
  std::vector<std::string> CoOwners(uint32_t) override { return {"b", "c"}; }
  bool PeerAlive(const std::string&) override { return true; }
  uint64_t LayoutId() override { return 1; }
  ExchangePeer* Peer(const std::string&) override { return self_; }

 private:
  const uint32_t partitions_;
  ExchangePeer* const self_;
};

void BM_SchedulerRound(benchmark::State& state) {
  const uint32_t partitions = static_cast<uint32_t>(state.range(0));
  BenchReplica replica("a", partitions);
  SelfDirectory directory(partitions, &replica.peer());
  SteadyClock clock;
  SchedulerOptions options;
  options.bytes_per_second = 0;
  uint64_t exchanges = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    AntiEntropyScheduler scheduler(&replica.peer(), replica.peer().format(), &replica.trees(), &directory, &clock,
                                   options);
    uint64_t ran = 0;
    while (scheduler.RunNextDue()) ++ran;
    if (ran != 2ull * partitions) state.SkipWithError("not every pair was exchanged once");
    exchanges += ran;
  }
  state.counters["pairs"] = 2.0 * partitions;
  const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
  state.counters["us_per_exchange"] = exchanges ? us / double(exchanges) : 0;
}
BENCHMARK(BM_SchedulerRound)->Arg(256)->Arg(1024)->Arg(4096)->Arg(65536)->Unit(benchmark::kMillisecond)->Iterations(1);

}  // namespace
}  // namespace monju

BENCHMARK_MAIN();
