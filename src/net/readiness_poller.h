// ReadinessPoller: one thread that waits, with a single poll(), for many
// sockets to become readable (replies the coordinator no longer waits for),
// so that no thread blocks per outstanding reply.
//
// Thread safety: Watch() may be called from any thread. Callbacks run on the
// poller's thread, one at a time, and must be quick.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace monju {

class ReadinessPoller {
 public:
  // At most `max_watched` fds are watched at once.
  explicit ReadinessPoller(size_t max_watched);
  // Stop().
  ~ReadinessPoller();
  // Calls every callback still waiting with false, and ends the thread;
  // Watch() refuses from then on. Idempotent.
  void Stop();
  ReadinessPoller(const ReadinessPoller&) = delete;
  ReadinessPoller& operator=(const ReadinessPoller&) = delete;

  // on_ready(true) once `fd` is readable (or has an error or hang-up, which a
  // read will then report); on_ready(false) when `wait` passes first or the
  // poller stops. False when max_watched are already watched or the poller is
  // stopping: on_ready is then never called. The fd must stay open until
  // on_ready has run.
  bool Watch(int fd, std::chrono::milliseconds wait, std::function<void(bool ready)> on_ready);

  size_t watched() const;

 private:
  struct Entry {
    int fd;
    std::chrono::steady_clock::time_point deadline;
    std::function<void(bool)> on_ready;
  };
  void Loop();
  void Wake();

  const size_t max_watched_;
  int wake_fd_;  // eventfd: Watch() and the destructor interrupt poll()
  mutable std::mutex mu_;
  std::vector<Entry> added_;  // handed to the loop at its next turn
  size_t watched_ = 0;        // added_ plus the loop's own
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace monju
