#include "cluster_harness.h"

#include "clock/codec.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <thread>
#include <sys/stat.h>
#include <thrift/TApplicationException.h>
#include <thrift/TOutput.h>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/protocol/TMultiplexedProtocol.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TSocket.h>
#include <thrift/transport/TTransportException.h>

namespace monju::itest {

namespace {

using apache::thrift::TApplicationException;
using apache::thrift::TException;
using apache::thrift::protocol::TBinaryProtocol;
using apache::thrift::protocol::TMultiplexedProtocol;
using apache::thrift::transport::TFramedTransport;
using apache::thrift::transport::TSocket;
using apache::thrift::transport::TTransportException;

std::string EnvOr(const char* name, const char* fallback) {
  const char* v = getenv(name);
  return v != nullptr && *v != '\0' ? std::string(v) : std::string(fallback);
}

// Ports the kernel hands out for outgoing connections; listening ports chosen
// outside it cannot be taken by a peer's connect() while a node restarts.
std::pair<int, int> EphemeralRange() {
  std::ifstream in("/proc/sys/net/ipv4/ip_local_port_range");
  int lo = 32768, hi = 60999;
  if (in) in >> lo >> hi;
  return {lo, hi};
}

// Binds 127.0.0.1:port (0: any); returns the fd and the bound port, or -1.
int BindLoopback(uint16_t port, uint16_t* bound) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return -1;
  }
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  *bound = ntohs(a.sin_port);
  return fd;
}

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    std::string s = "killed by signal " + std::to_string(WTERMSIG(status)) + " (" + strsignal(WTERMSIG(status)) + ")";
    if (WCOREDUMP(status)) s += ", core dumped";
    return s;
  }
  return "status " + std::to_string(status);
}

// Reports a failure in a child between fork() and exec: the parent has
// threads, so only async-signal-safe calls are allowed there (write, strlen,
// _exit; not dprintf or strerror, which may take locks). errno as a number.
[[noreturn]] void ChildFail(const char* what, const char* arg, int err, int exit_code) {
  auto put = [](const char* text) { (void)!::write(2, text, strlen(text)); };
  char digits[16];
  int n = 0;
  unsigned v = static_cast<unsigned>(err);
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0 && n < 15);
  put(what);
  put(arg);
  put(": errno ");
  while (n > 0) (void)!::write(2, &digits[--n], 1);
  put("\n");
  _exit(exit_code);
}

// In a forked child: a clean signal state, no inherited descriptors beyond
// 0-2, and death with the test process.
void PrepareChild(pid_t parent) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(125);
  sigset_t all;
  sigemptyset(&all);
  sigprocmask(SIG_SETMASK, &all, nullptr);
  for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGCHLD}) signal(sig, SIG_DFL);
  close_range(3, ~0U, 0);
}

std::vector<char*> MakeArgv(const std::string& path, const std::vector<std::string>& args,
                            std::vector<std::string>* storage) {
  storage->clear();
  storage->push_back(path);
  for (const auto& a : args) storage->push_back(a);
  std::vector<char*> argv;
  for (auto& s : *storage) argv.push_back(s.data());
  argv.push_back(nullptr);
  return argv;
}

std::string TailLines(const std::string& text, int lines) {
  std::vector<std::string> all;
  std::stringstream ss(text);
  std::string line;
  while (std::getline(ss, line)) all.push_back(line);
  size_t from = all.size() > static_cast<size_t>(lines) ? all.size() - lines : 0;
  std::string out;
  for (size_t k = from; k < all.size(); ++k) out += all[k] + "\n";
  return out;
}

}  // namespace

std::string MonjudPath() { return EnvOr("MONJUD", ""); }
std::string CliPath() { return EnvOr("MONJU_CLI", ""); }

std::vector<uint16_t> PickFreePorts(int count) {
  auto [eph_lo, eph_hi] = EphemeralRange();
  (void)eph_hi;
  int hi = std::min(eph_lo, 32768) - 1;
  int lo = 15000;
  std::mt19937 rng(static_cast<uint32_t>(getpid()) * 2654435761u ^
                   static_cast<uint32_t>(Clock::now().time_since_epoch().count()));
  std::vector<int> fds;
  std::vector<uint16_t> ports;
  std::set<uint16_t> seen;
  for (int attempt = 0; static_cast<int>(ports.size()) < count && attempt < 2000; ++attempt) {
    uint16_t want = 0;
    if (hi > lo + 100 && attempt < 1000) want = static_cast<uint16_t>(std::uniform_int_distribution<int>(lo, hi)(rng));
    uint16_t got = 0;
    int fd = BindLoopback(want, &got);
    if (fd < 0) continue;
    if (!seen.insert(got).second) {
      close(fd);
      continue;
    }
    fds.push_back(fd);  // held until all are picked: they stay distinct
    ports.push_back(got);
  }
  for (int fd : fds) close(fd);
  return ports;
}

// ---------------------------------------------------------------- TempDir

TempDir::TempDir(const std::string& prefix) {
  std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) throw std::runtime_error("mkdtemp: " + std::string(strerror(errno)));
  path_ = buf.data();
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  if (getenv("MONJU_KEEP_TEST_DIRS") != nullptr) {
    std::cerr << "[harness] keeping " << path_ << " (MONJU_KEEP_TEST_DIRS is set)\n";
    return;
  }
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

// ---------------------------------------------------------------- processes

std::string ProcessResult::Describe() const {
  std::ostringstream s;
  if (!started) s << "did not start; ";
  if (timed_out) s << "TIMED OUT (killed); ";
  if (exited)
    s << "exit code " << exit_code;
  else
    s << "killed by signal " << signal;
  s << " after " << elapsed.count() << " ms\n--- stdout ---\n"
    << out << "\n--- stderr ---\n"
    << err << "\n-------------";
  return s.str();
}

ProcessResult RunProcess(const std::string& path, const std::vector<std::string>& args,
                         std::chrono::milliseconds timeout) {
  ProcessResult result;
  auto start = Clock::now();
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) return result;
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    close(out_pipe[0]);
    close(out_pipe[1]);
    return result;
  }
  std::vector<std::string> storage;
  std::vector<char*> argv = MakeArgv(path, args, &storage);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]}) close(fd);
    return result;
  }
  if (pid == 0) {
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    PrepareChild(parent);
    execv(argv[0], argv.data());
    ChildFail("execv ", argv[0], errno, 127);
  }
  result.started = true;
  close(out_pipe[1]);
  close(err_pipe[1]);
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  int open_fds = 2;
  auto deadline = start + timeout;
  while (open_fds > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      result.timed_out = true;
      kill(pid, SIGKILL);
      break;
    }
    int n = poll(fds, 2, static_cast<int>(std::min<long long>(left, 200)));
    if (n < 0 && errno != EINTR) break;
    for (int k = 0; k < 2; ++k) {
      if (fds[k].fd < 0 || fds[k].revents == 0) continue;
      char buf[8192];
      ssize_t got = read(fds[k].fd, buf, sizeof buf);
      if (got > 0) {
        sinks[k]->append(buf, static_cast<size_t>(got));
      } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
        close(fds[k].fd);
        fds[k].fd = -1;
        --open_fds;
      }
    }
  }
  // Output closed: the process is exiting (or was killed); still bound the wait.
  int status = 0;
  while (true) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) break;
    if (Clock::now() > deadline && !result.timed_out) {
      result.timed_out = true;
      kill(pid, SIGKILL);
    }
    usleep(5000);
  }
  for (auto& f : fds)
    if (f.fd >= 0) close(f.fd);
  result.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  if (WIFEXITED(status)) {
    result.exited = true;
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.signal = WTERMSIG(status);
  }
  return result;
}

ProcessResult RunCli(const std::vector<std::string>& args, std::chrono::milliseconds timeout) {
  return RunProcess(CliPath(), args, timeout);
}

std::unique_ptr<MonjuKVClient> ConnectClient(uint16_t port, int timeout_ms) {
  // Thrift prints every failed connect to stderr; the caller gets the
  // exception anyway, and readiness polling would flood the output.
  static const bool quiet = [] {
    apache::thrift::GlobalOutput.setOutputFunction([](const char*) {});
    return true;
  }();
  (void)quiet;
  auto socket = std::make_shared<TSocket>("127.0.0.1", port);
  socket->setConnTimeout(timeout_ms);
  socket->setRecvTimeout(timeout_ms);
  socket->setSendTimeout(timeout_ms);
  auto transport = std::make_shared<TFramedTransport>(socket);
  auto protocol = std::make_shared<TBinaryProtocol>(transport);
  transport->open();
  return std::make_unique<MonjuKVClient>(protocol);
}

bool PollUntil(const std::function<bool()>& fn, std::chrono::milliseconds timeout,
               std::chrono::milliseconds interval) {
  auto deadline = Clock::now() + timeout;
  while (true) {
    if (fn()) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(interval);
  }
}

// ---------------------------------------------------------------- calls

const char* OutcomeName(Outcome o) {
  switch (o) {
    case Outcome::kOk: return "OK";
    case Outcome::kInvalidRequest: return "InvalidRequest";
    case Outcome::kUnavailable: return "Unavailable";
    case Outcome::kQuorumFailed: return "QuorumFailed";
    case Outcome::kTimedOut: return "TimedOut";
    case Outcome::kTransport: return "TTransportException";
    case Outcome::kOther: return "other exception";
  }
  return "?";
}

std::string DescribeException(const std::exception& e) {
  if (auto* x = dynamic_cast<const api::InvalidRequest*>(&e)) return "InvalidRequest: " + x->why;
  if (auto* x = dynamic_cast<const api::Unavailable*>(&e))
    return "Unavailable: " + x->why + " (needed " + std::to_string(x->needed) + ", alive " + std::to_string(x->alive) + ")";
  if (auto* x = dynamic_cast<const api::QuorumFailed*>(&e))
    return "QuorumFailed: " + x->why + " (needed " + std::to_string(x->needed) + ", acked " + std::to_string(x->acked) + ")";
  if (auto* x = dynamic_cast<const api::TimedOut*>(&e)) return "TimedOut: " + x->why;
  if (dynamic_cast<const TTransportException*>(&e)) return std::string("TTransportException: ") + e.what();
  if (dynamic_cast<const TApplicationException*>(&e)) return std::string("TApplicationException: ") + e.what();
  return std::string("exception: ") + e.what();
}

CallResult Call(const std::function<void()>& fn) {
  CallResult r;
  auto start = Clock::now();
  try {
    fn();
  } catch (const api::InvalidRequest& e) {
    r.outcome = Outcome::kInvalidRequest;
    r.message = DescribeException(e);
  } catch (const api::Unavailable& e) {
    r.outcome = Outcome::kUnavailable;
    r.message = DescribeException(e);
  } catch (const api::QuorumFailed& e) {
    r.outcome = Outcome::kQuorumFailed;
    r.message = DescribeException(e);
  } catch (const api::TimedOut& e) {
    r.outcome = Outcome::kTimedOut;
    r.message = DescribeException(e);
  } catch (const TTransportException& e) {
    r.outcome = Outcome::kTransport;
    r.message = DescribeException(e);
  } catch (const std::exception& e) {
    r.outcome = Outcome::kOther;
    r.message = DescribeException(e);
  }
  r.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  return r;
}

CallResult TryPut(const LocalCluster& c, int i, const std::string& pk, const std::string& sk, const std::string& value,
                  const std::string& context, int32_t w, api::WriteResult* out) {
  return Call([&] {
    auto client = c.Client(i);
    api::WriteResult res;
    client->put(res, pk, sk, value, context, w);
    if (out != nullptr) *out = std::move(res);
  });
}

CallResult TryGet(const LocalCluster& c, int i, const std::string& pk, const std::string& sk, int32_t r,
                  api::GetResult* out) {
  return Call([&] {
    auto client = c.Client(i);
    api::GetResult res;
    client->get(res, pk, sk, r);
    if (out != nullptr) *out = std::move(res);
  });
}

std::string Printable(const std::string& bytes, size_t max) {
  std::string s;
  for (size_t k = 0; k < bytes.size() && k < max; ++k) {
    unsigned char ch = static_cast<unsigned char>(bytes[k]);
    if (ch >= 0x20 && ch < 0x7f && ch != '\\') {
      s += static_cast<char>(ch);
    } else {
      char buf[8];
      snprintf(buf, sizeof buf, "\\x%02x", ch);
      s += buf;
    }
  }
  if (bytes.size() > max) s += "...(" + std::to_string(bytes.size()) + " bytes)";
  return s;
}

// ---------------------------------------------------------------- admin, replica, resources

namespace {

// A framed binary protocol to 127.0.0.1:port, multiplexed as `service`.
std::shared_ptr<apache::thrift::protocol::TProtocol> OpenMultiplexed(uint16_t port, const std::string& service,
                                                                     int timeout_ms) {
  // As in ConnectClient: failed connects are reported by the exception only.
  static const bool quiet = [] {
    apache::thrift::GlobalOutput.setOutputFunction([](const char*) {});
    return true;
  }();
  (void)quiet;
  auto socket = std::make_shared<TSocket>("127.0.0.1", port);
  socket->setConnTimeout(timeout_ms);
  socket->setRecvTimeout(timeout_ms);
  socket->setSendTimeout(timeout_ms);
  auto transport = std::make_shared<TFramedTransport>(socket);
  auto protocol = std::make_shared<TBinaryProtocol>(transport);
  transport->open();
  return std::make_shared<TMultiplexedProtocol>(protocol, service);
}

}  // namespace

AdminClient::AdminClient(const LocalCluster& c, int i, int timeout_ms) : AdminClient(c.port(i), timeout_ms) {}

AdminClient::AdminClient(uint16_t port, int timeout_ms)
    : client_(std::make_shared<admin::MonjuAdminClient>(OpenMultiplexed(port, "admin", timeout_ms))) {}

admin::NodeStatus AdminClient::Status() {
  admin::NodeStatus s;
  client_->status(s);
  return s;
}

std::map<std::string, int64_t> AdminClient::Stats() {
  std::map<std::string, int64_t> s;
  client_->stats(s);
  return s;
}

void AdminClient::SetLinkFaults(const std::map<std::string, admin::LinkFaultSpec>& faults) {
  client_->set_link_faults(faults);
}

bool TryStats(const LocalCluster& c, int i, std::map<std::string, int64_t>* out, std::string* error) {
  CallResult r = Call([&] { *out = AdminClient(c, i).Stats(); });
  if (!r.ok() && error != nullptr) *error = r.message;
  return r.ok();
}

bool TryStatus(const LocalCluster& c, int i, admin::NodeStatus* out, std::string* error) {
  CallResult r = Call([&] { *out = AdminClient(c, i).Status(); });
  if (!r.ok() && error != nullptr) *error = r.message;
  return r.ok();
}

int64_t StatOf(const std::map<std::string, int64_t>& stats, const std::string& name) {
  auto it = stats.find(name);
  return it == stats.end() ? 0 : it->second;
}

int64_t SumStat(LocalCluster& c, const std::string& name) {
  int64_t total = 0;
  for (int i = 0; i < c.size(); ++i) {
    if (!c.IsRunning(i)) continue;
    std::map<std::string, int64_t> stats;
    if (TryStats(c, i, &stats)) total += StatOf(stats, name);
  }
  return total;
}

std::string PeerState(const LocalCluster& c, int observer, const std::string& peer) {
  admin::NodeStatus status;
  if (!TryStatus(c, observer, &status)) return "";
  for (const auto& p : status.peers)
    if (p.id == peer) return p.state;
  return "";
}

::testing::AssertionResult WaitPeerState(const LocalCluster& c, int observer, const std::string& peer,
                                         const std::string& state, std::chrono::milliseconds timeout) {
  std::string last;
  if (PollUntil([&] { return (last = PeerState(c, observer, peer)) == state; }, timeout, 20ms))
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << c.id(observer) << " still sees " << peer << " as '" << last
                                       << "' after " << timeout.count() << " ms (waited for '" << state << "')";
}

::testing::AssertionResult WaitAllSee(LocalCluster& c, int peer_index, const std::string& state,
                                      std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  for (int i = 0; i < c.size(); ++i) {
    if (i == peer_index || !c.IsRunning(i)) continue;
    auto left = std::max<std::chrono::milliseconds>(
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()), 1ms);
    auto r = WaitPeerState(c, i, c.id(peer_index), state, left);
    if (!r) return r;
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult WaitHintsDrained(LocalCluster& c, std::chrono::milliseconds timeout) {
  std::string last;
  bool drained = PollUntil(
      [&] {
        last.clear();
        bool all = true;
        for (int i = 0; i < c.size(); ++i) {
          if (!c.IsRunning(i)) continue;
          std::map<std::string, int64_t> stats;
          std::string error;
          if (!TryStats(c, i, &stats, &error)) {
            last += c.id(i) + ": stats failed (" + error + "); ";
            all = false;
            continue;
          }
          int64_t pending = StatOf(stats, "hints.pending");
          last += c.id(i) + ": " + std::to_string(pending) + " pending; ";
          if (pending != 0) all = false;
        }
        return all;
      },
      timeout, 50ms);
  if (drained) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "hints not drained after " << timeout.count() << " ms: " << last;
}

ReplicaClient::ReplicaClient(const LocalCluster& c, int i, int timeout_ms) {
  fingerprint_ = AdminClient(c, i, timeout_ms).Status().fingerprint;
  client_ = std::make_shared<rpc::MonjuReplicaClient>(OpenMultiplexed(c.peer_port(i), "replica", timeout_ms));
}

SiblingSet ReplicaClient::Read(const std::string& pk, const std::string& sk) {
  std::string encoded;
  client_->read(encoded, fingerprint_, pk, sk, rpc::EpochStamp());  // unstamped: never fenced
  auto decoded = DecodeSiblings(encoded);
  if (!decoded.ok())
    throw std::runtime_error("replica read of " + Printable(pk) + "/" + Printable(sk) +
                             " does not decode: " + decoded.status().ToString());
  return std::move(decoded.value());
}

std::vector<rpc::ApplyOutcome> ReplicaClient::ApplyMany(const std::vector<rpc::KeyedVersion>& items) {
  std::vector<rpc::ApplyOutcome> outcomes;
  client_->apply_many(outcomes, fingerprint_, items, rpc::EpochStamp());
  return outcomes;
}

std::vector<rpc::ReadOutcome> ReplicaClient::ReadMany(const std::vector<std::pair<std::string, std::string>>& keys) {
  std::vector<rpc::KeyRef> wire;
  for (const auto& [pk, sk] : keys) {
    rpc::KeyRef k;
    k.pk = pk;
    k.sk = sk;
    wire.push_back(std::move(k));
  }
  std::vector<rpc::ReadOutcome> outcomes;
  client_->read_many(outcomes, fingerprint_, wire, rpc::EpochStamp());
  return outcomes;
}

std::map<std::string, SiblingSet> ReplicaClient::ScanPk(const std::string& pk) {
  std::map<std::string, SiblingSet> out;
  std::string start;
  bool exclusive = false;
  for (;;) {
    rpc::ScanReply reply;
    client_->scan(reply, fingerprint_, pk, "", start, exclusive, 10000, true, rpc::EpochStamp());  // never fenced
    for (auto& item : reply.items) {
      auto decoded = DecodeSiblings(item.siblings);
      if (!decoded.ok())
        throw std::runtime_error("replica scan of " + Printable(pk) + " does not decode: " +
                                 decoded.status().ToString());
      out[item.sk] = std::move(decoded.value());
    }
    if (!reply.more || reply.items.empty()) return out;
    start = reply.items.back().sk;
    exclusive = true;
  }
}

SiblingSet ReplicaRead(const LocalCluster& c, int i, const std::string& pk, const std::string& sk) {
  return ReplicaClient(c, i).Read(pk, sk);
}

::testing::AssertionResult TryReplicaRead(const LocalCluster& c, int i, const std::string& pk, const std::string& sk,
                                          SiblingSet* out) {
  CallResult r = Call([&] { *out = ReplicaRead(c, i, pk, sk); });
  if (r.ok()) return ::testing::AssertionSuccess();
  std::string why = r.message;
  return ::testing::AssertionFailure() << "replica read on " << c.id(i) << " of " << Printable(pk) << "/"
                                       << Printable(sk) << ": " << why;
}

std::string DescribeSiblings(const SiblingSet& s) {
  if (s.empty()) return "absent";
  if (s.AllTombstones()) return "tombstone";
  std::string out = "live [";
  bool first = true;
  for (const auto& v : s.LiveValues()) {
    out += (first ? "" : ", ") + Printable(v, 40);
    first = false;
  }
  out += "]";
  if (s.size() > s.LiveValues().size()) out += " + tombstone";
  return out;
}

int64_t VmRssKiB(pid_t pid) { return ProcStatusKiB(pid, "VmRSS:"); }
int64_t VmHwmKiB(pid_t pid) { return ProcStatusKiB(pid, "VmHWM:"); }

int64_t ProcStatusKiB(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field, 0) == 0) {
      std::stringstream ss(line.substr(field.size()));
      int64_t kib = -1;
      ss >> kib;
      return kib;
    }
  }
  return -1;
}

DirUsage DirectoryUsage(const std::string& path) {
  DirUsage u;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(path, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    struct stat st {};
    if (lstat(it->path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    u.apparent += static_cast<uint64_t>(st.st_size);
    u.allocated += static_cast<uint64_t>(st.st_blocks) * 512;
  }
  return u;
}

std::string LatencySummary::ToString() const {
  char buf[160];
  snprintf(buf, sizeof buf, "n=%zu p50=%.2f ms p99=%.2f ms max=%.2f ms mean=%.2f ms", count, p50_ms, p99_ms, max_ms,
           mean_ms);
  return buf;
}

LatencySummary Summarize(std::vector<std::chrono::microseconds> samples) {
  LatencySummary s;
  s.count = samples.size();
  if (samples.empty()) return s;
  std::sort(samples.begin(), samples.end());
  auto at = [&](double q) {
    size_t idx = static_cast<size_t>(q * static_cast<double>(samples.size() - 1) + 0.5);
    return static_cast<double>(samples[std::min(idx, samples.size() - 1)].count()) / 1000.0;
  };
  s.p50_ms = at(0.50);
  s.p99_ms = at(0.99);
  s.max_ms = static_cast<double>(samples.back().count()) / 1000.0;
  double sum = 0;
  for (auto v : samples) sum += static_cast<double>(v.count());
  s.mean_ms = sum / static_cast<double>(samples.size()) / 1000.0;
  return s;
}

// ---------------------------------------------------------------- LocalCluster

LocalCluster::LocalCluster(ClusterOptions options) : options_(std::move(options)) {
  // A client port and a peer port per node, and two for the phantom member.
  const int wanted = 2 * options_.nodes + 2;
  auto ports = PickFreePorts(wanted);
  if (static_cast<int>(ports.size()) != wanted) throw std::runtime_error("could not find free ports");
  for (int i = 0; i < options_.nodes; ++i) {
    Node n;
    n.port = ports[2 * i];
    n.peer_port = ports[2 * i + 1];
    nodes_.push_back(n);
  }
  phantom_port_ = ports[wanted - 2];
  phantom_peer_port_ = ports[wanted - 1];
}

LocalCluster::~LocalCluster() {
  for (int i = 0; i < size(); ++i)
    if (nodes_[i].pid > 0) Kill(i);
}

std::string LocalCluster::peers_flag() const {
  std::string s;
  for (int i = 0; i < size(); ++i) {
    if (i > 0) s += ",";
    s += id(i) + "=" + addr(i) + "/" + std::to_string(peer_port(i));
  }
  return s;
}

std::string LocalCluster::PeersFlagFor(int i) const {
  if (!options_.nodes_seeing_a_phantom.contains(i)) return peers_flag();
  return peers_flag() + "," + id(size()) + "=127.0.0.1:" + std::to_string(phantom_port_) + "/" +
         std::to_string(phantom_peer_port_);
}

std::vector<std::string> LocalCluster::Args(int i) const {
  std::vector<std::string> a = {"--id",   id(i),       "--listen", addr(i),
                                "--data", data_dir(i), "--peers",  PeersFlagFor(i),
                                "-N",     std::to_string(options_.n),
                                "-R",     std::to_string(options_.r),
                                "-W",     std::to_string(options_.w),
                                "--request-timeout-ms", std::to_string(options_.request_timeout_ms)};
  if (options_.base_args) a = options_.base_args(i);
  if (options_.map_size_mb > 0) {
    a.push_back("--map-size-mb");
    a.push_back(std::to_string(options_.map_size_mb));
  }
  std::string level = options_.log_level.empty() ? EnvOr("MONJU_TEST_LOG_LEVEL", "") : options_.log_level;
  if (!level.empty()) {
    a.push_back("--log-level");
    a.push_back(level);
  }
  for (const auto& f : options_.extra_flags) a.push_back(f);
  if (auto it = options_.node_flags.find(i); it != options_.node_flags.end())
    for (const auto& f : it->second) a.push_back(f);
  return a;
}

::testing::AssertionResult LocalCluster::Spawn(int i) {
  std::string path = MonjudPath();
  if (path.empty()) return ::testing::AssertionFailure() << "MONJUD is not set (run through meson test)";
  if (nodes_.at(i).pid > 0) return ::testing::AssertionFailure() << id(i) << " is already running";
  int log = open(log_path(i).c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log < 0) return ::testing::AssertionFailure() << "open " << log_path(i) << ": " << strerror(errno);
  std::vector<std::string> args = Args(i);
  {
    std::string banner = "==== [harness] starting " + path;
    for (const auto& a : args) banner += " " + a;
    banner += "\n";
    (void)!write(log, banner.data(), banner.size());
  }
  std::vector<std::string> storage;
  std::vector<char*> argv = MakeArgv(path, args, &storage);
  std::optional<std::pair<uint64_t, uint64_t>> limit;
  if (auto it = options_.node_open_file_limit.find(i); it != options_.node_open_file_limit.end()) limit = it->second;
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    close(log);
    return ::testing::AssertionFailure() << "fork: " << strerror(errno);
  }
  if (pid == 0) {
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    dup2(log, 1);
    dup2(log, 2);
    PrepareChild(parent);
    if (limit) {
      const rlimit lim{static_cast<rlim_t>(limit->first), static_cast<rlim_t>(limit->second)};
      if (setrlimit(RLIMIT_NOFILE, &lim) != 0) ChildFail("setrlimit(RLIMIT_NOFILE)", "", errno, 126);
    }
    execv(argv[0], argv.data());
    ChildFail("execv ", argv[0], errno, 127);
  }
  close(log);
  nodes_[i].pid = pid;
  nodes_[i].exit_description.clear();
  return ::testing::AssertionSuccess();
}

void LocalCluster::Reap(int i, int status) {
  nodes_[i].pid = -1;
  nodes_[i].exit_description = DescribeWaitStatus(status);
  int log = open(log_path(i).c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log >= 0) {
    std::string line = "==== [harness] " + id(i) + " " + nodes_[i].exit_description + "\n";
    (void)!write(log, line.data(), line.size());
    close(log);
  }
}

bool LocalCluster::IsRunning(int i) {
  pid_t pid = nodes_.at(i).pid;
  if (pid <= 0) return false;
  int status = 0;
  pid_t r = waitpid(pid, &status, WNOHANG);
  if (r == 0) return true;
  if (r == pid) Reap(i, status);
  return false;
}

::testing::AssertionResult LocalCluster::WaitReady(int i, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  std::string last;
  while (true) {
    if (!IsRunning(i))
      return ::testing::AssertionFailure() << id(i) << " exited before it was ready: " << ExitDescription(i)
                                           << "\n--- " << log_path(i) << " ---\n"
                                           << LogTail(i);
    CallResult r = Call([&] {
      auto client = Client(i, 1000);
      api::GetResult res;
      client->get(res, "__ready__", "__ready__", 1);
    });
    // Any answer from the node means it is serving; only a connection
    // problem means "not yet".
    if (r.outcome != Outcome::kTransport) return ::testing::AssertionSuccess();
    last = r.message;
    if (Clock::now() >= deadline)
      return ::testing::AssertionFailure() << id(i) << " not ready after " << timeout.count()
                                           << " ms; last error: " << last << "\n--- " << log_path(i)
                                           << " ---\n"
                                           << LogTail(i);
    std::this_thread::sleep_for(25ms);
  }
}

::testing::AssertionResult LocalCluster::WaitAllConnected(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  for (int i = 0; i < size(); ++i) {
    if (!IsRunning(i)) continue;
    CallResult last;
    while (true) {
      last = TryGet(*this, i, "__ready__", "__ready__", options_.n);
      if (last.ok()) break;
      if (Clock::now() >= deadline)
        return ::testing::AssertionFailure() << id(i) << " could not read with r=" << options_.n << " within "
                                             << timeout.count() << " ms of start; last: " << OutcomeName(last.outcome)
                                             << " " << last.message << "\n"
                                             << AllLogTails();
      std::this_thread::sleep_for(25ms);
    }
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult LocalCluster::StartNode(int i) {
  auto spawned = Spawn(i);
  if (!spawned) return spawned;
  return WaitReady(i, options_.ready_timeout);
}

::testing::AssertionResult LocalCluster::Start() {
  for (int i = 0; i < size(); ++i) {
    auto s = Spawn(i);
    if (!s) return s;
  }
  for (int i = 0; i < size(); ++i) {
    auto s = WaitReady(i, options_.ready_timeout);
    if (!s) return s;
  }
  if (options_.wait_all_connected) return WaitAllConnected(options_.ready_timeout);
  return ::testing::AssertionSuccess();
}

void LocalCluster::Kill(int i) {
  pid_t pid = nodes_.at(i).pid;
  if (pid <= 0) return;
  kill(pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  Reap(i, status);
}

::testing::AssertionResult LocalCluster::Stop(int i, std::chrono::milliseconds grace) {
  pid_t pid = nodes_.at(i).pid;
  if (pid <= 0) return ::testing::AssertionFailure() << id(i) << " is not running";
  auto start = Clock::now();
  kill(pid, SIGTERM);
  int status = 0;
  while (true) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      Reap(i, status);
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
      if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return ::testing::AssertionSuccess();
      return ::testing::AssertionFailure() << id(i) << " did not exit cleanly on SIGTERM: " << ExitDescription(i)
                                           << " after " << ms << " ms\n"
                                           << LogTail(i);
    }
    if (Clock::now() - start > grace) {
      Kill(i);
      return ::testing::AssertionFailure() << id(i) << " still running " << grace.count()
                                           << " ms after SIGTERM; killed\n"
                                           << LogTail(i);
    }
    std::this_thread::sleep_for(10ms);
  }
}

::testing::AssertionResult LocalCluster::Restart(int i) {
  ::testing::AssertionResult stopped = ::testing::AssertionSuccess();
  if (IsRunning(i)) stopped = Stop(i);
  auto started = StartNode(i);
  if (!stopped) return stopped;
  return started;
}

std::string LocalCluster::ReadLog(int i) const {
  std::ifstream in(log_path(i), std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string LocalCluster::LogTail(int i, int lines) const { return TailLines(ReadLog(i), lines); }

std::string LocalCluster::AllLogTails(int lines) const {
  std::string s;
  for (int i = 0; i < size(); ++i) s += "---- " + log_path(i) + " (last " + std::to_string(lines) + " lines) ----\n" + LogTail(i, lines);
  return s;
}

}  // namespace monju::itest
