// ConnectFrom: a TCP connection from a chosen local address.
//
// Thrift's TSocket cannot bind before it connects, so a node that listens on
// one of several addresses would otherwise connect to its peers from the
// kernel's default source. Binding the listen address makes every
// connection name the node it comes from (packet filters in chaos runs rely
// on it, and so do firewalls).
#pragma once

#include <string>

namespace monju {

// A connected, blocking socket from bind_host (port chosen by the kernel) to
// host:port, within timeout_ms. The caller owns the descriptor. Throws
// apache::thrift::transport::TTransportException: NOT_OPEN when the address
// cannot be resolved, bound or reached, TIMED_OUT when the connect timed out.
int ConnectFrom(const std::string& bind_host, const std::string& host, int port, int timeout_ms);

}  // namespace monju
