// Coalescer: when calls leave alone and when together, the batch limits,
// per-item outcomes, and what happens when it cannot take more. The
// executor is a manual one: tasks run only when the test says so.
#include "coalescer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <deque>
#include <optional>

namespace monju {
namespace {

using ::testing::ElementsAre;

class ManualExecutor final : public Executor {
 public:
  bool Submit(std::function<void()> task) override {
    if (before_submit) before_submit();
    if (refuse) return false;
    tasks.push_back(std::move(task));
    return true;
  }
  // Runs the oldest task to its end.
  void RunOne() {
    ASSERT_FALSE(tasks.empty());
    auto task = std::move(tasks.front());
    tasks.pop_front();
    task();
  }
  std::deque<std::function<void()>> tasks;
  bool refuse = false;
  std::function<void()> before_submit;
};

// One call: `name`, with `size` bytes on the wire.
struct TestItem {
  std::string name;
  size_t size = 10;
  std::function<void(Status)> done;
  size_t bytes() const { return size; }
  void Fail(const Status& s) { done(s); }
};

class CoalescerTest : public ::testing::Test {
 protected:
  // An item whose outcome lands in outcomes_[name].
  TestItem W(const std::string& name, size_t bytes = 10) {
    TestItem item;
    item.name = name;
    item.size = bytes;
    item.done = [this, name](Status s) {
      EXPECT_EQ(outcomes_.count(name), 0u) << "completed twice: " << name;
      outcomes_[name] = s;
    };
    return item;
  }
  // The send function records the batch and completes each item with what
  // reply_ says (OK by default).
  std::unique_ptr<Coalescer<TestItem>> Make(CoalescerOptions options) {
    return std::make_unique<Coalescer<TestItem>>(options, &executor_, [this](std::vector<TestItem>& batch) {
      std::vector<std::string> names;
      for (const auto& item : batch) names.push_back(item.name);
      batches_.push_back(names);
      if (during_send_) {
        auto once = std::move(during_send_);
        during_send_ = nullptr;
        once();
      }
      for (auto& item : batch) item.done(reply_ ? reply_(item) : Status::OK());
    });
  }

  ManualExecutor executor_;
  std::vector<std::vector<std::string>> batches_;
  std::map<std::string, Status> outcomes_;
  std::function<void()> during_send_;  // runs once, inside the next send
  std::function<Status(const TestItem&)> reply_;
};

TEST_F(CoalescerTest, AWriteOnAnIdleLinkLeavesAtOnceAlone) {
  auto c = Make({});
  ASSERT_TRUE(c->Submit(W("a")));
  ASSERT_EQ(executor_.tasks.size(), 1u);  // a sender started for it
  EXPECT_TRUE(outcomes_.empty());         // nothing sent from the submitting thread
  executor_.RunOne();
  EXPECT_THAT(batches_, ElementsAre(ElementsAre("a")));
  ASSERT_EQ(outcomes_.count("a"), 1u);
  EXPECT_TRUE(outcomes_["a"].ok());
  EXPECT_EQ(c->queued(), 0u);
}

TEST_F(CoalescerTest, WritesArrivingWhileACallIsOutLeaveTogetherWhenItReturns) {
  CoalescerOptions o;
  o.max_senders = 1;
  auto c = Make(o);
  ASSERT_TRUE(c->Submit(W("first")));
  during_send_ = [&] {
    for (const char* sk : {"b", "c", "d", "e"}) ASSERT_TRUE(c->Submit(W(sk)));
  };
  executor_.RunOne();
  // One sender carried both calls: no task per write.
  EXPECT_TRUE(executor_.tasks.empty());
  EXPECT_THAT(batches_, ElementsAre(ElementsAre("first"), ElementsAre("b", "c", "d", "e")));
  EXPECT_EQ(outcomes_.size(), 5u);
  const auto stats = c->stats();
  EXPECT_EQ(stats.calls, 2u);
  EXPECT_EQ(stats.items, 5u);
}

TEST_F(CoalescerTest, UpToMaxSendersCallsGoOutAtOnce) {
  CoalescerOptions o;
  o.max_senders = 2;
  auto c = Make(o);
  ASSERT_TRUE(c->Submit(W("a")));
  ASSERT_TRUE(c->Submit(W("b")));
  ASSERT_TRUE(c->Submit(W("c")));
  ASSERT_TRUE(c->Submit(W("d")));
  EXPECT_EQ(executor_.tasks.size(), 2u);
  executor_.RunOne();  // takes everything queued: a, b, c, d
  executor_.RunOne();  // finds nothing and ends
  EXPECT_THAT(batches_, ElementsAre(ElementsAre("a", "b", "c", "d")));
  // With both senders gone, the next write starts a new one.
  ASSERT_TRUE(c->Submit(W("e")));
  EXPECT_EQ(executor_.tasks.size(), 1u);
}

TEST_F(CoalescerTest, ASenderUnderSteadyLoadHandsItsThreadBackEveryFewBatches) {
  CoalescerOptions o;
  o.max_senders = 1;
  o.max_batch_items = 1;
  o.batches_per_task = 2;
  auto c = Make(o);
  for (const char* name : {"1", "2", "3", "4", "5"}) ASSERT_TRUE(c->Submit(W(name)));
  ASSERT_EQ(executor_.tasks.size(), 1u);
  executor_.RunOne();
  EXPECT_EQ(batches_.size(), 2u);
  ASSERT_EQ(executor_.tasks.size(), 1u) << "the sender continues as a new task";
  executor_.RunOne();
  EXPECT_EQ(batches_.size(), 4u);
  ASSERT_EQ(executor_.tasks.size(), 1u);
  executor_.RunOne();
  EXPECT_EQ(batches_.size(), 5u);
  EXPECT_TRUE(executor_.tasks.empty());
  EXPECT_EQ(outcomes_.size(), 5u);
  // Still one sender's place in all: the next item starts one new sender.
  ASSERT_TRUE(c->Submit(W("6")));
  EXPECT_EQ(executor_.tasks.size(), 1u);

  // When the executor refuses the hand-over, the sender just goes on.
  executor_.RunOne();
  for (const char* name : {"7", "8", "9"}) ASSERT_TRUE(c->Submit(W(name)));
  ASSERT_EQ(executor_.tasks.size(), 1u);
  auto task = std::move(executor_.tasks.front());
  executor_.tasks.clear();
  executor_.refuse = true;
  task();
  EXPECT_EQ(outcomes_.size(), 9u);
  executor_.refuse = false;
  EXPECT_TRUE(c->Submit(W("10")));
  EXPECT_EQ(executor_.tasks.size(), 1u);
}

TEST_F(CoalescerTest, BatchesKeepToTheItemAndByteLimits) {
  CoalescerOptions o;
  o.max_senders = 1;
  o.max_batch_items = 3;
  o.max_batch_bytes = 100;
  auto c = Make(o);
  for (const char* name : {"1", "2", "3", "4", "5", "6", "7"}) ASSERT_TRUE(c->Submit(W(name)));
  executor_.RunOne();
  EXPECT_THAT(batches_, ElementsAre(ElementsAre("1", "2", "3"), ElementsAre("4", "5", "6"), ElementsAre("7")));

  batches_.clear();
  ASSERT_TRUE(c->Submit(W("big1", 60)));
  ASSERT_TRUE(c->Submit(W("big2", 60)));   // 60 + 60 > 100: alone
  ASSERT_TRUE(c->Submit(W("huge", 500)));  // above the limit on its own: still goes, alone
  ASSERT_TRUE(c->Submit(W("small", 5)));
  ASSERT_TRUE(c->Submit(W("small2", 5)));
  executor_.RunOne();
  EXPECT_THAT(batches_, ElementsAre(ElementsAre("big1"), ElementsAre("big2"), ElementsAre("huge"),
                                    ElementsAre("small", "small2")));
}

TEST_F(CoalescerTest, EachItemGetsItsOwnOutcome) {
  CoalescerOptions o;
  o.max_senders = 1;
  auto c = Make(o);
  reply_ = [](const TestItem& item) { return item.name == "full" ? Status::NoSpace("disk full") : Status::OK(); };
  for (const char* name : {"a", "full", "b"}) ASSERT_TRUE(c->Submit(W(name)));
  executor_.RunOne();
  EXPECT_THAT(batches_, ElementsAre(ElementsAre("a", "full", "b")));
  ASSERT_EQ(outcomes_.size(), 3u);
  EXPECT_TRUE(outcomes_["a"].ok());
  EXPECT_TRUE(outcomes_["full"].Is(Status::Code::kNoSpace)) << outcomes_["full"].ToString();
  EXPECT_TRUE(outcomes_["b"].ok());
}

TEST_F(CoalescerTest, AFullQueueRefusesWithoutCallingDone) {
  CoalescerOptions o;
  o.max_senders = 1;
  o.max_queued = 2;
  auto c = Make(o);
  ASSERT_TRUE(c->Submit(W("a")));
  ASSERT_TRUE(c->Submit(W("b")));
  EXPECT_FALSE(c->Submit(W("refused")));
  executor_.RunOne();
  EXPECT_THAT(batches_, ElementsAre(ElementsAre("a", "b")));
  EXPECT_EQ(outcomes_.count("refused"), 0u);
  EXPECT_TRUE(c->Submit(W("after")));  // room again
}

TEST_F(CoalescerTest, AnExecutorThatRefusesLeavesNoWriteBehind) {
  CoalescerOptions o;
  o.max_senders = 1;
  auto c = Make(o);
  executor_.refuse = true;
  EXPECT_FALSE(c->Submit(W("alone")));
  EXPECT_EQ(outcomes_.count("alone"), 0u);  // the caller decides what to do with it
  EXPECT_EQ(c->queued(), 0u);

  // A write queued for the sender that then failed to start is not left
  // waiting for ever: it fails.
  executor_.before_submit = [&] {
    executor_.before_submit = nullptr;
    EXPECT_TRUE(c->Submit(W("rider")));  // sees a sender starting, so only queues
  };
  EXPECT_FALSE(c->Submit(W("starter")));
  EXPECT_EQ(outcomes_.count("starter"), 0u);
  ASSERT_EQ(outcomes_.count("rider"), 1u);
  EXPECT_TRUE(outcomes_["rider"].Is(Status::Code::kUnavailable)) << outcomes_["rider"].ToString();
  EXPECT_EQ(c->queued(), 0u);

  // Once the executor takes tasks again, writes flow.
  executor_.refuse = false;
  ASSERT_TRUE(c->Submit(W("later")));
  executor_.RunOne();
  EXPECT_TRUE(outcomes_["later"].ok());
}

}  // namespace
}  // namespace monju
