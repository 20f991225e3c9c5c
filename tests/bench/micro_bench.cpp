// Micro-benchmarks of the hot paths: ring lookup, clock merges, the sibling
// codec and the LMDB store (durable: every Apply waits for an fsync'd commit).
//
//   meson test -C build --benchmark --suite bench      (or run the binary)
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "clock/causal.h"
#include "clock/codec.h"
#include "ring/ring.h"
#include "storage/data_store.h"

namespace monju {
namespace {

// ---------------------------------------------------------------------------
// Ring

void BM_RingLookup(benchmark::State& state) {
  std::vector<std::string> ids;
  for (int i = 1; i <= state.range(0); ++i) ids.push_back("node" + std::to_string(i));
  auto ring = Ring::Build(ids, 64, 256, 3).value();
  std::vector<std::string> keys;
  for (int i = 0; i < 4096; ++i) keys.push_back("user:" + std::to_string(i * 7919));
  size_t i = 0;
  for (auto _ : state) {
    const std::string& pk = keys[i++ & 4095];
    const auto& list = ring->PreferenceList(ring->PartitionOf(pk));
    benchmark::DoNotOptimize(list.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RingLookup)->Arg(3)->Arg(10);

// ---------------------------------------------------------------------------
// Clocks: `actors` actors, each with a contiguous base and a small cloud.

CausalContext MakeContext(int actors, uint64_t base, uint64_t salt) {
  CausalContext c;
  for (int a = 0; a < actors; ++a) {
    const std::string actor = "node" + std::to_string(a) + "/" + std::to_string(salt % 7);
    for (uint64_t k = 1; k <= base; ++k) c.Add({actor, k});
    c.Add({actor, base + 2 + (salt + a) % 5});  // one gap each
  }
  return c;
}

void BM_ContextMerge(benchmark::State& state) {
  const int actors = int(state.range(0));
  const CausalContext a = MakeContext(actors, 100, 1);
  const CausalContext b = MakeContext(actors, 103, 1);
  for (auto _ : state) {
    CausalContext c = a;
    c.Merge(b);
    benchmark::DoNotOptimize(c);
  }
}
BENCHMARK(BM_ContextMerge)->Arg(2)->Arg(20);

// A set of three concurrent siblings; the new version read them all.
SiblingSet MakeSiblings(int actors, int siblings, size_t value_bytes) {
  SiblingSet s;
  const CausalContext past = MakeContext(actors, 50, 3);
  for (int i = 0; i < siblings; ++i) {
    Version v;
    v.dot = {"writer" + std::to_string(i), 51};
    v.past = past;
    v.value = std::string(value_bytes, char('a' + i));
    s.Add(v);
  }
  return s;
}

void BM_SiblingSetAdd_Supersedes(benchmark::State& state) {
  const SiblingSet base = MakeSiblings(int(state.range(0)), 3, 64);
  Version next;
  next.dot = {"writer0", 52};
  next.past = base.Context();
  next.value = "resolved";
  for (auto _ : state) {
    SiblingSet s = base;
    benchmark::DoNotOptimize(s.Add(next));
  }
}
BENCHMARK(BM_SiblingSetAdd_Supersedes)->Arg(2)->Arg(20);

void BM_SiblingSetAdd_Concurrent(benchmark::State& state) {
  const SiblingSet base = MakeSiblings(int(state.range(0)), 3, 64);
  Version next;
  next.dot = {"writer9", 1};
  next.past = MakeContext(int(state.range(0)), 40, 3);
  next.value = "blind";
  for (auto _ : state) {
    SiblingSet s = base;
    benchmark::DoNotOptimize(s.Add(next));
  }
}
BENCHMARK(BM_SiblingSetAdd_Concurrent)->Arg(2)->Arg(20);

void BM_SiblingSetAdd_Replay(benchmark::State& state) {
  SiblingSet s = MakeSiblings(int(state.range(0)), 3, 64);
  const Version again = s.versions()[1];
  for (auto _ : state) benchmark::DoNotOptimize(s.Add(again));  // no change: no copy needed
}
BENCHMARK(BM_SiblingSetAdd_Replay)->Arg(2)->Arg(20);

void BM_EncodeSiblings(benchmark::State& state) {
  const SiblingSet s = MakeSiblings(int(state.range(0)), 3, 100);
  size_t bytes = 0;
  for (auto _ : state) {
    std::string out = EncodeSiblings(s);
    bytes += out.size();
    benchmark::DoNotOptimize(out);
  }
  state.SetBytesProcessed(int64_t(bytes));
}
BENCHMARK(BM_EncodeSiblings)->Arg(2)->Arg(20);

void BM_DecodeSiblings(benchmark::State& state) {
  const std::string encoded = EncodeSiblings(MakeSiblings(int(state.range(0)), 3, 100));
  for (auto _ : state) {
    auto s = DecodeSiblings(encoded);
    if (!s.ok()) state.SkipWithError("decode failed");
    benchmark::DoNotOptimize(s);
  }
  state.SetBytesProcessed(int64_t(state.iterations() * encoded.size()));
  state.counters["record_bytes"] = double(encoded.size());
}
BENCHMARK(BM_DecodeSiblings)->Arg(2)->Arg(20);

// ---------------------------------------------------------------------------
// DataStore on real files. One store for the process, in a temp dir that is
// removed at exit; created on first use (thread-safe static init).

class BenchStore {
 public:
  static BenchStore& Get() {
    static BenchStore instance;
    return instance;
  }
  DataStore& store() { return *store_; }
  ~BenchStore() {
    store_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

 private:
  BenchStore() {
    char tmpl[] = "/tmp/monju-bench-XXXXXX";
    char* p = mkdtemp(tmpl);
    if (!p) abort();
    dir_ = p;
    StorageOptions opts;
    opts.path = dir_ + "/data";
    opts.map_size_bytes = 1ull << 30;
    auto s = DataStore::Open(opts);
    if (!s.ok()) abort();
    store_ = std::move(s.value());
  }
  std::string dir_;
  std::unique_ptr<DataStore> store_;
};

std::atomic<uint64_t> g_seq{0};
const std::string kRecord(200, 'r');

void BM_DataStoreApply(benchmark::State& state) {
  DataStore& store = BenchStore::Get().store();
  const auto before = store.stats();
  for (auto _ : state) {
    const uint64_t n = g_seq++;
    Status s = store.Apply({uint32_t(n % 256), "bench-pk" + std::to_string(n % 1000), "sk" + std::to_string(n)},
                           [](const std::optional<std::string>&) { return kRecord; });
    if (!s.ok()) state.SkipWithError(s.ToString().c_str());
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    const auto after = store.stats();
    // Across all threads of this run (thread 0 finishes last or close to it).
    const double commits = double(after.commits - before.commits);
    if (commits > 0) state.counters["applies_per_commit"] = double(after.applied - before.applied) / commits;
  }
}
// Single writer: one fsync per Apply.
BENCHMARK(BM_DataStoreApply)->Iterations(200)->UseRealTime();
// Eight writers: group commit shares each fsync among the queued applies.
BENCHMARK(BM_DataStoreApply)->Threads(8)->Iterations(200)->UseRealTime();
BENCHMARK(BM_DataStoreApply)->Threads(32)->Iterations(100)->UseRealTime();

void BM_DataStoreGet(benchmark::State& state) {
  DataStore& store = BenchStore::Get().store();
  constexpr int kItems = 10000;
  static const bool loaded = [&] {
    // Loaded by 16 threads at once so that group commit keeps it quick.
    std::vector<std::thread> writers;
    std::atomic<int> next{0};
    for (int w = 0; w < 16; ++w)
      writers.emplace_back([&] {
        for (int i; (i = next++) < kItems;)
          store.Apply({uint32_t(i % 256), "get-pk" + std::to_string(i % 500), "sk" + std::to_string(i)},
                      [](const std::optional<std::string>&) { return kRecord; });
      });
    for (auto& t : writers) t.join();
    return true;
  }();
  benchmark::DoNotOptimize(loaded);
  std::mt19937 rng(42);
  std::string record;
  for (auto _ : state) {
    const int i = int(rng() % kItems);
    Status s = store.Get({uint32_t(i % 256), "get-pk" + std::to_string(i % 500), "sk" + std::to_string(i)}, &record);
    if (!s.ok()) state.SkipWithError(s.ToString().c_str());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DataStoreGet);
BENCHMARK(BM_DataStoreGet)->Threads(2)->UseRealTime();

// A query's scan: one pk's 10 items of 200 bytes, the page a monju-bench
// query reads.
void BM_DataStoreScan(benchmark::State& state) {
  DataStore& store = BenchStore::Get().store();
  constexpr int kPks = 200, kPerPk = 10;
  static const bool loaded = [&] {
    std::vector<std::thread> writers;
    std::atomic<int> next{0};
    for (int w = 0; w < 16; ++w)
      writers.emplace_back([&] {
        for (int i; (i = next++) < kPks * kPerPk;)
          store.Apply({uint32_t(i % kPks % 256), "scan-pk" + std::to_string(i % kPks), "sk" + std::to_string(i)},
                      [](const std::optional<std::string>&) { return kRecord; });
      });
    for (auto& t : writers) t.join();
    return true;
  }();
  benchmark::DoNotOptimize(loaded);
  std::mt19937 rng(42);
  std::vector<DataStore::ScanItem> items;
  for (auto _ : state) {
    const int pk = int(rng() % kPks);
    DataStore::ScanRequest r;
    r.partition = uint32_t(pk % 256);
    r.pk = "scan-pk" + std::to_string(pk);
    r.limit = kPerPk + 1;
    bool more = false;
    Status s = store.Scan(r, &items, &more);
    if (!s.ok() || items.size() != size_t(kPerPk)) state.SkipWithError("scan did not find the pk's items");
  }
  state.SetItemsProcessed(state.iterations() * kPerPk);
}
BENCHMARK(BM_DataStoreScan);

}  // namespace
}  // namespace monju

BENCHMARK_MAIN();
