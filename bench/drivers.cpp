#include <vector>

#include "config/node_config.h"
#include "driver.h"

namespace monju::bench {

StatusOr<std::unique_ptr<Driver>> MakeDriver(const DriverOptions& options) {
  if (options.addresses.empty()) return Status::InvalidArgument("--addr: at least one address is needed");
  if (options.kind == "monju" || options.kind == "redis") {
    std::vector<std::pair<std::string, uint16_t>> nodes;
    for (const auto& a : options.addresses) {
      std::string host;
      uint16_t port = 0;
      Status s = ParseHostPort(a, &host, &port);
      if (!s.ok()) return Status::InvalidArgument("--addr: " + s.message());
      nodes.emplace_back(host, port);
    }
    if (options.kind == "monju") {
      MonjuUpdate update;
      if (options.monju_update == "read") {
        update = MonjuUpdate::kRead;
      } else if (options.monju_update == "cached") {
        update = MonjuUpdate::kCached;
      } else if (options.monju_update == "overwrite") {
        update = MonjuUpdate::kOverwrite;
      } else {
        return Status::InvalidArgument("--monju-update: expected read, cached or overwrite, got '" +
                                       options.monju_update + "'");
      }
      return MakeMonjuDriver(std::move(nodes), options.timeout_ms, update);
    }
    if (nodes.size() != 1) return Status::InvalidArgument("--addr: redis takes one address (a single node)");
    return MakeRedisDriver(nodes[0].first, nodes[0].second, options.timeout_ms);
  }
  if (options.kind == "etcd") {
    for (const auto& a : options.addresses)
      if (a.rfind("http://", 0) != 0) return Status::InvalidArgument("--addr: etcd endpoints are http://host:port");
    return MakeEtcdDriver(options.addresses, options.timeout_ms);
  }
  return Status::InvalidArgument("--driver: expected monju, redis or etcd, got '" + options.kind + "'");
}

}  // namespace monju::bench
