// HintDelivery: order, acknowledgement before removal, backoff, expiry, rate,
// any key bytes, durability across a crash, and the background thread. Fake
// clocks and a fake target; a real HintStore in a temp directory; no sleeps.
#include "hint_delivery.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "test_support.h"

namespace monju {
namespace {

using namespace std::chrono_literals;
using test_support::FakeClock;
using test_support::FakeWallClock;

// Records every call; owners are down and Deliver succeeds unless told otherwise.
class FakeTarget final : public HintTarget {
 public:
  struct Call {
    std::string owner;
    std::vector<Hint> batch;
    uint64_t pending_at_call;  // the owner's hints in the store while Deliver ran
  };

  explicit FakeTarget(const HintStore* store) : store_(store) {}

  bool OwnerAlive(const std::string& owner) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++alive_checks_;
    cv_.notify_all();
    return alive_.count(owner) > 0;
  }

  Status Deliver(const std::string& owner, const std::vector<Hint>& batch) override {
    std::lock_guard<std::mutex> lock(mu_);
    calls_.push_back({owner, batch, store_->PendingFor(owner)});
    cv_.notify_all();
    auto it = fail_.find(owner);
    return it == fail_.end() ? Status::OK() : it->second;
  }

  void SetAlive(const std::string& owner, bool alive) {
    std::lock_guard<std::mutex> lock(mu_);
    if (alive)
      alive_.insert(owner);
    else
      alive_.erase(owner);
  }
  void FailWith(const std::string& owner, Status s) {
    std::lock_guard<std::mutex> lock(mu_);
    fail_[owner] = std::move(s);
  }
  void Succeed(const std::string& owner) {
    std::lock_guard<std::mutex> lock(mu_);
    fail_.erase(owner);
  }

  std::vector<Call> calls() const {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }
  size_t call_count() const { return calls().size(); }
  // Hints of `owner` in all Deliver calls, in call order.
  std::vector<Hint> DeliveredTo(const std::string& owner) const {
    std::vector<Hint> out;
    for (const Call& c : calls())
      if (c.owner == owner) out.insert(out.end(), c.batch.begin(), c.batch.end());
    return out;
  }

  // Waits (with a deadline, never a fixed sleep) until `pred` holds under the lock.
  template <typename Pred>
  bool WaitFor(Pred pred, std::chrono::seconds deadline = 30s) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, deadline, [&] { return pred(calls_, alive_checks_); });
  }

 private:
  const HintStore* store_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::set<std::string> alive_;
  std::map<std::string, Status> fail_;
  std::vector<Call> calls_;
  uint64_t alive_checks_ = 0;
};

class HintDeliveryTest : public ::testing::Test {
 protected:
  void SetUp() override { OpenStore(); }

  void OpenStore() {
    HintLimits limits;
    limits.map_size_bytes = 64ull << 20;
    auto store = HintStore::Open(tmp_.path(), limits);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(store.value());
    target_ = std::make_unique<FakeTarget>(store_.get());
  }

  std::unique_ptr<HintDelivery> MakeDelivery() {
    return std::make_unique<HintDelivery>(store_.get(), target_.get(), &clock_, &wall_, options_);
  }

  // Adds `n` hints for `owner`, with pks "<prefix>0", "<prefix>1", ... created now.
  void AddHints(const std::string& owner, int n, const std::string& prefix = "k") {
    for (int i = 0; i < n; ++i) {
      Hint h;
      h.owner = owner;
      h.partition = 3;
      h.pk = prefix + std::to_string(i);
      h.sk = "s";
      h.version = "v" + std::to_string(i);
      h.created_unix_ms = wall_.UnixMillis();
      ASSERT_TRUE(store_->Add(h).ok());
    }
  }

  static std::vector<std::string> Pks(const std::vector<Hint>& hints) {
    std::vector<std::string> out;
    for (const Hint& h : hints) out.push_back(h.pk);
    return out;
  }
  static std::vector<std::string> ExpectedPks(int n, const std::string& prefix = "k", int from = 0) {
    std::vector<std::string> out;
    for (int i = from; i < from + n; ++i) out.push_back(prefix + std::to_string(i));
    return out;
  }

  test_support::TempDir tmp_{"monju-delivery"};
  FakeClock clock_;
  FakeWallClock wall_;
  DeliveryOptions options_;
  std::unique_ptr<HintStore> store_;
  std::unique_ptr<FakeTarget> target_;
};

TEST_F(HintDeliveryTest, DeliversInOrderAndRemovesOnlyAfterOk) {
  AddHints("b", 150);
  AddHints("c", 5);  // c stays down
  target_->SetAlive("b", true);
  auto delivery = MakeDelivery();
  delivery->RunOnce();

  std::vector<FakeTarget::Call> calls = target_->calls();
  ASSERT_EQ(calls.size(), 3u);
  EXPECT_EQ(calls[0].batch.size(), 64u);
  EXPECT_EQ(calls[1].batch.size(), 64u);
  EXPECT_EQ(calls[2].batch.size(), 22u);
  // While a batch was being delivered, it was all still in the store.
  EXPECT_EQ(calls[0].pending_at_call, 150u);
  EXPECT_EQ(calls[1].pending_at_call, 86u);
  EXPECT_EQ(calls[2].pending_at_call, 22u);
  for (const auto& c : calls) EXPECT_EQ(c.owner, "b");
  EXPECT_EQ(Pks(target_->DeliveredTo("b")), ExpectedPks(150));

  EXPECT_EQ(store_->PendingFor("b"), 0u);
  EXPECT_EQ(store_->PendingFor("c"), 5u);
  EXPECT_EQ(delivery->stats().delivered, 150u);
  EXPECT_EQ(delivery->stats().failed_batches, 0u);

  // Nothing more to send: a further pass calls nobody.
  delivery->RunOnce();
  EXPECT_EQ(target_->call_count(), 3u);
}

TEST_F(HintDeliveryTest, NothingGoesToADownOwnerUntilItComesBack) {
  AddHints("b", 10);
  auto delivery = MakeDelivery();
  for (int i = 0; i < 5; ++i) {
    delivery->RunOnce();
    clock_.Advance(1s);
  }
  EXPECT_EQ(target_->call_count(), 0u);
  EXPECT_EQ(store_->PendingFor("b"), 10u);

  target_->SetAlive("b", true);
  delivery->RunOnce();
  EXPECT_EQ(Pks(target_->DeliveredTo("b")), ExpectedPks(10));
  EXPECT_EQ(store_->PendingTotal(), 0u);
}

TEST_F(HintDeliveryTest, FailingDeliverKeepsHintsAndBacksOff) {
  options_.backoff_initial = 200ms;
  options_.backoff_max = 1000ms;
  AddHints("b", 3);
  AddHints("c", 2);
  target_->SetAlive("b", true);
  target_->SetAlive("c", true);
  target_->FailWith("b", Status::Unavailable("b went away"));
  auto delivery = MakeDelivery();

  delivery->RunOnce();
  EXPECT_EQ(target_->DeliveredTo("b").size(), 3u);
  EXPECT_EQ(store_->PendingFor("b"), 3u);  // kept
  EXPECT_EQ(store_->PendingFor("c"), 0u);  // other owners are not held up
  EXPECT_EQ(delivery->stats().failed_batches, 1u);

  // Each retry waits exactly the current backoff: 200, 400, 800, then capped.
  size_t calls = target_->call_count();
  for (auto backoff : {200ms, 400ms, 800ms, 1000ms, 1000ms}) {
    clock_.Advance(backoff - 1ms);
    delivery->RunOnce();
    EXPECT_EQ(target_->call_count(), calls) << "retried before its " << backoff.count() << " ms backoff";
    clock_.Advance(1ms);
    delivery->RunOnce();
    EXPECT_EQ(target_->call_count(), calls + 1) << "not retried after its " << backoff.count() << " ms backoff";
    calls = target_->call_count();
  }
  EXPECT_EQ(delivery->stats().failed_batches, 6u);
  EXPECT_EQ(store_->PendingFor("b"), 3u);

  // Success delivers everything and resets the backoff.
  target_->Succeed("b");
  clock_.Advance(1000ms);
  delivery->RunOnce();
  EXPECT_EQ(store_->PendingFor("b"), 0u);
  EXPECT_EQ(delivery->stats().delivered, 5u);
  AddHints("b", 1, "late");
  target_->FailWith("b", Status::TimedOut("slow"));
  delivery->RunOnce();
  calls = target_->call_count();
  clock_.Advance(200ms);
  delivery->RunOnce();
  EXPECT_EQ(target_->call_count(), calls + 1) << "backoff did not restart at backoff_initial";
}

TEST_F(HintDeliveryTest, ExpiredHintsAreDroppedAndCountedEvenWhileTheOwnerIsDown) {
  options_.ttl = 1h;
  AddHints("b", 70, "old");  // more than one batch
  wall_.Advance(30min);
  AddHints("b", 2, "mid");
  wall_.Advance(30min);
  AddHints("b", 3, "new");
  AddHints("c", 1, "c-old-enough");
  wall_.Advance(1ms);  // "old" is now 1 h + 1 ms old: expired; "mid" is 30 min old
  auto delivery = MakeDelivery();

  delivery->RunOnce();  // b and c are down
  EXPECT_EQ(delivery->stats().expired, 70u);
  EXPECT_EQ(store_->PendingFor("b"), 5u);
  EXPECT_EQ(store_->PendingFor("c"), 1u);
  EXPECT_EQ(target_->call_count(), 0u);

  // Exactly the ttl old is not older than the ttl.
  wall_.Advance(30min - 1ms);
  delivery->RunOnce();
  EXPECT_EQ(store_->PendingFor("b"), 5u);
  wall_.Advance(1ms);
  delivery->RunOnce();
  EXPECT_EQ(delivery->stats().expired, 72u);
  EXPECT_EQ(store_->PendingFor("b"), 3u);

  target_->SetAlive("b", true);
  delivery->RunOnce();
  EXPECT_EQ(Pks(target_->DeliveredTo("b")), ExpectedPks(3, "new"));
  EXPECT_EQ(delivery->stats().delivered, 3u);
  EXPECT_EQ(store_->PendingFor("c"), 1u);
}

TEST_F(HintDeliveryTest, RateLimitBoundsHintsPerPass) {
  options_.max_hints_per_second = 100;
  AddHints("b", 1000);
  target_->SetAlive("b", true);
  auto delivery = MakeDelivery();

  delivery->RunOnce();  // the bucket starts with one second's worth
  EXPECT_EQ(delivery->stats().delivered, 100u);
  delivery->RunOnce();  // no time passed: nothing
  EXPECT_EQ(delivery->stats().delivered, 100u);
  clock_.Advance(1s);
  delivery->RunOnce();
  EXPECT_EQ(delivery->stats().delivered, 200u);
  clock_.Advance(500ms);
  delivery->RunOnce();
  EXPECT_EQ(delivery->stats().delivered, 250u);
  clock_.Advance(1h);  // idle time does not bank more than a second's worth
  delivery->RunOnce();
  EXPECT_EQ(delivery->stats().delivered, 350u);
  // Still in order across rate-limited passes.
  EXPECT_EQ(Pks(target_->DeliveredTo("b")), ExpectedPks(350));
  EXPECT_EQ(store_->PendingFor("b"), 650u);
}

TEST_F(HintDeliveryTest, OwnersTakeTurnsWhenTheBudgetRunsOut) {
  options_.max_hints_per_second = 100;
  AddHints("a", 300);
  AddHints("b", 300);
  target_->SetAlive("a", true);
  target_->SetAlive("b", true);
  auto delivery = MakeDelivery();
  delivery->RunOnce();
  EXPECT_EQ(store_->PendingFor("a"), 200u);
  EXPECT_EQ(store_->PendingFor("b"), 300u);
  clock_.Advance(1s);
  delivery->RunOnce();
  EXPECT_EQ(store_->PendingFor("a"), 200u);
  EXPECT_EQ(store_->PendingFor("b"), 200u);
  clock_.Advance(1s);
  delivery->RunOnce();
  EXPECT_EQ(store_->PendingFor("a"), 100u);
  EXPECT_EQ(store_->PendingFor("b"), 200u);
}

TEST_F(HintDeliveryTest, AnyKeyBytesArriveByteIdentical) {
  Hint h;
  h.owner = "node-1.x";
  h.partition = 4095;
  h.pk = std::string("a:b/c d\0\xff", 10);
  h.sk = std::string("\xff\0:/ \0", 6);
  h.version = std::string("\0\x01\x02:\xff", 5);
  h.created_unix_ms = wall_.UnixMillis();
  ASSERT_TRUE(store_->Add(h).ok());
  Hint empty_sk = h;
  empty_sk.pk = std::string(1, '\0');
  empty_sk.sk.clear();
  ASSERT_TRUE(store_->Add(empty_sk).ok());
  target_->SetAlive("node-1.x", true);
  auto delivery = MakeDelivery();
  delivery->RunOnce();

  std::vector<Hint> got = target_->DeliveredTo("node-1.x");
  ASSERT_EQ(got.size(), 2u);
  for (int i = 0; i < 2; ++i) {
    const Hint& want = i == 0 ? h : empty_sk;
    EXPECT_EQ(got[i].owner, want.owner);
    EXPECT_EQ(got[i].partition, want.partition);
    EXPECT_EQ(got[i].pk, want.pk);
    EXPECT_EQ(got[i].sk, want.sk);
    EXPECT_EQ(got[i].version, want.version);
    EXPECT_EQ(got[i].created_unix_ms, want.created_unix_ms);
  }
  EXPECT_EQ(store_->PendingTotal(), 0u);
}

TEST_F(HintDeliveryTest, HintsSurviveACrashBeforeDelivery) {
  AddHints("b", 100);
  {
    auto delivery = MakeDelivery();
    delivery->RunOnce();  // b is down: nothing delivered
    EXPECT_EQ(target_->call_count(), 0u);
  }
  // "Crash": the worker and the store go away without delivering.
  target_.reset();
  store_.reset();
  OpenStore();
  EXPECT_EQ(store_->PendingFor("b"), 100u);
  target_->SetAlive("b", true);
  auto delivery = MakeDelivery();
  delivery->RunOnce();
  EXPECT_EQ(Pks(target_->DeliveredTo("b")), ExpectedPks(100));
  EXPECT_EQ(store_->PendingTotal(), 0u);
}

TEST_F(HintDeliveryTest, BackgroundThreadDeliversOnNotify) {
  options_.idle_interval = 1h;  // only Notify can wake it within the test
  AddHints("b", 100);
  auto delivery = MakeDelivery();
  delivery->Start();
  delivery->Start();  // a second Start is harmless
  // The first pass finds b down; then the thread waits its idle hour.
  ASSERT_TRUE(target_->WaitFor([](const auto&, uint64_t alive_checks) { return alive_checks >= 1; }));
  EXPECT_EQ(target_->call_count(), 0u);

  target_->SetAlive("b", true);
  delivery->Notify();
  ASSERT_TRUE(target_->WaitFor([](const std::vector<FakeTarget::Call>& calls, uint64_t) {
    size_t n = 0;
    for (const auto& c : calls) n += c.batch.size();
    return n >= 100;
  })) << "Notify did not wake the delivery thread";
  delivery->Stop();  // returns after the thread exited, so the removals are done
  EXPECT_EQ(store_->PendingTotal(), 0u);
  EXPECT_EQ(delivery->stats().delivered, 100u);
  EXPECT_EQ(Pks(target_->DeliveredTo("b")), ExpectedPks(100));

  delivery->Stop();  // idempotent
  delivery->Start();  // after Stop: does nothing
  AddHints("b", 1);
  delivery->Notify();
  delivery->RunOnce();
  EXPECT_EQ(store_->PendingFor("b"), 1u);
}

TEST_F(HintDeliveryTest, StopReturnsPromptlyFromAnIdleWait) {
  options_.idle_interval = 1h;
  auto delivery = MakeDelivery();
  delivery->Start();
  delivery->Stop();  // would hang for the idle hour if Stop did not wake the thread
  delivery->Stop();
}

}  // namespace
}  // namespace monju
