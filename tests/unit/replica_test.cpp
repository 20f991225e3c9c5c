// Replica (replica/replica.h) on a real DataStore in a temp dir.
//
// Randomized tests use a fixed default seed and print it; set
// MONJU_TEST_SEED=<n> to run them with another one.
#include "replica.h"

#include "test_support.h"
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <future>
#include <iostream>
#include <latch>
#include <limits>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "clock/codec.h"

namespace monju {
namespace {

using monju::test_support::TempDir;
using monju::test_support::TestSeed;



// `seed` picks the incarnation of a new store (ignored for an existing one).
std::unique_ptr<Replica> OpenReplica(const std::string& dir, const std::string& id, uint64_t seed = 0) {
  StorageOptions opts;
  opts.path = dir + "/data";
  opts.map_size_bytes = 64ull << 20;
  auto store = DataStore::Open(opts);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  if (!store.ok()) return nullptr;
  auto r = Replica::Open(id, std::move(store.value()), seed);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r.value()) : nullptr;
}

Version V(const std::string& actor, uint64_t counter, CausalContext past, std::string value) {
  Version v;
  v.dot = {actor, counter};
  v.past = std::move(past);
  v.value = std::move(value);
  return v;
}

std::vector<Dot> DotsOf(const SiblingSet& s) {
  std::vector<Dot> out;
  for (const auto& v : s.versions()) out.push_back(v.dot);
  return out;
}

class ReplicaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    replica_ = OpenReplica(dir_.path(), "n1");
    ASSERT_TRUE(replica_);
  }
  SiblingSet Read(const ItemKey& key) {
    SiblingSet s;
    Status st = replica_->Read(key, &s);
    EXPECT_TRUE(st.ok()) << st.ToString();
    return s;
  }
  // The whole coordinator-side write on this replica.
  Version Write(const ItemKey& key, const CausalContext& ctx, const std::string& value) {
    auto v = replica_->PrepareWrite(key, ctx, false, value);
    EXPECT_TRUE(v.ok()) << v.status().ToString();
    if (!v.ok()) return {};
    Status s = replica_->Apply(key, v.value());
    EXPECT_TRUE(s.ok()) << s.ToString();
    replica_->FinishWrite(key, v->dot, s.ok());
    return v.value();
  }

  TempDir dir_;
  std::unique_ptr<Replica> replica_;
  const ItemKey key_{3, "pk", "sk"};
};

TEST_F(ReplicaTest, ReadOfAbsentKeyIsEmpty) {
  SiblingSet s;
  s.Add(V("x", 1, {}, "stale"));  // Read must replace, not merge into, the output
  ASSERT_TRUE(replica_->Read(key_, &s).ok());
  EXPECT_TRUE(s.empty());
}

TEST_F(ReplicaTest, ApplyMergesByCausality) {
  Version a1 = V("a", 1, {}, "a1");
  Version b1 = V("b", 1, {}, "b1");
  Version a2 = V("a", 2, a1.FullContext(), "a2");  // supersedes a1 only

  ASSERT_TRUE(replica_->Apply(key_, a1).ok());
  EXPECT_EQ(DotsOf(Read(key_)), (std::vector<Dot>{{"a", 1}}));
  ASSERT_TRUE(replica_->Apply(key_, b1).ok());
  EXPECT_EQ(DotsOf(Read(key_)), (std::vector<Dot>{{"a", 1}, {"b", 1}}));
  ASSERT_TRUE(replica_->Apply(key_, a2).ok());
  EXPECT_EQ(DotsOf(Read(key_)), (std::vector<Dot>{{"a", 2}, {"b", 1}}));
  EXPECT_EQ(Read(key_).LiveValues(), (std::vector<std::string>{"a2", "b1"}));

  // Replays and stale versions change nothing.
  ASSERT_TRUE(replica_->Apply(key_, a1).ok());
  ASSERT_TRUE(replica_->Apply(key_, a2).ok());
  EXPECT_EQ(DotsOf(Read(key_)), (std::vector<Dot>{{"a", 2}, {"b", 1}}));

  // A tombstone written after reading everything hides both and is kept.
  Version del;
  del.dot = {"c", 1};
  del.past = Read(key_).Context();
  del.tombstone = true;
  ASSERT_TRUE(replica_->Apply(key_, del).ok());
  SiblingSet after = Read(key_);
  EXPECT_EQ(DotsOf(after), (std::vector<Dot>{{"c", 1}}));
  EXPECT_FALSE(after.HasLive());
  EXPECT_TRUE(after.Context().Contains({"a", 1}));

  // Other keys are untouched.
  EXPECT_TRUE(Read({3, "pk", "other"}).empty());
  EXPECT_TRUE(Read({4, "pk", "sk"}).empty());
}

TEST_F(ReplicaTest, AnOverwriteSupersedesWhatTheLocalCopyHolds) {
  Version a1 = V("a", 1, {}, "a1");
  Version b1 = V("b", 1, {}, "b1");
  ASSERT_TRUE(replica_->Apply(key_, a1).ok());
  ASSERT_TRUE(replica_->Apply(key_, b1).ok());
  auto v = replica_->PrepareWrite(key_, CausalContext{}, false, "new", /*replace_local=*/true);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_TRUE(v->past.Contains({"a", 1}));
  EXPECT_TRUE(v->past.Contains({"b", 1}));
  ASSERT_TRUE(replica_->Apply(key_, v.value()).ok());
  replica_->FinishWrite(key_, v->dot, true);
  EXPECT_EQ(Read(key_).LiveValues(), std::vector<std::string>{"new"});

  // Without replace_local and with no context the write is concurrent.
  Version blind = Write(key_, CausalContext{}, "blind");
  EXPECT_FALSE(blind.past.Contains(v->dot));
  EXPECT_EQ(Read(key_).LiveValues().size(), 2u);

  // A version the local copy has not seen is not covered: it stays a sibling.
  auto over = replica_->PrepareWrite(key_, CausalContext{}, false, "newer", /*replace_local=*/true);
  ASSERT_TRUE(over.ok());
  Version unseen = V("c", 1, {}, "c1");
  ASSERT_TRUE(replica_->Apply(key_, unseen).ok());
  ASSERT_TRUE(replica_->Apply(key_, over.value()).ok());
  replica_->FinishWrite(key_, over->dot, true);
  std::vector<std::string> values = Read(key_).LiveValues();
  std::sort(values.begin(), values.end());
  EXPECT_EQ(values, (std::vector<std::string>{"c1", "newer"}));
}

TEST_F(ReplicaTest, ApplyOrderDoesNotMatterAcrossReplicas) {
  TempDir other_dir;
  auto other = OpenReplica(other_dir.path(), "n2");
  ASSERT_TRUE(other);
  std::vector<Version> versions = {V("a", 1, {}, "1"), V("b", 1, {}, "2")};
  CausalContext seen;
  seen.Add({"a", 1});
  versions.push_back(V("c", 1, seen, "3"));
  seen.Add({"b", 1});
  versions.push_back(V("a", 2, seen, "4"));
  versions.push_back(V("b", 2, {}, "5"));
  for (const auto& v : versions) ASSERT_TRUE(replica_->Apply(key_, v).ok());
  for (auto it = versions.rbegin(); it != versions.rend(); ++it) ASSERT_TRUE(other->Apply(key_, *it).ok());
  SiblingSet mine = Read(key_), theirs;
  ASSERT_TRUE(other->Read(key_, &theirs).ok());
  EXPECT_EQ(mine, theirs);
  EXPECT_EQ(DotsOf(mine), (std::vector<Dot>{{"a", 2}, {"b", 2}, {"c", 1}}));
}

TEST_F(ReplicaTest, ScanDecodesSiblingsAndKeepsTombstones) {
  ASSERT_TRUE(replica_->Apply({3, "pk", "a"}, V("x", 1, {}, "va")).ok());
  Version t;
  t.dot = {"x", 2};
  t.tombstone = true;
  ASSERT_TRUE(replica_->Apply({3, "pk", "b"}, t).ok());
  ASSERT_TRUE(replica_->Apply({3, "pk", "c"}, V("x", 3, {}, "vc")).ok());
  ASSERT_TRUE(replica_->Apply({3, "pk", "c"}, V("y", 1, {}, "vc2")).ok());
  ASSERT_TRUE(replica_->Apply({3, "other", "a"}, V("x", 4, {}, "no")).ok());

  DataStore::ScanRequest req;
  req.partition = 3;
  req.pk = "pk";
  std::vector<ScannedItem> items;
  bool more = true;
  ASSERT_TRUE(replica_->Scan(req, &items, &more).ok());
  EXPECT_FALSE(more);
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(items[0].sk, "a");
  EXPECT_EQ(items[0].siblings.LiveValues(), (std::vector<std::string>{"va"}));
  EXPECT_EQ(items[1].sk, "b");
  EXPECT_FALSE(items[1].siblings.HasLive());
  EXPECT_EQ(items[1].siblings.size(), 1u);
  EXPECT_EQ(items[2].sk, "c");
  EXPECT_EQ(items[2].siblings.size(), 2u);
  req.limit = 2;
  ASSERT_TRUE(replica_->Scan(req, &items, &more).ok());
  EXPECT_EQ(items.size(), 2u);
  EXPECT_TRUE(more);
}

TEST_F(ReplicaTest, UndecodableRecordIsCorruptionAndLeftUntouched) {
  const std::string garbage = "\x07not a sibling set";
  ASSERT_TRUE(replica_->store().Apply(key_, [&](const std::optional<std::string>&) { return garbage; }).ok());
  SiblingSet s;
  EXPECT_EQ(replica_->Read(key_, &s).code(), Status::Code::kCorruption);
  EXPECT_EQ(replica_->Apply(key_, V("a", 1, {}, "x")).code(), Status::Code::kCorruption);
  std::string record;
  ASSERT_TRUE(replica_->store().Get(key_, &record).ok());
  EXPECT_EQ(record, garbage);
  EXPECT_FALSE(replica_->PrepareWrite(key_, {}, false, "x").ok());
}

// ---------------------------------------------------------------------------
// Batches, reaping, full scans

TEST_F(ReplicaTest, ApplyBatchMergesEachDurably) {
  const ItemKey a{3, "pk", "a"}, b{3, "pk", "b"}, bad{3, "pk", "bad"};
  const std::string garbage = "\x07not a sibling set";
  ASSERT_TRUE(replica_->store().Apply(bad, [&](const std::optional<std::string>&) { return garbage; }).ok());
  Version a1 = V("x", 1, {}, "a1");
  Version a2 = V("x", 2, a1.FullContext(), "a2");
  Version concurrent = V("y", 1, {}, "y1");
  Version b1 = V("x", 3, {}, "b1");
  const DataStore::Stats before = replica_->store().stats();
  std::vector<Status> results =
      replica_->ApplyBatch({{a, a1}, {bad, b1}, {a, concurrent}, {a, a2}, {b, b1}, {a, a1} /* a replay */});
  ASSERT_EQ(results.size(), 6u);
  for (size_t i : {0u, 2u, 3u, 4u, 5u}) EXPECT_TRUE(results[i].ok()) << i << ": " << results[i].ToString();
  EXPECT_EQ(results[1].code(), Status::Code::kCorruption) << results[1].ToString();
  EXPECT_EQ(replica_->store().stats().commits - before.commits, 1u);

  replica_.reset();
  replica_ = OpenReplica(dir_.path(), "n1");
  ASSERT_TRUE(replica_);
  EXPECT_EQ(DotsOf(Read(a)), (std::vector<Dot>{{"x", 2}, {"y", 1}}));
  EXPECT_EQ(Read(b).LiveValues(), (std::vector<std::string>{"b1"}));
  std::string record;
  ASSERT_TRUE(replica_->ReadEncoded(bad, &record).ok());
  EXPECT_EQ(record, garbage);  // left untouched
  EXPECT_TRUE(replica_->ApplyBatch({}).empty());
}

// TryApplyAsync merges as Apply() does and reports on the store's writer
// thread, not the caller's; an undecodable record is Corruption, untouched.
TEST_F(ReplicaTest, TryApplyAsyncMergesAndReportsOnTheWriterThread) {
  const ItemKey bad{3, "pk", "bad"};
  const std::string garbage = "\x07not a sibling set";
  ASSERT_TRUE(replica_->store().Apply(bad, [&](const std::optional<std::string>&) { return garbage; }).ok());
  struct Outcome {
    Status status;
    std::thread::id thread;
  };
  auto apply = [&](const ItemKey& key, const Version& v) {
    std::promise<Outcome> done;
    if (!replica_->TryApplyAsync(key, v, [&done](Status s) { done.set_value({s, std::this_thread::get_id()}); })) {
      ADD_FAILURE() << "refused with an empty queue";
      return Outcome{Status::Unavailable("refused"), {}};
    }
    return done.get_future().get();
  };
  Version a1 = V("x", 1, {}, "a1");
  Version concurrent = V("y", 1, {}, "y1");
  Version a2 = V("x", 2, a1.FullContext(), "a2");
  for (const Version* v : {&a1, &concurrent, &a2}) {
    const Outcome o = apply(key_, *v);
    EXPECT_TRUE(o.status.ok()) << o.status.ToString();
    EXPECT_NE(o.thread, std::this_thread::get_id());
  }
  EXPECT_EQ(apply(bad, a1).status.code(), Status::Code::kCorruption);

  replica_.reset();  // durable
  replica_ = OpenReplica(dir_.path(), "n1");
  ASSERT_TRUE(replica_);
  EXPECT_EQ(DotsOf(Read(key_)), (std::vector<Dot>{{"x", 2}, {"y", 1}}));
  std::string record;
  ASSERT_TRUE(replica_->ReadEncoded(bad, &record).ok());
  EXPECT_EQ(record, garbage);
}

TEST_F(ReplicaTest, ReapIfUnchangedErasesOnlyTheRecordTheCallerSaw) {
  Version t;
  t.dot = {"x", 1};
  t.tombstone = true;
  t.deleted_unix_ms = 1000;
  ASSERT_TRUE(replica_->Apply(key_, t).ok());
  std::string seen;
  ASSERT_TRUE(replica_->ReadEncoded(key_, &seen).ok());

  // A version that arrives after the caller looked survives.
  ASSERT_TRUE(replica_->Apply(key_, V("y", 1, {}, "new")).ok());
  auto reaped = replica_->ReapIfUnchanged(key_, seen);
  ASSERT_TRUE(reaped.ok()) << reaped.status().ToString();
  EXPECT_FALSE(reaped.value());
  EXPECT_EQ(Read(key_).LiveValues(), (std::vector<std::string>{"new"}));

  // The record as it is now goes.
  ASSERT_TRUE(replica_->ReadEncoded(key_, &seen).ok());
  reaped = replica_->ReapIfUnchanged(key_, seen);
  ASSERT_TRUE(reaped.ok()) << reaped.status().ToString();
  EXPECT_TRUE(reaped.value());
  EXPECT_TRUE(Read(key_).empty());
  std::string record = "x";
  ASSERT_TRUE(replica_->ReadEncoded(key_, &record).ok());
  EXPECT_EQ(record, "");

  // Absent: nothing to erase.
  reaped = replica_->ReapIfUnchanged(key_, seen);
  ASSERT_TRUE(reaped.ok());
  EXPECT_FALSE(reaped.value());
  reaped = replica_->ReapIfUnchanged(key_, "");
  ASSERT_TRUE(reaped.ok());
  EXPECT_FALSE(reaped.value());
  // Bytes that are no record at all erase nothing.
  ASSERT_TRUE(replica_->Apply(key_, t).ok());
  reaped = replica_->ReapIfUnchanged(key_, "\x07garbage");
  EXPECT_EQ(reaped.status().code(), Status::Code::kCorruption);
  EXPECT_FALSE(Read(key_).empty());
}

// Reaping forgets a key's dots. If this node then issued them again for a
// recreated key, an owner still holding the tombstone (its reaper has not
// run yet) would treat the new write as already deleted and drop it. Counters
// of this node's actor that a reaped record held are never issued again, also
// after a restart.
TEST_F(ReplicaTest, ReapedCountersAreNeverReissued) {
  CausalContext ctx;
  for (int i = 0; i < 3; ++i) ctx = Write(key_, ctx, "v" + std::to_string(i)).FullContext();
  auto del = replica_->PrepareWrite(key_, ctx, true, "");
  ASSERT_TRUE(del.ok());
  ASSERT_TRUE(replica_->Apply(key_, del.value()).ok());
  replica_->FinishWrite(key_, del->dot, true);
  ASSERT_EQ(del->dot.counter, 4u);
  const SiblingSet elsewhere = Read(key_);  // another owner, not reaped yet

  std::string seen;
  ASSERT_TRUE(replica_->ReadEncoded(key_, &seen).ok());
  auto reaped = replica_->ReapIfUnchanged(key_, seen);
  ASSERT_TRUE(reaped.ok() && reaped.value());

  // A blind write recreating the key.
  Version recreated = Write(key_, {}, "back");
  EXPECT_GT(recreated.dot.counter, 4u);
  SiblingSet merged = elsewhere;
  EXPECT_TRUE(merged.Add(recreated)) << "the old tombstone swallowed the new write";
  EXPECT_EQ(merged.LiveValues(), (std::vector<std::string>{"back"}));

  // The floor is durable and holds for every key.
  ASSERT_TRUE(replica_->MarkCleanShutdown().ok());
  const std::string actor = replica_->actor();
  replica_.reset();
  replica_ = OpenReplica(dir_.path(), "n1");
  ASSERT_TRUE(replica_);
  ASSERT_EQ(replica_->actor(), actor);
  EXPECT_GT(Write({3, "pk", "another"}, {}, "x").dot.counter, 4u);
}

TEST(ReplicaReapFloorTest, UnreadableReapFloorIsCorruption) {
  TempDir dir;
  {
    auto r = OpenReplica(dir.path(), "n1");
    ASSERT_TRUE(r);
    ASSERT_TRUE(r->store().PutMeta("reap_floor", "12x").ok());
  }
  StorageOptions opts;
  opts.path = dir.path() + "/data";
  opts.map_size_bytes = 64ull << 20;
  auto store = DataStore::Open(opts);
  ASSERT_TRUE(store.ok());
  auto r = Replica::Open("n1", std::move(store.value()), 0);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kCorruption) << r.status().ToString();
}

TEST_F(ReplicaTest, ScanAllGivesEncodedRecordsOfEveryPartition) {
  ASSERT_TRUE(replica_->Apply({9, "p", "s"}, V("x", 1, {}, "nine")).ok());
  ASSERT_TRUE(replica_->Apply({2, "p", "s"}, V("x", 2, {}, "two")).ok());
  std::vector<RawItem> out;
  std::string next = "x";
  ASSERT_TRUE(replica_->ScanAll("", 100, &out, &next).ok());
  EXPECT_EQ(next, "");
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].partition, 2u);
  EXPECT_EQ(out[1].partition, 9u);
  auto decoded = DecodeSiblings(out[1].record);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(decoded->LiveValues(), (std::vector<std::string>{"nine"}));
}

// ---------------------------------------------------------------------------
// Dots

TEST_F(ReplicaTest, PrepareWriteIssuesIncreasingDots) {
  CausalContext ctx;
  for (uint64_t i = 1; i <= 5; ++i) {
    Version v = Write(key_, ctx, "v" + std::to_string(i));
    EXPECT_EQ(v.dot.actor, replica_->actor());
    EXPECT_EQ(v.dot.actor, "n1/0");
    EXPECT_EQ(v.dot.counter, i);
    EXPECT_EQ(v.past, ctx);
    EXPECT_FALSE(v.tombstone);
    EXPECT_EQ(v.value, "v" + std::to_string(i));
    ctx = Read(key_).Context();
    EXPECT_EQ(Read(key_).size(), 1u);  // each write saw the previous one
  }
  // Blind writes (empty context) still get fresh dots and become siblings.
  Version b1 = Write(key_, {}, "blind1");
  Version b2 = Write(key_, {}, "blind2");
  EXPECT_EQ(b1.dot.counter, 6u);
  EXPECT_EQ(b2.dot.counter, 7u);
  EXPECT_EQ(Read(key_).size(), 3u);

  // Another key has its own sequence.
  EXPECT_EQ(Write({3, "pk", "sk2"}, {}, "x").dot.counter, 1u);
  EXPECT_EQ(Write({3, "pk2", "sk"}, {}, "x").dot.counter, 1u);

  auto t = replica_->PrepareWrite(key_, {}, true, "ignored");
  ASSERT_TRUE(t.ok());
  EXPECT_TRUE(t->tombstone);
  EXPECT_TRUE(t->value.empty());
  EXPECT_EQ(t->dot.counter, 8u);
  replica_->FinishWrite(key_, t->dot, false);
}

TEST_F(ReplicaTest, PrepareWriteGoesAboveContextAndInFlightDots) {
  // In flight: not yet applied locally, still never reissued.
  auto d1 = replica_->PrepareWrite(key_, {}, false, "1");
  auto d2 = replica_->PrepareWrite(key_, {}, false, "2");
  ASSERT_TRUE(d1.ok() && d2.ok());
  EXPECT_EQ(d1->dot.counter, 1u);
  EXPECT_EQ(d2->dot.counter, 2u);
  // A failed local apply keeps the dot reserved.
  replica_->FinishWrite(key_, d2->dot, false);
  replica_->FinishWrite(key_, d1->dot, false);
  auto d3 = replica_->PrepareWrite(key_, {}, false, "3");
  ASSERT_TRUE(d3.ok());
  EXPECT_EQ(d3->dot.counter, 3u);
  ASSERT_TRUE(replica_->Apply(key_, d3.value()).ok());
  replica_->FinishWrite(key_, d3->dot, true);

  // A client context that saw a higher counter of this actor (e.g. written
  // before the local copy caught up) pushes the next dot above it.
  CausalContext ctx;
  ctx.Add({replica_->actor(), 10});
  ctx.Add({"n1", 20});  // another actor (the plain id), not ours
  ctx.Add({"other", 50});
  auto d = replica_->PrepareWrite(key_, ctx, false, "x");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->dot.counter, 11u);
  replica_->FinishWrite(key_, d->dot, false);

  // A counter seen only in a stored sibling's past counts too.
  const ItemKey k2{3, "pk", "past-only"};
  CausalContext past;
  past.Add({replica_->actor(), 40});
  ASSERT_TRUE(replica_->Apply(k2, V("n2", 1, past, "from n2")).ok());
  auto e = replica_->PrepareWrite(k2, {}, false, "y");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->dot.counter, 41u);
  replica_->FinishWrite(k2, e->dot, false);
}

// A context is client input. A counter at the top of the range must not make
// the next dot wrap to 0: a version with counter 0 does not decode, so storing
// one would leave the key unreadable on every replica.
TEST_F(ReplicaTest, PrepareWriteNeverWrapsTheCounter) {
  CausalContext ctx;
  ctx.Add({replica_->actor(), std::numeric_limits<uint64_t>::max()});
  auto v = replica_->PrepareWrite(key_, ctx, false, "x");
  if (v.ok()) {
    ADD_FAILURE() << "issued dot counter " << v->dot.counter << " after a context holding UINT64_MAX";
    replica_->FinishWrite(key_, v->dot, false);
  } else {
    EXPECT_EQ(v.status().code(), Status::Code::kInvalidArgument) << v.status().ToString();
  }
  // The key still works for ordinary writes.
  EXPECT_EQ(Write(key_, {}, "ok").dot.counter, 1u);
  EXPECT_EQ(Read(key_).LiveValues(), (std::vector<std::string>{"ok"}));
}

// Many threads writing one key through this replica never get the same dot.
TEST_F(ReplicaTest, ConcurrentWritersNeverShareADot) {
  constexpr int kThreads = 16, kPerThread = 40;
  const uint64_t seed = TestSeed(31);
  std::mutex mu;
  std::vector<Dot> issued;
  std::atomic<int> errors{0};
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(seed + t);
      start.arrive_and_wait();
      for (int i = 0; i < kPerThread; ++i) {
        CausalContext ctx;
        if (rng() % 2) {
          SiblingSet s;
          if (!replica_->Read(key_, &s).ok()) errors++;
          ctx = s.Context();
        }
        auto v = replica_->PrepareWrite(key_, ctx, rng() % 5 == 0, "t" + std::to_string(t));
        if (!v.ok()) {
          errors++;
          continue;
        }
        {
          std::lock_guard<std::mutex> lock(mu);
          issued.push_back(v->dot);
        }
        // Now and then the local apply "fails" (is skipped): the dot must stay reserved.
        const bool apply = rng() % 8 != 0;
        Status s = apply ? replica_->Apply(key_, v.value()) : Status::IOError("simulated");
        if (apply && !s.ok()) errors++;
        replica_->FinishWrite(key_, v->dot, s.ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_EQ(errors.load(), 0);
  ASSERT_EQ(issued.size(), size_t(kThreads * kPerThread));
  std::set<Dot> distinct(issued.begin(), issued.end());
  EXPECT_EQ(distinct.size(), issued.size()) << "a dot was issued twice";
  for (const auto& d : issued) ASSERT_EQ(d.actor, replica_->actor());
  // Every counter 1..total was used exactly once: no gaps from races either.
  EXPECT_EQ(distinct.begin()->counter, 1u);
  EXPECT_EQ(distinct.rbegin()->counter, uint64_t(kThreads * kPerThread));
}

// ---------------------------------------------------------------------------
// Incarnations

TEST(ReplicaIncarnationTest, ActorChangesOnlyAfterUncleanStop) {
  TempDir dir;
  {
    auto r = OpenReplica(dir.path(), "n1", /*seed=*/0);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->actor(), "n1/0");  // fresh store: the seed's incarnation
    EXPECT_EQ(r->incarnation(), 0u);
  }  // no MarkCleanShutdown: a crash
  {
    auto r = OpenReplica(dir.path(), "n1", /*seed=*/12345);  // the seed only matters for a new store
    ASSERT_TRUE(r);
    EXPECT_EQ(r->actor(), "n1/1");
    EXPECT_EQ(r->incarnation(), 1u);
    auto v = r->PrepareWrite({0, "pk", "sk"}, {}, false, "x");
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(v->dot.actor, "n1/1");
    r->FinishWrite({0, "pk", "sk"}, v->dot, false);
  }
  {
    auto r = OpenReplica(dir.path(), "n1");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->actor(), "n1/2");
    ASSERT_TRUE(r->MarkCleanShutdown().ok());
  }
  {
    auto r = OpenReplica(dir.path(), "n1");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->actor(), "n1/2");  // clean: unchanged
    EXPECT_EQ(r->incarnation(), 2u);
    ASSERT_TRUE(r->MarkCleanShutdown().ok());
  }
  {
    auto r = OpenReplica(dir.path(), "n1");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->actor(), "n1/2");  // clean twice in a row
  }                                 // crash again
  {
    auto r = OpenReplica(dir.path(), "n1");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->actor(), "n1/3");
  }
}

// A new store draws its incarnation from the seed (40 bits, base 36), so a
// wiped node comes back as a different actor.
TEST(ReplicaIncarnationTest, NewStoreTakesIncarnationFromSeed) {
  struct Case {
    uint64_t seed;
    uint64_t incarnation;
    const char* actor;
  };
  const Case cases[] = {
      {0, 0, "node-a/0"},
      {35, 35, "node-a/z"},
      {36, 36, "node-a/10"},
      {(1ull << 40) - 1, (1ull << 40) - 1, "node-a/e13wu1of"},  // 36^8 > 2^40: 8 digits at most
      {1ull << 40, 0, "node-a/0"},                              // only the low 40 bits count
  };
  for (const auto& c : cases) {
    TempDir dir;
    auto r = OpenReplica(dir.path(), "node-a", c.seed);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->incarnation(), c.incarnation) << c.seed;
    EXPECT_EQ(r->actor(), c.actor) << c.seed;
    ASSERT_TRUE(r->MarkCleanShutdown().ok());
    r.reset();
    auto again = OpenReplica(dir.path(), "node-a", c.seed + 1);
    ASSERT_TRUE(again);
    EXPECT_EQ(again->actor(), c.actor) << "clean restart keeps the actor";
  }
  // Two wiped lives of one node with different seeds are different actors.
  TempDir d1, d2;
  auto a = OpenReplica(d1.path(), "n1", 1001);
  auto b = OpenReplica(d2.path(), "n1", 2002);
  ASSERT_TRUE(a && b);
  EXPECT_NE(a->actor(), b->actor());
}

TEST(ReplicaIncarnationTest, UnreadableIncarnationIsCorruption) {
  TempDir dir;
  {
    auto r = OpenReplica(dir.path(), "n1");
    ASSERT_TRUE(r);
    ASSERT_TRUE(r->store().PutMeta("incarnation", "not-a-number").ok());
  }
  StorageOptions opts;
  opts.path = dir.path() + "/data";
  opts.map_size_bytes = 64ull << 20;
  auto store = DataStore::Open(opts);
  ASSERT_TRUE(store.ok());
  auto r = Replica::Open("n1", std::move(store.value()), 0);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kCorruption) << r.status().ToString();
}

// A dot whose local apply failed may exist on other replicas. If the node
// then stops "cleanly" and comes back with the same actor, the reservation is
// gone and the dot could be issued again for different content: two versions
// with one dot, which every replica treats as the same version. A stop with
// such dots outstanding must count as unclean.
TEST(ReplicaIncarnationTest, DotsOfFailedLocalAppliesAreNeverReissuedAfterRestart) {
  TempDir dir;
  const ItemKey key{1, "pk", "sk"};
  {
    // Writes that completed do not make a stop unclean.
    auto r = OpenReplica(dir.path(), "n1");
    ASSERT_TRUE(r);
    auto v = r->PrepareWrite(key, {}, false, "applied everywhere");
    ASSERT_TRUE(v.ok());
    ASSERT_TRUE(r->Apply(key, v.value()).ok());
    r->FinishWrite(key, v->dot, true);
    ASSERT_TRUE(r->MarkCleanShutdown().ok());
  }
  Dot first;
  {
    auto r = OpenReplica(dir.path(), "n1");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->actor(), "n1/0");
    auto v = r->PrepareWrite(key, {}, false, "sent to peers only");
    ASSERT_TRUE(v.ok());
    first = v->dot;
    r->FinishWrite(key, v->dot, /*applied_locally=*/false);
    ASSERT_TRUE(r->MarkCleanShutdown().ok());
  }
  auto r = OpenReplica(dir.path(), "n1");
  ASSERT_TRUE(r);
  auto v = r->PrepareWrite(key, {}, false, "different content");
  ASSERT_TRUE(v.ok());
  EXPECT_NE(v->dot, first) << "dot " << first.actor << ":" << first.counter << " issued twice";
  r->FinishWrite(key, v->dot, false);
}

}  // namespace
}  // namespace monju
