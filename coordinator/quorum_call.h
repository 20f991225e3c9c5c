// QuorumCall: one parallel round of calls to replicas, waited on until enough
// succeed, too many fail, or the deadline passes. Internal to the coordinator.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "common/status.h"
#include "coordinator.h"

namespace monju {

template <typename Reply>
class QuorumCall {
 public:
  // A call fills its Reply and returns OK, or returns the error.
  using Call = std::function<Status(Reply*)>;

  enum class Result { kQuorum, kFailed, kTimedOut };
  struct Outcome {
    Result result;
    int succeeded = 0;
    std::vector<Reply> replies;  // of the calls that succeeded by the end
    std::string first_error;     // of the failed calls, for the error message
  };

  QuorumCall(int needed, Executor* executor) : needed_(needed), executor_(executor), state_(std::make_shared<State>()) {}

  // Counts a target that was not called (known down) as failed.
  void Skip(const std::string& why) {
    std::lock_guard<std::mutex> lock(state_->mu);
    ++state_->failed;
    if (state_->first_error.empty()) state_->first_error = why;
  }

  void Start(Call call) {
    auto state = state_;
    size_t slot;
    {
      std::lock_guard<std::mutex> lock(state->mu);
      slot = state->replies.size();
      state->replies.emplace_back();
      ++state->pending;
    }
    // Writes carry an empty Reply; reads and scans a non-empty one.
    constexpr bool read_only = !std::is_empty_v<Reply>;
    bool queued = executor_->Submit([state, slot, call = std::move(call)] {
      {
        // A read whose request is already answered is not worth a call;
        // writes still go out (a late apply only helps the replica).
        std::lock_guard<std::mutex> lock(state->mu);
        if (state->closed && read_only) {
          --state->pending;
          ++state->failed;
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
      std::lock_guard<std::mutex> lock(state->mu);
      --state->pending;
      if (s.ok()) {
        ++state->succeeded;
        if (!state->closed) state->replies[slot] = std::move(reply);
      } else {
        ++state->failed;
        if (state->first_error.empty()) state->first_error = s.ToString();
      }
      state->cv.notify_all();
    });
    if (!queued) {
      std::lock_guard<std::mutex> lock(state->mu);
      --state->pending;
      ++state->failed;
      if (state->first_error.empty()) state->first_error = "node overloaded: fan-out queue full";
    }
  }

  // Waits for the outcome. Calls still running finish in the background and
  // their results are dropped.
  Outcome Wait(std::chrono::steady_clock::time_point deadline) {
    std::unique_lock<std::mutex> lock(state_->mu);
    auto decided = [&] { return state_->succeeded >= needed_ || state_->succeeded + state_->pending < needed_; };
    state_->cv.wait_until(lock, deadline, decided);
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
    for (auto& r : state_->replies)
      if (r) out.replies.push_back(std::move(*r));
    state_->closed = true;
    return out;
  }

 private:
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    int succeeded = 0, failed = 0, pending = 0;
    bool closed = false;
    std::vector<std::optional<Reply>> replies;
    std::string first_error;
  };
  const int needed_;
  Executor* executor_;
  std::shared_ptr<State> state_;
};

}  // namespace monju
