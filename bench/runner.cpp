#include "runner.h"

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <thread>

namespace monju::bench {
namespace {

using Millis = std::chrono::milliseconds;

// What one thread measured; merged after the threads end.
struct ThreadResult {
  std::array<OpStats, kOpTypes> ops;
  bool connect_failed = false;
  std::map<std::string, uint64_t> error_kinds;
  std::vector<std::string> error_samples;
  uint64_t query_items = 0;
};

// Live counters for the progress line, one cache line each.
struct alignas(64) LiveCount {
  std::atomic<uint64_t> done{0}, failed{0};
};

void NoteError(ThreadResult& r, OpType op, const Status& s) {
  ++r.ops[size_t(op)].errors;
  ++r.error_kinds[ErrorKind(s.message())];
  if (r.error_samples.size() < 5) r.error_samples.push_back(std::string(OpName(op)) + ": " + s.message());
}

class Progress {
 public:
  Progress(const PhaseConfig& config, const Clock& clock, const char* phase, std::vector<LiveCount>& live)
      : config_(config), clock_(clock), phase_(phase), live_(live) {}

  void Start(Clock::TimePoint start) {
    if (!config_.progress || config_.progress_interval.count() <= 0) return;
    start_ = start;
    thread_ = std::thread([this] { Loop(); });
  }
  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) {
      thread_.join();
      if (config_.progress_is_tty) *config_.progress << "\n" << std::flush;
    }
  }

 private:
  void Loop() {
    uint64_t last = 0;
    auto last_at = start_;
    std::unique_lock<std::mutex> lock(mu_);
    while (!cv_.wait_for(lock, config_.progress_interval, [this] { return stop_; })) {
      uint64_t done = 0, failed = 0;
      for (auto& l : live_) {
        done += l.done.load(std::memory_order_relaxed);
        failed += l.failed.load(std::memory_order_relaxed);
      }
      const auto now = clock_.Now();
      const double since = std::chrono::duration<double>(now - start_).count();
      const double interval = std::chrono::duration<double>(now - last_at).count();
      const bool warming = std::string(phase_) == "run" && now < start_ + config_.warmup;
      char line[200];
      std::snprintf(line, sizeof line, "%s%-7s %6.1fs  %10llu ops  %9.0f ops/s  %llu errors",
                    config_.progress_is_tty ? "\r" : "", warming ? "warm-up" : phase_, since,
                    static_cast<unsigned long long>(done), interval > 0 ? double(done - last) / interval : 0.0,
                    static_cast<unsigned long long>(failed));
      *config_.progress << line << (config_.progress_is_tty ? "" : "\n") << std::flush;
      last = done;
      last_at = now;
    }
  }

  const PhaseConfig& config_;
  const Clock& clock_;
  const char* phase_;
  std::vector<LiveCount>& live_;
  Clock::TimePoint start_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
};

// Connects every thread's session, then runs body(thread, session, result)
// on all threads at once; returns the merged result.
template <typename Body>
PhaseResult RunThreads(Driver& driver, const PhaseConfig& config, const char* phase, const Clock& clock,
                       std::vector<LiveCount>& live, Clock::TimePoint* start, Body&& body) {
  const int n = std::max(1, config.threads);
  std::vector<ThreadResult> results(n);
  std::vector<std::unique_ptr<Session>> sessions(n);
  for (int i = 0; i < n; ++i) {
    auto s = driver.Connect(i);
    if (s.ok()) {
      sessions[i] = std::move(s.value());
    } else {
      // Counted; this thread does not run.
      results[i].connect_failed = true;
      ++results[i].error_kinds["connect"];
      results[i].error_samples.push_back("connect: " + s.status().message());
    }
  }
  Progress progress(config, clock, phase, live);
  *start = clock.Now();
  progress.Start(*start);
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i)
    if (sessions[i]) threads.emplace_back([&, i] { body(i, *sessions[i], results[i]); });
  for (auto& t : threads) t.join();
  progress.Stop();

  PhaseResult out;
  out.phase = phase;
  for (auto& r : results) {
    for (size_t k = 0; k < kOpTypes; ++k) {
      out.ops[k].latency_us.Merge(r.ops[k].latency_us);
      out.ops[k].ok += r.ops[k].ok;
      out.ops[k].errors += r.ops[k].errors;
    }
    for (const auto& [kind, count] : r.error_kinds) out.error_kinds[kind] += count;
    for (auto& sample : r.error_samples)
      if (out.error_samples.size() < 5) out.error_samples.push_back(std::move(sample));
    out.query_items += r.query_items;
    out.connect_failures += r.connect_failed ? 1 : 0;
  }
  return out;
}

uint64_t Micros(std::chrono::steady_clock::duration d) {
  return static_cast<uint64_t>(std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::microseconds>(d).count()));
}

}  // namespace

uint64_t PhaseResult::ok() const {
  uint64_t n = 0;
  for (const auto& o : ops) n += o.ok;
  return n;
}

uint64_t PhaseResult::errors() const {
  uint64_t n = connect_failures;
  for (const auto& o : ops) n += o.errors;
  return n;
}

std::string ErrorKind(const std::string& message) {
  std::string kind = message.substr(0, message.find(':'));
  if (kind.size() > 40) kind.resize(40);
  return kind;
}

PhaseResult RunLoad(Driver& driver, const PhaseConfig& config, const Clock& clock) {
  const int n = std::max(1, config.threads);
  std::vector<LiveCount> live(n);
  Clock::TimePoint start;
  PhaseResult out = RunThreads(driver, config, "load", clock, live, &start,
                               [&](int i, Session& session, ThreadResult& result) {
    Rng rng(ThreadSeed(config.seed, uint64_t(i)));
    ValueMaker values(config.value_size, rng());
    for (uint64_t record = uint64_t(i); record < config.layout.records(); record += uint64_t(n)) {
      const ItemName item = config.layout.Name(record);
      const std::string_view value = values.Next(rng);
      const auto t0 = clock.Now();
      Status s = session.Insert(item, value);
      const auto t1 = clock.Now();
      if (s.ok()) {
        result.ops[size_t(OpType::kInsert)].latency_us.Record(Micros(t1 - t0));
        ++result.ops[size_t(OpType::kInsert)].ok;
        live[i].done.fetch_add(1, std::memory_order_relaxed);
      } else {
        NoteError(result, OpType::kInsert, s);
        live[i].failed.fetch_add(1, std::memory_order_relaxed);
      }
    }
  });
  out.seconds = std::chrono::duration<double>(clock.Now() - start).count();
  return out;
}

PhaseResult RunWorkload(Driver& driver, const PhaseConfig& config, const Clock& clock) {
  const int n = std::max(1, config.threads);
  std::vector<LiveCount> live(n);
  const OpChooser chooser(config.mix);
  std::atomic<uint64_t> tickets{0};
  // Set by the first thread to start; every thread then sees the same window.
  std::mutex window_mu;
  bool window_set = false;
  Clock::TimePoint measure_from, measure_until;
  std::atomic<int64_t> last_end_ns{0};
  auto window = [&](Clock::TimePoint now) {
    std::lock_guard<std::mutex> lock(window_mu);
    if (!window_set) {
      window_set = true;
      measure_from = now + config.warmup;
      measure_until = config.duration.count() > 0 ? measure_from + config.duration : Clock::TimePoint::max();
    }
    return std::make_pair(measure_from, measure_until);
  };

  Clock::TimePoint start;
  PhaseResult out = RunThreads(driver, config, "run", clock, live, &start,
                               [&](int i, Session& session, ThreadResult& result) {
    Rng rng(ThreadSeed(config.seed, uint64_t(i) + 0x10000));
    ValueMaker values(config.value_size, rng());
    const auto [from, until] = window(clock.Now());
    for (;;) {
      const auto t0 = clock.Now();
      if (t0 >= until) break;
      const bool measured = t0 >= from;
      if (measured && config.operations > 0 && tickets.fetch_add(1) >= config.operations) break;
      const OpType op = chooser.Next(rng);
      const uint64_t record = config.keys->Next(rng);
      Status s;
      size_t items = 0;
      switch (op) {
        case OpType::kRead:
          s = session.Read(config.layout.Name(record));
          break;
        case OpType::kUpdate:
          s = session.Update(config.layout.Name(record), values.Next(rng));
          break;
        case OpType::kQuery:
          s = session.Query(config.layout.Pk(record), config.query_limit, &items);
          break;
        case OpType::kInsert:
          break;
      }
      const auto t1 = clock.Now();
      if (s.ok()) {
        live[i].done.fetch_add(1, std::memory_order_relaxed);
      } else {
        live[i].failed.fetch_add(1, std::memory_order_relaxed);
      }
      if (!measured || t1 > until) continue;
      if (s.ok()) {
        result.ops[size_t(op)].latency_us.Record(Micros(t1 - t0));
        ++result.ops[size_t(op)].ok;
        result.query_items += items;
      } else {
        NoteError(result, op, s);
      }
      int64_t end_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t1.time_since_epoch()).count();
      int64_t seen = last_end_ns.load();
      while (seen < end_ns && !last_end_ns.compare_exchange_weak(seen, end_ns)) {
      }
    }
  });
  if (window_set) {
    const auto end = config.duration.count() > 0
                         ? measure_until
                         : Clock::TimePoint(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                               std::chrono::nanoseconds(last_end_ns.load())));
    out.seconds = std::max(0.0, std::chrono::duration<double>(end - measure_from).count());
  }
  (void)start;
  return out;
}

}  // namespace monju::bench
