#include "membership_clients.h"

#include <thrift/transport/TTransportException.h>

#include "config/node_config.h"

namespace monju {

using apache::thrift::TException;
using apache::thrift::transport::TTransportException;

membership::StreamProgress ToThrift(const std::string& node, const StreamReport& r) {
  membership::StreamProgress p;
  p.node = node;
  p.change_epoch = static_cast<int64_t>(r.change_epoch);
  p.partitions_total = static_cast<int32_t>(r.partitions_total);
  p.partitions_done = static_cast<int32_t>(r.partitions_done);
  p.items = static_cast<int64_t>(r.items);
  p.bytes = static_cast<int64_t>(r.bytes);
  p.done = r.done;
  p.waiting_for = r.waiting_for;
  p.elapsed_ms = static_cast<int64_t>(r.elapsed_ms);
  return p;
}

StreamReport FromThrift(const membership::StreamProgress& p) {
  StreamReport r;
  r.change_epoch = static_cast<uint64_t>(p.change_epoch);
  r.partitions_total = static_cast<uint32_t>(std::max(0, p.partitions_total));
  r.partitions_done = static_cast<uint32_t>(std::max(0, p.partitions_done));
  r.items = static_cast<uint64_t>(std::max<int64_t>(0, p.items));
  r.bytes = static_cast<uint64_t>(std::max<int64_t>(0, p.bytes));
  r.done = p.done;
  r.waiting_for = p.waiting_for;
  r.elapsed_ms = static_cast<uint64_t>(std::max<int64_t>(0, p.elapsed_ms));
  return r;
}

ThriftMembershipPeers::Pool* ThriftMembershipPeers::PoolFor(const std::string& address, CallClass c,
                                                            Status* error) {
  const std::string key = address + "#" + std::to_string(static_cast<int>(c));
  std::lock_guard<std::mutex> lock(mu_);
  auto& slot = pools_[key];
  if (!slot) {
    ConnectionOptions o = base_;
    Status s = ParseHostPort(address, &o.host, &o.port);
    if (!s.ok()) {
      pools_.erase(key);
      *error = Status::InvalidArgument("bad member address " + address);
      return nullptr;
    }
    o.service = "membership";
    o.peer_id = address;
    o.max_idle = 4;
    switch (c) {
      case CallClass::kQuick:
        o.connect_timeout_ms = 300;
        o.io_timeout_ms = 2000;
        break;
      case CallClass::kPropose:
        o.connect_timeout_ms = 1000;
        o.io_timeout_ms = 20000;  // the leader waits up to 10 s for a commit
        break;
      case CallClass::kStream:
        o.connect_timeout_ms = 1000;
        o.io_timeout_ms = 15000;  // the source may wait for older writes to finish
        break;
    }
    slot = std::make_unique<Pool>(o);
  }
  return slot.get();
}

template <typename Fn>
Status ThriftMembershipPeers::Call(const std::string& address, CallClass c, const char* what, Fn&& fn) {
  Status error;
  Pool* pool = PoolFor(address, c, &error);
  if (!pool) return error;
  std::unique_ptr<membership::MonjuMembershipClient> client;
  try {
    client = pool->Borrow();
  } catch (const TException& e) {
    return Status::Unavailable(address + " unreachable: " + e.what());
  }
  try {
    fn(*client);
    pool->Return(std::move(client));
    return Status::OK();
  } catch (const membership::MembershipError& e) {
    pool->Return(std::move(client));
    return Status::FromCode(e.code, e.why);
  } catch (const TTransportException& e) {
    pool->Clear();
    if (e.getType() == TTransportException::TIMED_OUT)
      return Status::TimedOut(std::string(what) + " to " + address + " timed out");
    return Status::Unavailable(std::string(what) + " to " + address + " failed: " + e.what());
  } catch (const TException& e) {
    pool->Clear();
    return Status::Unavailable(std::string(what) + " to " + address + " failed: " + e.what());
  }
}

StatusOr<std::string> ThriftMembershipPeers::FetchMetadata(const std::string& address, uint64_t fingerprint) {
  std::string out;
  Status s = Call(address, CallClass::kQuick, "metadata", [&](membership::MonjuMembershipClient& c) {
    c.metadata(out, static_cast<int64_t>(fingerprint));
  });
  if (!s.ok()) return s;
  return out;
}

StatusOr<ProposeReply> ThriftMembershipPeers::Propose(const std::string& address, const std::string& command,
                                                      bool forwarded) {
  membership::ChangeReply reply;
  Status s = Call(address, CallClass::kPropose, "propose",
                  [&](membership::MonjuMembershipClient& c) { c.propose(reply, command, forwarded); });
  if (!s.ok()) return s;
  return ProposeReply{static_cast<uint64_t>(reply.epoch), reply.summary};
}

StatusOr<NodeReport> ThriftMembershipPeers::Progress(const std::string& address, uint64_t change_epoch) {
  membership::NodeProgress reply;
  Status s = Call(address, CallClass::kQuick, "progress", [&](membership::MonjuMembershipClient& c) {
    c.progress(reply, static_cast<int64_t>(change_epoch));
  });
  if (!s.ok()) return s;
  NodeReport r;
  r.epoch = static_cast<uint64_t>(std::max<int64_t>(0, reply.epoch));
  r.stream = FromThrift(reply.stream);
  return r;
}

Status ThriftMembershipPeers::Stream(const std::string& address, uint64_t fingerprint, uint64_t epoch,
                                     uint32_t partition, const std::string& cursor, uint32_t max_items,
                                     uint32_t max_bytes, StreamChunkData* out) {
  membership::StreamChunk chunk;
  Status s = Call(address, CallClass::kStream, "stream", [&](membership::MonjuMembershipClient& c) {
    c.stream(chunk, static_cast<int64_t>(fingerprint), static_cast<int64_t>(epoch), static_cast<int32_t>(partition),
             cursor, static_cast<int32_t>(max_items), static_cast<int32_t>(max_bytes));
  });
  if (!s.ok()) return s;
  out->items.clear();
  out->items.reserve(chunk.items.size());
  for (auto& item : chunk.items)
    out->items.push_back({std::move(item.pk), std::move(item.sk), std::move(item.siblings)});
  out->next_cursor = std::move(chunk.next_cursor);
  out->done = chunk.done;
  return Status::OK();
}

}  // namespace monju
