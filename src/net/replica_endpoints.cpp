#include "replica_endpoints.h"

#include <spdlog/spdlog.h>
#include <thrift/transport/TTransportException.h>

#include "clock/codec.h"

namespace monju {

using apache::thrift::TException;
using apache::thrift::transport::TTransportException;

RemoteReplicaEndpoint::RemoteReplicaEndpoint(std::string peer_id, ConnectionOptions options, uint64_t fingerprint,
                                             const Clock* clock)
    : peer_id_(std::move(peer_id)),
      fingerprint_(static_cast<int64_t>(fingerprint)),
      pool_(std::move(options)),
      health_(clock, std::chrono::milliseconds(1000)) {}

template <typename Fn>
Status RemoteReplicaEndpoint::Call(const char* what, Fn&& fn) {
  std::unique_ptr<rpc::MonjuReplicaClient> client;
  try {
    client = pool_.Borrow();
  } catch (const TException& e) {
    health_.RecordFailure();
    return Status::Unavailable(peer_id_ + " unreachable: " + e.what());
  }
  try {
    Status s = fn(*client);
    pool_.Return(std::move(client));
    health_.RecordSuccess();
    return s;
  } catch (const rpc::ClusterMismatch& e) {
    pool_.Return(std::move(client));
    spdlog::error("peer {} refused {}: cluster parameters differ: {}", peer_id_, what, e.why);
    return Status::Mismatch(peer_id_ + " has different cluster parameters: " + e.why);
  } catch (const rpc::ReplicaError& e) {
    pool_.Return(std::move(client));
    return Status::FromCode(e.code, peer_id_ + ": " + e.why);
  } catch (const TTransportException& e) {
    // Covers timeouts too: the connection's state is unknown, so it is dropped.
    if (e.getType() == TTransportException::TIMED_OUT) {
      health_.RecordFailure();  // a peer that stopped answering is not called for a while
      return Status::TimedOut(peer_id_ + " " + what + " timed out");
    }
    if (e.getType() == TTransportException::CORRUPTED_DATA) {
      // The reply, not the peer, is the problem (e.g. larger than we accept).
      return Status::IOError(peer_id_ + " " + what + " reply refused: " + e.what());
    }
    health_.RecordFailure();
    pool_.Clear();
    return Status::Unavailable(peer_id_ + " " + what + " failed: " + e.what());
  } catch (const TException& e) {
    health_.RecordFailure();
    pool_.Clear();
    return Status::Unavailable(peer_id_ + " " + what + " failed: " + e.what());
  }
}

Status RemoteReplicaEndpoint::Apply(const ItemKey& key, const Version& version) {
  const std::string encoded = EncodeVersion(version);
  return Call("apply", [&](rpc::MonjuReplicaClient& c) {
    c.apply(fingerprint_, key.pk, key.sk, encoded);
    return Status::OK();
  });
}

Status RemoteReplicaEndpoint::Read(const ItemKey& key, SiblingSet* out) {
  return Call("read", [&](rpc::MonjuReplicaClient& c) {
    std::string bytes;
    c.read(bytes, fingerprint_, key.pk, key.sk);
    auto siblings = DecodeSiblings(bytes);
    if (!siblings.ok()) return siblings.status();
    *out = std::move(siblings.value());
    return Status::OK();
  });
}

Status RemoteReplicaEndpoint::Scan(const DataStore::ScanRequest& r, std::vector<ScannedItem>* out, bool* more) {
  return Call("scan", [&](rpc::MonjuReplicaClient& c) {
    rpc::ScanReply reply;
    c.scan(reply, fingerprint_, r.pk, r.sk_prefix, r.start_sk, r.start_exclusive, static_cast<int32_t>(r.limit),
           r.ascending);
    out->clear();
    for (auto& item : reply.items) {
      auto siblings = DecodeSiblings(item.siblings);
      if (!siblings.ok()) return siblings.status();
      out->push_back({std::move(item.sk), std::move(siblings.value())});
    }
    *more = reply.more;
    return Status::OK();
  });
}

Status RemoteReplicaEndpoint::Ping() {
  return Call("ping", [&](rpc::MonjuReplicaClient& c) {
    c.ping(fingerprint_);
    return Status::OK();
  });
}

NodeEndpoints::NodeEndpoints(std::string self_id, Replica* local, ConnectionOptions base, const Clock* clock)
    : self_id_(std::move(self_id)), local_(local), base_(std::move(base)), clock_(clock) {}

ReplicaEndpoint& NodeEndpoints::Endpoint(const ClusterView& view, uint32_t member_index) {
  const PeerAddress& peer = view.members()[member_index];
  if (peer.id == self_id_) return local_;
  std::string key = peer.ToString() + "@" + std::to_string(view.fingerprint());
  std::lock_guard<std::mutex> lock(mu_);
  auto& slot = remotes_[key];
  if (!slot) {
    ConnectionOptions options = base_;
    options.host = peer.host;
    options.port = peer.port;
    options.service = "replica";
    slot = std::make_unique<RemoteReplicaEndpoint>(peer.id, options, view.fingerprint(), clock_);
  }
  return *slot;
}

}  // namespace monju
