// Open-descriptor budget: how many connections each server of a node may
// hold, so that clients can never take the descriptors the node needs for
// its peers, its files and its listeners.
//
// A node needs, besides the connections it accepts, about
// kReservedDescriptors for itself (LMDB files, logs, listeners, epoll, Raft)
// and kOutboundPerPeer for each other member (its pools of connections to
// that peer). What the limit leaves goes a quarter to the peer server (other
// nodes' pools) and the rest to the client server, each capped at what the
// node was asked for.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/status.h"

namespace monju {

inline constexpr uint64_t kReservedDescriptors = 256;
// Client-port connections kept past the client cap for operator calls
// (admin, membership: CallServer::Options::reserved_connections); part of
// kReservedDescriptors.
inline constexpr uint32_t kOperatorConnections = 16;
// Per other member: the replica and the forwarding pools keep up to 64 idle
// connections each (ConnectionOptions::max_idle), the peer links 3
// (peer_link.h), and membership, the prober, Raft and streaming a few more.
inline constexpr uint64_t kOutboundPerPeer = 160;
inline constexpr uint32_t kMinServerConnections = 16;

struct ConnectionCaps {
  uint32_t client = 0;
  uint32_t peer = 0;
};

// The caps for a process that may hold `descriptor_limit` descriptors, in a
// cluster of `members` (this node included), asking for at most `client` and
// `peer` connections. InvalidArgument, naming the limit needed, when the
// limit leaves fewer than kMinServerConnections for either server.
StatusOr<ConnectionCaps> FitConnectionCaps(uint64_t descriptor_limit, size_t members, uint32_t client, uint32_t peer);

struct DescriptorLimit {
  uint64_t before = 0;  // the soft limit the process started with
  uint64_t soft = 0;    // now
  uint64_t hard = 0;
};

// Raises this process's soft RLIMIT_NOFILE to its hard limit (a server's
// usual start-up step: the default soft limit, often 1024, is for
// interactive shells). IOError when the limit cannot be read; a refused
// raise leaves `soft == before`.
StatusOr<DescriptorLimit> RaiseDescriptorLimit();

// This process's soft RLIMIT_NOFILE (RLIM_INFINITY as UINT64_MAX).
StatusOr<uint64_t> CurrentDescriptorLimit();

}  // namespace monju
