#include "readiness_poller.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <stdexcept>

namespace monju {

ReadinessPoller::ReadinessPoller(size_t max_watched) : max_watched_(max_watched) {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  epoll_event wake{};
  wake.events = EPOLLIN;
  wake.data.fd = wake_fd_;
  if (epoll_fd_ < 0 || wake_fd_ < 0 || epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &wake) != 0) {
    if (epoll_fd_ >= 0) ::close(epoll_fd_);
    if (wake_fd_ >= 0) ::close(wake_fd_);
    throw std::runtime_error("readiness poller: epoll or eventfd refused");
  }
  thread_ = std::thread([this] { Loop(); });
}

ReadinessPoller::~ReadinessPoller() {
  Stop();
  ::close(wake_fd_);
  ::close(epoll_fd_);
}

void ReadinessPoller::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
  if (thread_.joinable()) thread_.join();
}

bool ReadinessPoller::Watch(int fd, std::chrono::milliseconds wait, std::function<void(bool ready)> on_ready) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_ || entries_.size() >= max_watched_ || entries_.contains(fd)) return false;
  // One-shot: after firing, the fd stays quiet until Take() removes it.
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLONESHOT;
  ev.data.fd = fd;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) return false;
  entries_.emplace(fd, Entry{std::chrono::steady_clock::now() + wait, std::move(on_ready)});
  return true;
}

size_t ReadinessPoller::watched() const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.size();
}

std::function<void(bool)> ReadinessPoller::Take(int fd) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(fd);
  if (it == entries_.end()) return nullptr;
  // Removed before the callback, which may close the fd (and a new
  // connection may then reuse its number).
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  auto fn = std::move(it->second.on_ready);
  entries_.erase(it);
  return fn;
}

void ReadinessPoller::Loop() {
  std::array<epoll_event, 256> events;
  auto next_check = std::chrono::steady_clock::now() + kDeadlineCheck;
  for (;;) {
    const auto to_check = std::chrono::ceil<std::chrono::milliseconds>(next_check - std::chrono::steady_clock::now());
    const int timeout = static_cast<int>(std::max<int64_t>(to_check.count(), 0));
    const int n = epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), timeout);
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == wake_fd_) continue;
      if (auto fn = Take(fd)) fn(true);
    }
    std::vector<std::function<void(bool)>> ended;
    bool stop;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop = stopping_;
      const auto now = std::chrono::steady_clock::now();
      if (stop || now >= next_check) {
        next_check = now + kDeadlineCheck;
        for (auto it = entries_.begin(); it != entries_.end();) {
          if (!stop && it->second.deadline > now) {
            ++it;
            continue;
          }
          epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, it->first, nullptr);
          ended.push_back(std::move(it->second.on_ready));
          it = entries_.erase(it);
        }
      }
    }
    for (auto& fn : ended) fn(false);
    if (stop) return;
  }
}

}  // namespace monju
