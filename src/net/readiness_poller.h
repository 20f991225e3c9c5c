// ReadinessPoller: one thread that waits, with epoll, for many sockets to
// become readable (replies the coordinator no longer waits for), so that no
// thread blocks per outstanding reply and a wake-up costs only what is ready.
//
// Thread safety: Watch() may be called from any thread. Callbacks run on the
// poller's thread, one at a time, and must be quick.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

namespace monju {

class ReadinessPoller {
 public:
  // At most `max_watched` fds are watched at once. Throws std::runtime_error
  // when the kernel refuses an epoll instance or eventfd.
  explicit ReadinessPoller(size_t max_watched);
  // Stop().
  ~ReadinessPoller();
  ReadinessPoller(const ReadinessPoller&) = delete;
  ReadinessPoller& operator=(const ReadinessPoller&) = delete;

  // on_ready(true) once `fd` is readable (or has an error or hang-up, which a
  // read will then report); on_ready(false) when `wait` passes first (checked
  // every kDeadlineCheck, so up to that much later) or the poller stops.
  // False when max_watched are already watched, the fd is already watched,
  // or the poller is stopping: on_ready is then never called. The fd must
  // stay open until on_ready has run.
  bool Watch(int fd, std::chrono::milliseconds wait, std::function<void(bool ready)> on_ready);

  // Calls every callback still waiting with false, and ends the thread;
  // Watch() refuses from then on. Call from one thread at a time.
  void Stop();

  size_t watched() const;

  static constexpr std::chrono::milliseconds kDeadlineCheck{50};

 private:
  struct Entry {
    std::chrono::steady_clock::time_point deadline;
    std::function<void(bool)> on_ready;
  };
  void Loop();
  // Removes the fd's entry (and its epoll registration); empty when absent.
  std::function<void(bool)> Take(int fd);

  const size_t max_watched_;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: Stop() interrupts epoll_wait()
  mutable std::mutex mu_;
  std::unordered_map<int, Entry> entries_;  // by fd
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace monju
