// redis over RESP with Debian's hiredis, one connection per client thread.
// A record is field sk of a hash named pk (HSET / HGET), so a query is one
// HGETALL of the pk: redis keeps no order among a hash's fields, so "in sk
// order" is not honoured and the limit is applied by counting, not by redis.
#include <hiredis/hiredis.h>

#include <algorithm>

#include "driver.h"

namespace monju::bench {
namespace {

class RedisSession final : public Session {
 public:
  RedisSession(std::string host, uint16_t port, int timeout_ms) : host_(std::move(host)), port_(port), timeout_ms_(timeout_ms) {}
  ~RedisSession() override {
    if (ctx_) redisFree(ctx_);
  }

  Status Open() {
    if (ctx_) redisFree(ctx_);
    timeval tv{timeout_ms_ / 1000, (timeout_ms_ % 1000) * 1000};
    ctx_ = redisConnectWithTimeout(host_.c_str(), port_, tv);
    if (!ctx_ || ctx_->err) {
      std::string why = ctx_ ? ctx_->errstr : "out of memory";
      if (ctx_) redisFree(ctx_);
      ctx_ = nullptr;
      return Status::Unavailable(host_ + ":" + std::to_string(port_) + ": " + why);
    }
    redisSetTimeout(ctx_, tv);
    return Status::OK();
  }

  Status Insert(const ItemName& item, std::string_view value) override { return Update(item, value); }

  Status Update(const ItemName& item, std::string_view value) override {
    return Command(
        [&] {
          return redisCommand(ctx_, "HSET %b %b %b", item.pk.data(), item.pk.size(), item.sk.data(), item.sk.size(),
                              value.data(), value.size());
        },
        [](redisReply* r) { return r->type == REDIS_REPLY_INTEGER ? Status::OK() : Unexpected(r); });
  }

  Status Read(const ItemName& item) override {
    return Command(
        [&] {
          return redisCommand(ctx_, "HGET %b %b", item.pk.data(), item.pk.size(), item.sk.data(), item.sk.size());
        },
        [&](redisReply* r) {
          if (r->type == REDIS_REPLY_NIL) return Status::NotFound("not found: " + item.pk + "/" + item.sk);
          return r->type == REDIS_REPLY_STRING ? Status::OK() : Unexpected(r);
        });
  }

  Status Query(const std::string& pk, int limit, size_t* items) override {
    return Command([&] { return redisCommand(ctx_, "HGETALL %b", pk.data(), pk.size()); },
                   [&](redisReply* r) {
                     if (r->type != REDIS_REPLY_ARRAY) return Unexpected(r);
                     *items = std::min(r->elements / 2, static_cast<size_t>(limit));
                     return Status::OK();
                   });
  }

 private:
  static Status Unexpected(redisReply* r) {
    if (r->type == REDIS_REPLY_ERROR) return Status::IOError("redis error: " + std::string(r->str, r->len));
    return Status::IOError("redis: unexpected reply type " + std::to_string(r->type));
  }

  template <typename Send, typename Check>
  Status Command(Send&& send, Check&& check) {
    if (!ctx_) {
      Status s = Open();
      if (!s.ok()) return Status::Unavailable("connect: " + s.message());
    }
    auto* reply = static_cast<redisReply*>(send());
    if (!reply) {
      // The connection is unusable after an I/O error: reopen next time.
      Status s = Status::IOError(std::string("redis connection: ") + ctx_->errstr);
      redisFree(ctx_);
      ctx_ = nullptr;
      return s;
    }
    Status s = check(reply);
    freeReplyObject(reply);
    return s;
  }

  const std::string host_;
  const uint16_t port_;
  const int timeout_ms_;
  redisContext* ctx_ = nullptr;
};

class RedisDriver final : public Driver {
 public:
  RedisDriver(std::string host, uint16_t port, int timeout_ms) : host_(std::move(host)), port_(port), timeout_ms_(timeout_ms) {}
  StatusOr<std::unique_ptr<Session>> Connect(int) override {
    auto session = std::make_unique<RedisSession>(host_, port_, timeout_ms_);
    Status s = session->Open();
    if (!s.ok()) return s;
    return std::unique_ptr<Session>(std::move(session));
  }
  std::string Describe() const override { return "redis (" + host_ + ":" + std::to_string(port_) + ")"; }

 private:
  const std::string host_;
  const uint16_t port_;
  const int timeout_ms_;
};

}  // namespace

std::unique_ptr<Driver> MakeRedisDriver(std::string host, uint16_t port, int timeout_ms) {
  return std::make_unique<RedisDriver>(std::move(host), port, timeout_ms);
}

}  // namespace monju::bench
