// TombstoneReaper (replica/tombstone_reaper.h) on a real Replica in a temp
// dir, with a fake wall clock and fake owners. No sleeps: tests drive passes
// with RunOnce().
#include "tombstone_reaper.h"

#include "test_support.h"
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "clock/codec.h"
#include "replica.h"

namespace monju {
namespace {

using monju::test_support::FakeWallClock;
using monju::test_support::TempDir;
using std::chrono::hours;
using std::chrono::milliseconds;

constexpr milliseconds kGrace = hours(6);

std::unique_ptr<Replica> OpenReplica(const std::string& dir) {
  StorageOptions opts;
  opts.path = dir + "/data";
  opts.map_size_bytes = 64ull << 20;
  auto store = DataStore::Open(opts);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  if (!store.ok()) return nullptr;
  auto r = Replica::Open("n1", std::move(store.value()), 0);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r.value()) : nullptr;
}

Version Live(const std::string& actor, uint64_t counter, CausalContext past, std::string value) {
  Version v;
  v.dot = {actor, counter};
  v.past = std::move(past);
  v.value = std::move(value);
  return v;
}

Version Tomb(const std::string& actor, uint64_t counter, CausalContext past, int64_t deleted_ms) {
  Version v;
  v.dot = {actor, counter};
  v.past = std::move(past);
  v.tombstone = true;
  v.deleted_unix_ms = deleted_ms;
  return v;
}

SiblingSet Set(std::initializer_list<Version> versions) { return SiblingSet(std::vector<Version>(versions)); }

using KeyName = std::tuple<uint32_t, std::string, std::string>;
KeyName NameOf(const ItemKey& key) { return {key.partition, key.pk, key.sk}; }

// Three owners: this node (its real replica) and two others held in maps.
class FakeOwners final : public OwnerReader {
 public:
  static constexpr int kOthers = 2;
  explicit FakeOwners(Replica* self) : self_(self) {}

  bool IsOwner(const ItemKey& key) override { return !not_owned.count(NameOf(key)); }

  Status ReadAllOwners(const ItemKey& key, std::vector<SiblingSet>* out) override {
    ++reads;
    // A copy: the hook may replace itself.
    if (auto hook = during_read) hook(key);
    out->clear();
    SiblingSet mine;
    Status s = self_->Read(key, &mine);
    if (!s.ok()) return s;
    out->push_back(std::move(mine));
    for (int i = 0; i < kOthers; ++i) {
      if (down.count(i)) return Status::Unavailable("owner " + std::to_string(i) + " is down");
      out->push_back(others[i][NameOf(key)]);
    }
    return Status::OK();
  }

  std::map<KeyName, SiblingSet> others[kOthers];
  std::set<KeyName> not_owned;
  std::set<int> down;
  std::function<void(const ItemKey&)> during_read;
  int reads = 0;

 private:
  Replica* self_;
};

class ReaperTest : public ::testing::Test {
 protected:
  void SetUp() override {
    replica_ = OpenReplica(dir_.path());
    ASSERT_TRUE(replica_);
    owners_ = std::make_unique<FakeOwners>(replica_.get());
    MakeReaper(ReaperOptions{});
  }

  void MakeReaper(ReaperOptions options) {
    options.grace = kGrace;
    reaper_.reset();
    reaper_ = std::make_unique<TombstoneReaper>(replica_.get(), owners_.get(), &wall_, options);
  }

  // A value written, then deleted at `deleted_ms`; the delete reaches this
  // replica and, when `everywhere`, the other owners (which otherwise keep
  // the value). Returns the tombstone.
  Version WriteThenDelete(const ItemKey& key, int64_t deleted_ms, bool everywhere = true) {
    const Version value = Live("w", ++counter_, {}, "value");
    const Version tomb = Tomb("d", ++counter_, value.FullContext(), deleted_ms);
    EXPECT_TRUE(replica_->Apply(key, value).ok());
    EXPECT_TRUE(replica_->Apply(key, tomb).ok());
    for (auto& other : owners_->others) {
      other[NameOf(key)] = Set({value});
      if (everywhere) other[NameOf(key)].Add(tomb);
    }
    return tomb;
  }

  SiblingSet Local(const ItemKey& key) {
    SiblingSet s;
    Status st = replica_->Read(key, &s);
    EXPECT_TRUE(st.ok()) << st.ToString();
    return s;
  }

  TempDir dir_;
  FakeWallClock wall_;
  std::unique_ptr<Replica> replica_;
  std::unique_ptr<FakeOwners> owners_;
  std::unique_ptr<TombstoneReaper> reaper_;
  const ItemKey key_{3, "pk", "sk"};
  uint64_t counter_ = 0;
};

// ---------------------------------------------------------------------------
// The rule

constexpr int64_t kRuleNow = 1'800'000'000'000;

TEST(SafeToReapTest, Rule) {
  const int64_t now = kRuleNow;
  const Version value = Live("a", 1, {}, "v");
  const Version tomb = Tomb("b", 1, value.FullContext(), now - kGrace.count());
  const SiblingSet local = Set({tomb});
  const SiblingSet newer = Set({Live("c", 1, tomb.FullContext(), "after")});
  const SiblingSet concurrent = Set({Live("c", 2, {}, "unrelated")});
  auto safe = [&](const SiblingSet& l, std::vector<SiblingSet> owners, int64_t at = kRuleNow) {
    return TombstoneReaper::SafeToReap(l, owners, at, kGrace);
  };

  EXPECT_TRUE(safe(local, {local, local, local}));
  EXPECT_TRUE(safe(local, {local, newer, {}}));   // newer or empty owners are fine
  EXPECT_TRUE(safe(local, {{}, {}, {}}));
  EXPECT_FALSE(safe(local, {local, Set({value}), local}));  // an owner still holds the deleted value
  EXPECT_FALSE(safe(local, {local, concurrent, local}));    // holds something, but not the tombstone
  EXPECT_FALSE(safe(local, {}));                             // nobody confirmed anything
  // Grace: measured from the latest delete.
  EXPECT_FALSE(safe(local, {local}, now - 1));
  SiblingSet two = local;
  two.Add(Tomb("e", 1, {}, now - 10));
  EXPECT_FALSE(safe(two, {two}));
  EXPECT_TRUE(safe(two, {two}, now + kGrace.count()));
  // An unknown delete time counts as old.
  const SiblingSet unknown = Set({Tomb("b", 1, value.FullContext(), 0)});
  EXPECT_TRUE(safe(unknown, {unknown}, 1));
  // Not tombstones only: never.
  SiblingSet mixed = local;
  mixed.Add(concurrent.versions()[0]);
  EXPECT_FALSE(safe(mixed, {mixed, mixed, mixed}, now + 100 * kGrace.count()));
  EXPECT_FALSE(safe(SiblingSet(), {{}, {}}));
}

// ---------------------------------------------------------------------------
// Passes

TEST_F(ReaperTest, NotReapedBeforeGraceReapedAfter) {
  WriteThenDelete(key_, wall_.UnixMillis());
  reaper_->RunOnce();
  EXPECT_FALSE(Local(key_).empty());
  wall_.Advance(kGrace - milliseconds(1));
  reaper_->RunOnce();
  EXPECT_FALSE(Local(key_).empty());
  EXPECT_EQ(owners_->reads, 0) << "a young tombstone costs no owner reads";
  wall_.Advance(milliseconds(1));
  reaper_->RunOnce();
  EXPECT_TRUE(Local(key_).empty());
  const ReaperStats s = reaper_->stats();
  EXPECT_EQ(s.reaped, 1u);
  EXPECT_EQ(s.checked, 1u);
  EXPECT_EQ(s.blocked, 0u);
}

TEST_F(ReaperTest, UnknownDeleteTimeCountsAsOld) {
  WriteThenDelete(key_, 0);
  reaper_->RunOnce();
  EXPECT_TRUE(Local(key_).empty());
  EXPECT_EQ(reaper_->stats().reaped, 1u);
}

TEST_F(ReaperTest, NotReapedWhileAnOwnerLacksTheTombstone) {
  const Version tomb = WriteThenDelete(key_, 0, /*everywhere=*/false);  // the others still hold the value
  for (int pass = 0; pass < 3; ++pass) reaper_->RunOnce();
  EXPECT_FALSE(Local(key_).empty());
  EXPECT_EQ(reaper_->stats().checked, 3u);
  EXPECT_EQ(reaper_->stats().blocked, 3u);

  owners_->others[0][NameOf(key_)].Add(tomb);  // one of two catches up
  reaper_->RunOnce();
  EXPECT_FALSE(Local(key_).empty());
  owners_->others[1][NameOf(key_)].Add(tomb);
  reaper_->RunOnce();
  EXPECT_TRUE(Local(key_).empty());
  const ReaperStats s = reaper_->stats();
  EXPECT_EQ(s.reaped, 1u);
  EXPECT_EQ(s.checked, 5u);
  EXPECT_EQ(s.blocked, 4u);
}

TEST_F(ReaperTest, NotReapedWhileAnOwnerDoesNotAnswer) {
  WriteThenDelete(key_, 0);
  owners_->down.insert(1);
  reaper_->RunOnce();
  reaper_->RunOnce();
  EXPECT_FALSE(Local(key_).empty());
  EXPECT_EQ(reaper_->stats().blocked, 2u);
  owners_->down.clear();
  reaper_->RunOnce();
  EXPECT_TRUE(Local(key_).empty());
  EXPECT_EQ(reaper_->stats().reaped, 1u);
}

// An owner already past the delete: the local tombstone may go, and the
// reaper touches nothing but the local record.
TEST_F(ReaperTest, OwnerHoldingANewerValueLetsTheTombstoneGo) {
  const Version tomb = WriteThenDelete(key_, 0);
  const Version newer = Live("w", 99, tomb.FullContext(), "recreated");
  owners_->others[0][NameOf(key_)].Add(newer);
  const SiblingSet before = owners_->others[0][NameOf(key_)];
  ASSERT_EQ(before.LiveValues(), (std::vector<std::string>{"recreated"}));
  reaper_->RunOnce();
  EXPECT_TRUE(Local(key_).empty());
  EXPECT_EQ(owners_->others[0][NameOf(key_)], before);
  EXPECT_EQ(reaper_->stats().reaped, 1u);
}

// Owners that already reaped the key (or never held it) hold nothing the
// tombstone deleted: a partially reaped key is finished.
TEST_F(ReaperTest, EmptyOwnersAreAccepted) {
  WriteThenDelete(key_, 0);
  owners_->others[0].clear();
  owners_->others[1].clear();
  reaper_->RunOnce();
  EXPECT_TRUE(Local(key_).empty());
}

TEST_F(ReaperTest, LiveSiblingNextToATombstoneIsNeverReaped) {
  WriteThenDelete(key_, 0);
  const Version concurrent = Live("z", 1, {}, "written during the delete");
  ASSERT_TRUE(replica_->Apply(key_, concurrent).ok());
  for (auto& other : owners_->others) other[NameOf(key_)].Add(concurrent);
  for (int pass = 0; pass < 3; ++pass) {
    wall_.Advance(kGrace);
    reaper_->RunOnce();
  }
  EXPECT_EQ(Local(key_).size(), 2u);
  EXPECT_EQ(owners_->reads, 0);
  EXPECT_EQ(reaper_->stats().checked, 0u);
}

// A version that lands after the owners were read but before the erase
// survives: the reap only erases the bytes the scan saw.
TEST_F(ReaperTest, VersionArrivingDuringTheCheckSurvives) {
  const Version tomb = WriteThenDelete(key_, 0);
  const Version arrived = Live("late", 1, {}, "arrived mid-check");
  owners_->during_read = [&](const ItemKey& key) {
    ASSERT_TRUE(replica_->Apply(key, arrived).ok());
    for (auto& other : owners_->others) other[NameOf(key)].Add(arrived);
  };
  reaper_->RunOnce();
  EXPECT_EQ(owners_->reads, 1);
  EXPECT_EQ(Local(key_).LiveValues(), (std::vector<std::string>{"arrived mid-check"}));
  EXPECT_EQ(Local(key_).size(), 2u);
  EXPECT_EQ(reaper_->stats().reaped, 0u);

  // The same for a second tombstone: it survives this pass and goes on a later one.
  ASSERT_TRUE(replica_->ReapIfUnchanged(key_, EncodeSiblings(Local(key_))).value());
  WriteThenDelete(key_, 0);
  const Version second = Tomb("d2", 1, {}, 0);
  owners_->during_read = [&](const ItemKey& key) {
    ASSERT_TRUE(replica_->Apply(key, second).ok());
    for (auto& other : owners_->others) other[NameOf(key)].Add(second);
    owners_->during_read = nullptr;
  };
  reaper_->RunOnce();
  EXPECT_EQ(Local(key_).size(), 2u);
  EXPECT_TRUE(Local(key_).AllTombstones());
  reaper_->RunOnce();
  EXPECT_TRUE(Local(key_).empty());
}

TEST_F(ReaperTest, KeysThisNodeDoesNotOwnAreSkipped) {
  WriteThenDelete(key_, 0);
  owners_->not_owned.insert(NameOf(key_));
  reaper_->RunOnce();
  reaper_->RunOnce();
  EXPECT_FALSE(Local(key_).empty());
  EXPECT_EQ(owners_->reads, 0);
  EXPECT_EQ(reaper_->stats().checked, 0u);
  owners_->not_owned.clear();
  reaper_->RunOnce();
  EXPECT_TRUE(Local(key_).empty());
}

// Pages smaller than the store: passes walk on and wrap around, so every
// tombstone is reached and live items stay.
TEST_F(ReaperTest, SmallPagesEventuallyReachEveryItem) {
  ReaperOptions options;
  options.items_per_pass = 4;
  MakeReaper(options);
  std::vector<ItemKey> deleted, live;
  for (int i = 0; i < 30; ++i) {
    const ItemKey key{uint32_t(i % 5), "pk" + std::to_string(i % 7), "sk" + std::to_string(i)};
    if (i % 3 == 0) {
      ASSERT_TRUE(replica_->Apply(key, Live("w", 1000 + i, {}, "keep")).ok());
      live.push_back(key);
    } else {
      WriteThenDelete(key, 0);
      deleted.push_back(key);
    }
  }
  int passes = 0;
  auto remaining = [&] {
    size_t n = 0;
    for (const auto& key : deleted) n += Local(key).empty() ? 0 : 1;
    return n;
  };
  while (remaining() > 0 && passes < 100) {
    reaper_->RunOnce();
    ++passes;
  }
  EXPECT_EQ(remaining(), 0u);
  EXPECT_LE(passes, 8);  // 30 items, 4 a pass: one lap
  for (const auto& key : live) EXPECT_EQ(Local(key).LiveValues(), (std::vector<std::string>{"keep"}));
  EXPECT_EQ(reaper_->stats().reaped, deleted.size());
  EXPECT_EQ(reaper_->stats().checked, deleted.size());

  // Later laps find nothing more to do.
  for (int pass = 0; pass < 10; ++pass) reaper_->RunOnce();
  EXPECT_EQ(reaper_->stats().checked, deleted.size());
}

// A page with more candidates than max_checks_per_pass finishes over several
// passes, never spending more owner reads than allowed in one.
TEST_F(ReaperTest, ChecksPerPassAreCapped) {
  ReaperOptions options;
  options.max_checks_per_pass = 3;
  MakeReaper(options);
  for (int i = 0; i < 10; ++i) WriteThenDelete({1, "pk", "sk" + std::to_string(i)}, 0);
  owners_->down.insert(0);  // the first lap is all blocked
  for (int pass = 0; pass < 4; ++pass) {
    const int before = owners_->reads;
    reaper_->RunOnce();
    EXPECT_LE(owners_->reads - before, 3);
  }
  EXPECT_EQ(reaper_->stats().checked, 10u);
  EXPECT_EQ(reaper_->stats().blocked, 10u);
  owners_->down.clear();
  for (int pass = 0; pass < 4; ++pass) reaper_->RunOnce();
  EXPECT_EQ(owners_->reads, 20);
  const ReaperStats s = reaper_->stats();
  EXPECT_EQ(s.reaped, 10u);
  EXPECT_EQ(s.checked, 20u);
  EXPECT_EQ(s.blocked, 10u);
}

TEST_F(ReaperTest, EmptyStorePassesAreHarmless) {
  reaper_->RunOnce();
  reaper_->RunOnce();
  const ReaperStats s = reaper_->stats();
  EXPECT_EQ(s.reaped + s.checked + s.blocked, 0u);
}

// The background thread runs a pass at once, and Stop() wakes it from its
// (hour-long) wait. Waits on the fake's read rather than sleeping.
TEST_F(ReaperTest, BackgroundThreadRunsPassesUntilStopped) {
  ReaperOptions options;
  options.interval = hours(1);
  MakeReaper(options);
  WriteThenDelete(key_, 0);
  std::promise<void> read;
  owners_->during_read = [&](const ItemKey&) {
    read.set_value();
    owners_->during_read = nullptr;
  };
  reaper_->Start();
  reaper_->Start();  // a second Start() does nothing
  read.get_future().wait();
  reaper_->Stop();  // joins after the pass
  EXPECT_TRUE(Local(key_).empty());
  EXPECT_EQ(reaper_->stats().reaped, 1u);
  reaper_->Stop();
}

}  // namespace
}  // namespace monju
