// PeerLink and LinkPoller against a scripted peer on loopback: replies
// matched to calls in order, every way a link fails (no reply, a closed
// connection, a bad frame, a stray reply, nothing listening, too many calls,
// stopping), and which calls are sent again when a connection closes. Deadlines run on a fake clock; the test moves it and pokes the
// poller, so nothing waits for real time to pass.
#include "peer_link.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <optional>
#include <thread>

#include "executor.h"
#include "test_support.h"

namespace monju {
namespace {

std::string Frame(const std::string& payload) {
  std::string out(4, '\0');
  const uint32_t n = static_cast<uint32_t>(payload.size());
  out[0] = char(n >> 24);
  out[1] = char(n >> 16);
  out[2] = char(n >> 8);
  out[3] = char(n);
  return out + payload;
}

// Accepts connections one at a time and answers each whole frame with what
// `answer` returns: bytes to send (a nullopt sends nothing), or kClose and
// then the bytes to send before closing the connection.
class ScriptedPeer {
 public:
  static inline const std::string kClose = "\x01close";
  using Answer = std::function<std::optional<std::string>(const std::string& payload)>;

  // port 0: one the kernel picks.
  explicit ScriptedPeer(Answer answer, uint16_t port = 0) : answer_(std::move(answer)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(listen_fd_, 8), 0);
    socklen_t len = sizeof addr;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~ScriptedPeer() {
    stopping_ = true;
    ::shutdown(listen_fd_, SHUT_RDWR);
    int fd = conn_fd_.exchange(-1);
    if (fd >= 0) ::shutdown(fd, SHUT_RDWR);
    thread_.join();
    ::close(listen_fd_);
  }
  uint16_t port() const { return port_; }
  int accepted() const { return accepted_.load(); }
  // Waits (up to 10 s) until `n` connections have ended; false if they have not.
  bool WaitEnded(int n) {
    std::unique_lock<std::mutex> lock(ended_mu_);
    return ended_cv_.wait_for(lock, std::chrono::seconds(10), [&] { return ended_ >= n; });
  }

 private:
  void Serve() {
    while (!stopping_) {
      int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) return;
      ++accepted_;
      conn_fd_ = fd;
      std::string in;
      char buf[4096];
      bool open = true;
      while (open && !stopping_) {
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        in.append(buf, size_t(n));
        while (open && in.size() >= 4) {
          const auto* b = reinterpret_cast<const unsigned char*>(in.data());
          const uint32_t len = (uint32_t(b[0]) << 24) | (uint32_t(b[1]) << 16) | (uint32_t(b[2]) << 8) | b[3];
          if (in.size() < 4 + len) break;
          std::optional<std::string> out = answer_(in.substr(4, len));
          in.erase(0, 4 + len);
          if (out && out->compare(0, kClose.size(), kClose) == 0) {
            const std::string last = out->substr(kClose.size());
            if (!last.empty()) {
              EXPECT_EQ(::send(fd, last.data(), last.size(), MSG_NOSIGNAL), ssize_t(last.size()));
            }
            open = false;
          } else if (out) {
            EXPECT_EQ(::send(fd, out->data(), out->size(), MSG_NOSIGNAL), ssize_t(out->size()));
          }
        }
      }
      if (conn_fd_.exchange(-1) >= 0) ::close(fd);
      {
        std::lock_guard<std::mutex> lock(ended_mu_);
        ++ended_;
      }
      ended_cv_.notify_all();
    }
  }

  Answer answer_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<int> conn_fd_{-1};
  std::atomic<bool> stopping_{false};
  std::atomic<int> accepted_{0};
  std::mutex ended_mu_;
  std::condition_variable ended_cv_;
  int ended_ = 0;
  std::thread thread_;
};

// One call's outcome, with the thread it ran on.
struct Outcome {
  Status status;
  std::string reply;
  std::thread::id thread;
};

class PeerLinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto poller = LinkPoller::Start(&clock_, "test-links");
    ASSERT_TRUE(poller.ok()) << poller.status().ToString();
    poller_ = std::move(poller.value());
  }
  void TearDown() override {
    poller_->Stop();
  }

  std::shared_ptr<PeerLink> Link(uint16_t port, size_t max_pending = 16, uint32_t max_reply = 1 << 20,
                                 int idle_close_ms = 0, int reconnect_pause_min_ms = 20) {
    PeerLinkOptions o;
    o.reconnect_pause_min_ms = reconnect_pause_min_ms;
    o.reconnect_pause_max_ms = 100;
    o.idle_close_ms = idle_close_ms;
    o.host = "127.0.0.1";
    o.port = port;
    o.io_timeout_ms = 500;
    o.max_pending = max_pending;
    o.max_reply_bytes = max_reply;
    return poller_->NewLink(o);
  }

  // Calls with `payload`; the future is set by the completion.
  std::future<Outcome> CallWith(PeerLink& link, const std::string& payload, bool* taken = nullptr,
                                PeerLink::Resend resend = PeerLink::Resend::kNever) {
    auto promise = std::make_shared<std::promise<Outcome>>();
    auto future = promise->get_future();
    const bool ok = link.Call(
        Frame(payload),
        [promise](Status s, std::string reply) {
          promise->set_value({std::move(s), std::move(reply), std::this_thread::get_id()});
        },
        resend);
    if (taken) *taken = ok;
    return future;
  }

  static Outcome Await(std::future<Outcome>& f) {
    EXPECT_EQ(f.wait_for(std::chrono::seconds(10)), std::future_status::ready);
    return f.get();
  }

  // Moves the fake clock past a call's deadline and has the poller look.
  void PassDeadline() {
    clock_.Advance(std::chrono::milliseconds(600));
    poller_->Poke();
  }

  // Has the poller take turns until `done` holds (for what another thread
  // does: a connect, a peer's close), at most 10 s.
  void PollUntil(const std::function<bool()>& done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done() && std::chrono::steady_clock::now() < deadline) poller_->PokeAndWait();
  }

  std::future<Outcome> Resendable(PeerLink& link, const std::string& payload) {
    return CallWith(link, payload, nullptr, PeerLink::Resend::kOnceIfConnectionCloses);
  }

  test_support::FakeClock clock_;
  std::unique_ptr<LinkPoller> poller_;
};

TEST_F(PeerLinkTest, RepliesCompleteTheirCallsInOrderOnThePollerThread) {
  ScriptedPeer peer([](const std::string& p) { return Frame("re:" + p); });
  auto link = Link(peer.port());
  auto a = CallWith(*link, "a");
  auto b = CallWith(*link, "bb");
  auto c = CallWith(*link, "ccc");
  Outcome ra = Await(a), rb = Await(b), rc = Await(c);
  EXPECT_TRUE(ra.status.ok()) << ra.status.ToString();
  EXPECT_EQ(ra.reply, "re:a");
  EXPECT_EQ(rb.reply, "re:bb");
  EXPECT_EQ(rc.reply, "re:ccc");
  EXPECT_NE(ra.thread, std::this_thread::get_id());
  // The connection is kept for later calls.
  auto d = CallWith(*link, "d");
  EXPECT_EQ(Await(d).reply, "re:d");
  EXPECT_EQ(peer.accepted(), 1);
  EXPECT_EQ(link->stats().connects, 1u);
  EXPECT_EQ(link->stats().calls, 4u);
  EXPECT_EQ(link->pending(), 0u);
}

TEST_F(PeerLinkTest, RepliesSplitAcrossSendsAndSharingOneAreTakenApart) {
  // The first call's reply comes with the second's in one send; the third's
  // in two sends.
  std::string held;
  ScriptedPeer peer([&held](const std::string& p) -> std::optional<std::string> {
    if (p == "first") {
      held = Frame("one");
      return std::nullopt;
    }
    if (p == "second") return held + Frame("two") + Frame("thr").substr(0, 3);
    return Frame("thr").substr(3);
  });
  auto link = Link(peer.port());
  auto a = CallWith(*link, "first");
  auto b = CallWith(*link, "second");
  auto c = CallWith(*link, "third");
  EXPECT_EQ(Await(a).reply, "one");
  EXPECT_EQ(Await(b).reply, "two");
  EXPECT_EQ(Await(c).reply, "thr");
}

TEST_F(PeerLinkTest, FramesLargerThanTheSocketTakesAtOnceGoOutWhole) {
  // 8 MiB each way: the send leaves most of the call for EPOLLOUT, and the
  // reply comes in many reads.
  ScriptedPeer peer([](const std::string& p) { return Frame(std::string(p.rbegin(), p.rend())); });
  auto link = Link(peer.port(), 16, /*max_reply=*/16 << 20);
  std::string big(8 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  auto a = CallWith(*link, big);
  auto b = CallWith(*link, "small after it");
  Outcome ra = Await(a);
  ASSERT_TRUE(ra.status.ok()) << ra.status.ToString();
  EXPECT_EQ(ra.reply, std::string(big.rbegin(), big.rend()));
  EXPECT_EQ(Await(b).reply, "ti retfa llams");
}

TEST_F(PeerLinkTest, ACompletionMayCallAgainOnTheSameLink) {
  ScriptedPeer peer([](const std::string& p) { return Frame("re:" + p); });
  auto link = Link(peer.port());
  auto second = std::make_shared<std::promise<Outcome>>();
  auto got = second->get_future();
  ASSERT_TRUE(link->Call(Frame("first"), [link, second](Status s, std::string) {
    ASSERT_TRUE(s.ok()) << s.ToString();
    const bool taken = link->Call(Frame("second"), [second](Status s2, std::string reply) {
      second->set_value({std::move(s2), std::move(reply), std::this_thread::get_id()});
    });
    EXPECT_TRUE(taken);
  }));
  Outcome r = Await(got);
  EXPECT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.reply, "re:second");
}

TEST_F(PeerLinkTest, ACallWithoutReplyTimesOutAndTheNextCallConnectsAgain) {
  std::atomic<bool> answer{false};
  ScriptedPeer peer([&answer](const std::string& p) -> std::optional<std::string> {
    if (!answer) return std::nullopt;
    return Frame(p);
  });
  auto link = Link(peer.port());
  auto a = CallWith(*link, "lost");
  auto b = CallWith(*link, "behind it");
  // Nothing times out before the deadline.
  clock_.Advance(std::chrono::milliseconds(400));
  poller_->Poke();
  EXPECT_EQ(a.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout);
  PassDeadline();
  Outcome ra = Await(a), rb = Await(b);
  EXPECT_TRUE(ra.status.Is(Status::Code::kTimedOut)) << ra.status.ToString();
  EXPECT_TRUE(rb.status.Is(Status::Code::kTimedOut)) << rb.status.ToString();
  EXPECT_EQ(link->stats().failures, 1u);

  answer = true;
  auto c = CallWith(*link, "again");
  Outcome rc = Await(c);
  EXPECT_TRUE(rc.status.ok()) << rc.status.ToString();
  EXPECT_EQ(rc.reply, "again");
  EXPECT_EQ(link->stats().connects, 2u);
}

TEST_F(PeerLinkTest, APeerClosingTheConnectionFailsTheWaitingCallsUnavailable) {
  ScriptedPeer peer([](const std::string& p) -> std::optional<std::string> {
    if (p == "close") return ScriptedPeer::kClose;
    return Frame(p);
  });
  auto link = Link(peer.port());
  auto a = CallWith(*link, "close");
  Outcome ra = Await(a);
  EXPECT_TRUE(ra.status.Is(Status::Code::kUnavailable)) << ra.status.ToString();
  auto b = CallWith(*link, "fine");
  EXPECT_EQ(Await(b).reply, "fine");
}

// The restart case: the peer's old connection closes under a call that
// reached it; the call goes out again on a new connection and succeeds.
TEST_F(PeerLinkTest, AResendableCallWhoseConnectionClosesIsSentOnceMoreOnANewConnection) {
  std::atomic<int> seen{0};
  ScriptedPeer peer([&seen](const std::string& p) -> std::optional<std::string> {
    if (seen++ == 0) return ScriptedPeer::kClose;  // the first connection dies under it
    return Frame("re:" + p);
  });
  auto link = Link(peer.port());
  auto a = Resendable(*link, "apply");
  Outcome ra = Await(a);
  ASSERT_TRUE(ra.status.ok()) << ra.status.ToString();
  EXPECT_EQ(ra.reply, "re:apply");
  EXPECT_EQ(seen.load(), 2);  // the peer ran it twice: only for idempotent calls
  EXPECT_EQ(peer.accepted(), 2);
  EXPECT_EQ(link->stats().calls, 1u);
  EXPECT_EQ(link->stats().resends, 1u);
  EXPECT_EQ(link->stats().failures, 1u);
  EXPECT_EQ(link->pending(), 0u);
}

TEST_F(PeerLinkTest, AResendableCallIsSentAgainOnlyOnce) {
  std::atomic<int> seen{0};
  ScriptedPeer peer([&seen](const std::string&) -> std::optional<std::string> {
    ++seen;
    return ScriptedPeer::kClose;  // every connection dies under it
  });
  auto link = Link(peer.port());
  auto a = Resendable(*link, "doomed");
  Outcome ra = Await(a);
  EXPECT_TRUE(ra.status.Is(Status::Code::kUnavailable)) << ra.status.ToString();
  EXPECT_NE(ra.status.message().find("closed the connection"), std::string::npos) << ra.status.ToString();
  EXPECT_EQ(seen.load(), 2);
  EXPECT_EQ(link->stats().resends, 1u);
  EXPECT_EQ(link->stats().failures, 2u);
  EXPECT_EQ(link->stats().connect_failures, 0u);
}

// Calls behind the one the peer closed on: the resendable ones go out again
// in their order and get their own replies; the others fail.
TEST_F(PeerLinkTest, OnlyResendableCallsAreSentAgainAndRepliesStillMatchTheirCalls) {
  // The first connection answers nothing and closes once all three came.
  std::atomic<bool> closed_once{false};
  std::atomic<int> plain_seen{0};
  ScriptedPeer peer([&](const std::string& p) -> std::optional<std::string> {
    if (p == "plain") ++plain_seen;
    if (!closed_once) {
      if (p != "r2") return std::nullopt;
      closed_once = true;
      return ScriptedPeer::kClose;
    }
    return Frame("re:" + p);
  });
  auto link = Link(peer.port());
  auto r1 = Resendable(*link, "r1");
  auto plain = CallWith(*link, "plain");
  auto r2 = Resendable(*link, "r2");
  Outcome o1 = Await(r1), op = Await(plain), o2 = Await(r2);
  EXPECT_TRUE(o1.status.ok()) << o1.status.ToString();
  EXPECT_EQ(o1.reply, "re:r1");
  EXPECT_TRUE(op.status.Is(Status::Code::kUnavailable)) << op.status.ToString();
  EXPECT_TRUE(o2.status.ok()) << o2.status.ToString();
  EXPECT_EQ(o2.reply, "re:r2");
  EXPECT_EQ(plain_seen.load(), 1);
  EXPECT_EQ(link->stats().resends, 2u);
  EXPECT_EQ(peer.accepted(), 2);
}

// Replies read before the close complete their calls; only the call behind
// them goes again.
TEST_F(PeerLinkTest, RepliesThatCameWithTheCloseCountAndAreNotSentAgain) {
  std::atomic<int> a_seen{0};
  std::atomic<bool> closed_once{false};
  ScriptedPeer peer([&](const std::string& p) -> std::optional<std::string> {
    if (p == "a") {
      ++a_seen;
      return std::nullopt;  // answered with b's close
    }
    if (!closed_once) {
      closed_once = true;
      return ScriptedPeer::kClose + Frame("re:a");
    }
    return Frame("re:" + p);
  });
  auto link = Link(peer.port());
  auto a = Resendable(*link, "a");
  auto b = Resendable(*link, "b");
  Outcome ra = Await(a), rb = Await(b);
  EXPECT_TRUE(ra.status.ok()) << ra.status.ToString();
  EXPECT_EQ(ra.reply, "re:a");
  EXPECT_TRUE(rb.status.ok()) << rb.status.ToString();
  EXPECT_EQ(rb.reply, "re:b");
  EXPECT_EQ(a_seen.load(), 1);
  EXPECT_EQ(link->stats().resends, 1u);
}

// A call whose deadline passed while its connection closed fails as timed
// out would have; it is not sent again.
TEST_F(PeerLinkTest, AResendableCallPastItsDeadlineIsNotSentAgain) {
  std::promise<void> arrived;
  std::atomic<int> seen{0};
  ScriptedPeer peer([&](const std::string& p) -> std::optional<std::string> {
    const int n = ++seen;
    if (p == "late") {
      if (n == 1) arrived.set_value();
      return std::nullopt;
    }
    return ScriptedPeer::kClose;
  });
  auto link = Link(peer.port());
  auto a = Resendable(*link, "late");
  ASSERT_EQ(arrived.get_future().wait_for(std::chrono::seconds(10)), std::future_status::ready);
  // Past the deadline; the close nearly always comes before the poller's
  // next look (every 20 ms), else the call times out: sent once either way.
  clock_.Advance(std::chrono::milliseconds(600));
  auto b = CallWith(*link, "close now");
  Outcome ra = Await(a);
  EXPECT_FALSE(ra.status.ok());
  EXPECT_EQ(link->stats().resends, 0u);
  EXPECT_EQ(seen.load(), 2);
  EXPECT_FALSE(Await(b).status.ok());
}

// The peer began answering: it ran the call, and the link does not guess.
TEST_F(PeerLinkTest, ACallWhoseReplyBeganIsNotSentAgain) {
  std::atomic<int> seen{0};
  ScriptedPeer peer([&seen](const std::string&) -> std::optional<std::string> {
    ++seen;
    return ScriptedPeer::kClose + Frame("partial reply").substr(0, 6);
  });
  auto link = Link(peer.port());
  auto a = Resendable(*link, "half");
  Outcome ra = Await(a);
  EXPECT_TRUE(ra.status.Is(Status::Code::kUnavailable)) << ra.status.ToString();
  EXPECT_EQ(link->stats().resends, 0u);
  EXPECT_EQ(seen.load(), 1);
  EXPECT_EQ(peer.accepted(), 1);
}

TEST_F(PeerLinkTest, AResendableCallThatTimesOutIsNotSentAgain) {
  std::promise<void> arrived;
  std::atomic<int> seen{0};
  ScriptedPeer peer([&](const std::string&) -> std::optional<std::string> {
    if (seen++ == 0) arrived.set_value();
    return std::nullopt;
  });
  auto link = Link(peer.port());
  auto a = Resendable(*link, "slow");
  ASSERT_EQ(arrived.get_future().wait_for(std::chrono::seconds(10)), std::future_status::ready);
  PassDeadline();
  Outcome ra = Await(a);
  EXPECT_TRUE(ra.status.Is(Status::Code::kTimedOut)) << ra.status.ToString();
  EXPECT_EQ(link->stats().resends, 0u);
  EXPECT_EQ(link->stats().connects, 1u);
  EXPECT_EQ(seen.load(), 1);
}

// A link to a member that left is called no more: its socket goes.
TEST_F(PeerLinkTest, AConnectionWithoutCallsForIdleCloseMsIsClosedAndTheNextCallConnectsAgain) {
  ScriptedPeer peer([](const std::string& p) { return Frame("re:" + p); });
  auto link = Link(peer.port(), 16, 1 << 20, /*idle_close_ms=*/60000);
  auto a = CallWith(*link, "a");
  ASSERT_EQ(Await(a).reply, "re:a");
  // Not before its time.
  clock_.Advance(std::chrono::milliseconds(59000));
  poller_->PokeAndWait();
  EXPECT_EQ(link->stats().idle_closes, 0u);
  auto b = CallWith(*link, "b");  // and a call restarts the count
  ASSERT_EQ(Await(b).reply, "re:b");
  clock_.Advance(std::chrono::milliseconds(59000));
  poller_->PokeAndWait();
  EXPECT_EQ(link->stats().idle_closes, 0u);
  auto c = CallWith(*link, "c");
  ASSERT_EQ(Await(c).reply, "re:c");
  EXPECT_EQ(link->stats().idle_closes, 0u);
  EXPECT_EQ(peer.accepted(), 1);

  clock_.Advance(std::chrono::milliseconds(60000));
  poller_->PokeAndWait();
  EXPECT_EQ(link->stats().idle_closes, 1u);
  ASSERT_TRUE(peer.WaitEnded(1)) << "the idle connection was not closed";
  EXPECT_EQ(link->stats().failures, 0u);  // not a failure
  auto d = CallWith(*link, "d");
  Outcome rd = Await(d);
  EXPECT_TRUE(rd.status.ok()) << rd.status.ToString();
  EXPECT_EQ(rd.reply, "re:d");
  EXPECT_EQ(link->stats().connects, 2u);
}

TEST_F(PeerLinkTest, AReplyFrameOverTheLimitFailsTheCallWithIOError) {
  ScriptedPeer peer([](const std::string&) { return Frame(std::string(2000, 'x')); });
  auto link = Link(peer.port(), 16, /*max_reply=*/1000);
  auto a = CallWith(*link, "big");
  Outcome ra = Await(a);
  EXPECT_TRUE(ra.status.Is(Status::Code::kIOError)) << ra.status.ToString();
  EXPECT_NE(ra.status.message().find("2000 bytes"), std::string::npos) << ra.status.ToString();
}

TEST_F(PeerLinkTest, AReplyNoCallWaitsForFailsTheLink) {
  ScriptedPeer peer([](const std::string& p) { return Frame(p) + Frame("stray"); });
  auto link = Link(peer.port());
  auto a = CallWith(*link, "one");
  // The call's own reply still counts; the stray one closes the link.
  EXPECT_EQ(Await(a).reply, "one");
  auto b = CallWith(*link, "two");
  Outcome rb = Await(b);
  EXPECT_TRUE(rb.status.ok()) << rb.status.ToString();
  EXPECT_EQ(link->stats().connects, 2u);
  EXPECT_GE(link->stats().failures, 1u);
}

TEST_F(PeerLinkTest, NothingListeningFailsTheCallUnavailable) {
  uint16_t port;
  {
    ScriptedPeer gone([](const std::string&) { return std::nullopt; });
    port = gone.port();
  }
  auto link = Link(port);
  auto a = CallWith(*link, "anyone?");
  Outcome ra = Await(a);
  EXPECT_TRUE(ra.status.Is(Status::Code::kUnavailable)) << ra.status.ToString();
  EXPECT_NE(ra.status.message().find("cannot connect"), std::string::npos) << ra.status.ToString();
  // A peer that is down is not a lost connection.
  EXPECT_EQ(link->stats().connect_failures, 1u);
  EXPECT_EQ(link->stats().failures, 0u);
}

// A port nothing listens on (it was bound a moment ago).
uint16_t FreedPort() {
  ScriptedPeer gone([](const std::string&) { return std::nullopt; });
  return gone.port();
}

bool Says(const Outcome& o, const std::string& words) {
  return o.status.message().find(words) != std::string::npos;
}

TEST_F(PeerLinkTest, AFailedConnectPausesConnectsAndCallsInThePauseFailAtOnce) {
  auto link = Link(FreedPort());  // pauses of 20 ms doubling up to 100 ms
  auto a = CallWith(*link, "1");
  Outcome first = Await(a);
  EXPECT_TRUE(first.status.Is(Status::Code::kUnavailable)) << first.status.ToString();
  EXPECT_TRUE(Says(first, "cannot connect")) << first.status.ToString();
  EXPECT_EQ(link->stats().connect_failures, 1u);

  // The clock has not moved: the next calls fail on the poller, without a connect.
  bool taken = false;
  auto b = CallWith(*link, "2", &taken);
  EXPECT_TRUE(taken);
  Outcome rb = Await(b);
  EXPECT_TRUE(rb.status.Is(Status::Code::kUnavailable)) << rb.status.ToString();
  EXPECT_TRUE(Says(rb, "cannot connect")) << rb.status.ToString();
  EXPECT_TRUE(Says(rb, "connecting again in 20 ms")) << rb.status.ToString();
  EXPECT_NE(rb.thread, std::this_thread::get_id());
  EXPECT_EQ(link->stats().connect_failures, 1u);
  EXPECT_EQ(link->stats().paused_failures, 1u);

  // Calls taken together in a pause all fail with the connect's error.
  auto c = CallWith(*link, "3");
  auto d = CallWith(*link, "4");
  for (auto* f : {&c, &d}) {
    Outcome r = Await(*f);
    EXPECT_TRUE(Says(r, "cannot connect")) << r.status.ToString();
    EXPECT_FALSE(Says(r, "lost with the connection")) << r.status.ToString();
  }
  EXPECT_EQ(link->stats().paused_failures, 3u);

  // Each failure in a row doubles the pause, up to its max.
  const int pauses[] = {20, 40, 80, 100, 100};
  for (size_t i = 0; i < std::size(pauses); ++i) {
    clock_.Advance(std::chrono::milliseconds(pauses[i] - 1));
    auto still = CallWith(*link, "paused");
    EXPECT_TRUE(Await(still).status.Is(Status::Code::kUnavailable));
    EXPECT_EQ(link->stats().connect_failures, i + 1) << "a connect within pause " << i;
    clock_.Advance(std::chrono::milliseconds(1));
    auto tries = CallWith(*link, "tries");
    Outcome rt = Await(tries);
    EXPECT_TRUE(Says(rt, "cannot connect")) << rt.status.ToString();
    EXPECT_FALSE(Says(rt, "connecting again")) << rt.status.ToString();
    EXPECT_EQ(link->stats().connect_failures, i + 2) << "no connect after pause " << i;
  }
  auto last = CallWith(*link, "paused");
  Outcome rl = Await(last);
  EXPECT_TRUE(Says(rl, "connecting again in 100 ms")) << rl.status.ToString();
  EXPECT_EQ(link->stats().failures, 0u);
  EXPECT_EQ(link->stats().connects, 0u);
}

TEST_F(PeerLinkTest, APeerBackAfterAPauseIsConnectedAndTheNextFailurePausesFromTheStart) {
  const uint16_t port = FreedPort();
  auto link = Link(port);
  auto down = CallWith(*link, "1");
  EXPECT_TRUE(Await(down).status.Is(Status::Code::kUnavailable));
  clock_.Advance(std::chrono::milliseconds(20));
  auto again = CallWith(*link, "2");
  EXPECT_TRUE(Await(again).status.Is(Status::Code::kUnavailable));  // the pause is now 40 ms
  EXPECT_EQ(link->stats().connect_failures, 2u);
  {
    ScriptedPeer back([](const std::string& p) { return Frame("re:" + p); }, port);
    auto paused = CallWith(*link, "3");  // back, but the link waits out its pause
    EXPECT_TRUE(Says(Await(paused), "connecting again in 40 ms"));
    EXPECT_EQ(back.accepted(), 0);
    clock_.Advance(std::chrono::milliseconds(40));
    auto up = CallWith(*link, "4");
    Outcome ru = Await(up);
    EXPECT_TRUE(ru.status.ok()) << ru.status.ToString();
    EXPECT_EQ(ru.reply, "re:4");
    EXPECT_EQ(link->stats().connects, 1u);
  }
  // The peer went away again, closing the connection; the poller sees it.
  PollUntil([&] { return link->stats().failures > 0; });
  EXPECT_EQ(link->stats().failures, 1u);
  // A first failure in a row again: the pause starts from 20 ms.
  clock_.Advance(std::chrono::milliseconds(1000));
  auto refused = CallWith(*link, "6");
  EXPECT_TRUE(Says(Await(refused), "cannot connect"));
  auto paused = CallWith(*link, "7");
  Outcome rp = Await(paused);
  EXPECT_TRUE(Says(rp, "connecting again in 20 ms")) << rp.status.ToString();
}

TEST_F(PeerLinkTest, LinksSharingAPauseAreAllPausedByOneFailedConnect) {
  const uint16_t port = FreedPort();
  PeerLinkOptions o;
  o.host = "127.0.0.1";
  o.port = port;
  o.io_timeout_ms = 500;
  o.connect_pause = std::make_shared<ConnectPause>(20, 100);
  auto first = poller_->NewLink(o);
  auto second = poller_->NewLink(o);
  auto a = CallWith(*first, "1");
  EXPECT_TRUE(Says(Await(a), "cannot connect"));
  // The other link has never connected, and does not try: the peer's pause holds.
  bool taken = false;
  auto b = CallWith(*second, "2", &taken);
  EXPECT_TRUE(taken) << "taken, to fail on the poller (not sent another way)";
  Outcome rb = Await(b);
  EXPECT_TRUE(Says(rb, "connecting again in 20 ms")) << rb.status.ToString();
  EXPECT_EQ(second->stats().connect_failures, 0u);
  EXPECT_EQ(second->stats().paused_failures, 1u);

  // After the pause the second link tries, and a peer that is back is
  // reached; that ends the pause for the first link too.
  ScriptedPeer back([](const std::string& p) { return Frame("re:" + p); }, port);
  clock_.Advance(std::chrono::milliseconds(20));
  auto c = CallWith(*second, "3");
  EXPECT_EQ(Await(c).reply, "re:3");
  // The first link connects at once (the scripted peer answers one
  // connection at a time, so its call then waits and times out).
  auto d = CallWith(*first, "4");
  PollUntil([&] { return first->stats().connects > 0; });
  EXPECT_EQ(first->stats().connects, 1u);
  PassDeadline();
  Outcome rd = Await(d);
  EXPECT_TRUE(rd.status.Is(Status::Code::kTimedOut)) << rd.status.ToString();
  EXPECT_EQ(first->stats().paused_failures, 0u);
}

TEST(ConnectPauseTest, AFailureWithinAPauseDoesNotLengthenTheNext) {
  ConnectPause pause(20, 500);
  const Clock::TimePoint t0{};
  EXPECT_FALSE(pause.Paused(t0));
  pause.Failed(t0, "refused");
  EXPECT_TRUE(pause.Paused(t0 + std::chrono::milliseconds(19)));
  // Another link's connect, made before the pause began, fails too.
  pause.Failed(t0 + std::chrono::milliseconds(1), "refused again");
  EXPECT_FALSE(pause.Paused(t0 + std::chrono::milliseconds(20))) << "still the first pause of 20 ms";
  EXPECT_NE(pause.Describe(t0).find("refused again"), std::string::npos);
  pause.Failed(t0 + std::chrono::milliseconds(20), "refused");  // the next failure in a row: 40 ms
  EXPECT_TRUE(pause.Paused(t0 + std::chrono::milliseconds(59)));
  EXPECT_FALSE(pause.Paused(t0 + std::chrono::milliseconds(60)));
  pause.Succeeded();
  EXPECT_FALSE(pause.Paused(t0 + std::chrono::milliseconds(21)));
  pause.Failed(t0 + std::chrono::milliseconds(100), "refused");  // from the start again
  EXPECT_TRUE(pause.Paused(t0 + std::chrono::milliseconds(119)));
  EXPECT_FALSE(pause.Paused(t0 + std::chrono::milliseconds(120)));
}

TEST_F(PeerLinkTest, WithoutAPauseEveryCallTriesAConnect) {
  auto link = Link(FreedPort(), 16, 1 << 20, 0, /*reconnect_pause_min_ms=*/0);
  for (int i = 0; i < 3; ++i) {
    auto a = CallWith(*link, "x");
    EXPECT_TRUE(Says(Await(a), "cannot connect"));
  }
  EXPECT_EQ(link->stats().connect_failures, 3u);
  EXPECT_EQ(link->stats().paused_failures, 0u);
}

TEST_F(PeerLinkTest, CallsBeyondMaxPendingAreRefusedWithoutCompletion) {
  ScriptedPeer peer([](const std::string&) { return std::nullopt; });
  auto link = Link(peer.port(), /*max_pending=*/2);
  bool taken = false;
  auto a = CallWith(*link, "1", &taken);
  EXPECT_TRUE(taken);
  auto b = CallWith(*link, "2", &taken);
  EXPECT_TRUE(taken);
  auto c = CallWith(*link, "3", &taken);
  EXPECT_FALSE(taken);
  EXPECT_EQ(link->pending(), 2u);
  PassDeadline();
  EXPECT_TRUE(Await(a).status.Is(Status::Code::kTimedOut));
  EXPECT_TRUE(Await(b).status.Is(Status::Code::kTimedOut));
}

TEST_F(PeerLinkTest, CallIfIdleTakesACallOnlyWhenNoneWaitsAndLeavesARefusedOneIntact) {
  // The first call's reply is held until the second call comes.
  ScriptedPeer peer([](const std::string& p) -> std::optional<std::string> {
    if (p == "first") return std::nullopt;
    if (p == "second") return Frame("re:first") + Frame("re:second");
    return Frame("re:" + p);
  });
  auto link = Link(peer.port());
  auto first = std::make_shared<std::promise<Outcome>>();
  std::string frame = Frame("first");
  PeerLink::Done done = [first](Status s, std::string reply) { first->set_value({s, reply, {}}); };
  ASSERT_TRUE(link->CallIfIdle(frame, done));

  auto second = std::make_shared<std::promise<Outcome>>();
  std::string frame2 = Frame("second");
  PeerLink::Done done2 = [second](Status s, std::string reply) { second->set_value({s, reply, {}}); };
  EXPECT_FALSE(link->CallIfIdle(frame2, done2));
  EXPECT_EQ(frame2, Frame("second"));  // left for another link
  ASSERT_TRUE(done2 != nullptr);
  EXPECT_EQ(link->pending(), 1u);
  EXPECT_EQ(link->stats().calls, 1u);

  // Call() queues behind the waiting one.
  ASSERT_TRUE(link->Call(std::move(frame2), std::move(done2)));
  auto f1 = first->get_future();
  auto f2 = second->get_future();
  EXPECT_EQ(Await(f1).reply, "re:first");
  EXPECT_EQ(Await(f2).reply, "re:second");
  // Idle again: taken.
  auto third = std::make_shared<std::promise<Outcome>>();
  std::string frame3 = Frame("third");
  PeerLink::Done done3 = [third](Status s, std::string reply) { third->set_value({s, reply, {}}); };
  ASSERT_TRUE(link->CallIfIdle(frame3, done3));
  auto f3 = third->get_future();
  EXPECT_EQ(Await(f3).reply, "re:third");
}

TEST_F(PeerLinkTest, StopFailsWaitingCallsAndLaterCallsAreRefused) {
  ScriptedPeer peer([](const std::string&) { return std::nullopt; });
  auto link = Link(peer.port());
  auto a = CallWith(*link, "waits");
  poller_->Stop();
  Outcome ra = Await(a);
  EXPECT_TRUE(ra.status.Is(Status::Code::kUnavailable)) << ra.status.ToString();
  EXPECT_NE(ra.status.message().find("stopping"), std::string::npos);
  bool taken = true;
  auto b = CallWith(*link, "late", &taken);
  EXPECT_FALSE(taken);
}

}  // namespace
}  // namespace monju
