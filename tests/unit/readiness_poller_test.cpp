// ReadinessPoller: callbacks for readable fds, deadlines, its bound, and stop.
#include "readiness_poller.h"

#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include "test_support.h"

namespace monju {
namespace {

using namespace std::chrono_literals;

// An eventfd that closes itself.
struct Fd {
  Fd() : fd(eventfd(0, EFD_CLOEXEC)) {}
  ~Fd() { ::close(fd); }
  void Signal() const {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(fd, &one, sizeof one);
  }
  int fd;
};

TEST(ReadinessPollerTest, AReadableFdGetsTrue) {
  ReadinessPoller poller(8);
  Fd fd;
  std::promise<bool> result;
  ASSERT_TRUE(poller.Watch(fd.fd, 1h, [&](bool ready) { result.set_value(ready); }));
  fd.Signal();
  auto f = result.get_future();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  EXPECT_TRUE(f.get());
}

TEST(ReadinessPollerTest, AnFdThatStaysQuietGetsFalseAtItsDeadline) {
  ReadinessPoller poller(8);
  Fd quiet, later;
  std::promise<bool> quiet_result;
  ASSERT_TRUE(poller.Watch(quiet.fd, 1ms, [&](bool ready) { quiet_result.set_value(ready); }));
  auto f = quiet_result.get_future();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  EXPECT_FALSE(f.get());
  EXPECT_EQ(poller.watched(), 0u);
}

TEST(ReadinessPollerTest, RefusesBeyondItsBoundAndStopEndsWhatIsWatched) {
  ReadinessPoller poller(1);
  Fd a, b;
  std::atomic<int> calls{0};
  std::atomic<bool> a_ready{true};
  ASSERT_TRUE(poller.Watch(a.fd, 1h, [&](bool ready) {
    a_ready = ready;
    ++calls;
  }));
  EXPECT_FALSE(poller.Watch(b.fd, 1h, [&](bool) { ++calls; })) << "a second fd beyond max_watched = 1";
  EXPECT_FALSE(poller.Watch(a.fd, 1h, [&](bool) { ++calls; })) << "an fd already watched";
  EXPECT_EQ(poller.watched(), 1u);
  poller.Stop();
  EXPECT_EQ(calls.load(), 1);
  EXPECT_FALSE(a_ready.load()) << "stopping ends a watch with false";
  EXPECT_FALSE(poller.Watch(b.fd, 1h, [&](bool) { ++calls; })) << "a stopped poller refuses";
  EXPECT_EQ(calls.load(), 1);
}

TEST(ReadinessPollerTest, ManyFdsReadyInAnyOrderEachGetTrueOnce) {
  std::mt19937 rng(static_cast<uint32_t>(test_support::TestSeed(20261202)));
  constexpr int kFds = 200;
  ReadinessPoller poller(kFds);
  std::vector<std::unique_ptr<Fd>> fds;
  std::vector<std::atomic<int>> hits(kFds);
  std::atomic<int> done{0};
  std::promise<void> all;
  for (int i = 0; i < kFds; ++i) {
    fds.push_back(std::make_unique<Fd>());
    ASSERT_TRUE(poller.Watch(fds.back()->fd, 1h, [&, i](bool ready) {
      if (ready) ++hits[i];
      if (++done == kFds) all.set_value();
    }));
  }
  std::vector<int> order(kFds);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng);
  for (int i : order) fds[i]->Signal();
  ASSERT_EQ(all.get_future().wait_for(10s), std::future_status::ready);
  for (int i = 0; i < kFds; ++i) EXPECT_EQ(hits[i].load(), 1) << "fd " << i;
  EXPECT_EQ(poller.watched(), 0u);
}

}  // namespace
}  // namespace monju
