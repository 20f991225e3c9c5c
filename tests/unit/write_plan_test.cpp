// WritePlan (coordinator/write_plan.h): the sloppy-quorum decisions for one
// write, stepped event by event. No I/O, no clock, no threads.
#include "write_plan.h"

#include <gtest/gtest.h>

#include <set>
#include <vector>

namespace monju {
namespace {

using Kind = WritePlan::Kind;
using Action = WritePlan::Action;
using Result = WritePlan::Result;

// Members: 0 = this node (an owner), 1 and 2 the other owners, 3 and 4 fallbacks.
constexpr uint32_t kSelf = 0;
const std::vector<uint32_t> kOwners = {0, 1, 2};
const std::vector<uint32_t> kFallbacks = {3, 4};

Action Apply(uint32_t m) { return {Kind::kApply, m, m}; }
Action Hint(uint32_t on, uint32_t owner) { return {Kind::kHint, on, owner}; }

struct Fixture {
  explicit Fixture(std::set<uint32_t> down = {}, int w = 2, bool sloppy = true,
                   std::vector<uint32_t> fallbacks = kFallbacks)
      : down_(std::move(down)),
        plan(kOwners, std::move(fallbacks), kSelf, w, sloppy, [this](uint32_t m) { return !down_.count(m); }) {}
  std::set<uint32_t> down_;
  WritePlan plan;
};

TEST(WritePlanTest, AllOwnersAliveGetTheVersionAndWIsMetByOwners) {
  Fixture f;
  EXPECT_EQ(f.plan.Start(), (std::vector<Action>{Apply(0), Apply(1), Apply(2)}));
  EXPECT_EQ(f.plan.result(), Result::kPending);
  f.plan.OnSuccess(Apply(0));
  EXPECT_EQ(f.plan.result(), Result::kPending);
  f.plan.OnSuccess(Apply(2));
  EXPECT_EQ(f.plan.result(), Result::kMet);
  EXPECT_TRUE(f.plan.Done());  // the slow owner is not waited for
  EXPECT_EQ(f.plan.acked_members(), (std::vector<uint32_t>{0, 2}));
  EXPECT_FALSE(f.plan.used_fallback());
  EXPECT_TRUE(f.plan.hinted_owners().empty());
}

TEST(WritePlanTest, DownOwnerGetsAHintOnTheFirstFallbackWhichCountsTowardW) {
  Fixture f({2});
  EXPECT_EQ(f.plan.Start(), (std::vector<Action>{Apply(0), Apply(1), Hint(3, 2)}));
  f.plan.OnSuccess(Apply(0));
  f.plan.OnFailure(Apply(1));  // the other owner fails too: W now rests on the fallback
  EXPECT_EQ(f.plan.result(), Result::kPending);
  f.plan.OnSuccess(Hint(3, 2));
  EXPECT_EQ(f.plan.result(), Result::kMet);
  EXPECT_TRUE(f.plan.used_fallback());
  EXPECT_EQ(f.plan.hinted_owners(), (std::vector<uint32_t>{2}));
}

TEST(WritePlanTest, FailedOwnerGetsAHintOnTheNextFallback) {
  Fixture f;
  f.plan.Start();
  EXPECT_EQ(f.plan.OnFailure(Apply(1)), (std::vector<Action>{Hint(3, 1)}));
  EXPECT_EQ(f.plan.OnFailure(Apply(2)), (std::vector<Action>{Hint(4, 2)}));  // each fallback once per write
  f.plan.OnSuccess(Apply(0));
  f.plan.OnSuccess(Hint(4, 2));
  EXPECT_EQ(f.plan.result(), Result::kMet);
  EXPECT_EQ(f.plan.acked_slots(), 2);
  EXPECT_FALSE(f.plan.Done());  // the hint for n1 is still in flight
  f.plan.OnSuccess(Hint(3, 1));
  EXPECT_TRUE(f.plan.Done());
  EXPECT_EQ(f.plan.acked_slots(), 3);
}

TEST(WritePlanTest, DownFallbacksAreSkipped) {
  Fixture f({2, 3});
  EXPECT_EQ(f.plan.Start(), (std::vector<Action>{Apply(0), Apply(1), Hint(4, 2)}));
}

TEST(WritePlanTest, WithoutFallbacksTheHintStaysHereAndDoesNotCount) {
  Fixture f({2}, /*w=*/2, /*sloppy=*/true, /*fallbacks=*/{});
  EXPECT_EQ(f.plan.Start(), (std::vector<Action>{Apply(0), Apply(1), Hint(kSelf, 2)}));
  f.plan.OnSuccess(Apply(0));
  f.plan.OnSuccess(Hint(kSelf, 2));
  EXPECT_EQ(f.plan.result(), Result::kPending) << "a hint on the coordinator must not count a second time";
  EXPECT_EQ(f.plan.acked_slots(), 1);
  f.plan.OnFailure(Apply(1));
  EXPECT_EQ(f.plan.result(), Result::kFailed);
  EXPECT_EQ(f.plan.hinted_owners(), (std::vector<uint32_t>{2}));
}

TEST(WritePlanTest, StrictModeKeepsHintsHereAndCountsOnlyOwners) {
  Fixture f({2}, /*w=*/2, /*sloppy=*/false);
  EXPECT_EQ(f.plan.Start(), (std::vector<Action>{Apply(0), Apply(1), Hint(kSelf, 2)}));
  f.plan.OnSuccess(Apply(0));
  f.plan.OnSuccess(Hint(kSelf, 2));
  EXPECT_EQ(f.plan.result(), Result::kPending);
  f.plan.OnSuccess(Apply(1));
  EXPECT_EQ(f.plan.result(), Result::kMet);
  EXPECT_FALSE(f.plan.used_fallback());
}

TEST(WritePlanTest, StrictModeFailsWhenOwnersCannotReachW) {
  Fixture f({1, 2}, /*w=*/2, /*sloppy=*/false);
  f.plan.Start();
  EXPECT_EQ(f.plan.result(), Result::kFailed);
}

TEST(WritePlanTest, RefusedHintMovesToTheNextFallbackThenHere) {
  Fixture f({2});
  f.plan.Start();
  EXPECT_EQ(f.plan.OnFailure(Hint(3, 2)), (std::vector<Action>{Hint(4, 2)}));
  EXPECT_EQ(f.plan.OnFailure(Hint(4, 2)), (std::vector<Action>{Hint(kSelf, 2)}));
  EXPECT_TRUE(f.plan.OnFailure(Hint(kSelf, 2)).empty());  // last resort: anti-entropy repairs it
  f.plan.OnSuccess(Apply(0));
  EXPECT_EQ(f.plan.result(), Result::kPending);
  f.plan.OnSuccess(Apply(1));
  EXPECT_EQ(f.plan.result(), Result::kMet) << "W true owners still make the write";
  EXPECT_TRUE(f.plan.hinted_owners().empty());
}

TEST(WritePlanTest, RefusedHintsFailTheWriteWhenOwnersAloneCannotMeetW) {
  Fixture f({1, 2}, /*w=*/2);
  EXPECT_EQ(f.plan.Start(), (std::vector<Action>{Apply(0), Hint(3, 1), Hint(4, 2)}));
  f.plan.OnSuccess(Apply(0));
  EXPECT_EQ(f.plan.OnFailure(Hint(3, 1)), (std::vector<Action>{Hint(kSelf, 1)}));
  EXPECT_EQ(f.plan.result(), Result::kPending);  // the hint on 4 could still count
  EXPECT_EQ(f.plan.OnFailure(Hint(4, 2)), (std::vector<Action>{Hint(kSelf, 2)}));
  EXPECT_EQ(f.plan.result(), Result::kFailed);
}

TEST(WritePlanTest, HandoffDeadlineHintsOwnersThatHaveNotAnswered) {
  Fixture f;
  f.plan.Start();
  f.plan.OnSuccess(Apply(0));
  // n1 and n2 are silent: each gets a fallback, this node's own slot never does.
  EXPECT_EQ(f.plan.OnHandoffDeadline(), (std::vector<Action>{Hint(3, 1), Hint(4, 2)}));
  EXPECT_TRUE(f.plan.OnHandoffDeadline().empty()) << "fires once";
  f.plan.OnSuccess(Hint(3, 1));
  EXPECT_EQ(f.plan.result(), Result::kMet);
  // The slow owner answering later fills no second slot.
  f.plan.OnSuccess(Apply(1));
  EXPECT_EQ(f.plan.acked_slots(), 2);
  // Its failing later does not start another hint either.
  EXPECT_TRUE(f.plan.OnFailure(Apply(2)).empty());
}

TEST(WritePlanTest, HandoffDeadlineSkipsOwnersThatAnsweredOrAlreadyHaveAHint) {
  Fixture f({2});
  f.plan.Start();  // 2 is down: hint on 3 already
  f.plan.OnSuccess(Apply(1));
  EXPECT_TRUE(f.plan.OnHandoffDeadline().empty());
}

TEST(WritePlanTest, ImpossibleWFailsAtOnce) {
  Fixture f({1, 2, 3, 4}, /*w=*/2);
  f.plan.Start();
  EXPECT_EQ(f.plan.result(), Result::kFailed);
  EXPECT_FALSE(f.plan.Done()) << "a failure still waits for the calls in flight";
  f.plan.OnSuccess(Apply(0));
  f.plan.OnSuccess(Hint(kSelf, 1));
  EXPECT_FALSE(f.plan.Done());
  f.plan.OnFailure(Hint(kSelf, 2));
  EXPECT_EQ(f.plan.result(), Result::kFailed);
  EXPECT_TRUE(f.plan.Done());
  EXPECT_EQ(f.plan.acked_slots(), 1);
}

TEST(WritePlanTest, WOfOneIsMetByThisNodeAlone) {
  Fixture f({1, 2}, /*w=*/1);
  f.plan.Start();
  f.plan.OnSuccess(Apply(0));
  EXPECT_EQ(f.plan.result(), Result::kMet);
  EXPECT_FALSE(f.plan.Done()) << "waits for the hints of the two down owners";
  f.plan.OnSuccess(Hint(3, 1));
  f.plan.OnSuccess(Hint(4, 2));
  EXPECT_TRUE(f.plan.Done());
  EXPECT_EQ(f.plan.hinted_owners(), (std::vector<uint32_t>{1, 2}));
  EXPECT_EQ(f.plan.acked_members(), (std::vector<uint32_t>{0, 3, 4}));
}

}  // namespace
}  // namespace monju
