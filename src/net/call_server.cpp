#include "call_server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <thrift/TConfiguration.h>
#include <thrift/transport/TBufferTransports.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string_view>

#include "deferred_call.h"
#include "service_demux.h"
#include "thrift_limits.h"
#include "common/thread_name.h"

namespace monju {

using apache::thrift::TConfiguration;
using apache::thrift::protocol::TProtocol;
using apache::thrift::transport::TMemoryBuffer;

namespace {

constexpr size_t kFrameHeader = 4;
// Read space a connection starts with; a buffer is given back once idle if
// a large frame grew it past kKeepBufferBytes.
constexpr size_t kInitialBuffer = 16 << 10;
constexpr size_t kKeepBufferBytes = 256 << 10;
constexpr int kAcceptsPerTurn = 64;
// How long a reserved connection may idle when stall_timeout is 0 (never).
constexpr int64_t kReservedIdleMs = 30000;

// Markers in epoll_event.data.ptr for the two descriptors that are not connections.
char listen_marker;
char stop_marker;

uint32_t ReadBigEndian32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

std::string Describe(const sockaddr_storage& addr) {
  char host[INET6_ADDRSTRLEN] = "?";
  uint16_t port = 0;
  if (addr.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    port = ntohs(a->sin_port);
  } else if (addr.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    port = ntohs(a->sin6_port);
  }
  return std::string(host) + ":" + std::to_string(port);
}

}  // namespace

struct CallServer::Connection : std::enable_shared_from_this<CallServer::Connection> {
  int fd = -1;
  std::string peer;
  std::vector<uint8_t> in;  // received bytes: in[0, in_used)
  size_t in_used = 0;
  std::vector<uint8_t> out;  // reply bytes not yet sent: out[out_pos, end)
  size_t out_pos = 0;
  uint64_t calls = 0;  // run for this connection
  bool reserved = false;  // past max_connections: operator calls only (set before it is watched)
  bool pending_out() const { return out_pos < out.size(); }
  // Steady-clock ms since the connection waits mid-frame or mid-reply with
  // no progress (a reserved one: since its last call); 0: it does not; -1:
  // shut down for it, closing.
  std::atomic<int64_t> stalled_since{0};
  // How long it may wait so, in ms; 0: Options::stall_timeout.
  std::atomic<int64_t> stall_limit_ms{0};
  // A deferred call (deferred_call.h) hands the connection between threads.
  // Under mu: `deferred` while its reply is awaited; `busy` while a thread
  // works on the connection outside epoll (a server thread's turn, or the
  // thread that sends the reply to a parked connection); `closed` once its
  // descriptor is closed (a late reply is dropped).
  std::mutex mu;
  bool deferred = false;
  bool busy = false;
  bool closed = false;
  bool unanswered = false;  // a deferred call's reply was dropped unsent while busy: close it
};

// The reply to one deferred call.
class CallServer::Reply final : public DeferredReply {
 public:
  Reply(CallServer* server, std::shared_ptr<Connection> c) : server_(server), c_(std::move(c)) {}
  ~Reply() override {
    // Never answered: the caller would wait for ever, so it goes.
    if (!sent_) server_->Answer(c_, std::string());
  }
  void Send(std::string message) override {
    if (sent_) return;
    sent_ = true;
    server_->Answer(c_, std::move(message));
  }

 private:
  CallServer* server_;
  std::shared_ptr<Connection> c_;
  bool sent_ = false;
};

namespace {
int64_t SteadyMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

// One serving thread's reusable reply buffer and protocol.
class CallServer::Worker {
 public:
  explicit Worker(const Options& options)
      : config_(std::make_shared<TConfiguration>(options.max_frame_bytes, options.max_frame_bytes)),
        protocols_(LimitedProtocolFactory(options.max_frame_bytes)) {
    Reset();
  }

  // Runs one call; on success the reply frame (header included, empty for a
  // oneway call) is at reply(). Throws what the processor throws.
  bool Run(apache::thrift::TProcessor& processor, uint8_t* frame, uint32_t size) {
    auto in = std::make_shared<TMemoryBuffer>(frame, size, TMemoryBuffer::OBSERVE, config_);
    auto in_protocol = protocols_->getProtocol(in);
    out_->resetBuffer();
    static const uint8_t kPlaceholder[kFrameHeader] = {0, 0, 0, 0};
    out_->write(kPlaceholder, kFrameHeader);
    return processor.process(in_protocol, out_protocol_, nullptr);
  }

  // The reply frame of the last Run(), or an empty span for a oneway call.
  std::pair<uint8_t*, uint32_t> reply() {
    uint8_t* p = nullptr;
    uint32_t n = 0;
    out_->getBuffer(&p, &n);
    if (n <= kFrameHeader) return {p, 0};
    const uint32_t body = n - kFrameHeader;
    p[0] = uint8_t(body >> 24);
    p[1] = uint8_t(body >> 16);
    p[2] = uint8_t(body >> 8);
    p[3] = uint8_t(body);
    return {p, n};
  }

  // Fresh buffers: after a call threw (the protocol's state is unknown), or
  // after a large reply grew the buffer.
  void Reset() {
    out_ = std::make_shared<TMemoryBuffer>(uint32_t(kInitialBuffer), config_);
    out_protocol_ = protocols_->getProtocol(out_);
  }
  bool Oversized() const { return out_->getBufferSize() > kKeepBufferBytes; }

 private:
  std::shared_ptr<TConfiguration> config_;
  std::shared_ptr<apache::thrift::protocol::TProtocolFactory> protocols_;
  std::shared_ptr<TMemoryBuffer> out_;
  std::shared_ptr<TProtocol> out_protocol_;
};

CallServer::CallServer(const Options& options, std::shared_ptr<apache::thrift::TProcessor> processor)
    : options_(options),
      processor_(std::move(processor)),
      demux_(dynamic_cast<ServiceDemux*>(processor_.get())),
      deferred_(options.deferred.get()) {}

StatusOr<std::unique_ptr<CallServer>> CallServer::Start(const Options& options,
                                                        std::shared_ptr<apache::thrift::TProcessor> processor) {
  if (options.threads < 1) return Status::InvalidArgument(options.name + ": needs at least one thread");
  if (options.max_frame_bytes < 16) return Status::InvalidArgument(options.name + ": frame limit below 16 bytes");
  if (options.reserved_connections > 0 && options.reserved_first_call.count() <= 0)
    return Status::InvalidArgument(options.name + ": reserved connections need a first-call timeout");
  if (!processor) return Status::InvalidArgument(options.name + ": no processor");
  std::unique_ptr<CallServer> server(new CallServer(options, std::move(processor)));
  Status s = server->Listen();
  if (!s.ok()) return s;
  for (uint32_t i = 0; i < options.threads; ++i) {
    server->threads_.emplace_back([raw = server.get()] { raw->Serve(); });
    NameThread(server->threads_.back(), options.name + "-" + std::to_string(i));
  }
  if (options.stall_timeout.count() > 0 || options.reserved_connections > 0) {
    server->stall_watcher_ = std::thread([raw = server.get()] { raw->WatchStalls(); });
    NameThread(server->stall_watcher_, options.name + "-stalls");
  }
  return server;
}

Status CallServer::Listen() {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(options_.port);
  const char* host = options_.host.empty() ? nullptr : options_.host.c_str();
  if (int rc = getaddrinfo(host, service.c_str(), &hints, &found); rc != 0) {
    return Status::IOError("cannot resolve '" + options_.host + "': " + gai_strerror(rc));
  }
  std::string last_error = "no address";
  for (addrinfo* a = found; a != nullptr && listen_fd_ < 0; a = a->ai_next) {
    int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      last_error = std::strerror(errno);
      continue;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
      last_error = std::strerror(errno);
      close(fd);
      continue;
    }
    listen_fd_ = fd;
  }
  freeaddrinfo(found);
  if (listen_fd_ < 0) return Status::IOError(last_error);

  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound), &len);
  port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                            : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);

  spare_fd_ = open("/dev/null", O_RDONLY | O_CLOEXEC);
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  stop_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epoll_fd_ < 0 || stop_fd_ < 0) return Status::IOError(std::string("epoll: ") + std::strerror(errno));
  epoll_event ev{};
  ev.events = EPOLLIN;  // level-triggered: every thread sees it
  ev.data.ptr = &stop_marker;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, stop_fd_, &ev) != 0) return Status::IOError(std::strerror(errno));
  ev.events = EPOLLIN | EPOLLONESHOT;
  ev.data.ptr = &listen_marker;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev) != 0) return Status::IOError(std::strerror(errno));
  return Status::OK();
}

CallServer::~CallServer() {
  Stop();
  if (epoll_fd_ >= 0) close(epoll_fd_);
  if (stop_fd_ >= 0) close(stop_fd_);
  if (spare_fd_ >= 0) close(spare_fd_);
}

void CallServer::Unparked() {
  // Only Stop() waits for this. Waking anyone on every answered call cost a
  // peer server a context switch per write batch. Both sides are seq_cst:
  // either Stop() sees parked_ at 0, or this sees stopping_ and wakes it.
  if (parked_.fetch_sub(1) == 1 && stopping_.load()) {
    std::lock_guard<std::mutex> lock(stop_mu_);
    drained_cv_.notify_all();
  }
}

void CallServer::Stop() {
  if (stopping_.exchange(true)) return;
  if (stop_fd_ >= 0) {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = write(stop_fd_, &one, sizeof one);
  }
  {
    std::lock_guard<std::mutex> lock(stop_mu_);
    stop_cv_.notify_all();
  }
  if (stall_watcher_.joinable()) stall_watcher_.join();
  for (auto& t : threads_) t.join();
  threads_.clear();
  if (listen_fd_ >= 0) close(listen_fd_);
  listen_fd_ = -1;
  {
    // Deferred calls under way get their replies sent, up to drain_timeout.
    std::unique_lock<std::mutex> lock(stop_mu_);
    drained_cv_.wait_for(lock, options_.drain_timeout, [&] { return parked_.load() == 0; });
  }
  std::unordered_map<int, std::shared_ptr<Connection>> left;
  {
    std::lock_guard<std::mutex> lock(mu_);
    left.swap(connections_);
    reserved_open_ = 0;
  }
  for (auto& [fd, c] : left) {
    // A reply being sent to it finishes first; later ones find it closed.
    std::lock_guard<std::mutex> lock(c->mu);
    c->closed = true;
    close(fd);
  }
}

CallServer::Stats CallServer::stats() const {
  Stats s;
  s.accepted = accepted_.load();
  s.refused = refused_.load();
  s.calls = calls_.load();
  s.bad_frames = bad_frames_.load();
  s.stalled = stalled_.load();
  std::lock_guard<std::mutex> lock(mu_);
  s.reserved_open = reserved_open_;
  return s;
}

void CallServer::Serve() {
  Worker worker(options_);
  epoll_event ev{};
  while (!stopping_.load(std::memory_order_acquire)) {
    int n = epoll_wait(epoll_fd_, &ev, 1, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      spdlog::error("{}: epoll_wait: {}; retrying", options_.name, std::strerror(errno));
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    if (n == 0) continue;
    if (ev.data.ptr == &stop_marker) return;
    if (ev.data.ptr == &listen_marker) {
      Accept();
      continue;
    }
    auto* c = static_cast<Connection*>(ev.data.ptr);
    if (stopping_.load(std::memory_order_acquire)) return;  // Stop() closes it; no new call starts
    try {
      Work(worker, c, ev.events);
    } catch (...) {
      // Out of memory growing a buffer, or a handler throwing a non-std
      // exception: that connection goes, the node stays.
      worker.Reset();
      Close(c, "internal error");
    }
  }
}

void CallServer::Accept() {
  for (int i = 0; i < kAcceptsPerTurn; ++i) {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    int fd = accept4(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE) {
        // Out of descriptors: the waiting connection would keep the listener
        // readable forever. Give back the spare descriptor, accept it and
        // close it at once, and take the spare again.
        RefuseWithSpareDescriptor();
        continue;
      }
      if (errno == ENOBUFS || errno == ENOMEM) LogRefusal("cannot accept: " + std::string(std::strerror(errno)));
      break;  // EAGAIN: nothing more waiting
    }
    std::shared_ptr<Connection> c;
    try {
      c = std::make_shared<Connection>();
    } catch (...) {
      close(fd);
      continue;
    }
    c->fd = fd;
    c->peer = Describe(addr);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    Connection* raw = c.get();
    {
      std::lock_guard<std::mutex> lock(mu_);
      const size_t ordinary = connections_.size() - reserved_open_;
      if (ordinary >= options_.max_connections && reserved_open_ < options_.reserved_connections) {
        // Kept for an operator's call; closed unless one comes soon.
        raw->reserved = true;
        raw->stall_limit_ms.store(options_.reserved_first_call.count(), std::memory_order_relaxed);
        raw->stalled_since.store(SteadyMillis(), std::memory_order_relaxed);
      } else if (ordinary >= options_.max_connections) {
        refused_.fetch_add(1, std::memory_order_relaxed);
        LogRefusal("refusing " + raw->peer + ": " + std::to_string(ordinary) + " connections open (the limit)" +
                   (options_.reserved_connections ? " and the reserve for operator calls in use" : ""));
        close(fd);
        continue;
      }
      if (!connections_.emplace(fd, std::move(c)).second) {
        // Cannot happen unless something else closed one of our descriptors.
        spdlog::error("{}: descriptor {} is already a connection; dropping the new one", options_.name, fd);
        close(fd);
        continue;
      }
      if (raw->reserved) ++reserved_open_;
    }
    accepted_.fetch_add(1, std::memory_order_relaxed);
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
    ev.data.ptr = raw;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) Close(raw, "cannot watch it");
  }
  if (stopping_.load()) return;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLONESHOT;
  ev.data.ptr = &listen_marker;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, listen_fd_, &ev) != 0) {
    spdlog::error("{}: cannot watch the listening socket: {}; no new connections", options_.name,
                  std::strerror(errno));
  }
}

void CallServer::RefuseWithSpareDescriptor() {
  refused_.fetch_add(1, std::memory_order_relaxed);
  LogRefusal(std::string("out of file descriptors (") + std::strerror(errno) + "): refusing a connection");
  // Only the thread holding the (oneshot) listener gets here: no lock.
  if (spare_fd_ >= 0) close(spare_fd_);
  int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
  if (fd >= 0) {
    close(fd);
  } else {
    // Not even the spare was there to give back: wait a little rather than spin.
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  spare_fd_ = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

void CallServer::LogRefusal(const std::string& what) {
  const uint64_t n = refusals_logged_.fetch_add(1, std::memory_order_relaxed) + 1;
  if (n <= 10 || n % 1000 == 0) spdlog::warn("{}: {} (refusals so far: {})", options_.name, what, n);
}

void CallServer::Work(Worker& worker, Connection* c, uint32_t events) {
  if (deferred_) {
    std::lock_guard<std::mutex> lock(c->mu);
    c->busy = true;
  }
  if (events & EPOLLERR) return Close(c, "socket error");
  const uint64_t calls_before = c->calls;
  if (c->pending_out()) {
    const size_t unsent = c->out.size() - c->out_pos;
    if (!Flush(c)) return Close(c, "send failed");
    if (c->pending_out()) {
      NoteStall(c, c->out.size() - c->out_pos < unsent);
      if (!Arm(c, EPOLLOUT)) Close(c, "cannot watch it");
      return;
    }
  }
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) {
    bool closed = false;
    if (!ReadSome(c, &closed)) return Close(c, "bad frame");
    if (closed) {
      // Calls that arrived whole before the close still run: a client may
      // send a oneway call and hang up, or half-close after its calls. A
      // deferred one still gets its reply: the connection is parked, and
      // armed again once it is sent, when the end of the stream shows again.
      const bool ran = RunFrames(worker, c);
      if (ran && Park(c)) return;
      return Close(c, "closed by peer");
    }
  }
  if (!RunFrames(worker, c)) return Close(c, "bad frame");
  if (Park(c)) return;
  if (deferred_) {
    std::unique_lock<std::mutex> lock(c->mu);
    if (c->unanswered) {
      // Its reply was dropped unsent while this thread was still on it.
      lock.unlock();
      return Close(c, "a call was left unanswered");
    }
  }
  // Progress: a call of this connection ran. Bytes trickling in are not.
  if (const char* why = FinishTurn(c, c->calls != calls_before)) Close(c, why);
}

bool CallServer::Park(Connection* c) {
  if (!deferred_) return false;
  std::lock_guard<std::mutex> lock(c->mu);
  if (!c->deferred || c->unanswered) return false;
  // Out of epoll until the reply: the thread that sends it takes over. Not
  // stalled meanwhile: the wait is this server's, not the client's.
  c->busy = false;
  c->stalled_since.store(0, std::memory_order_relaxed);
  return true;
}

const char* CallServer::FinishTurn(Connection* c, bool progressed) {
  if (c->pending_out()) {
    if (!Flush(c)) return "send failed";
    if (c->pending_out()) {
      NoteStall(c, progressed);
      return Arm(c, EPOLLOUT) ? nullptr : "cannot watch it";
    }
  }
  NoteStall(c, progressed);
  if (c->in_used == 0 && c->in.size() > kKeepBufferBytes) std::vector<uint8_t>().swap(c->in);
  // Whole frames left after kCallsPerTurn are in our buffer, not the
  // socket's, so EPOLLIN would not fire for them: EPOLLOUT does, at once,
  // after the connections already waiting.
  return Arm(c, WholeFrameBuffered(c) ? EPOLLIN | EPOLLOUT | EPOLLRDHUP : EPOLLIN | EPOLLRDHUP) ? nullptr
                                                                                                : "cannot watch it";
}

void CallServer::Answer(const std::shared_ptr<Connection>& c, std::string message) {
  std::unique_lock<std::mutex> lock(c->mu);
  if (!c->deferred) return;
  c->deferred = false;
  Unparked();
  if (c->closed) return;
  if (message.empty()) {
    // No answer will come: the connection goes (c keeps it alive past the
    // lock), now or when the thread at work on it sees this.
    if (c->busy) {
      c->unanswered = true;
    } else {
      CloseLocked(c.get(), "a call was left unanswered");
    }
    return;
  }
  const uint32_t body = static_cast<uint32_t>(message.size());
  const uint8_t header[kFrameHeader] = {uint8_t(body >> 24), uint8_t(body >> 16), uint8_t(body >> 8), uint8_t(body)};
  if (c->out_pos == c->out.size()) {
    c->out.clear();
    c->out_pos = 0;
  }
  c->out.insert(c->out.end(), header, header + kFrameHeader);
  c->out.insert(c->out.end(), message.begin(), message.end());
  // The thread that took the call is still on the connection: it sends.
  if (c->busy) return;
  // Parked: this thread finishes its turn. The lock stays held, so that
  // Stop() cannot close the descriptor under the send.
  c->busy = true;
  if (const char* why = FinishTurn(c.get(), true)) CloseLocked(c.get(), why);
}

// Reads what has arrived, until a whole frame is buffered or the socket has
// no more, growing the buffer only as far as the frame being read needs (a
// declared length is not allocated before its bytes come). False when a
// frame's declared length is out of bounds.
bool CallServer::ReadSome(Connection* c, bool* closed) {
  for (;;) {
    size_t need = kFrameHeader;
    if (c->in_used >= kFrameHeader) {
      const uint32_t length = ReadBigEndian32(c->in.data());
      if (!CheckLength(c, length)) return false;
      need = kFrameHeader + length;
      if (c->in_used >= need) return true;
    }
    // Grows only when full, so memory follows the bytes that came.
    const size_t target = std::max(need, kInitialBuffer);
    if (c->in.size() < target && (c->in_used == c->in.size() || c->in.size() < kInitialBuffer)) {
      c->in.resize(std::min(target, std::max(kInitialBuffer, c->in.size() * 2)));
    }
    const size_t space = c->in.size() - c->in_used;
    ssize_t n = recv(c->fd, c->in.data() + c->in_used, space, 0);
    if (n == 0) {
      *closed = true;
      return true;
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) *closed = true;
      return true;
    }
    c->in_used += size_t(n);
    if (size_t(n) < space) {
      // Drained for now; the loop's next pass would only hear EAGAIN, so
      // check a header that just completed here.
      return c->in_used < kFrameHeader || CheckLength(c, ReadBigEndian32(c->in.data()));
    }
  }
}

bool CallServer::CheckLength(const Connection* c, uint32_t length) {
  if (ValidLength(length)) return true;
  CountBadFrame(c, "frame length " + std::to_string(length) + " (limit " + std::to_string(options_.max_frame_bytes) +
                       ")");
  return false;
}

bool CallServer::WholeFrameBuffered(const Connection* c) const {
  if (c->in_used < kFrameHeader) return false;
  const uint32_t length = ReadBigEndian32(c->in.data());
  return !ValidLength(length) || c->in_used >= kFrameHeader + length;
}

bool CallServer::RunFrames(Worker& worker, Connection* c) {
  size_t start = 0;
  bool ok = true;
  for (int calls = 0; calls < kCallsPerTurn && !c->pending_out(); ++calls) {
    if (calls > 0 && stopping_.load(std::memory_order_acquire)) break;  // Stop() waits for one call, not a pipeline
    if (c->in_used - start < kFrameHeader) break;
    const uint32_t length = ReadBigEndian32(c->in.data() + start);
    if (!CheckLength(c, length)) {
      ok = false;
      break;
    }
    if (c->in_used - start < kFrameHeader + length) break;
    uint8_t* frame = c->in.data() + start + kFrameHeader;
    start += kFrameHeader + length;
    if (c->reserved && !ReservedMethod(frame, length)) {
      refused_.fetch_add(1, std::memory_order_relaxed);
      LogRefusal("closing " + c->peer + ": a connection past the limit, kept for operator calls, sent another call");
      ok = false;
      break;
    }
    if (c->reserved) {
      // Its clock stops while the call runs (a repair or a membership change
      // may take long); NoteStall restarts it, now for idling.
      c->stalled_since.store(0, std::memory_order_relaxed);
      c->stall_limit_ms.store(options_.stall_timeout.count() > 0 ? options_.stall_timeout.count() : kReservedIdleMs,
                              std::memory_order_relaxed);
    }
    calls_.fetch_add(1, std::memory_order_relaxed);
    ++c->calls;
    if (deferred_ && !c->reserved && deferred_->Handles(CallName(frame, length))) {
      {
        std::lock_guard<std::mutex> lock(c->mu);
        c->deferred = true;
      }
      parked_.fetch_add(1, std::memory_order_relaxed);
      try {
        deferred_->Start(frame, length, std::make_shared<Reply>(this, c->shared_from_this()));
      } catch (const std::exception& e) {
        CountBadFrame(c, std::string("a deferred call failed: ") + e.what());
        ok = false;
        break;
      }
      std::lock_guard<std::mutex> lock(c->mu);
      if (c->unanswered) {
        CountBadFrame(c, "a deferred call was left unanswered");
        ok = false;
        break;
      }
      if (c->deferred) break;  // answered later; no other call of this connection runs before
      continue;                // answered at once: its reply is in c->out
    }
    bool processed = false;
    try {
      uint8_t* call = frame;
      uint32_t call_size = length;
      apache::thrift::TProcessor& processor = demux_ ? demux_->Route(&call, &call_size) : *processor_;
      processed = worker.Run(processor, call, call_size);
    } catch (const std::exception& e) {
      worker.Reset();
      CountBadFrame(c, std::string("undecodable call: ") + e.what());
      ok = false;
      break;
    }
    if (!processed) {
      worker.Reset();
      CountBadFrame(c, "the processor refused the call");
      ok = false;
      break;
    }
    auto [reply, size] = worker.reply();
    if (size > 0) {
      // Send from the worker's buffer; keep only what the socket did not take.
      size_t sent = 0;
      while (sent < size) {
        ssize_t n = send(c->fd, reply + sent, size - sent, MSG_NOSIGNAL);
        if (n > 0) {
          sent += size_t(n);
          continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        ok = false;  // the peer is gone
        break;
      }
      if (!ok) break;
      if (sent < size) {
        c->out.assign(reply + sent, reply + size);
        c->out_pos = 0;
      }
    }
    if (worker.Oversized()) worker.Reset();
  }
  if (start > 0) {
    std::memmove(c->in.data(), c->in.data() + start, c->in_used - start);
    c->in_used -= start;
  }
  return ok;
}

bool CallServer::ReservedMethod(const uint8_t* frame, uint32_t size) const {
  const std::string_view name = CallName(frame, size);
  if (name.empty()) return false;
  for (const std::string& prefix : options_.reserved_prefixes)
    if (name.starts_with(prefix)) return true;
  return false;
}

std::string_view CallName(const uint8_t* frame, uint32_t size) {
  // TBinaryProtocol's message header: strict (version and type, then the
  // name's length) or old-style (the name's length first).
  if (size < 8) return {};
  const uint32_t first = ReadBigEndian32(frame);
  const bool strict = (first & 0x80000000u) != 0;
  const size_t name_at = strict ? 8 : 4;
  const uint32_t length = strict ? ReadBigEndian32(frame + 4) : first;
  if (length > size - name_at) return {};
  return std::string_view(reinterpret_cast<const char*>(frame + name_at), length);
}

std::string ExceptionMessage(const std::string& name, int32_t seqid, const std::string& what) {
  auto buffer = std::make_shared<TMemoryBuffer>(256);
  apache::thrift::protocol::TBinaryProtocol out(buffer);
  apache::thrift::TApplicationException x(what);
  out.writeMessageBegin(name, apache::thrift::protocol::T_EXCEPTION, seqid);
  x.write(&out);
  out.writeMessageEnd();
  return buffer->getBufferAsString();
}

bool CallServer::Flush(Connection* c) {
  while (c->pending_out()) {
    ssize_t n = send(c->fd, c->out.data() + c->out_pos, c->out.size() - c->out_pos, MSG_NOSIGNAL);
    if (n > 0) {
      c->out_pos += size_t(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    return false;
  }
  c->out.clear();
  c->out_pos = 0;
  if (c->out.capacity() > kKeepBufferBytes) std::vector<uint8_t>().swap(c->out);
  return true;
}

bool CallServer::Arm(Connection* c, uint32_t events) {
  if (stopping_.load(std::memory_order_acquire)) return true;  // Stop() closes it
  epoll_event ev{};
  ev.events = events | EPOLLONESHOT;
  ev.data.ptr = c;
  return epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c->fd, &ev) == 0;
}

void CallServer::Close(Connection* c, const char* why) {
  std::shared_ptr<Connection> held;  // declared first: *c outlives the lock on c->mu
  std::unique_lock<std::mutex> lock(c->mu, std::defer_lock);
  if (deferred_) lock.lock();
  held = CloseLocked(c, why);
}

std::shared_ptr<CallServer::Connection> CallServer::CloseLocked(Connection* c, const char* why) {
  spdlog::debug("{}: closing {}: {}", options_.name, c->peer, why);
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c->fd, nullptr);
  const int fd = c->fd;
  c->closed = true;
  std::lock_guard<std::mutex> lock(mu_);
  close(fd);
  if (c->reserved) --reserved_open_;
  std::shared_ptr<Connection> held;
  auto it = connections_.find(fd);
  if (it != connections_.end()) {
    held = std::move(it->second);
    connections_.erase(it);
  }
  return held;
}

void CallServer::NoteStall(Connection* c, bool progressed) {
  if (c->reserved) {
    // Idle counts too: the reserve is for a call now and then, not held.
    // Before the first call, reserved_first_call runs from the accept.
    if (progressed) c->stalled_since.store(SteadyMillis(), std::memory_order_relaxed);
    return;
  }
  if (options_.stall_timeout.count() <= 0) return;
  const bool waiting = c->in_used > 0 || c->pending_out();
  if (!waiting) {
    c->stalled_since.store(0, std::memory_order_relaxed);
  } else if (progressed || c->stalled_since.load(std::memory_order_relaxed) == 0) {
    c->stalled_since.store(SteadyMillis(), std::memory_order_relaxed);
  }
}

void CallServer::WatchStalls() {
  auto interval = std::chrono::milliseconds(kReservedIdleMs / 4);
  if (options_.stall_timeout.count() > 0) interval = options_.stall_timeout / 4;
  if (options_.reserved_connections > 0) interval = std::min(interval, options_.reserved_first_call / 4);
  interval = std::max(interval, std::chrono::milliseconds(1));
  std::unique_lock<std::mutex> stop_lock(stop_mu_);
  while (!stopping_.load()) {
    stop_cv_.wait_for(stop_lock, interval);
    if (stopping_.load()) return;
    const int64_t now = SteadyMillis();
    std::lock_guard<std::mutex> lock(mu_);  // holds every fd open while we look
    for (auto& [fd, c] : connections_) {
      const int64_t since = c->stalled_since.load(std::memory_order_relaxed);
      int64_t limit = c->stall_limit_ms.load(std::memory_order_relaxed);
      if (limit <= 0) limit = options_.stall_timeout.count();
      if (since <= 0 || limit <= 0 || now - since < limit) continue;
      c->stalled_since.store(-1, std::memory_order_relaxed);
      stalled_.fetch_add(1, std::memory_order_relaxed);
      spdlog::debug("{}: closing {}: no progress for {} ms {}", options_.name, c->peer, now - since,
                    c->reserved ? "on a connection kept for operator calls" : "mid-frame or mid-reply");
      // Not close(): the thread that gets the next event closes it.
      shutdown(fd, SHUT_RDWR);
    }
  }
}

void CallServer::CountBadFrame(const Connection* c, const std::string& why) {
  const uint64_t n = bad_frames_.fetch_add(1, std::memory_order_relaxed) + 1;
  // Garbage can arrive in floods: the first few, then every 1000th.
  if (n <= 10 || n % 1000 == 0) {
    spdlog::warn("{}: closing {}: {} (bad frames so far: {})", options_.name, c->peer, why, n);
  }
}

}  // namespace monju
