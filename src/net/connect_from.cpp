#include "connect_from.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <thrift/transport/TTransportException.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>

namespace monju {

using apache::thrift::transport::TTransportException;

namespace {

struct AddrInfoDeleter {
  void operator()(addrinfo* a) const { freeaddrinfo(a); }
};
using AddrInfoPtr = std::unique_ptr<addrinfo, AddrInfoDeleter>;

// A passive "" resolves to the wildcard addresses (binding one is the
// kernel's choice of source).
AddrInfoPtr Resolve(const std::string& host, int port, bool passive) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  const char* node = passive && host.empty() ? nullptr : host.c_str();
  // Both wildcards, whatever addresses are configured.
  hints.ai_flags = (node ? AI_ADDRCONFIG : 0) | (passive ? AI_PASSIVE : 0);
  addrinfo* out = nullptr;
  const std::string service = std::to_string(port);
  int rc = getaddrinfo(node, service.c_str(), &hints, &out);
  if (rc != 0) throw TTransportException(TTransportException::NOT_OPEN, "cannot resolve " + host + ": " + gai_strerror(rc));
  return AddrInfoPtr(out);
}

// Closes the descriptor unless released.
class FdGuard {
 public:
  explicit FdGuard(int fd) : fd_(fd) {}
  ~FdGuard() {
    if (fd_ >= 0) ::close(fd_);
  }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

// One attempt at `remote` from `local`, within `timeout_ms`: the connected
// (still non-blocking) descriptor, or -1 with *error set (and *timed_out
// when the time ran out).
int TryConnect(const addrinfo& local, const addrinfo& remote, int timeout_ms, std::string* error, bool* timed_out) {
  *timed_out = false;
  int fd = ::socket(remote.ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    *error = std::string("socket: ") + strerror(errno);
    return -1;
  }
  FdGuard guard(fd);
  if (::bind(fd, local.ai_addr, local.ai_addrlen) != 0) {
    *error = std::string("bind: ") + strerror(errno);
    return -1;
  }
  if (::connect(fd, remote.ai_addr, remote.ai_addrlen) != 0) {
    if (errno != EINPROGRESS) {
      *error = strerror(errno);
      return -1;
    }
    pollfd p{fd, POLLOUT, 0};
    int n;
    do {
      n = ::poll(&p, 1, timeout_ms);
    } while (n < 0 && errno == EINTR);
    if (n == 0) {
      *error = "timed out";
      *timed_out = true;
      return -1;
    }
    int err = 0;
    socklen_t len = sizeof err;
    if (n < 0 || ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
      *error = strerror(err != 0 ? err : errno);
      return -1;
    }
  }
  return guard.release();
}

}  // namespace

int ConnectFromAny(const addrinfo* local, const addrinfo* remote, int timeout_ms, const std::string& where) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  std::string errors;
  bool all_timed_out = true;
  int tried = 0;
  for (const addrinfo* r = remote; r; r = r->ai_next) {
    const addrinfo* src = local;
    while (src && src->ai_family != r->ai_family) src = src->ai_next;
    if (!src) continue;  // no local address of this family
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (tried > 0 && left <= 0) break;
    ++tried;
    std::string error;
    bool timed_out = false;
    int fd = TryConnect(*src, *r, static_cast<int>(std::max<int64_t>(left, 1)), &error, &timed_out);
    if (fd >= 0) {
      FdGuard guard(fd);
      int flags = ::fcntl(fd, F_GETFL);
      if (flags < 0 || ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0)
        throw TTransportException(TTransportException::NOT_OPEN, std::string("fcntl: ") + strerror(errno));
      return guard.release();
    }
    all_timed_out = all_timed_out && timed_out;
    errors += (errors.empty() ? "" : "; ") + error;
  }
  if (tried == 0) throw TTransportException(TTransportException::NOT_OPEN, "connect " + where + ": no local address of a family the remote has");
  throw TTransportException(all_timed_out ? TTransportException::TIMED_OUT : TTransportException::NOT_OPEN,
                            "connect " + where + ": " + errors +
                                (tried > 1 ? " (" + std::to_string(tried) + " addresses tried)" : ""));
}

int ConnectFrom(const std::string& bind_host, const std::string& host, int port, int timeout_ms) {
  AddrInfoPtr remote = Resolve(host, port, false);
  AddrInfoPtr local = Resolve(bind_host, 0, true);
  return ConnectFromAny(local.get(), remote.get(), timeout_ms,
                        host + ":" + std::to_string(port) + (bind_host.empty() ? "" : " from " + bind_host));
}

}  // namespace monju
