// QuorumCall: one parallel round of calls to replicas, waited on until enough
// succeed, too many fail, or the deadline passes. Internal to the coordinator.
#pragma once

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include <absl/synchronization/mutex.h>

#include "common/clock.h"
#include "common/status.h"
#include "coordinator.h"

namespace monju {

// Releases a held absl::Mutex for a scope and takes it back at the end, also
// when the scope throws (the counterpart of unique_lock's unlock()/lock()).
class MutexReleased {
 public:
  explicit MutexReleased(absl::Mutex& mu) : mu_(mu) { mu_.Unlock(); }
  ~MutexReleased() { mu_.Lock(); }
  MutexReleased(const MutexReleased&) = delete;
  MutexReleased& operator=(const MutexReleased&) = delete;

 private:
  absl::Mutex& mu_;
};

template <typename Reply>
class QuorumCall {
 public:
  // A call fills its Reply and returns OK, or returns the error.
  using Call = std::function<Status(Reply*)>;

  enum class Result { kQuorum, kFailed, kTimedOut };
  struct Outcome {
    Result result;
    int succeeded = 0;
    // By call, in Start() order: the replies that had arrived by the end.
    std::vector<std::optional<Reply>> replies;
    std::string first_error;  // of the failed calls, for the error message
  };
  // Every reply, late ones included, once no call is pending any more
  // (handed over: the call keeps none).
  using SettledFn = std::function<void(std::vector<std::optional<Reply>> replies)>;

  QuorumCall(int needed, Executor* executor, const Clock* clock)
      : needed_(needed), executor_(executor), clock_(clock), state_(std::make_shared<State>()) {}

  // Runs `fn` once Wait() has decided and every call has ended: on the
  // thread of the last call to end, or in Wait() if all had ended by then.
  // `fn` must be quick (read repair decides there, then sends off the
  // client's path). Call before Start().
  void OnSettled(SettledFn fn) { state_->on_settled = std::move(fn); }

  // Counts a target that was not called (known down) as failed.
  void Skip(const std::string& why) {
    absl::MutexLock lock(&state_->mu);
    ++state_->failed;
    if (state_->first_error.empty()) state_->first_error = why;
  }

  // Runs `call` on the executor.
  void Start(Call call) { Launch(AddSlot(), std::move(call)); }

  // The same in two steps, so that replies keep the order of the targets
  // while the local replica's call runs last, on this thread: AddSlot() for
  // every target in order, then Launch() the remote ones and RunHere() the
  // local one (no thread hand-off for it; the remote calls are already out).
  size_t AddSlot() {
    absl::MutexLock lock(&state_->mu);
    state_->replies.emplace_back();
    ++state_->pending;
    return state_->replies.size() - 1;
  }
  void Launch(size_t slot, Call call) {
    auto state = state_;
    bool queued = executor_->Submit([state, slot, call = std::move(call)] { Run(state, slot, call); });
    if (!queued) {
      absl::MutexLock lock(&state->mu);
      --state->pending;
      ++state->failed;
      if (state->first_error.empty()) state->first_error = executor_->RefusalReason();
    }
  }
  void RunHere(size_t slot, const Call& call) { Run(state_, slot, call); }

  // For a call made elsewhere that reports back: call the result with its
  // status and, when OK, its reply (moved from), once, on any thread.
  std::function<void(const Status&, Reply*)> Completion(size_t slot) {
    auto state = state_;
    return [state, slot](const Status& s, Reply* reply) {
      if (s.ok() && !reply) {
        Record(state, slot, Status::IOError("a replica call reported success without a reply"), std::nullopt);
        return;
      }
      Record(state, slot, s, s.ok() ? std::optional<Reply>(std::move(*reply)) : std::nullopt);
    };
  }

  // Waits for the outcome. Calls still running finish in the background and
  // their results are dropped.
  Outcome Wait(Clock::TimePoint deadline) {
    absl::ReleasableMutexLock lock(&state_->mu);
    WaitLocked(deadline);
    Outcome out;
    out.succeeded = state_->succeeded;
    out.first_error = state_->first_error;
    if (state_->succeeded >= needed_) {
      out.result = Result::kQuorum;
    } else if (state_->succeeded + state_->pending < needed_) {
      out.result = Result::kFailed;
    } else {
      out.result = Result::kTimedOut;
    }
    out.replies = state_->replies;
    state_->closed = true;
    Settle settle = TakeSettle(*state_);
    lock.Release();
    // A no-op unless every call has ended; then the settled callback runs
    // here (it only decides, and hands repair sends to the executor).
    settle();
    return out;
  }

 private:
  struct State {
    absl::Mutex mu;
    absl::CondVar cv;
    int succeeded = 0, failed = 0, pending = 0;
    bool closed = false;
    std::vector<std::optional<Reply>> replies;
    std::string first_error;
    SettledFn on_settled;
  };

  // Call with state_->mu held.
  bool Decided() const {
    return state_->succeeded >= needed_ || state_->succeeded + state_->pending < needed_;
  }

  // Call with state_->mu held; it is held again on return.
  void WaitLocked(Clock::TimePoint until) {
    while (!Decided() && clock_->Now() < until) clock_->WaitUntil(state_->cv, state_->mu, until);
  }

  // One call ended with `s` (and its reply when OK).
  static void Record(const std::shared_ptr<State>& state, size_t slot, const Status& s, std::optional<Reply> reply) {
    absl::ReleasableMutexLock lock(&state->mu);
    --state->pending;
    if (s.ok()) {
      ++state->succeeded;
      state->replies[slot] = std::move(reply);
    } else {
      ++state->failed;
      if (state->first_error.empty()) state->first_error = s.ToString();
    }
    Settle settle = TakeSettle(*state);
    lock.Release();
    // Outside the lock, or the woken waiter would only block on it; `state`
    // is held by the caller.
    state->cv.SignalAll();
    settle();
  }

  static void Run(const std::shared_ptr<State>& state, size_t slot, const Call& call) {
    // Writes carry an empty Reply; reads and scans a non-empty one.
    constexpr bool read_only = !std::is_empty_v<Reply>;
    {
      // A read whose request is already answered is not worth a call,
      // unless its reply feeds read repair; writes still go out (a late
      // apply only helps the replica).
      absl::ReleasableMutexLock lock(&state->mu);
      if (state->closed && read_only && !state->on_settled) {
        --state->pending;
        ++state->failed;
        Settle settle = TakeSettle(*state);
        lock.Release();
        settle();
        return;
      }
    }
    Reply reply{};
    Status s;
    try {
      s = call(&reply);
    } catch (const std::exception& e) {
      s = Status::IOError(std::string("replica call failed: ") + e.what());
    }
    Record(state, slot, s, s.ok() ? std::optional<Reply>(std::move(reply)) : std::nullopt);
  }

  // The settled callback with its replies, to run without the lock; a no-op
  // unless Wait() has returned and no call is pending. Takes it at most once.
  struct Settle {
    SettledFn fn;
    std::vector<std::optional<Reply>> replies;
    void operator()() {
      if (fn) fn(std::move(replies));
    }
  };
  static Settle TakeSettle(State& state) {
    if (!state.closed || state.pending != 0 || !state.on_settled) return {};
    // Wait() has copied what it returns, and no call records any more.
    Settle s{std::move(state.on_settled), std::move(state.replies)};
    state.on_settled = nullptr;
    return s;
  }
  const int needed_;
  Executor* executor_;
  const Clock* clock_;
  std::shared_ptr<State> state_;
};

}  // namespace monju
