#include "descriptor_budget.h"

#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

namespace monju {

StatusOr<ConnectionCaps> FitConnectionCaps(uint64_t descriptor_limit, size_t members, uint32_t client, uint32_t peer) {
  const uint64_t others = members > 0 ? members - 1 : 0;
  const uint64_t reserved = kReservedDescriptors + others * kOutboundPerPeer;
  const uint64_t needed = reserved + 2 * uint64_t(kMinServerConnections);
  if (descriptor_limit < needed)
    return Status::InvalidArgument("open-file limit " + std::to_string(descriptor_limit) +
                                   " is too low for a node of a " + std::to_string(members) +
                                   "-member cluster: it needs at least " + std::to_string(needed) +
                                   " (raise `ulimit -n` or LimitNOFILE)");
  const uint64_t available = descriptor_limit - reserved;
  ConnectionCaps caps;
  caps.peer = static_cast<uint32_t>(std::min<uint64_t>(peer, std::max<uint64_t>(available / 4, kMinServerConnections)));
  caps.client = static_cast<uint32_t>(std::min<uint64_t>(client, available - caps.peer));
  return caps;
}

namespace {
uint64_t FromRlim(rlim_t v) { return v == RLIM_INFINITY ? UINT64_MAX : uint64_t(v); }

Status ReadLimit(rlimit* lim) {
  if (getrlimit(RLIMIT_NOFILE, lim) == 0) return Status::OK();
  return Status::IOError(std::string("getrlimit(RLIMIT_NOFILE): ") + std::strerror(errno));
}
}  // namespace

StatusOr<uint64_t> CurrentDescriptorLimit() {
  rlimit lim{};
  if (Status s = ReadLimit(&lim); !s.ok()) return s;
  return FromRlim(lim.rlim_cur);
}

StatusOr<DescriptorLimit> RaiseDescriptorLimit() {
  rlimit lim{};
  if (Status s = ReadLimit(&lim); !s.ok()) return s;
  DescriptorLimit out;
  out.before = FromRlim(lim.rlim_cur);
  out.hard = FromRlim(lim.rlim_max);
  if (lim.rlim_cur != lim.rlim_max) {
    rlimit raised = lim;
    raised.rlim_cur = lim.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) lim = raised;
  }
  out.soft = FromRlim(lim.rlim_cur);
  return out;
}

}  // namespace monju
