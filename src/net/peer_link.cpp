#include "peer_link.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <thrift/transport/TTransportException.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/thread_name.h"
#include "connect_from.h"

namespace monju {

namespace {

uint32_t FrameLength(const char* p) {
  const auto* b = reinterpret_cast<const unsigned char*>(p);
  return (uint32_t(b[0]) << 24) | (uint32_t(b[1]) << 16) | (uint32_t(b[2]) << 8) | uint32_t(b[3]);
}

}  // namespace

void ConnectPause::Failed(Clock::TimePoint now, const std::string& error) {
  std::lock_guard<std::mutex> lock(mu_);
  error_ = error;
  if (min_ms_ <= 0 || now < retry_after_) return;
  const uint32_t doublings = std::min<uint32_t>(failures_in_row_, 20);
  ++failures_in_row_;
  const int64_t pause = std::min<int64_t>(int64_t(min_ms_) << doublings, max_ms_);
  retry_after_ = now + std::chrono::milliseconds(pause);
}

void ConnectPause::Succeeded() {
  std::lock_guard<std::mutex> lock(mu_);
  failures_in_row_ = 0;
  retry_after_ = {};
}

bool ConnectPause::Paused(Clock::TimePoint now) const {
  std::lock_guard<std::mutex> lock(mu_);
  return now < retry_after_;
}

std::string ConnectPause::Describe(Clock::TimePoint now) const {
  std::lock_guard<std::mutex> lock(mu_);
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(retry_after_ - now).count();
  return error_ + (left > 0 ? " (connecting again in " + std::to_string(left) + " ms)"
                            : " (connecting again with the next call)");
}

PeerLink::PeerLink(LinkPoller* poller, PeerLinkOptions options)
    : poller_(poller),
      options_(std::move(options)),
      pause_(options_.connect_pause ? options_.connect_pause
                                    : std::make_shared<ConnectPause>(options_.reconnect_pause_min_ms,
                                                                     options_.reconnect_pause_max_ms)) {}

PeerLink::~PeerLink() {
  if (fd_ >= 0) ::close(fd_);
}

std::string PeerLink::Name() const { return options_.host + ":" + std::to_string(options_.port); }

bool PeerLink::Call(std::string frame, Done done, Resend resend) {
  return Enqueue(frame, done, resend, options_.max_pending);
}

bool PeerLink::CallIfIdle(std::string& frame, Done& done, Resend resend) {
  return Enqueue(frame, done, resend, std::min<size_t>(1, options_.max_pending));
}

bool PeerLink::Enqueue(std::string& frame, Done& done, Resend resend, size_t limit) {
  std::lock_guard<std::mutex> lock(mu_);
  if (poller_->stopping() || waiting_.size() >= limit) return false;
  const Clock::TimePoint now = poller_->clock_->Now();
  // In a pause the call waits, unsent, for the poller to fail it: never
  // inside Call(), and without the caller sending it another way. Calls of
  // a pause not yet failed keep later ones from connecting (they have no
  // bytes to match replies against).
  const bool paused = state_ == State::kIdle && (!waiting_.empty() || pause_->Paused(now));
  if (paused) {
    waiting_.push_back({std::move(done), now, {}});
    last_call_ = now;
    ++stats_.calls;
    if (waiting_.size() == 1) poller_->Poke();
    return true;
  }
  if (state_ == State::kIdle && !StartConnectLocked()) return false;
  // The bytes first, then the call, so that an allocation failure leaves
  // no call without its bytes (replies are matched by position).
  std::string kept = resend == Resend::kOnceIfConnectionCloses ? frame : std::string();
  const size_t out_before = out_.size();
  if (out_.empty()) {
    out_ = std::move(frame);
  } else {
    out_.append(frame);
  }
  try {
    waiting_.push_back({std::move(done), now + std::chrono::milliseconds(options_.io_timeout_ms), std::move(kept)});
  } catch (...) {
    out_.resize(out_before);
    throw;
  }
  last_call_ = now;
  ++stats_.calls;
  if (state_ == State::kConnected) {
    // A send error shows as an epoll error, handled (and completed) by the
    // poller. The call is taken: nothing may throw from here on, or the
    // caller would also send it another way.
    try {
      std::string ignored;
      FlushLocked(&ignored);
      ArmLocked();
    } catch (const std::exception& e) {
      spdlog::warn("peer link to {}: sending a call failed: {}", Name(), e.what());
    }
  }
  return true;
}

bool PeerLink::StartConnectLocked() {
  const uint64_t attempt = ++connect_attempt_;
  // The connect threads never run a task inline, so this lock is not taken twice.
  if (!poller_->connector_->Submit([self = shared_from_this(), attempt] { self->Connect(attempt); })) return false;
  state_ = State::kConnecting;
  return true;
}

void PeerLink::Connect(uint64_t attempt) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (attempt != connect_attempt_ || state_ != State::kConnecting || poller_->stopping()) return;
  }
  int fd = -1;
  std::string error;
  try {
    fd = ConnectFrom(options_.bind_host, options_.host, options_.port, options_.connect_timeout_ms);
    const int flags = ::fcntl(fd, F_GETFL);
    const int one = 1;
    if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0 ||
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) {
      error = std::string("socket options: ") + strerror(errno);
      ::close(fd);
      fd = -1;
    }
  } catch (const apache::thrift::transport::TTransportException& e) {
    error = e.what();
  }
  Completions failed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (attempt != connect_attempt_ || state_ != State::kConnecting || poller_->stopping()) {
      // This attempt was given up (its calls timed out) or the poller stops.
      if (fd >= 0) ::close(fd);
    } else if (fd < 0) {
      const std::string why = "cannot connect to " + Name() + ": " + error;
      FailLocked(Status::Unavailable(why), &failed);
      pause_->Failed(poller_->clock_->Now(), why);
    } else {
      fd_ = fd;
      state_ = State::kConnected;
      ++stats_.connects;
      pause_->Succeeded();
      armed_out_ = false;
      if (!poller_->Watch(fd_, EPOLLIN, this, true)) {
        FailLocked(Status::Unavailable("cannot watch the connection to " + Name() + ": " + strerror(errno)), &failed);
      } else {
        std::string ignored;
        FlushLocked(&ignored);
        ArmLocked();
      }
    }
  }
  LinkPoller::RunCompletions(failed);
}

bool PeerLink::FlushLocked(std::string* error) {
  while (out_sent_ < out_.size()) {
    const ssize_t n =
        ::send(fd_, out_.data() + out_sent_, out_.size() - out_sent_, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      out_sent_ += static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return true;
    } else {
      *error = std::string("send: ") + strerror(errno);
      return false;
    }
  }
  out_.clear();
  out_sent_ = 0;
  return true;
}

void PeerLink::ArmLocked() {
  const bool want_out = out_sent_ < out_.size();
  if (want_out == armed_out_ || fd_ < 0) return;
  if (poller_->Watch(fd_, EPOLLIN | (want_out ? EPOLLOUT : 0u), this, false)) armed_out_ = want_out;
}

Status PeerLink::TakeRepliesLocked(Completions* out) {
  size_t pos = 0;
  while (in_.size() - pos >= 4) {
    const uint32_t length = FrameLength(in_.data() + pos);
    if (length == 0 || length > options_.max_reply_bytes)
      return Status::IOError(Name() + " sent a reply frame of " + std::to_string(length) + " bytes (limit " +
                             std::to_string(options_.max_reply_bytes) + ")");
    if (in_.size() - pos - 4 < length) break;
    if (waiting_.empty()) return Status::IOError(Name() + " sent a reply no call waits for");
    out->push_back({std::move(waiting_.front().done), Status::OK(), in_.substr(pos + 4, length)});
    waiting_.pop_front();
    pos += 4 + length;
  }
  in_.erase(0, pos);
  return Status::OK();
}

void PeerLink::OnEvents(uint32_t events, Completions* out) {
  std::lock_guard<std::mutex> lock(mu_);
  if (state_ != State::kConnected) return;  // an event of a socket since closed
  // Only what the syscalls say counts: a flag may belong to an earlier socket
  // of this link.
  Status failed;
  bool lost = false;  // the connection closed or failed (not a bad reply)
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
    char buffer[16384];
    for (size_t read = 0; read < LinkPoller::kReadPerTurn;) {
      const ssize_t n = ::recv(fd_, buffer, sizeof buffer, MSG_DONTWAIT);
      if (n > 0) {
        in_.append(buffer, static_cast<size_t>(n));
        read += static_cast<size_t>(n);
        if (static_cast<size_t>(n) < sizeof buffer) break;  // drained; epoll says if more comes
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      failed = Status::Unavailable(n == 0 ? Name() + " closed the connection"
                                          : Name() + " connection failed: " + strerror(errno));
      lost = true;
      break;
    }
    // Replies that came before a close still count.
    Status taken = TakeRepliesLocked(out);
    if (!taken.ok()) {
      failed = taken;
      lost = false;
    }
  }
  std::string error;
  if (failed.ok() && (events & EPOLLOUT) && !FlushLocked(&error)) {
    failed = Status::Unavailable(Name() + " connection failed: " + error);
    lost = true;
  }
  if (!failed.ok()) return lost ? ConnectionLostLocked(failed, out) : FailLocked(failed, out);
  ArmLocked();
}

void PeerLink::CheckDeadline(Clock::TimePoint now, Completions* out) {
  std::lock_guard<std::mutex> lock(mu_);
  if (state_ == State::kIdle && !waiting_.empty()) {
    // Calls taken in a pause after a failed connect: each fails alike (no
    // connection was lost under them).
    stats_.paused_failures += waiting_.size();
    const Status why = Status::Unavailable(pause_->Describe(now));
    for (auto& w : waiting_) out->push_back({std::move(w.done), why, {}});
    waiting_.clear();
    return;
  }
  if (waiting_.empty()) {
    // Bytes still out belong to a call: only a connection with none is idle.
    if (state_ == State::kConnected && out_.empty() && options_.idle_close_ms > 0 &&
        now - last_call_ >= std::chrono::milliseconds(options_.idle_close_ms)) {
      spdlog::debug("peer link to {}: closing a connection idle for {} ms", Name(), options_.idle_close_ms);
      ++stats_.idle_closes;
      FailLocked(Status::OK(), out, /*count=*/false);
    }
    return;
  }
  if (waiting_.front().deadline > now) return;
  FailLocked(Status::TimedOut("no reply from " + Name() + " within " + std::to_string(options_.io_timeout_ms) + " ms"),
             out);
}

void PeerLink::FailLocked(const Status& why, Completions* out, bool count, size_t resending) {
  if (count && fd_ >= 0) {
    ++stats_.failures;
    // An open connection failing is news; a peer that cannot be reached at
    // all is the failure detector's to report.
    spdlog::warn("peer link to {} closed: {} ({} calls failed, {} sent again on a new connection)", Name(),
                 why.ToString(), waiting_.size(), resending);
  } else if (count && !waiting_.empty()) {
    ++stats_.connect_failures;
  }
  for (auto& w : waiting_) {
    Status status = &w == &waiting_.front()
                        ? why
                        : Status::FromCode(static_cast<int>(why.code()),
                                           "lost with the connection to " + Name() + ", after an earlier call's: " +
                                               why.message());
    out->push_back({std::move(w.done), std::move(status), {}});
  }
  waiting_.clear();
  if (fd_ >= 0) {
    poller_->Unwatch(fd_);
    ::close(fd_);
    fd_ = -1;
  }
  state_ = State::kIdle;
  armed_out_ = false;
  out_.clear();
  out_sent_ = 0;
  in_.clear();
}

void PeerLink::ConnectionLostLocked(const Status& why, Completions* out) {
  // Bytes left in in_ begin the oldest call's reply: the peer ran that one.
  // A call past its deadline fails as it would have.
  const Clock::TimePoint now = poller_->clock_->Now();
  std::deque<Waiting> all = std::move(waiting_), resend;
  waiting_.clear();
  for (auto& w : all) {
    const bool reply_began = &w == &all.front() && !in_.empty();
    const bool may_resend = !w.resend_frame.empty() && !reply_began && w.deadline > now;
    (may_resend ? resend : waiting_).push_back(std::move(w));
  }
  FailLocked(why, out, /*count=*/true, /*resending=*/resend.size());  // the others, and the connection
  if (resend.empty()) return;
  if (poller_->stopping() || !StartConnectLocked()) {
    waiting_ = std::move(resend);
    return FailLocked(why, out, /*count=*/false);
  }
  for (auto& w : resend) {
    out_.append(w.resend_frame);
    std::string().swap(w.resend_frame);  // once only
    ++stats_.resends;
  }
  waiting_ = std::move(resend);
}

size_t PeerLink::pending() const {
  std::lock_guard<std::mutex> lock(mu_);
  return waiting_.size();
}

PeerLinkStats PeerLink::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

StatusOr<std::unique_ptr<LinkPoller>> LinkPoller::Start(const Clock* clock, std::string name) {
  std::unique_ptr<LinkPoller> poller(new LinkPoller(clock, std::move(name)));
  poller->epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (poller->epoll_fd_ < 0) return Status::IOError(std::string("epoll_create1: ") + strerror(errno));
  poller->wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (poller->wake_fd_ < 0) return Status::IOError(std::string("eventfd: ") + strerror(errno));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;
  if (::epoll_ctl(poller->epoll_fd_, EPOLL_CTL_ADD, poller->wake_fd_, &ev) != 0)
    return Status::IOError(std::string("epoll_ctl: ") + strerror(errno));
  poller->connector_ = std::make_unique<FanoutExecutor>(kConnectThreads, kMaxQueuedConnects,
                                                       "link-conn");
  LinkPoller* raw = poller.get();
  poller->thread_ = std::thread([raw] { raw->Run(); });
  NameThread(poller->thread_, poller->name_);
  return poller;
}

LinkPoller::LinkPoller(const Clock* clock, std::string name) : clock_(clock), name_(std::move(name)) {}

LinkPoller::~LinkPoller() {
  Stop();
  {
    std::lock_guard<std::mutex> lock(mu_);
    links_.clear();
  }
  if (wake_fd_ >= 0) ::close(wake_fd_);
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
}

std::shared_ptr<PeerLink> LinkPoller::NewLink(PeerLinkOptions options) {
  auto link = std::make_shared<PeerLink>(this, std::move(options));
  std::lock_guard<std::mutex> lock(mu_);
  links_.push_back(link);
  return link;
}

bool LinkPoller::Watch(int fd, uint32_t events, PeerLink* link, bool add) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = link;
  return ::epoll_ctl(epoll_fd_, add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &ev) == 0;
}

void LinkPoller::Unwatch(int fd) { ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr); }

void LinkPoller::Poke() {
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
}

void LinkPoller::PokeAndWait() {
  std::unique_lock<std::mutex> lock(checked_mu_);
  const uint64_t ticket = ++pokes_;
  Poke();
  checked_cv_.wait(lock, [&] { return checked_ >= ticket || stopping_.load(); });
}

void LinkPoller::RunCompletions(PeerLink::Completions& done) {
  for (auto& c : done) {
    try {
      c.done(std::move(c.status), std::move(c.reply));
    } catch (const std::exception& e) {
      spdlog::error("a peer call's completion failed: {}", e.what());
    }
  }
  done.clear();
}

void LinkPoller::Run() {
  epoll_event events[64];
  Clock::TimePoint next_check = clock_->Now() + kTick;
  std::vector<std::shared_ptr<PeerLink>> links;
  PeerLink::Completions done;
  while (!stopping_.load()) {
    const int n = ::epoll_wait(epoll_fd_, events, 64, static_cast<int>(kTick.count()));
    if (n < 0 && errno != EINTR) {
      // No thread would read replies or time calls out: links refuse calls
      // from now on, and what waits fails.
      const std::string why = std::string("epoll_wait: ") + strerror(errno);
      spdlog::error("{}: {}; peer calls go through the fan-out threads from now on", name_, why);
      stopping_.store(true);
      FailAll(Status::Unavailable("peer links stopped: " + why));
      return;
    }
    bool poked = false;
    for (int i = 0; i < n; ++i) {
      if (events[i].data.ptr == nullptr) {
        uint64_t count;
        [[maybe_unused]] ssize_t r = ::read(wake_fd_, &count, sizeof count);
        poked = true;
        continue;
      }
      static_cast<PeerLink*>(events[i].data.ptr)->OnEvents(events[i].events, &done);
    }
    uint64_t poke_seen = 0;
    if (poked) {
      std::lock_guard<std::mutex> lock(checked_mu_);
      poke_seen = pokes_;
    }
    const Clock::TimePoint now = clock_->Now();
    if (poked || now >= next_check) {
      next_check = now + kTick;
      {
        std::lock_guard<std::mutex> lock(mu_);
        links = links_;
      }
      for (auto& link : links) link->CheckDeadline(now, &done);
      links.clear();
    }
    RunCompletions(done);
    if (poked) {
      {
        std::lock_guard<std::mutex> lock(checked_mu_);
        checked_ = poke_seen;
      }
      checked_cv_.notify_all();
    }
  }
}

void LinkPoller::Stop() {
  std::lock_guard<std::mutex> stop_lock(stop_mu_);
  stopping_.store(true);
  Poke();
  if (thread_.joinable()) thread_.join();
  {
    std::lock_guard<std::mutex> lock(checked_mu_);  // PokeAndWait() sees stopping_
  }
  checked_cv_.notify_all();
  // Queued connects see stopping_ and return at once.
  if (connector_) connector_->Stop();
  FailAll(Status::Unavailable("node stopping"));
}

void LinkPoller::FailAll(const Status& why) {
  std::vector<std::shared_ptr<PeerLink>> links;
  {
    std::lock_guard<std::mutex> lock(mu_);
    links = links_;
  }
  PeerLink::Completions done;
  for (auto& link : links) {
    std::lock_guard<std::mutex> lock(link->mu_);
    link->FailLocked(why, &done, /*count=*/false);
  }
  RunCompletions(done);
}

}  // namespace monju
