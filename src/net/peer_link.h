// PeerLink: one non-blocking TCP connection to a peer, carrying framed
// Thrift calls (a 4-byte big-endian length, then the message) in order, and
// LinkPoller: the thread that reads every link's replies.
//
// Why: a coordinator used to hand each peer call to a fan-out thread, which
// sent it and then slept in recv() until the reply came: two thread
// wake-ups per call on a machine where wake-ups are most of a request's cost
// (docs/design.md, "Where a request's time goes"). With a link, the thread
// that has the call writes it to the socket itself (a send that never
// blocks), and one poller thread per node, woken by epoll, reads the replies
// of every link and runs their completions.
//
// Calls on one link are answered in the order sent (the peer's server runs
// a connection's calls in order), so replies are matched to calls by their
// place in the queue. At most max_pending calls wait on a link; more are
// refused (the caller sends another way).
//
// Connections are made on demand, off the caller's thread: the first call
// on a link that is not connected asks the poller's connect threads (which
// block on nothing else) to connect, and the call waits in the link
// meanwhile. A link that fails (the peer closed it, a reply timed out, a
// reply frame out of bounds or one no call waits for) fails every call
// waiting on it, as its connection's state is unknown, and is connected
// again by the next call. A connect that fails (refused, or not done in
// time) pauses the link's connects (and those of every link sharing its
// ConnectPause: a peer's links do): for reconnect_pause_min_ms after the
// first failure in a row, doubling with each further one up to
// reconnect_pause_max_ms, calls fail at once (on the poller's thread) with
// the last connect's error instead of each trying a connect to a peer that
// is down. A connect that succeeds ends the pauses. A call made with Resend::kOnceIfConnectionCloses
// is the exception: when the peer closes or resets its connection before
// any of its reply was read, it is sent once more on a new connection. The
// poller watches idle connections too, so a peer's closing one is normally
// noticed before the next call. A connection with no call for
// idle_close_ms is closed (links to members that left keep no socket).
//
// Errors given to a call's completion: Unavailable (cannot connect, or
// within a pause after a failed connect, the
// connection closed or failed, the poller stopping), TimedOut (no reply
// within io_timeout of the call being queued; its connection is closed, as
// its state is unknown), IOError (a reply frame of length 0 or above
// max_reply_bytes; the connection is closed).
//
// Thread safety: Call() from any thread, including a completion.
// Completions run on the poller's thread, or on a connect thread for a
// failed connect, or on the thread calling LinkPoller::Stop(); never inside
// Call(). They must not block: the poller's thread serves every link.
#pragma once

#include <sys/epoll.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "coordinator.h"
#include "executor.h"

namespace monju {

class LinkPoller;

// When a peer's links may connect again after failed connects; shared by
// the links of one peer, so that one link's refused connect spares the
// others theirs. Thread-safe; never calls out (links call it under their
// own lock).
class ConnectPause {
 public:
  // Pauses of min_ms after a first failure in a row, doubling to max_ms;
  // min_ms <= 0: no pauses.
  ConnectPause(int min_ms, int max_ms) : min_ms_(min_ms), max_ms_(std::max(min_ms, max_ms)) {}
  // A connect failed with `error` (for the calls failed in the pause). A
  // failure within a pause (another link's attempt made before it began)
  // does not lengthen the next one.
  void Failed(Clock::TimePoint now, const std::string& error);
  // A connect succeeded: no pause, and the next failure pauses min_ms.
  void Succeeded();
  // Whether connects wait at `now`.
  bool Paused(Clock::TimePoint now) const;
  // The error and when connects resume, for a call failed in a pause.
  std::string Describe(Clock::TimePoint now) const;

 private:
  const int min_ms_, max_ms_;
  mutable std::mutex mu_;
  uint32_t failures_in_row_ = 0;
  Clock::TimePoint retry_after_{};
  std::string error_;
};

struct PeerLinkOptions {
  std::string host;
  uint16_t port = 0;
  std::string bind_host;  // "" for the kernel's choice of source address
  int connect_timeout_ms = 1000;
  int io_timeout_ms = 2000;  // from a call's queueing to its reply (connect time included)
  uint32_t max_reply_bytes = 64u << 20;
  size_t max_pending = 16;  // calls waiting on the link at once
  int idle_close_ms = 300000;  // a connection without calls this long is closed (0: never)
  // No connect for this long after a failed one, doubling per failure in a
  // row up to the max (0: no pause).
  int reconnect_pause_min_ms = 20;
  int reconnect_pause_max_ms = 500;
  // Shared with the peer's other links; null: the link has its own, from
  // the two values above.
  std::shared_ptr<ConnectPause> connect_pause;
};

struct PeerLinkStats {
  uint64_t calls = 0;     // taken by Call()
  uint64_t connects = 0;  // connections made
  uint64_t failures = 0;  // open connections lost: closed, failed or timed out under their calls
  uint64_t connect_failures = 0;  // connects refused or not done in time (a peer that is down)
  uint64_t resends = 0;   // calls sent again on a new connection (Resend::kOnceIfConnectionCloses)
  uint64_t idle_closes = 0;  // connections closed for having no calls for idle_close_ms
  uint64_t paused_failures = 0;  // calls failed without a connect, in a pause after a failed one
};

class PeerLink : public std::enable_shared_from_this<PeerLink> {
 public:
  // The reply frame's message (without its length), or why there is none.
  using Done = std::function<void(Status status, std::string reply)>;

  // Whether a call may reach the peer twice. kOnceIfConnectionCloses: when
  // the peer closes or resets the connection before any byte of the call's
  // reply was read, the call is sent once more on a new connection (within
  // its first deadline) instead of failing. Why: a peer that restarted closes
  // the link's old connection, and a call written in the instant before the
  // poller sees that would otherwise fail for nothing. Only for calls the
  // peer may run twice (replica applies and reads are idempotent); it costs
  // a copy of the frame, kept until the reply. Timeouts and bad replies are
  // never resent.
  enum class Resend { kNever, kOnceIfConnectionCloses };

  PeerLink(LinkPoller* poller, PeerLinkOptions options);
  ~PeerLink();
  PeerLink(const PeerLink&) = delete;
  PeerLink& operator=(const PeerLink&) = delete;

  // Queues `frame` (a whole frame, its length included) and sends what the
  // socket takes now, without blocking. `done` is called once, later, with
  // the reply or an error (above). False, with `done` not called and
  // nothing sent, when max_pending calls wait, the poller is stopping, or
  // its connect queue is full.
  bool Call(std::string frame, Done done, Resend resend = Resend::kNever);
  // Call(), but only when no call waits on the link: spreads calls over a
  // peer's links with no two on one link (where the second would wait for
  // the first's reply). False, with `frame` and `done` left as they were,
  // when a call waits or Call() would refuse.
  bool CallIfIdle(std::string& frame, Done& done, Resend resend = Resend::kNever);

  // Calls waiting for their replies.
  size_t pending() const;
  PeerLinkStats stats() const;
  const PeerLinkOptions& options() const { return options_; }

 private:
  friend class LinkPoller;
  enum class State { kIdle, kConnecting, kConnected };
  struct Waiting {
    Done done;
    Clock::TimePoint deadline;
    std::string resend_frame;  // kept while the call may still be resent
  };
  struct Completion {
    Done done;
    Status status;
    std::string reply;
  };
  using Completions = std::vector<Completion>;

  // Call() with at most `limit` calls waiting; moves from frame and done
  // only when it takes the call.
  bool Enqueue(std::string& frame, Done& done, Resend resend, size_t limit);
  // A connect thread: connects (may block) and hands the descriptor over,
  // unless `attempt` was given up meanwhile.
  void Connect(uint64_t attempt);
  std::string Name() const;
  // Poller thread: the socket is readable, writable or failed.
  void OnEvents(uint32_t events, Completions* out);
  // Poller thread: fails the link if its oldest call is past its deadline,
  // and closes a connection idle for idle_close_ms.
  void CheckDeadline(Clock::TimePoint now, Completions* out);
  // Fails every waiting call (the oldest with `why`, the ones behind it as
  // lost with the connection), closes the socket, and goes idle; `count`:
  // a failure of the link (not its poller stopping); `resending`: calls
  // taken out to be sent again (for the log).
  void FailLocked(const Status& why, Completions* out, bool count = true, size_t resending = 0);
  // The connection closed or failed under its calls (`why`): the calls that
  // may be resent (none of their reply was read) go out again on a new
  // connection; the others fail as in FailLocked.
  void ConnectionLostLocked(const Status& why, Completions* out);
  // Asks a connect thread for a new connection; false when it cannot queue.
  bool StartConnectLocked();
  // Sends buffered bytes; false on a socket error (*error says which).
  bool FlushLocked(std::string* error);
  // Completes the calls whose whole reply frames are in in_; IOError for a
  // frame out of bounds or a reply no call waits for.
  Status TakeRepliesLocked(Completions* out);
  // Watches the socket for replies, and for room to send when bytes wait.
  void ArmLocked();

  LinkPoller* const poller_;
  const PeerLinkOptions options_;
  const std::shared_ptr<ConnectPause> pause_;  // options_.connect_pause, or the link's own
  mutable std::mutex mu_;
  State state_ = State::kIdle;
  uint64_t connect_attempt_ = 0;  // the latest connect asked for
  int fd_ = -1;
  bool armed_out_ = false;  // EPOLLOUT is in the socket's epoll events
  std::deque<Waiting> waiting_;
  Clock::TimePoint last_call_{};  // the latest call's queueing
  std::string out_;  // bytes queued, not yet sent
  size_t out_sent_ = 0;  // of out_
  std::string in_;   // bytes received, not yet a whole frame
  PeerLinkStats stats_;
};

class LinkPoller {
 public:
  // `clock` times the calls' deadlines; it must outlive the poller.
  // Errors: IOError when epoll or an eventfd cannot be made.
  static StatusOr<std::unique_ptr<LinkPoller>> Start(const Clock* clock, std::string name = "links");
  // Stop().
  ~LinkPoller();

  // A link driven by this poller; kept (and its socket open) until Stop().
  std::shared_ptr<PeerLink> NewLink(PeerLinkOptions options);

  // Fails every waiting call with Unavailable (on this thread), closes
  // every link, and joins the threads. Links refuse calls from then on.
  // Idempotent, from any thread but the poller's own.
  void Stop();
  bool stopping() const { return stopping_.load(); }

  // Checks deadlines now (tests moving a fake clock).
  void Poke();
  // Poke(), then waits until the poller has checked every link and run the
  // completions that gave (or until it stops). Not from the poller's thread.
  void PokeAndWait();

  // How often deadlines are checked when no event comes.
  static constexpr std::chrono::milliseconds kTick{20};
  // Connections being made at once (each may wait up to its connect
  // timeout), and connects queued at most.
  static constexpr size_t kConnectThreads = 2;
  static constexpr size_t kMaxQueuedConnects = 1024;
  // Bytes one link reads per wake-up before the others get their turn.
  static constexpr size_t kReadPerTurn = 256 << 10;

 private:
  friend class PeerLink;
  LinkPoller(const Clock* clock, std::string name);
  void Run();
  // epoll_ctl for a link's socket (any thread).
  bool Watch(int fd, uint32_t events, PeerLink* link, bool add);
  void Unwatch(int fd);
  static void RunCompletions(PeerLink::Completions& done);
  // Fails every link's waiting calls with `why` (the poller's thread is gone).
  void FailAll(const Status& why);

  const Clock* const clock_;
  const std::string name_;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: Stop() and Poke()
  std::atomic<bool> stopping_{false};
  std::thread thread_;
  std::unique_ptr<FanoutExecutor> connector_;  // kConnectThreads
  std::mutex stop_mu_;  // one Stop() at a time
  std::mutex mu_;
  std::vector<std::shared_ptr<PeerLink>> links_;  // under mu_
  // PokeAndWait(): pokes asked for, and the latest one whose check ran.
  std::mutex checked_mu_;
  std::condition_variable checked_cv_;
  uint64_t pokes_ = 0, checked_ = 0;
};

}  // namespace monju
