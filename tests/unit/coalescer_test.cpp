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
    return std::make_unique<Coalescer<TestItem>>(options, &executor_,
                                                 [this](std::vector<TestItem>& batch) { Send(batch); });
  }
  void Send(std::vector<TestItem>& batch) {
    std::vector<std::string> names;
    for (const auto& item : batch) names.push_back(item.name);
    batches_.push_back(names);
    if (during_send_) {
      auto once = std::move(during_send_);
      during_send_ = nullptr;
      once();
    }
    for (auto& item : batch) item.done(reply_ ? reply_(item) : Status::OK());
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

// With a start function (calls that do not block), batches leave from the
// thread that has them; the executor carries only what it declines.
class StartedCoalescerTest : public CoalescerTest {
 protected:
  std::unique_ptr<Coalescer<TestItem>> MakeStarted(CoalescerOptions options) {
    auto send = [this](std::vector<TestItem>& batch) { Send(batch); };
    auto start = [this](std::vector<TestItem>& batch, std::function<void()> finished) {
      if (decline_) return false;
      Started call;
      for (auto& item : batch) call.items.push_back(std::move(item));
      call.finished = std::move(finished);
      started_.push_back(std::move(call));
      return true;
    };
    return std::make_unique<Coalescer<TestItem>>(options, &executor_, send, start);
  }
  // Completes the oldest started call: its items, then `finished`.
  void Answer() {
    ASSERT_FALSE(started_.empty());
    Started call = std::move(started_.front());
    started_.pop_front();
    for (auto& item : call.items) item.done(Status::OK());
    call.finished();
  }
  std::vector<std::string> StartedNames(size_t i) const {
    std::vector<std::string> names;
    for (const auto& item : started_[i].items) names.push_back(item.name);
    return names;
  }

  struct Started {
    std::vector<TestItem> items;
    std::function<void()> finished;
  };
  std::deque<Started> started_;
  bool decline_ = false;
};

TEST_F(StartedCoalescerTest, AWriteOnAnIdleLinkStartsFromTheSubmittingThreadWithoutATask) {
  auto c = MakeStarted({});
  ASSERT_TRUE(c->Submit(W("a")));
  EXPECT_TRUE(executor_.tasks.empty());
  ASSERT_EQ(started_.size(), 1u);
  EXPECT_THAT(StartedNames(0), ElementsAre("a"));
  EXPECT_TRUE(outcomes_.empty());  // completed by the reply, not by starting
  Answer();
  EXPECT_TRUE(outcomes_["a"].ok());
  EXPECT_EQ(c->stats().calls, 1u);
}

TEST_F(StartedCoalescerTest, WritesQueuedWhileCallsAreOutLeaveWhenOneFinishes) {
  CoalescerOptions o;
  o.max_senders = 1;
  auto c = MakeStarted(o);
  ASSERT_TRUE(c->Submit(W("first")));
  for (const char* name : {"b", "c", "d"}) ASSERT_TRUE(c->Submit(W(name)));
  ASSERT_EQ(started_.size(), 1u);  // one call out at most
  Answer();                        // its end starts the next, on this (the reply's) thread
  ASSERT_EQ(started_.size(), 1u);
  EXPECT_THAT(StartedNames(0), ElementsAre("b", "c", "d"));
  Answer();
  EXPECT_TRUE(started_.empty());
  EXPECT_TRUE(executor_.tasks.empty());
  EXPECT_EQ(outcomes_.size(), 4u);
  // The place was given back: the next write starts at once.
  ASSERT_TRUE(c->Submit(W("e")));
  EXPECT_EQ(started_.size(), 1u);
  const auto stats = c->stats();
  EXPECT_EQ(stats.calls, 3u);
  EXPECT_EQ(stats.items, 5u);
}

TEST_F(StartedCoalescerTest, WhatTheStartFunctionDeclinesGoesThroughTheExecutor) {
  CoalescerOptions o;
  o.max_senders = 1;
  auto c = MakeStarted(o);
  decline_ = true;
  ASSERT_TRUE(c->Submit(W("a")));
  ASSERT_TRUE(c->Submit(W("b")));
  EXPECT_TRUE(started_.empty());
  ASSERT_EQ(executor_.tasks.size(), 1u);
  EXPECT_EQ(c->stats().calls, 0u);  // a declined batch is not counted
  executor_.RunOne();
  EXPECT_THAT(batches_, ElementsAre(ElementsAre("a", "b")));
  EXPECT_TRUE(outcomes_["a"].ok());
  EXPECT_TRUE(outcomes_["b"].ok());
  EXPECT_EQ(c->stats().calls, 1u);

  // A call that finishes while the start function declines hands its place
  // to the executor, and the items still leave in order.
  decline_ = false;
  ASSERT_TRUE(c->Submit(W("c")));
  ASSERT_TRUE(c->Submit(W("d")));
  decline_ = true;
  Answer();
  ASSERT_EQ(executor_.tasks.size(), 1u);
  executor_.RunOne();
  EXPECT_THAT(batches_, ElementsAre(ElementsAre("a", "b"), ElementsAre("d")));
  EXPECT_EQ(outcomes_.size(), 4u);
}

TEST_F(StartedCoalescerTest, ItemsNoThreadWillCarryFailWhenTheExecutorRefuses) {
  CoalescerOptions o;
  o.max_senders = 1;
  auto c = MakeStarted(o);
  ASSERT_TRUE(c->Submit(W("out")));
  ASSERT_TRUE(c->Submit(W("queued")));
  decline_ = true;
  executor_.refuse = true;
  Answer();
  EXPECT_TRUE(outcomes_["out"].ok());
  ASSERT_EQ(outcomes_.count("queued"), 1u);
  EXPECT_TRUE(outcomes_["queued"].Is(Status::Code::kUnavailable)) << outcomes_["queued"].ToString();
  EXPECT_EQ(c->queued(), 0u);
  // Nothing is held: a later write starts again.
  decline_ = false;
  executor_.refuse = false;
  ASSERT_TRUE(c->Submit(W("later")));
  EXPECT_EQ(started_.size(), 1u);
}

}  // namespace
}  // namespace monju
