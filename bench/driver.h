// Driver: how monju-bench talks to one system (Monju, redis, etcd). Each
// client thread opens its own Session; a Session is used by one thread only.
//
// Every call returns OK or an error Status whose message starts with a short
// kind ("timed out", "unavailable", "http 503", ...): the runner counts every
// error and keeps a few messages; nothing is retried or hidden. A read of a
// record that is absent is an error (NotFound): the load phase wrote them all.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"
#include "workload.h"

namespace monju::bench {

class Session {
 public:
  virtual ~Session() = default;
  // A new record (load phase).
  virtual Status Insert(const ItemName& item, std::string_view value) = 0;
  // Overwrites a record.
  virtual Status Update(const ItemName& item, std::string_view value) = 0;
  virtual Status Read(const ItemName& item) = 0;
  // Items of `pk` in sk order, at most `limit`; *items is how many came back.
  virtual Status Query(const std::string& pk, int limit, size_t* items) = 0;
};

class Driver {
 public:
  virtual ~Driver() = default;
  // A session for client thread `thread_index` (drivers spread threads over
  // their endpoints by this index). Errors: Unavailable when it cannot connect.
  virtual StatusOr<std::unique_ptr<Session>> Connect(int thread_index) = 0;
  // "monju (3 nodes: 127.0.0.1:7001, ...)".
  virtual std::string Describe() const = 0;
  // Driver-specific counters for the report (e.g. Monju reads that saw siblings).
  virtual std::map<std::string, uint64_t> Counters() const { return {}; }
};

struct DriverOptions {
  std::string kind;                  // monju | redis | etcd
  std::vector<std::string> addresses;  // host:port (etcd: http://host:port)
  int timeout_ms = 5000;
  std::string monju_update = "overwrite";  // monju: "read", "cached" or "overwrite" (monju_driver.cpp)
};

// How the Monju driver's updates find what they replace (monju_driver.cpp).
enum class MonjuUpdate { kRead, kCached, kOverwrite };

// InvalidArgument for an unknown kind or a bad address.
StatusOr<std::unique_ptr<Driver>> MakeDriver(const DriverOptions& options);

std::unique_ptr<Driver> MakeMonjuDriver(std::vector<std::pair<std::string, uint16_t>> nodes, int timeout_ms,
                                        MonjuUpdate update);
std::unique_ptr<Driver> MakeRedisDriver(std::string host, uint16_t port, int timeout_ms);
std::unique_ptr<Driver> MakeEtcdDriver(std::vector<std::string> endpoints, int timeout_ms);

}  // namespace monju::bench
