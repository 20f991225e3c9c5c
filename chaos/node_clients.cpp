#include "node_clients.h"

#include <thrift/TConfiguration.h>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/protocol/TMultiplexedProtocol.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TSocket.h>
#include <thrift/transport/TTransportException.h>

#include "net/client_transport.h"
#include "net/thrift_limits.h"

namespace monju::chaos {

using apache::thrift::TException;
using apache::thrift::TConfiguration;
using apache::thrift::protocol::TMultiplexedProtocol;
using apache::thrift::protocol::TProtocol;
using apache::thrift::transport::TFramedTransport;
using apache::thrift::transport::TSocket;
using apache::thrift::transport::TTransport;
using apache::thrift::transport::TTransportException;

namespace {

constexpr int kMaxMessageBytes = 64 << 20;

std::shared_ptr<TTransport> OpenTransport(const std::string& host, uint16_t port, int timeout_ms,
                                          std::shared_ptr<TProtocol>* protocol) {
  auto config = std::make_shared<TConfiguration>(kMaxMessageBytes, kMaxMessageBytes);
  auto socket = std::make_shared<TSocket>(host, port, config);
  ConfigureClientSocket(*socket, {timeout_ms, timeout_ms});
  auto transport = FramedClientTransport(socket, config);
  *protocol = LimitedProtocol(transport, kMaxMessageBytes);
  transport->open();
  return transport;
}

}  // namespace

struct KvSession::Conn {
  std::shared_ptr<TTransport> transport;
  std::unique_ptr<api::MonjuKVClient> client;
};

KvSession::KvSession(std::string host, uint16_t port, int timeout_ms)
    : host_(std::move(host)), port_(port), timeout_ms_(timeout_ms) {}

KvSession::~KvSession() = default;

bool KvSession::Ensure(std::string* why) {
  if (conn_) return true;
  try {
    auto conn = std::make_unique<Conn>();
    std::shared_ptr<TProtocol> protocol;
    conn->transport = OpenTransport(host_, port_, timeout_ms_, &protocol);
    conn->client = std::make_unique<api::MonjuKVClient>(protocol);
    conn_ = std::move(conn);
    return true;
  } catch (const TException& e) {
    *why = std::string("connect: ") + e.what();
    return false;
  }
}

template <typename Fn>
CallOutcome KvSession::Call(bool is_write, Fn&& fn) {
  CallOutcome out;
  std::string why;
  if (!Ensure(&why)) {
    out.outcome = OpOutcome::kFail;  // never sent
    out.error = why;
    return out;
  }
  // For a write, any failure after sending leaves its outcome unknown except
  // a refusal made before anything was sent (Unavailable, InvalidRequest).
  const OpOutcome after_send = is_write ? OpOutcome::kUnknown : OpOutcome::kFail;
  try {
    fn(*conn_->client);
  } catch (const api::Unavailable& e) {
    out = {OpOutcome::kFail, "unavailable: " + e.why};
  } catch (const api::InvalidRequest& e) {
    out = {OpOutcome::kFail, "invalid: " + e.why};
  } catch (const api::QuorumFailed& e) {
    out = {after_send, "quorum failed: " + e.why};
  } catch (const api::TimedOut& e) {
    out = {after_send, "timed out: " + e.why};
  } catch (const TException& e) {
    conn_.reset();
    out = {after_send, std::string("transport: ") + e.what()};
  }
  return out;
}

ReadResult KvSession::Get(const std::string& pk, const std::string& sk, int r) {
  api::GetResult g;
  ReadResult out;
  static_cast<CallOutcome&>(out) = Call(false, [&](api::MonjuKVClient& c) { c.get(g, pk, sk, r); });
  if (out.outcome == OpOutcome::kOk) {
    out.found = g.found;
    out.values = std::move(g.values);
    out.context = std::move(g.context);
  }
  return out;
}

CallOutcome KvSession::Put(const std::string& pk, const std::string& sk, const std::string& value,
                           const std::string& context, int w) {
  api::WriteResult res;
  return Call(true, [&](api::MonjuKVClient& c) { c.put(res, pk, sk, value, context, w); });
}

CallOutcome KvSession::Remove(const std::string& pk, const std::string& sk, const std::string& context, int w) {
  api::WriteResult res;
  return Call(true, [&](api::MonjuKVClient& c) { c.remove(res, pk, sk, context, w); });
}

NodeAdmin::NodeAdmin(std::string host, uint16_t port, int timeout_ms)
    : host_(std::move(host)), port_(port), timeout_ms_(timeout_ms) {}

namespace {

template <typename Client, typename Fn>
Status WithService(const std::string& host, uint16_t port, int timeout_ms, const char* service, Fn&& fn) {
  try {
    std::shared_ptr<TProtocol> protocol;
    auto transport = OpenTransport(host, port, timeout_ms, &protocol);
    Client client(std::make_shared<TMultiplexedProtocol>(protocol, service));
    Status s = fn(client);
    transport->close();
    return s;
  } catch (const admin::AdminError& e) {
    return Status::InvalidArgument(e.why);
  } catch (const rpc::ReplicaError& e) {
    return Status::IOError(e.why);
  } catch (const rpc::ClusterMismatch& e) {
    return Status::Mismatch(e.why);
  } catch (const TException& e) {
    return Status::Unavailable(host + ":" + std::to_string(port) + ": " + e.what());
  }
}

}  // namespace

StatusOr<admin::NodeStatus> NodeAdmin::GetStatus() const {
  admin::NodeStatus out;
  Status s = WithService<admin::MonjuAdminClient>(host_, port_, timeout_ms_, "admin", [&](auto& c) {
    c.status(out);
    return Status::OK();
  });
  if (!s.ok()) return s;
  return out;
}

StatusOr<std::map<std::string, int64_t>> NodeAdmin::GetStats() const {
  std::map<std::string, int64_t> out;
  Status s = WithService<admin::MonjuAdminClient>(host_, port_, timeout_ms_, "admin", [&](auto& c) {
    c.stats(out);
    return Status::OK();
  });
  if (!s.ok()) return s;
  return out;
}

Status NodeAdmin::SetLinkFaults(const std::map<std::string, admin::LinkFaultSpec>& faults) const {
  return WithService<admin::MonjuAdminClient>(host_, port_, timeout_ms_, "admin", [&](auto& c) {
    c.set_link_faults(faults);
    return Status::OK();
  });
}

StatusOr<admin::RepairResult> NodeAdmin::Repair(int timeout_ms) const {
  admin::RepairResult out;
  Status s = WithService<admin::MonjuAdminClient>(host_, port_, timeout_ms, "admin", [&](auto& c) {
    c.repair(out, -1, "");
    return Status::OK();
  });
  if (!s.ok()) return s;
  return out;
}

struct ReplicaReader::Conn {
  std::shared_ptr<TTransport> transport;
  std::unique_ptr<rpc::MonjuReplicaClient> client;
};

ReplicaReader::ReplicaReader(std::string host, uint16_t port, int timeout_ms, int64_t fingerprint)
    : host_(std::move(host)), port_(port), timeout_ms_(timeout_ms), fingerprint_(fingerprint) {}

ReplicaReader::~ReplicaReader() = default;

StatusOr<std::string> ReplicaReader::Read(const std::string& pk, const std::string& sk) {
  try {
    if (!conn_) {
      auto conn = std::make_unique<Conn>();
      std::shared_ptr<TProtocol> protocol;
      conn->transport = OpenTransport(host_, port_, timeout_ms_, &protocol);
      conn->client =
          std::make_unique<rpc::MonjuReplicaClient>(std::make_shared<TMultiplexedProtocol>(protocol, "replica"));
      conn_ = std::move(conn);
    }
    std::string out;
    conn_->client->read(out, fingerprint_, pk, sk, rpc::EpochStamp());  // unstamped: never fenced
    return out;
  } catch (const rpc::ReplicaError& e) {
    return Status::IOError(e.why);
  } catch (const rpc::ClusterMismatch& e) {
    return Status::Mismatch(e.why);
  } catch (const TException& e) {
    conn_.reset();
    return Status::Unavailable(host_ + ":" + std::to_string(port_) + ": " + e.what());
  }
}

}  // namespace monju::chaos
