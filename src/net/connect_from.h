// ConnectFrom: a TCP connection from a chosen local address.
//
// Thrift's TSocket cannot bind before it connects, so a node that listens on
// one of several addresses would otherwise connect to its peers from the
// kernel's default source. Binding the listen address makes every
// connection name the node it comes from (packet filters in chaos runs rely
// on it, and so do firewalls).
#pragma once

#include <netdb.h>

#include <string>

namespace monju {

// A connected, blocking socket from bind_host (port chosen by the kernel) to
// host:port, within timeout_ms. The caller owns the descriptor. Throws
// apache::thrift::transport::TTransportException: NOT_OPEN when the address
// cannot be resolved, bound or reached, TIMED_OUT when the connect timed out.
// Every address host resolves to is tried in order (a name may give ::1
// before 127.0.0.1, say, while the peer listens on one of them), each from
// a bind_host address of its family, until one connects; timeout_ms bounds
// them all. The error names what each attempt met. An empty bind_host leaves
// the source address to the kernel.
int ConnectFrom(const std::string& bind_host, const std::string& host, int port, int timeout_ms);

// The same over resolved lists (each linked by ai_next); `where` names the
// target in errors. For tests and callers that resolve themselves.
int ConnectFromAny(const addrinfo* local, const addrinfo* remote, int timeout_ms, const std::string& where);

}  // namespace monju
