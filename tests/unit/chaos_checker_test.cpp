// The chaos checker (chaos/checker.h) on hand-made histories: it must catch a
// lost write, a resurrected delete and divergent replicas, and must not
// blame what the store is allowed to do (superseded values, unknown
// outcomes, siblings). Also the history file round trip and the fault
// schedule.
#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include "checker.h"
#include "element_set.h"
#include "history.h"
#include "schedule.h"
#include "test_support.h"

namespace monju::chaos {
namespace {

using namespace std::chrono_literals;

class CheckerTest : public ::testing::Test {
 protected:
  // Appends an op; its times follow the order of the calls.
  Op& Add(OpKind kind, const std::string& key, const std::string& value, std::vector<std::string> observed = {},
          OpOutcome outcome = OpOutcome::kOk) {
    Op op;
    op.id = ops_.size() + 1;
    op.kind = kind;
    op.key = key;
    op.value = value;
    op.observed = std::move(observed);
    op.outcome = outcome;
    op.start_us = static_cast<int64_t>(ops_.size()) * 10;
    op.end_us = op.start_us + 5;
    ops_.push_back(op);
    return ops_.back();
  }

  // Every owner of `key` holds the same live values (one sibling each).
  void Final(const std::string& key, const std::vector<std::string>& values, int owners = 3) {
    SiblingSet set = Set(values);
    auto& copies = state_[key];
    copies.clear();
    for (int i = 0; i < owners; ++i) copies.push_back({"n" + std::to_string(i + 1), set});
  }

  static SiblingSet Set(const std::vector<std::string>& values, bool tombstone_too = false) {
    std::vector<Version> versions;
    uint64_t counter = 0;
    for (const auto& v : values) versions.push_back(Version{Dot{"a", ++counter}, {}, false, v, 0});
    if (tombstone_too) versions.push_back(Version{Dot{"b", 1}, {}, true, "", 1});
    return SiblingSet(versions);
  }

  CheckResult Run() const { return Check(ops_, state_); }

  std::vector<Op> ops_;
  FinalState state_;
};

TEST_F(CheckerTest, AcknowledgedWriteThatVanishedIsLost) {
  Add(OpKind::kWrite, "reg/0", "r0.1");
  Final("reg/0", {});
  CheckResult r = Run();
  EXPECT_EQ(r.lost, 1u);
  EXPECT_FALSE(r.ok());
  ASSERT_EQ(r.lost_examples.size(), 1u);
  EXPECT_NE(r.lost_examples[0].find("r0.1"), std::string::npos) << r.lost_examples[0];
}

TEST_F(CheckerTest, WriteReplacedByALaterAcknowledgedWriteIsNotLost) {
  Add(OpKind::kWrite, "reg/0", "r0.1");
  Add(OpKind::kRead, "reg/0", "", {"r0.1"});
  Add(OpKind::kWrite, "reg/0", "r1.1", {"r0.1"});
  Final("reg/0", {"r1.1"});
  CheckResult r = Run();
  EXPECT_EQ(r.lost, 0u);
  EXPECT_EQ(r.resurrected, 0u);
  EXPECT_TRUE(r.ok());
}

TEST_F(CheckerTest, ChainThroughAnUnknownWriteCounts) {
  Add(OpKind::kWrite, "reg/0", "r0.1");
  Add(OpKind::kWrite, "reg/0", "r1.1", {"r0.1"}, OpOutcome::kUnknown);
  Add(OpKind::kWrite, "reg/0", "r2.1", {"r1.1"});
  Final("reg/0", {"r2.1"});
  EXPECT_EQ(Run().lost, 0u);

  // The end of the chain vanished: its acknowledged writes are lost, the
  // unknown one in the middle is not counted.
  Final("reg/0", {});
  CheckResult r = Run();
  EXPECT_EQ(r.lost, 2u);
  EXPECT_EQ(r.unknown, 1u);
}

TEST_F(CheckerTest, UnknownWriteThatNeverAppliedDoesNotExcuseALoss) {
  Add(OpKind::kWrite, "reg/0", "r0.1");
  Add(OpKind::kWrite, "reg/0", "r1.1", {"r0.1"}, OpOutcome::kUnknown);
  Final("reg/0", {});
  EXPECT_EQ(Run().lost, 1u);
}

TEST_F(CheckerTest, FailedWriteNeverSupersedes) {
  Add(OpKind::kWrite, "reg/0", "r0.1");
  Add(OpKind::kWrite, "reg/0", "r1.1", {"r0.1"}, OpOutcome::kFail);
  Final("reg/0", {"r1.1"});  // impossible, but a failed op must not excuse anything
  EXPECT_EQ(Run().lost, 1u);
}

TEST_F(CheckerTest, ConcurrentSiblingsAreNeitherLostNorResurrected) {
  Add(OpKind::kWrite, "reg/1", "r0.1");
  Add(OpKind::kWrite, "reg/1", "r1.1");  // blind: did not read r0.1
  Final("reg/1", {"r0.1", "r1.1"});
  EXPECT_TRUE(Run().ok());
}

TEST_F(CheckerTest, ValueAnAcknowledgedWriteReplacedMustNotReturn) {
  Add(OpKind::kWrite, "reg/0", "r0.1");
  Add(OpKind::kWrite, "reg/0", "r1.1", {"r0.1"});
  Final("reg/0", {"r0.1", "r1.1"});
  CheckResult r = Run();
  EXPECT_EQ(r.resurrected, 1u);
  EXPECT_FALSE(r.ok());
}

TEST_F(CheckerTest, DeletedKeyThatComesBackIsResurrected) {
  Add(OpKind::kCreate, "del/0/1", "d0.1");
  Add(OpKind::kDelete, "del/0/1", "", {"d0.1"});
  Final("del/0/1", {"d0.1"});
  CheckResult r = Run();
  EXPECT_EQ(r.resurrected, 1u);
  ASSERT_EQ(r.resurrected_examples.size(), 1u);
  EXPECT_NE(r.resurrected_examples[0].find("delete"), std::string::npos) << r.resurrected_examples[0];
}

TEST_F(CheckerTest, DeletedKeyReadsEmptyAndKeyWrittenAgainIsFine) {
  Add(OpKind::kCreate, "del/0/1", "d0.1");
  Add(OpKind::kDelete, "del/0/1", "", {"d0.1"});
  Add(OpKind::kCreate, "del/0/2", "d0.2");
  Add(OpKind::kDelete, "del/0/2", "", {"d0.2"});
  Add(OpKind::kWrite, "del/0/2", "again0.3", {});
  Final("del/0/1", {});
  Final("del/0/2", {"again0.3"});
  CheckResult r = Run();
  EXPECT_TRUE(r.ok()) << r.lost << " lost, " << r.resurrected << " resurrected";
  EXPECT_EQ(r.acknowledged, 5u);
}

TEST_F(CheckerTest, UnacknowledgedDeleteMayLeaveTheKey) {
  Add(OpKind::kCreate, "del/0/1", "d0.1");
  Add(OpKind::kDelete, "del/0/1", "", {"d0.1"}, OpOutcome::kUnknown);
  Final("del/0/1", {"d0.1"});
  EXPECT_TRUE(Run().ok());
  Final("del/0/1", {});
  EXPECT_TRUE(Run().ok());  // or it applied
}

TEST_F(CheckerTest, SetElementMissingFromEveryValueIsLost) {
  Add(OpKind::kAdd, "set/0/0", "e0.1", {});
  Add(OpKind::kAdd, "set/0/0", "e1.1", {});
  Add(OpKind::kAdd, "set/0/0", "e2.1", {}, OpOutcome::kUnknown);
  // Two concurrent writes left siblings; e1.1's sibling was lost.
  Final("set/0/0", {EncodeElements({"e0.1"})});
  CheckResult r = Run();
  EXPECT_EQ(r.lost, 1u);
  EXPECT_EQ(r.set_elements_acknowledged, 2u);
  Final("set/0/0", {EncodeElements({"e0.1"}), EncodeElements({"e1.1", "e2.1"})});
  r = Run();
  EXPECT_EQ(r.lost, 0u);
  EXPECT_EQ(r.unknown_present, 1u);
}

TEST_F(CheckerTest, ReplicasHoldingDifferentVersionsAreDivergent) {
  Add(OpKind::kWrite, "reg/0", "r0.1");
  state_["reg/0"] = {{"n1", Set({"r0.1"})}, {"n2", Set({"r0.1"})}, {"n3", Set({})}};
  CheckResult r = Run();
  EXPECT_EQ(r.divergent_keys, 1u);
  EXPECT_EQ(r.lost, 0u) << "present on two owners";
  EXPECT_FALSE(r.ok());

  // Same live values but one owner also keeps a tombstone sibling.
  state_["reg/0"] = {{"n1", Set({"r0.1"})}, {"n2", Set({"r0.1"}, true)}, {"n3", Set({"r0.1"})}};
  EXPECT_EQ(Run().divergent_keys, 1u);

  // An owner that could not be read leaves the key unproven.
  state_["reg/0"] = {{"n1", Set({"r0.1"})}, {"n2", std::nullopt}, {"n3", Set({"r0.1"})}};
  r = Run();
  EXPECT_EQ(r.divergent_keys, 1u);
  EXPECT_EQ(r.unreadable_copies, 1u);

  Final("reg/0", {"r0.1"});
  EXPECT_TRUE(Run().ok());
}

TEST_F(CheckerTest, CountsOutcomes) {
  Add(OpKind::kRead, "reg/0", "", {}, OpOutcome::kFail);
  Add(OpKind::kWrite, "reg/0", "r0.1", {}, OpOutcome::kUnknown);
  Add(OpKind::kWrite, "reg/0", "r0.2", {}, OpOutcome::kFail);
  Add(OpKind::kWrite, "reg/0", "r0.3", {});
  Final("reg/0", {"r0.3"});
  CheckResult r = Run();
  EXPECT_EQ(r.ops, 4u);
  EXPECT_EQ(r.writes, 3u);
  EXPECT_EQ(r.acknowledged, 1u);
  EXPECT_EQ(r.failed, 2u);
  EXPECT_EQ(r.unknown, 1u);
  EXPECT_EQ(r.keys, 1u);
}

TEST_F(CheckerTest, LongChainsDoNotRecurse) {
  // 20,000 writes, each replacing the one before: only the last is present.
  std::string prev;
  for (int i = 0; i < 20000; ++i) {
    std::string v = "r0." + std::to_string(i);
    Add(OpKind::kWrite, "reg/0", v, prev.empty() ? std::vector<std::string>{} : std::vector<std::string>{prev});
    prev = v;
  }
  Final("reg/0", {prev});
  EXPECT_EQ(Run().lost, 0u);
  Final("reg/0", {});
  EXPECT_EQ(Run().lost, 20000u);
}

TEST(HistoryTest, JsonLinesRoundTrip) {
  test_support::TempDir dir;
  std::vector<Op> ops(2);
  ops[0].id = 1;
  ops[0].kind = OpKind::kAdd;
  ops[0].key = "set/0/1";
  ops[0].value = std::string("e\n\0x", 4);
  ops[0].observed = {"a", "b\"c"};
  ops[0].outcome = OpOutcome::kUnknown;
  ops[0].error = "timed out";
  ops[1].id = 2;
  ops[1].kind = OpKind::kDelete;
  ops[1].start_us = 5;
  ops[1].end_us = 9;
  ASSERT_TRUE(WriteHistory(ops, dir.path() + "/h.jsonl").ok());
  std::ifstream in(dir.path() + "/h.jsonl");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto back = ParseHistory(text);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ASSERT_EQ(back.value().size(), 2u);
  EXPECT_EQ(back.value()[0].value, ops[0].value);
  EXPECT_EQ(back.value()[0].observed, ops[0].observed);
  EXPECT_EQ(back.value()[0].outcome, OpOutcome::kUnknown);
  EXPECT_EQ(back.value()[1].kind, OpKind::kDelete);
  EXPECT_EQ(back.value()[1].end_us, 9);
  EXPECT_FALSE(ParseHistory("{\"id\":1}\n").ok());
  EXPECT_FALSE(ParseHistory("not json\n").ok());
}

TEST(ElementSetTest, EncodesSortedAndUnions) {
  EXPECT_EQ(EncodeElements({"b", "a"}), "a\nb");
  EXPECT_EQ(UnionOfElements({"a\nb", "b\nc", ""}), (std::set<std::string>{"a", "b", "c"}));
}

TEST(ScheduleTest, SameSeedSameScheduleAndEveryKindAppears) {
  ScheduleOptions o;
  o.seed = test_support::TestSeed(42);
  o.nodes = 5;
  o.run = 300s;
  o.kinds = {FaultKind::kKill, FaultKind::kPause, FaultKind::kPartition, FaultKind::kWipe, FaultKind::kSlow};
  auto a = MakeSchedule(o), b = MakeSchedule(o);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].Describe(), b[i].Describe());
  std::set<FaultKind> seen;
  std::chrono::milliseconds last_end{0};
  for (const auto& f : a) {
    seen.insert(f.kind);
    EXPECT_GE(f.start, last_end) << "faults overlap: " << f.Describe();
    EXPECT_LE(f.start + f.duration, o.run) << f.Describe();
    last_end = f.start + f.duration;
    ASSERT_FALSE(f.nodes.empty());
    EXPECT_LT(f.nodes.size() * 2, static_cast<size_t>(o.nodes)) << "a partition cuts off a minority";
    for (int n : f.nodes) EXPECT_LT(n, o.nodes);
  }
  EXPECT_EQ(seen.size(), o.kinds.size());
  o.seed += 1;
  auto c = MakeSchedule(o);
  bool differs = c.size() != a.size();
  for (size_t i = 0; !differs && i < a.size(); ++i) differs = a[i].Describe() != c[i].Describe();
  EXPECT_TRUE(differs) << "another seed gave the same schedule";
}

TEST(ScheduleTest, ParsesFaultKinds) {
  auto all = ParseFaultKinds("all");
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all.value().size(), 5u);
  auto two = ParseFaultKinds("kill,partition,kill");
  ASSERT_TRUE(two.ok());
  EXPECT_EQ(two.value().size(), 2u);
  auto bad = ParseFaultKinds("kill,explode");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("explode"), std::string::npos);
  EXPECT_FALSE(ParseFaultKinds("").ok());
}

}  // namespace
}  // namespace monju::chaos
