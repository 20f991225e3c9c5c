// CallServer: serves Thrift calls in TFramedTransport's wire format (a 4-byte
// big-endian length, then a binary-protocol message) from a fixed pool of
// threads that share one epoll set.
//
// Why not TNonblockingServer with a ThreadManager: there, an I/O thread reads
// a call and queues it for a worker, and the worker hands the reply back
// through a notification pipe for the I/O thread to send, toggling the
// connection's epoll events both ways: three thread wake-ups and about ten
// syscalls per call, on a machine where those are most of a request's cost
// (docs/design.md, "Where a request's time goes"). Here the thread that sees
// a connection readable reads the call, runs it and writes the reply itself:
// one wake-up, and recv, send, epoll_ctl and epoll_wait.
//
// Each connection is armed EPOLLONESHOT, so one thread at a time works on it
// and its calls run in order. No thread waits on a slow peer or client: a
// partial frame stays in the connection's buffer, which grows only with the
// bytes that arrive, and an unsent reply waits for EPOLLOUT. A call that
// blocks (a coordinator waiting for replicas) holds its thread, as a worker
// pool's task would; the pool's size bounds how many calls run at once.
//
// Limits, enforced: frames of 1..max_frame_bytes (a connection that sends
// another length, or a message the processor cannot decode, is closed and
// counted); at most max_connections open (more are accepted and closed at
// once); at most kCallsPerTurn calls of one connection per wake-up, so a
// pipelining client cannot starve the others.
//
// Past max_connections, up to reserved_connections more are kept for
// operator calls (methods named with a reserved_prefixes prefix, such as
// "admin:"), so that `monju stats` still answers while clients hold every
// ordinary slot. A reserved connection is closed when a call of another
// method arrives on it (counted as refused), and when no first call arrives
// within reserved_first_call or it idles for stall_timeout (30 s if that is
// 0; counted as stalled), so idle connections cannot keep the reserve. A
// call running on it stops that clock. Any client may still hold the reserve
// by making operator calls (there is no authentication yet).
//
// Deferred calls (deferred_call.h): calls whose method Options::deferred
// handles are taken off the server thread, which goes back to its other
// connections; the reply is sent later from the thread that completes the
// call. The connection reads no other call until then.
//
// Thread-safety: Start() and Stop() from one thread; stats() from any.
#pragma once

#include <thrift/TProcessor.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/status.h"

namespace monju {

class ServiceDemux;
class DeferredCalls;

class CallServer {
 public:
  struct Options {
    std::string host = "127.0.0.1";  // an address or name to bind; "0.0.0.0" or "::" for all
    uint16_t port = 0;               // 0: a free port, see port()
    uint32_t threads = 1;            // calls run at most this many at once
    int32_t max_frame_bytes = 1 << 20;
    uint32_t max_connections = 10000;
    std::string name = "server";  // names the threads and the log lines
    // A connection holding part of a frame, or a reply the client does not
    // read, with no call completed and no byte sent for this long, is closed
    // (a slowloris holds no buffer for ever). Idle connections between calls
    // are kept. 0: never.
    std::chrono::milliseconds stall_timeout{30000};
    // Connections kept past max_connections for calls to these methods.
    uint32_t reserved_connections = 0;
    std::vector<std::string> reserved_prefixes = {};
    std::chrono::milliseconds reserved_first_call{1000};
    // Takes the calls it handles, to answer them later (not on reserved
    // connections). Must outlive the server.
    std::shared_ptr<DeferredCalls> deferred;
    // Stop() waits this long for the replies of deferred calls under way.
    std::chrono::milliseconds drain_timeout{5000};
  };

  struct Stats {
    uint64_t accepted = 0;   // connections accepted
    uint64_t refused = 0;    // connections closed at once: max_connections reached, or out of descriptors;
                             // and reserved ones closed for a call they are not for
    uint64_t reserved_open = 0;  // reserved connections open now
    uint64_t calls = 0;      // frames handed to the processor
    uint64_t bad_frames = 0; // connections closed for a bad length or an undecodable message
    uint64_t stalled = 0;    // closed after stall_timeout without progress; reserved ones also with no
                             // first call within reserved_first_call, or idle for stall_timeout
  };

  // Binds and listens on host:port, then starts the threads; calls are
  // served once it returns. `processor` is shared by every thread (Thrift's
  // generated processors are, given thread-safe handlers); a ServiceDemux
  // routes each call from its frame (service_demux.h).
  // Errors: InvalidArgument (no threads, a frame limit below 16 bytes),
  // IOError (the host does not resolve, the port cannot be bound).
  static StatusOr<std::unique_ptr<CallServer>> Start(const Options& options,
                                                     std::shared_ptr<apache::thrift::TProcessor> processor);

  // Stop().
  ~CallServer();

  // Stops accepting and reading; each running call finishes and its reply
  // is sent if the socket takes it at once, and so is each deferred call's
  // that comes within drain_timeout; then every connection is closed (a
  // later reply is dropped: the server must outlive them all). Returns when
  // no thread of this server runs. Idempotent.
  void Stop();

  // The port listened on.
  uint16_t port() const { return port_; }
  // Connections held open at most (Options::max_connections).
  uint32_t max_connections() const { return options_.max_connections; }
  Stats stats() const;

  static constexpr int kCallsPerTurn = 16;

 private:
  struct Connection;
  class Worker;
  class Reply;

  CallServer(const Options& options, std::shared_ptr<apache::thrift::TProcessor> processor);
  Status Listen();
  void Serve();
  void Accept();
  // Works on a connection its thread holds (the event fired, oneshot): reads,
  // runs whole frames, writes replies, and re-arms or closes it.
  void Work(Worker& worker, Connection* c, uint32_t events);
  bool ReadSome(Connection* c, bool* closed);
  bool WholeFrameBuffered(const Connection* c) const;
  // True when a call named in `frame` may run on a reserved connection.
  bool ReservedMethod(const uint8_t* frame, uint32_t size) const;
  // True for a length in bounds; otherwise counts and logs a bad frame.
  bool CheckLength(const Connection* c, uint32_t length);
  bool ValidLength(uint32_t length) const { return length > 0 && length <= uint32_t(options_.max_frame_bytes); }
  // Runs buffered whole frames; false if the connection must close.
  bool RunFrames(Worker& worker, Connection* c);
  // Sends the connection's pending reply bytes; false on a socket error.
  bool Flush(Connection* c);
  // False when epoll would not take it (the caller closes it).
  bool Arm(Connection* c, uint32_t events);
  void Close(Connection* c, const char* why);
  // Close() for a caller that holds c->mu; returns the server's reference,
  // to drop once that lock is gone.
  std::shared_ptr<Connection> CloseLocked(Connection* c, const char* why);
  // A deferred call's reply, from any thread (Reply::Send).
  void Answer(const std::shared_ptr<Connection>& c, std::string message);
  // Sends what the connection holds and arms it for its next call; by the
  // thread that owns the connection. Why it must close instead, or null.
  const char* FinishTurn(Connection* c, bool progressed);
  // Leaves a connection whose deferred call awaits its reply out of epoll;
  // false when it has none.
  bool Park(Connection* c);
  // A deferred call got its reply, or will never.
  void Unparked();
  void CountBadFrame(const Connection* c, const std::string& why);
  // Marks whether the connection, about to be re-armed, waits mid-frame or
  // mid-reply; `progressed`: a call completed or reply bytes left this turn.
  void NoteStall(Connection* c, bool progressed);
  // Every stall_timeout / 4 (reserved_first_call / 4 with a reserve, if
  // less): shuts down stalled connections, whose thread
  // (the next event) then closes them.
  void WatchStalls();
  // accept() failed for want of descriptors (errno tells which limit).
  void RefuseWithSpareDescriptor();
  void LogRefusal(const std::string& what);

  const Options options_;
  const std::shared_ptr<apache::thrift::TProcessor> processor_;
  ServiceDemux* const demux_;  // processor_, when it is one: calls are routed from their frames
  DeferredCalls* const deferred_;  // options_.deferred
  int listen_fd_ = -1;
  int epoll_fd_ = -1;
  int stop_fd_ = -1;  // an eventfd, readable once Stop() begins
  int spare_fd_ = -1;  // /dev/null, given back to accept and refuse when descriptors run out
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::vector<std::thread> threads_;
  std::thread stall_watcher_;
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;     // Stop(): wakes the stall watcher
  std::condition_variable drained_cv_;  // the last parked call answered while stopping

  mutable std::mutex mu_;  // guards connections_ and reserved_open_
  std::unordered_map<int, std::shared_ptr<Connection>> connections_;
  size_t reserved_open_ = 0;  // of connections_

  std::atomic<uint64_t> accepted_{0}, refused_{0}, calls_{0}, bad_frames_{0}, stalled_{0}, refusals_logged_{0};
  std::atomic<int64_t> parked_{0};  // deferred calls awaiting their replies
};

}  // namespace monju
