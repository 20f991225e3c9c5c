#include "connect_from.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <thrift/transport/TTransportException.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace monju {

using apache::thrift::transport::TTransportException;

namespace {

struct AddrInfoDeleter {
  void operator()(addrinfo* a) const { freeaddrinfo(a); }
};
using AddrInfoPtr = std::unique_ptr<addrinfo, AddrInfoDeleter>;

AddrInfoPtr Resolve(const std::string& host, int port, bool passive) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_ADDRCONFIG | (passive ? AI_PASSIVE : 0);
  addrinfo* out = nullptr;
  const std::string service = std::to_string(port);
  int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &out);
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

}  // namespace

int ConnectFrom(const std::string& bind_host, const std::string& host, int port, int timeout_ms) {
  AddrInfoPtr remote = Resolve(host, port, false);
  AddrInfoPtr local = Resolve(bind_host, 0, true);
  const std::string where = host + ":" + std::to_string(port) + " from " + bind_host;
  int fd = ::socket(remote->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) throw TTransportException(TTransportException::NOT_OPEN, std::string("socket: ") + strerror(errno));
  FdGuard guard(fd);
  const addrinfo* src = local.get();
  while (src && src->ai_family != remote->ai_family) src = src->ai_next;
  if (!src) throw TTransportException(TTransportException::NOT_OPEN, "no address of " + bind_host + " fits " + host);
  if (::bind(fd, src->ai_addr, src->ai_addrlen) != 0)
    throw TTransportException(TTransportException::NOT_OPEN, "bind " + bind_host + ": " + strerror(errno));
  if (::connect(fd, remote->ai_addr, remote->ai_addrlen) != 0) {
    if (errno != EINPROGRESS)
      throw TTransportException(TTransportException::NOT_OPEN, "connect " + where + ": " + strerror(errno));
    pollfd p{fd, POLLOUT, 0};
    int n;
    do {
      n = ::poll(&p, 1, timeout_ms);
    } while (n < 0 && errno == EINTR);
    if (n == 0) throw TTransportException(TTransportException::TIMED_OUT, "connect " + where + ": timed out");
    int err = 0;
    socklen_t len = sizeof err;
    if (n < 0 || ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0)
      throw TTransportException(TTransportException::NOT_OPEN,
                                "connect " + where + ": " + strerror(err != 0 ? err : errno));
  }
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0)
    throw TTransportException(TTransportException::NOT_OPEN, std::string("fcntl: ") + strerror(errno));
  return guard.release();
}

}  // namespace monju
