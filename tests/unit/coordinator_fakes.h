// Fakes for coordinator tests: executors, fake replica endpoints with
// failure injection, and a directory mapping member ids to endpoints.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "coordinator.h"
#include "replica.h"

namespace monju::test_support {

using namespace std::chrono_literals;

class InlineExecutor : public Executor {
 public:
  bool Submit(std::function<void()> task) override {
    if (reject) return false;
    task();
    return true;
  }
  std::string RefusalReason() const override { return reason.empty() ? Executor::RefusalReason() : reason; }
  bool reject = false;
  std::string reason;  // what a refusal says; "" for the default
};

class ThreadExecutor : public Executor {
 public:
  ~ThreadExecutor() override { JoinAll(); }
  bool Submit(std::function<void()> task) override {
    std::lock_guard<std::mutex> lock(mu_);
    threads_.emplace_back([this, task = std::move(task)] {
      task();
      std::lock_guard<std::mutex> done(mu_);
      ++finished_;
      finished_cv_.notify_all();
    });
    return true;
  }
  // Waits (up to 10 s) until `n` tasks have run to their end; false on give-up.
  bool AwaitFinished(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    return finished_cv_.wait_for(lock, std::chrono::seconds(10), [&] { return finished_ >= n; });
  }
  void JoinAll() {
    for (;;) {
      std::vector<std::thread> batch;
      {
        std::lock_guard<std::mutex> lock(mu_);
        batch.swap(threads_);
      }
      if (batch.empty()) return;
      for (auto& t : batch) t.join();
    }
  }

 private:
  std::mutex mu_;
  std::condition_variable finished_cv_;
  int finished_ = 0;
  std::vector<std::thread> threads_;
};

// Calls wait here while the gate is held; a wait gives up after 5 s and
// records that it did, so a coordinator that waits for a held call shows up as
// a failure instead of a hang.
class Gate {
 public:
  void Hold() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = false;
  }
  void Release() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      open_ = true;
    }
    cv_.notify_all();
  }
  void Pass() {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(lock, 5s, [&] { return open_; })) gave_up_ = true;
  }
  bool gave_up() {
    std::lock_guard<std::mutex> lock(mu_);
    return gave_up_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = true;
  bool gave_up_ = false;
};

// All `parties` callers must be inside at the same time for any to pass.
class Rendezvous {
 public:
  explicit Rendezvous(int parties) : parties_(parties) {}
  bool Meet() {
    std::unique_lock<std::mutex> lock(mu_);
    ++arrived_;
    cv_.notify_all();
    return cv_.wait_for(lock, 5s, [&] { return arrived_ >= parties_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int parties_, arrived_ = 0;
};

using FakeKey = std::tuple<uint32_t, std::string, std::string>;

// An in-memory replica with failure injection. Configure before calls start.
class FakeEndpoint : public ReplicaEndpoint {
 public:
  Status Apply(const ItemKey& key, const Version& version) override {
    applies++;
    if (rendezvous && !rendezvous->Meet()) return Status::TimedOut("rendezvous: the other call never came");
    gate.Pass();
    if (!apply_error.ok()) return apply_error;
    std::lock_guard<std::mutex> lock(mu_);
    data_[{key.partition, key.pk, key.sk}].Add(version);
    return Status::OK();
  }
  Status Read(const ItemKey& key, SiblingSet* out) override {
    reads++;
    gate.Pass();
    if (!read_error.ok()) return read_error;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = data_.find({key.partition, key.pk, key.sk});
    *out = it == data_.end() ? SiblingSet() : it->second;
    return Status::OK();
  }
  Status Scan(const DataStore::ScanRequest& req, std::vector<ScannedItem>* out, bool* more) override {
    scans++;
    gate.Pass();
    if (!read_error.ok()) return read_error;
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<ScannedItem> all;
    for (const auto& [k, s] : data_) {
      const auto& [partition, pk, sk] = k;
      if (partition != req.partition || pk != req.pk) continue;
      if (sk.compare(0, req.sk_prefix.size(), req.sk_prefix) != 0) continue;
      all.push_back({sk, s});
    }
    if (!req.ascending) std::reverse(all.begin(), all.end());
    out->clear();
    *more = false;
    for (auto& item : all) {
      if (!req.start_sk.empty() || req.start_exclusive) {
        int c = item.sk.compare(req.start_sk);
        if (req.ascending ? (c < 0 || (c == 0 && req.start_exclusive)) : (c > 0 || (c == 0 && req.start_exclusive)))
          continue;
      }
      if (out->size() == req.limit) {
        *more = true;
        break;
      }
      out->push_back(item);
    }
    return Status::OK();
  }
  Status ApplyHinted(const std::string& owner, const ItemKey& key, const Version& version) override {
    hinted++;
    gate.Pass();
    if (!hint_error.ok()) return hint_error;
    std::lock_guard<std::mutex> lock(mu_);
    hints_.push_back({owner, key.pk, key.sk, version});
    return Status::OK();
  }
  bool LikelyAlive() const override { return alive.load(); }
  size_t ReadsInFlight() const override { return reads_in_flight.load(); }
  std::atomic<size_t> reads_in_flight{0};  // what ReadsInFlight() reports

  struct HeldHint {
    std::string owner, pk, sk;
    Version version;
  };
  std::vector<HeldHint> Hints() {
    std::lock_guard<std::mutex> lock(mu_);
    return hints_;
  }

  void Store(const ItemKey& key, const Version& v) {
    std::lock_guard<std::mutex> lock(mu_);
    data_[{key.partition, key.pk, key.sk}].Add(v);
  }
  SiblingSet Stored(const ItemKey& key) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = data_.find({key.partition, key.pk, key.sk});
    return it == data_.end() ? SiblingSet() : it->second;
  }

  // With `async`, ApplyAsync(), ReadAsync() and ScanAsync() take calls (unless
  // async_refuse) and answer each on a thread of its own: at once, or at
  // ReleaseAsync() while async_held.
  bool ReadsAsync() const override { return async; }
  bool AppliesAsync() const override { return async; }
  bool ReadAsync(std::shared_ptr<const ItemKey> key, std::function<void(Status, SiblingSet*)> done) override {
    if (!async || async_refuse) return false;
    async_reads++;
    RunAsync([this, key, done] {
      SiblingSet out;
      Status s = Read(*key, &out);
      done(s, s.ok() ? &out : nullptr);
    });
    return true;
  }
  bool ApplyAsync(std::shared_ptr<const ItemKey> key, std::shared_ptr<const Version> version,
                  std::function<void(Status)> done) override {
    if (!async || async_refuse) return false;
    async_applies++;
    RunAsync([this, key, version, done] { done(Apply(*key, *version)); });
    return true;
  }
  bool ScanAsync(std::shared_ptr<const DataStore::ScanRequest> request,
                 std::function<void(Status, std::vector<ScannedItem>*, bool more)> done) override {
    if (!async || async_refuse) return false;
    async_scans++;
    RunAsync([this, request, done] {
      std::vector<ScannedItem> items;
      bool more = false;
      Status s = Scan(*request, &items, &more);
      done(s, &items, more);
    });
    return true;
  }
  void ReleaseAsync() {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& fn : held_async_) async_threads_.emplace_back(std::move(fn));
    held_async_.clear();
  }
  // Waits for every answer given so far.
  void JoinAsync() {
    for (;;) {
      std::vector<std::thread> threads;
      {
        std::lock_guard<std::mutex> lock(mu_);
        threads.swap(async_threads_);
      }
      if (threads.empty()) return;
      for (auto& t : threads) t.join();
    }
  }
  ~FakeEndpoint() override {
    ReleaseAsync();
    JoinAsync();
  }
  bool async = false;
  bool async_refuse = false;
  bool async_held = false;
  std::atomic<int> async_reads{0}, async_applies{0}, async_scans{0};

  std::atomic<bool> alive{true};
  std::atomic<int> applies{0}, reads{0}, scans{0}, hinted{0};
  Status apply_error, read_error, hint_error;
  Gate gate;
  Rendezvous* rendezvous = nullptr;

 private:
  void RunAsync(std::function<void()> fn) {
    std::lock_guard<std::mutex> lock(mu_);
    if (async_held) {
      held_async_.push_back(std::move(fn));
    } else {
      async_threads_.emplace_back(std::move(fn));
    }
  }

  std::mutex mu_;
  std::map<FakeKey, SiblingSet> data_;
  std::vector<HeldHint> hints_;
  std::vector<std::function<void()>> held_async_;
  std::vector<std::thread> async_threads_;
};

// The local replica seen as an endpoint (the coordinator reads it this way).
class LocalEndpoint : public ReplicaEndpoint {
 public:
  explicit LocalEndpoint(Replica* r) : r_(r) {}
  Status Apply(const ItemKey& key, const Version& version) override { return r_->Apply(key, version); }
  Status ApplyHinted(const std::string& owner, const ItemKey&, const Version&) override {
    std::lock_guard<std::mutex> lock(mu_);
    hinted_for.push_back(owner);
    return Status::OK();
  }
  std::vector<std::string> HintedFor() {
    std::lock_guard<std::mutex> lock(mu_);
    return hinted_for;
  }
  Status Read(const ItemKey& key, SiblingSet* out) override { return r_->Read(key, out); }
  Status Scan(const DataStore::ScanRequest& req, std::vector<ScannedItem>* out, bool* more) override {
    return r_->Scan(req, out, more);
  }
  bool LikelyAlive() const override { return true; }

 private:
  Replica* r_;
  std::mutex mu_;
  std::vector<std::string> hinted_for;
};

class FakeDirectory : public EndpointDirectory {
 public:
  ReplicaEndpoint& Endpoint(const ClusterView& view, uint32_t member_index) override {
    return *by_id.at(view.members().at(member_index).id);
  }
  std::map<std::string, ReplicaEndpoint*> by_id;
};

}  // namespace monju::test_support
