#include "readiness_poller.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <stdexcept>

namespace monju {

ReadinessPoller::ReadinessPoller(size_t max_watched)
    : max_watched_(max_watched), wake_fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (wake_fd_ < 0) throw std::runtime_error("readiness poller: eventfd failed");
  thread_ = std::thread([this] { Loop(); });
}

ReadinessPoller::~ReadinessPoller() {
  Stop();
  ::close(wake_fd_);
}

void ReadinessPoller::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  Wake();
  if (thread_.joinable()) thread_.join();
}

bool ReadinessPoller::Watch(int fd, std::chrono::milliseconds wait, std::function<void(bool ready)> on_ready) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ || watched_ >= max_watched_) return false;
    ++watched_;
    added_.push_back({fd, std::chrono::steady_clock::now() + wait, std::move(on_ready)});
  }
  Wake();
  return true;
}

size_t ReadinessPoller::watched() const {
  std::lock_guard<std::mutex> lock(mu_);
  return watched_;
}

void ReadinessPoller::Wake() {
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
}

void ReadinessPoller::Loop() {
  std::vector<Entry> entries;
  std::vector<pollfd> fds;
  for (;;) {
    bool stop;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop = stopping_;
      for (Entry& e : added_) entries.push_back(std::move(e));
      added_.clear();
    }
    if (stop) break;
    const auto now = std::chrono::steady_clock::now();
    auto next = now + std::chrono::hours(1);
    fds.assign(1, pollfd{wake_fd_, POLLIN, 0});
    for (const Entry& e : entries) {
      fds.push_back({e.fd, POLLIN, 0});
      next = std::min(next, e.deadline);
    }
    const auto ms = std::chrono::ceil<std::chrono::milliseconds>(next - now).count();
    const int n = ::poll(fds.data(), fds.size(), static_cast<int>(std::clamp<int64_t>(ms, 0, 3'600'000)));
    if (n < 0 && errno != EINTR) {
      // Not a transient failure (poll() itself refused): end every watch
      // rather than spin on it.
      for (Entry& e : entries) e.on_ready(false);
      std::lock_guard<std::mutex> lock(mu_);
      watched_ -= entries.size();
      entries.clear();
      continue;
    }
    if (fds[0].revents != 0) {
      uint64_t drained;
      [[maybe_unused]] ssize_t r = ::read(wake_fd_, &drained, sizeof drained);
    }
    const auto after = std::chrono::steady_clock::now();
    std::vector<Entry> still;
    size_t done = 0;
    for (size_t i = 0; i < entries.size(); ++i) {
      const bool ready = n > 0 && fds[i + 1].revents != 0;
      if (!ready && after < entries[i].deadline) {
        still.push_back(std::move(entries[i]));
        continue;
      }
      entries[i].on_ready(ready);
      ++done;
    }
    entries.swap(still);
    if (done > 0) {
      std::lock_guard<std::mutex> lock(mu_);
      watched_ -= done;
    }
  }
  for (Entry& e : entries) e.on_ready(false);
  std::vector<Entry> late;
  {
    std::lock_guard<std::mutex> lock(mu_);
    late.swap(added_);
    watched_ = 0;
  }
  for (Entry& e : late) e.on_ready(false);
}

}  // namespace monju
