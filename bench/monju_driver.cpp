// Monju over Thrift: client thread i talks to node i mod n, as applications
// spreading their load over the cluster do.
//
// How an update finds its context (a write replaces exactly the versions its
// context covers):
// - "read": get the record, then put with the context read, as the
//   monju CLI does. Two round trips; every sibling the read saw is replaced,
//   so siblings never outlive the next update. The latency recorded is the
//   pair's.
// - "cached": put with the context of the record's last read or write in
//   this run (shared by all threads), one round trip. Concurrent updates of a
//   hot record then leave siblings that only a read's context covers: in an
//   update-only workload they pile up and records grow without bound.
// - "overwrite" (default): the overwrite call, one round trip with no context; the
//   version replaces every version the coordinating replica holds, like a
//   redis SET or an etcd put. Concurrent updates through other nodes may
//   leave siblings until the next overwrite through a node that saw them.
// Reads that return more than one sibling are counted ("reads_with_siblings").
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TSocket.h>
#include <thrift/transport/TTransportException.h>

#include <array>
#include <atomic>
#include <mutex>
#include <unordered_map>

#include "MonjuKV.h"
#include "driver.h"
#include "net/client_transport.h"
#include "net/thrift_limits.h"

namespace monju::bench {
namespace {

using apache::thrift::TException;
using apache::thrift::transport::TTransportException;

// Record -> newest context known, striped to keep threads apart.
class ContextCache {
 public:
  std::string Get(const std::string& key) {
    Stripe& s = StripeFor(key);
    std::lock_guard<std::mutex> lock(s.mu);
    auto it = s.map.find(key);
    return it == s.map.end() ? std::string() : it->second;
  }
  void Put(const std::string& key, std::string context) {
    Stripe& s = StripeFor(key);
    std::lock_guard<std::mutex> lock(s.mu);
    s.map[key] = std::move(context);
  }

 private:
  struct Stripe {
    std::mutex mu;
    std::unordered_map<std::string, std::string> map;
  };
  Stripe& StripeFor(const std::string& key) { return stripes_[std::hash<std::string>{}(key) % stripes_.size()]; }
  std::array<Stripe, 64> stripes_;
};

struct Shared {
  MonjuUpdate update = MonjuUpdate::kOverwrite;
  bool caches_contexts() const { return update == MonjuUpdate::kCached; }
  ContextCache contexts;
  std::atomic<uint64_t> reads_with_siblings{0};
  std::atomic<uint64_t> updates_replacing_siblings{0};  // "read" mode: the read saw several
};

Status FromException(const std::exception& e) {
  if (auto* x = dynamic_cast<const api::InvalidRequest*>(&e)) return Status::InvalidArgument("invalid: " + x->why);
  if (auto* x = dynamic_cast<const api::Unavailable*>(&e)) return Status::Unavailable("unavailable: " + x->why);
  if (auto* x = dynamic_cast<const api::QuorumFailed*>(&e)) return Status::QuorumFailed("quorum failed: " + x->why);
  if (auto* x = dynamic_cast<const api::TimedOut*>(&e)) return Status::TimedOut("timed out: " + x->why);
  if (dynamic_cast<const TTransportException*>(&e)) return Status::IOError(std::string("transport: ") + e.what());
  return Status::IOError(std::string("thrift: ") + e.what());
}

class MonjuSession final : public Session {
 public:
  MonjuSession(std::string host, uint16_t port, int timeout_ms, Shared* shared)
      : host_(std::move(host)), port_(port), timeout_ms_(timeout_ms), shared_(shared) {}

  Status Open() {
    using namespace apache::thrift;
    // Replies are bounded like every Thrift protocol Monju builds.
    constexpr int kMaxReply = 64 << 20;
    auto config = std::make_shared<TConfiguration>(kMaxReply, kMaxReply);
    auto socket = std::make_shared<transport::TSocket>(host_, port_, config);
    ConfigureClientSocket(*socket, {timeout_ms_, timeout_ms_});
    transport_ = FramedClientTransport(socket, config);
    client_ = std::make_unique<api::MonjuKVClient>(LimitedProtocol(transport_, kMaxReply));
    try {
      transport_->open();
    } catch (const TException& e) {
      client_.reset();
      return Status::Unavailable(host_ + ":" + std::to_string(port_) + ": " + e.what());
    }
    return Status::OK();
  }

  // A new record: no context needed.
  Status Insert(const ItemName& item, std::string_view value) override {
    value_.assign(value);
    return Call([&] {
      client_->put(write_, item.pk, item.sk, value_, "", 0);
      if (shared_->caches_contexts()) shared_->contexts.Put(CacheKey(item), std::move(write_.context));
      return Status::OK();
    });
  }

  Status Update(const ItemName& item, std::string_view value) override {
    if (shared_->update == MonjuUpdate::kCached) return CachedWrite(item, value);
    value_.assign(value);
    if (shared_->update == MonjuUpdate::kOverwrite) {
      return Call([&] {
        client_->overwrite(write_, item.pk, item.sk, value_, 0);
        return Status::OK();
      });
    }
    return Call([&] {
      client_->get(get_, item.pk, item.sk, 0);
      if (!get_.found) return Status::NotFound("not found (read before update): " + item.pk + "/" + item.sk);
      if (get_.values.size() > 1) shared_->updates_replacing_siblings.fetch_add(1, std::memory_order_relaxed);
      client_->put(write_, item.pk, item.sk, value_, get_.context, 0);
      return Status::OK();
    });
  }

  Status Read(const ItemName& item) override {
    return Call([&] {
      client_->get(get_, item.pk, item.sk, 0);
      if (!get_.found) return Status::NotFound("not found: " + item.pk + "/" + item.sk);
      if (get_.values.size() > 1) shared_->reads_with_siblings.fetch_add(1, std::memory_order_relaxed);
      if (shared_->caches_contexts()) shared_->contexts.Put(CacheKey(item), std::move(get_.context));
      return Status::OK();
    });
  }

  Status Query(const std::string& pk, int limit, size_t* items) override {
    return Call([&] {
      client_->query(query_, pk, "", "", limit, true, 0);
      *items = query_.items.size();
      return Status::OK();
    });
  }

 private:
  static std::string CacheKey(const ItemName& item) { return item.pk + '\0' + item.sk; }

  Status CachedWrite(const ItemName& item, std::string_view value) {
    const std::string key = CacheKey(item);
    value_.assign(value);
    return Call([&] {
      client_->put(write_, item.pk, item.sk, value_, shared_->contexts.Get(key), 0);
      shared_->contexts.Put(key, std::move(write_.context));
      return Status::OK();
    });
  }

  // Runs one call; a broken connection is reopened for the next call.
  template <typename Fn>
  Status Call(Fn&& fn) {
    if (!client_) {
      Status s = Open();
      if (!s.ok()) return Status::Unavailable("connect: " + s.message());
    }
    try {
      return fn();
    } catch (const TTransportException& e) {
      client_.reset();
      return FromException(e);
    } catch (const TException& e) {
      return FromException(e);
    }
  }

  const std::string host_;
  const uint16_t port_;
  const int timeout_ms_;
  Shared* shared_;
  std::shared_ptr<apache::thrift::transport::TTransport> transport_;
  std::unique_ptr<api::MonjuKVClient> client_;
  // Reused between calls to save allocations.
  std::string value_;
  api::GetResult get_;
  api::WriteResult write_;
  api::QueryResult query_;
};

class MonjuDriver final : public Driver {
 public:
  MonjuDriver(std::vector<std::pair<std::string, uint16_t>> nodes, int timeout_ms, MonjuUpdate update)
      : nodes_(std::move(nodes)), timeout_ms_(timeout_ms) {
    shared_.update = update;
  }

  StatusOr<std::unique_ptr<Session>> Connect(int thread_index) override {
    const auto& [host, port] = nodes_[static_cast<size_t>(thread_index) % nodes_.size()];
    auto session = std::make_unique<MonjuSession>(host, port, timeout_ms_, &shared_);
    Status s = session->Open();
    if (!s.ok()) return s;
    return std::unique_ptr<Session>(std::move(session));
  }

  std::string Describe() const override {
    std::string out = "monju (" + std::to_string(nodes_.size()) + " node" + (nodes_.size() == 1 ? "" : "s") + ":";
    for (const auto& [host, port] : nodes_) out += " " + host + ":" + std::to_string(port);
    const char* updates = shared_.update == MonjuUpdate::kRead     ? "read first"
                          : shared_.update == MonjuUpdate::kCached ? "use cached contexts"
                                                                   : "overwrite";
    return out + "; updates " + updates + ")";
  }

  std::map<std::string, uint64_t> Counters() const override {
    return {{"reads_with_siblings", shared_.reads_with_siblings.load()},
            {"updates_replacing_siblings", shared_.updates_replacing_siblings.load()}};
  }

 private:
  const std::vector<std::pair<std::string, uint16_t>> nodes_;
  const int timeout_ms_;
  Shared shared_;
};

}  // namespace

std::unique_ptr<Driver> MakeMonjuDriver(std::vector<std::pair<std::string, uint16_t>> nodes, int timeout_ms,
                                        MonjuUpdate update) {
  return std::make_unique<MonjuDriver>(std::move(nodes), timeout_ms, update);
}

}  // namespace monju::bench
