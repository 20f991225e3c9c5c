// PeerDetector: phi accrual suspicion on a fake clock (no sleeps).
#include "health/failure_detector.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <random>
#include <thread>
#include <vector>

#include "test_support.h"

namespace monju {
namespace {

using namespace std::chrono_literals;
using test_support::FakeClock;

// Silence after which phi reaches `threshold` when the mean interval is `mean`.
std::chrono::duration<double, std::milli> SilenceFor(double threshold, std::chrono::milliseconds mean) {
  return std::chrono::duration<double, std::milli>(threshold * mean.count() / std::log10(std::exp(1.0)));
}

// The first whole millisecond at or after `d`: when a 1 ms stepping test sees it.
std::chrono::milliseconds CeilMs(std::chrono::duration<double, std::milli> d) {
  return std::chrono::milliseconds(static_cast<int64_t>(std::ceil(d.count())));
}

class HealthTest : public ::testing::Test {
 protected:
  // Beats every `interval` for `n` beats.
  void Heartbeats(PeerDetector& d, int n, std::chrono::milliseconds interval = 250ms) {
    for (int i = 0; i < n; ++i) {
      clock_.Advance(interval);
      d.RecordSuccess();
    }
  }

  // Advances 1 ms at a time from the last success until `d` reaches `state`
  // (at most `limit`); returns the silence it took.
  std::chrono::milliseconds TimeUntil(PeerDetector& d, PeerState state, std::chrono::milliseconds limit = 60s) {
    std::chrono::milliseconds waited{0};
    while (d.State() != state && waited < limit) {
      clock_.Advance(1ms);
      waited += 1ms;
    }
    return waited;
  }

  FakeClock clock_;
  DetectorOptions options_;  // defaults: 250 ms, phi 1 / 3, window 64
};

TEST_F(HealthTest, StateNames) {
  EXPECT_STREQ(PeerStateName(PeerState::kAlive), "alive");
  EXPECT_STREQ(PeerStateName(PeerState::kSuspect), "suspect");
  EXPECT_STREQ(PeerStateName(PeerState::kDown), "down");
}

TEST_F(HealthTest, StartsAlive) {
  PeerDetector d(&clock_, options_);
  EXPECT_EQ(d.State(), PeerState::kAlive);
  EXPECT_TRUE(d.LikelyAlive());
  PeerHealthSnapshot s = d.Snapshot();
  EXPECT_EQ(s.state, PeerState::kAlive);
  EXPECT_DOUBLE_EQ(s.phi, 0);
  EXPECT_EQ(s.ms_since_heard, 0);
  EXPECT_EQ(s.consecutive_failures, 0u);
  EXPECT_EQ(s.successes, 0u);
  EXPECT_EQ(s.failures, 0u);
}

TEST_F(HealthTest, RegularHeartbeatsStayAliveForever) {
  PeerDetector d(&clock_, options_);
  for (int i = 0; i < 100000; ++i) {
    clock_.Advance(250ms);
    ASSERT_EQ(d.State(), PeerState::kAlive) << "beat " << i;  // just before the beat: the latest it gets
    d.RecordSuccess();
  }
  EXPECT_EQ(d.Snapshot().successes, 100000u);
}

TEST_F(HealthTest, OneFailureMakesSuspectNotDownAndNextSuccessHeals) {
  PeerDetector d(&clock_, options_);
  Heartbeats(d, 10);
  d.RecordFailure();
  EXPECT_EQ(d.State(), PeerState::kSuspect);
  EXPECT_TRUE(d.LikelyAlive());
  EXPECT_EQ(d.Snapshot().consecutive_failures, 1u);
  // A slow reply: it arrives, late, before silence alone would mean down.
  clock_.Advance(500ms);
  EXPECT_EQ(d.State(), PeerState::kSuspect);
  d.RecordSuccess();
  EXPECT_EQ(d.State(), PeerState::kAlive);
  PeerHealthSnapshot s = d.Snapshot();
  EXPECT_EQ(s.consecutive_failures, 0u);
  EXPECT_EQ(s.failures, 1u);
  EXPECT_EQ(s.successes, 11u);
}

TEST_F(HealthTest, FailuresAloneNeverMakeDown) {
  PeerDetector d(&clock_, options_);
  Heartbeats(d, 10);
  for (int i = 0; i < 1000; ++i) d.RecordFailure();  // many failing requests at one instant
  EXPECT_EQ(d.State(), PeerState::kSuspect);
  EXPECT_EQ(d.Snapshot().consecutive_failures, 1000u);
}

TEST_F(HealthTest, SilenceTurnsSuspectThenDownAtComputedTimes) {
  PeerDetector d(&clock_, options_);
  Heartbeats(d, 20);
  const auto suspect_at = SilenceFor(options_.phi_suspect, 250ms);  // ~575.6 ms
  const auto down_at = SilenceFor(options_.phi_down, 250ms);        // ~1726.9 ms
  EXPECT_NEAR(down_at.count(), 1727, 1);                            // "about 1.7 s" with the defaults

  auto floor_ms = [](auto d) { return std::chrono::milliseconds(static_cast<int64_t>(std::floor(d.count()))); };
  clock_.Advance(floor_ms(suspect_at));
  EXPECT_EQ(d.State(), PeerState::kAlive);
  EXPECT_LT(d.Snapshot().phi, 1.0);
  clock_.Advance(1ms);
  EXPECT_EQ(d.State(), PeerState::kSuspect);
  EXPECT_GE(d.Snapshot().phi, 1.0);

  clock_.Advance(floor_ms(down_at) - floor_ms(suspect_at) - 1ms);
  EXPECT_EQ(d.State(), PeerState::kSuspect);
  EXPECT_TRUE(d.LikelyAlive());
  clock_.Advance(1ms);
  EXPECT_EQ(d.State(), PeerState::kDown);
  EXPECT_FALSE(d.LikelyAlive());
  PeerHealthSnapshot s = d.Snapshot();
  EXPECT_GE(s.phi, 3.0);
  EXPECT_EQ(s.ms_since_heard, floor_ms(down_at).count() + 1);
}

TEST_F(HealthTest, FastSuccessesDoNotLowerTheMeanBelowTheProbeInterval) {
  PeerDetector d(&clock_, options_);
  Heartbeats(d, 1000, 1ms);  // request replies every millisecond
  EXPECT_EQ(TimeUntil(d, PeerState::kDown), CeilMs(SilenceFor(3, 250ms)));
}

TEST_F(HealthTest, SlowerHeartbeatsRaiseTheMean) {
  PeerDetector d(&clock_, options_);
  Heartbeats(d, 64, 500ms);  // the window is all 500 ms gaps
  EXPECT_EQ(TimeUntil(d, PeerState::kDown), CeilMs(SilenceFor(3, 500ms)));
}

TEST_F(HealthTest, DownPeerRecoversOnOneSuccess) {
  PeerDetector d(&clock_, options_);
  Heartbeats(d, 10);
  for (int i = 0; i < 40; ++i) {  // the prober keeps failing for 10 s
    clock_.Advance(250ms);
    d.RecordFailure();
  }
  ASSERT_EQ(d.State(), PeerState::kDown);
  d.RecordSuccess();
  EXPECT_EQ(d.State(), PeerState::kAlive);
  PeerHealthSnapshot s = d.Snapshot();
  EXPECT_DOUBLE_EQ(s.phi, 0);
  EXPECT_EQ(s.ms_since_heard, 0);
  EXPECT_EQ(s.consecutive_failures, 0u);
  EXPECT_EQ(s.failures, 40u);
}

TEST_F(HealthTest, LongOutageDoesNotSlowDetectionOfTheNext) {
  PeerDetector d(&clock_, options_);
  Heartbeats(d, 100);
  const auto first = TimeUntil(d, PeerState::kDown);
  // An hour down, with the prober recording a failure every interval.
  for (int i = 0; i < 4 * 3600; ++i) {
    clock_.Advance(250ms);
    d.RecordFailure();
  }
  d.RecordSuccess();
  Heartbeats(d, 5);
  EXPECT_EQ(TimeUntil(d, PeerState::kDown), first);
}

TEST_F(HealthTest, SilentOutageAddsAtMostOneCappedSample) {
  PeerDetector d(&clock_, options_);
  Heartbeats(d, 100);
  const auto first = TimeUntil(d, PeerState::kDown);
  clock_.Advance(1h);  // nothing recorded at all, then the peer answers
  d.RecordSuccess();
  ASSERT_EQ(d.State(), PeerState::kAlive);
  // The hour counts as 4 intervals: mean = (63 * 250 + 1000) / 64 ms.
  const auto second = TimeUntil(d, PeerState::kDown);
  EXPECT_GT(second, first);
  EXPECT_EQ(second, CeilMs(SilenceFor(3, 250ms) * ((63 * 250 + 1000) / 64.0 / 250.0)));
  EXPECT_LT(second, 2s);
}

TEST_F(HealthTest, JitteryHeartbeatsNeverReachDown) {
  std::mt19937_64 rng(test_support::TestSeed(20240611));
  std::uniform_int_distribution<int> gap_ms(0, 500);  // up to 2x the interval
  PeerDetector d(&clock_, options_);
  for (int i = 0; i < 50000; ++i) {
    clock_.Advance(std::chrono::milliseconds(gap_ms(rng)));
    ASSERT_NE(d.State(), PeerState::kDown) << "beat " << i;
    ASSERT_TRUE(d.LikelyAlive());
    if (rng() % 20 == 0) d.RecordFailure();  // an occasional failed request in between
    d.RecordSuccess();
  }
}

TEST_F(HealthTest, ConcurrentUseIsRaceFree) {
  PeerDetector d(&clock_, options_);
  constexpr int kThreads = 4;
  constexpr int kOps = 20000;
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      while (!go.load()) std::this_thread::yield();
      for (int i = 0; i < kOps; ++i) {
        switch ((i + t) % 4) {
          case 0:
            d.RecordSuccess();
            break;
          case 1:
            d.RecordFailure();
            break;
          case 2:
            (void)d.State();
            break;
          default:
            clock_.Advance(1ms);
            (void)d.Snapshot();
        }
      }
    });
  }
  go.store(true);
  for (auto& th : threads) th.join();
  PeerHealthSnapshot s = d.Snapshot();
  EXPECT_EQ(s.successes, uint64_t(kThreads) * kOps / 4);
  EXPECT_EQ(s.failures, uint64_t(kThreads) * kOps / 4);
  d.RecordSuccess();
  EXPECT_EQ(d.State(), PeerState::kAlive);
}

}  // namespace
}  // namespace monju
