#include "coordinator.h"

#include <algorithm>
#include <map>

#include "clock/codec.h"
#include "config/node_config.h"
#include "quorum_call.h"

namespace monju {
namespace {

struct Ack {};

// The replicas of one request: the view it was planned under and the list.
struct Placement {
  std::shared_ptr<const ClusterView> view;
  uint32_t partition = 0;
  std::vector<uint32_t> members;
  int self_index = -1;  // position of this node in members, or -1
};

std::string Describe(const QuorumCount& q, const char* what) {
  return std::string(what) + " " + std::to_string(q.got) + " of " + std::to_string(q.needed) + " needed";
}

}  // namespace

Coordinator::Coordinator(CoordinatorOptions options, const Membership* membership, Replica* local,
                         EndpointDirectory* endpoints, Executor* executor, const Clock* clock)
    : options_(std::move(options)),
      membership_(membership),
      local_(local),
      endpoints_(endpoints),
      executor_(executor),
      clock_(clock) {}

Status Coordinator::ValidateKey(const std::string& pk, const std::string& sk) {
  if (pk.empty()) return Status::InvalidArgument("pk must not be empty");
  if (pk.size() > kMaxPkBytes)
    return Status::InvalidArgument("pk is " + std::to_string(pk.size()) + " bytes; the limit is " +
                                   std::to_string(kMaxPkBytes));
  if (sk.size() > kMaxSkBytes)
    return Status::InvalidArgument("sk is " + std::to_string(sk.size()) + " bytes; the limit is " +
                                   std::to_string(kMaxSkBytes));
  return Status::OK();
}

Status Coordinator::ValidateQuorum(int32_t value, const char* name, uint32_t replicas) const {
  if (value < 0 || static_cast<uint32_t>(value) > replicas)
    return Status::InvalidArgument(std::string(name) + "=" + std::to_string(value) + " is outside 0.." +
                                   std::to_string(replicas) + " (N=" + std::to_string(replicas) + ", 0 = default)");
  return Status::OK();
}

bool Coordinator::IsOwner(const std::string& pk) const {
  auto view = membership_->Current();
  int self = view->IndexOf(options_.self_id);
  if (self < 0 || !local_) return false;
  const auto& list = view->ring().PreferenceList(view->ring().PartitionOf(pk));
  return std::find(list.begin(), list.end(), static_cast<uint32_t>(self)) != list.end();
}

namespace {

Placement Place(const Membership* membership, const std::string& self_id, const std::string& pk) {
  Placement p;
  p.view = membership->Current();
  p.partition = p.view->ring().PartitionOf(pk);
  p.members = p.view->ring().PreferenceList(p.partition);
  int self = p.view->IndexOf(self_id);
  for (size_t i = 0; i < p.members.size(); ++i)
    if (static_cast<int>(p.members[i]) == self) p.self_index = static_cast<int>(i);
  return p;
}

}  // namespace

WriteOutcome Coordinator::Put(const std::string& pk, const std::string& sk, std::string value,
                              const std::string& context, int32_t w) {
  if (value.size() > options_.max_value_bytes) {
    WriteOutcome out;
    out.status = Status::InvalidArgument("value is " + std::to_string(value.size()) + " bytes; the limit is " +
                                         std::to_string(options_.max_value_bytes));
    return out;
  }
  return Write(pk, sk, false, std::move(value), context, w);
}

WriteOutcome Coordinator::Remove(const std::string& pk, const std::string& sk, const std::string& context,
                                 int32_t w) {
  return Write(pk, sk, true, std::string(), context, w);
}

WriteOutcome Coordinator::Write(const std::string& pk, const std::string& sk, bool tombstone, std::string value,
                                const std::string& context, int32_t w) {
  WriteOutcome out;
  if (!(out.status = ValidateKey(pk, sk)).ok()) return out;
  if (context.size() > kMaxContextBytes) {
    out.status = Status::InvalidArgument("context is larger than " + std::to_string(kMaxContextBytes) + " bytes");
    return out;
  }
  auto ctx = DecodeContext(context);
  if (!ctx.ok()) {
    out.status = Status::InvalidArgument("context is malformed: pass back the bytes a read or write returned");
    return out;
  }
  Placement place = Place(membership_, options_.self_id, pk);
  const uint32_t n = static_cast<uint32_t>(place.members.size());
  if (!(out.status = ValidateQuorum(w, "w", n)).ok()) return out;
  const int needed = w == 0 ? static_cast<int>(std::min(options_.default_w, n)) : w;
  if (place.self_index < 0 || !local_) {
    out.status = Status::InvalidArgument("this node is not a replica of the key; forward the write to an owner");
    return out;
  }

  int alive = 0;
  for (size_t i = 0; i < n; ++i)
    if (static_cast<int>(i) == place.self_index || endpoints_->Endpoint(*place.view, place.members[i]).LikelyAlive())
      ++alive;
  out.quorum = {needed, alive};
  if (alive < needed) {
    out.status = Status::Unavailable(Describe(out.quorum, "replicas alive:"));
    return out;
  }

  const auto deadline = std::chrono::steady_clock::now() + options_.request_timeout;
  ItemKey key{place.partition, pk, sk};
  auto version = local_->PrepareWrite(key, ctx.value(), tombstone, std::move(value));
  if (!version.ok()) {
    out.status = version.status().Is(Status::Code::kInvalidArgument)
                     ? version.status()
                     : Status::QuorumFailed("local replica could not prepare the write: " +
                                            version.status().ToString());
    out.quorum = {needed, 0};
    return out;
  }
  // Shared with calls that may outlive this request.
  auto shared_version = std::make_shared<const Version>(std::move(version.value()));
  auto shared_key = std::make_shared<const ItemKey>(key);

  QuorumCall<Ack> call(needed, executor_);
  for (size_t i = 0; i < n; ++i) {
    if (static_cast<int>(i) == place.self_index) {
      Replica* local = local_;
      call.Start([local, shared_key, shared_version](Ack*) {
        Status s = local->Apply(*shared_key, *shared_version);
        local->FinishWrite(*shared_key, shared_version->dot, s.ok());
        return s;
      });
      continue;
    }
    ReplicaEndpoint* ep = &endpoints_->Endpoint(*place.view, place.members[i]);
    if (!ep->LikelyAlive()) {
      call.Skip(place.view->members()[place.members[i]].id + " is down");
      continue;
    }
    call.Start([ep, shared_key, shared_version](Ack*) { return ep->Apply(*shared_key, *shared_version); });
  }
  auto result = call.Wait(deadline);
  out.quorum = {needed, result.succeeded};
  switch (result.result) {
    case QuorumCall<Ack>::Result::kQuorum:
      out.status = Status::OK();
      out.context = EncodeContext(shared_version->FullContext());
      break;
    case QuorumCall<Ack>::Result::kFailed:
      out.status = Status::QuorumFailed(Describe(out.quorum, "write acknowledged by") + "; first error: " +
                                        result.first_error);
      break;
    case QuorumCall<Ack>::Result::kTimedOut:
      out.status = Status::TimedOut(Describe(out.quorum, "write acknowledged by") + " within " +
                                    std::to_string(options_.request_timeout.count()) + " ms");
      break;
  }
  return out;
}

ReadOutcome Coordinator::Get(const std::string& pk, const std::string& sk, int32_t r) {
  ReadOutcome out;
  if (!(out.status = ValidateKey(pk, sk)).ok()) return out;
  Placement place = Place(membership_, options_.self_id, pk);
  const uint32_t n = static_cast<uint32_t>(place.members.size());
  if (!(out.status = ValidateQuorum(r, "r", n)).ok()) return out;
  const int needed = r == 0 ? static_cast<int>(std::min(options_.default_r, n)) : r;

  const auto deadline = std::chrono::steady_clock::now() + options_.request_timeout;
  auto shared_key = std::make_shared<const ItemKey>(ItemKey{place.partition, pk, sk});
  QuorumCall<SiblingSet> call(needed, executor_);
  int alive = 0;
  std::vector<ReplicaEndpoint*> targets;
  for (size_t i = 0; i < n; ++i) {
    ReplicaEndpoint* ep = &endpoints_->Endpoint(*place.view, place.members[i]);
    if (static_cast<int>(i) == place.self_index || ep->LikelyAlive()) {
      ++alive;
      targets.push_back(ep);
    }
  }
  out.quorum = {needed, alive};
  if (alive < needed) {
    out.status = Status::Unavailable(Describe(out.quorum, "replicas alive:"));
    return out;
  }
  for (ReplicaEndpoint* ep : targets)
    call.Start([ep, shared_key](SiblingSet* reply) { return ep->Read(*shared_key, reply); });
  auto result = call.Wait(deadline);
  out.quorum = {needed, result.succeeded};
  if (result.result == QuorumCall<SiblingSet>::Result::kFailed) {
    out.status =
        Status::QuorumFailed(Describe(out.quorum, "read answered by") + "; first error: " + result.first_error);
    return out;
  }
  if (result.result == QuorumCall<SiblingSet>::Result::kTimedOut) {
    out.status = Status::TimedOut(Describe(out.quorum, "read answered by") + " within " +
                                  std::to_string(options_.request_timeout.count()) + " ms");
    return out;
  }
  SiblingSet merged;
  for (const auto& reply : result.replies) merged.Merge(reply);
  out.status = Status::OK();
  out.found = merged.HasLive();
  out.values = merged.LiveValues();
  out.context = EncodeContext(merged.Context());
  return out;
}

namespace {
struct ScanReply {
  std::vector<ScannedItem> items;
  bool more = false;
};
}  // namespace

QueryOutcome Coordinator::Query(const QueryRequest& request) {
  QueryOutcome out;
  if (!(out.status = ValidateKey(request.pk, request.start_sk)).ok()) return out;
  if (request.sk_prefix.size() > kMaxSkBytes) {
    out.status = Status::InvalidArgument("sk_prefix is longer than " + std::to_string(kMaxSkBytes) + " bytes");
    return out;
  }
  if (request.limit < 0 || request.limit > kMaxQueryLimit) {
    out.status = Status::InvalidArgument("limit=" + std::to_string(request.limit) + " is outside 0.." +
                                         std::to_string(kMaxQueryLimit) + " (0 means " +
                                         std::to_string(kDefaultQueryLimit) + ")");
    return out;
  }
  const size_t limit = request.limit == 0 ? kDefaultQueryLimit : static_cast<size_t>(request.limit);
  Placement place = Place(membership_, options_.self_id, request.pk);
  const uint32_t n = static_cast<uint32_t>(place.members.size());
  if (!(out.status = ValidateQuorum(request.r, "r", n)).ok()) return out;
  const int needed = request.r == 0 ? static_cast<int>(std::min(options_.default_r, n)) : request.r;
  const bool asc = request.ascending;
  const auto deadline = std::chrono::steady_clock::now() + options_.request_timeout;

  // A cursor into the pk, advanced round by round: replicas may answer with
  // different items (tombstones, missed writes), so only items up to the
  // earliest point where some replica stopped are known to be complete.
  std::string cursor = request.start_sk;
  bool cursor_exclusive = false;
  for (;;) {
    std::vector<ReplicaEndpoint*> targets;
    for (size_t i = 0; i < n; ++i) {
      ReplicaEndpoint* ep = &endpoints_->Endpoint(*place.view, place.members[i]);
      if (static_cast<int>(i) == place.self_index || ep->LikelyAlive()) targets.push_back(ep);
    }
    out.quorum = {needed, static_cast<int>(targets.size())};
    if (static_cast<int>(targets.size()) < needed) {
      out.status = Status::Unavailable(Describe(out.quorum, "replicas alive:"));
      out.items.clear();
      return out;
    }
    auto scan = std::make_shared<DataStore::ScanRequest>();
    scan->partition = place.partition;
    scan->pk = request.pk;
    scan->sk_prefix = request.sk_prefix;
    scan->start_sk = cursor;
    scan->start_exclusive = cursor_exclusive;
    scan->limit = limit + 1;
    scan->ascending = asc;
    QuorumCall<ScanReply> call(needed, executor_);
    for (ReplicaEndpoint* ep : targets)
      call.Start([ep, scan](ScanReply* reply) { return ep->Scan(*scan, &reply->items, &reply->more); });
    auto result = call.Wait(deadline);
    out.quorum = {needed, result.succeeded};
    if (result.result != QuorumCall<ScanReply>::Result::kQuorum) {
      out.items.clear();
      out.status = result.result == QuorumCall<ScanReply>::Result::kFailed
                       ? Status::QuorumFailed(Describe(out.quorum, "query answered by") +
                                              "; first error: " + result.first_error)
                       : Status::TimedOut(Describe(out.quorum, "query answered by") + " within " +
                                          std::to_string(options_.request_timeout.count()) + " ms");
      return out;
    }

    // Where the complete part of this round ends (inclusive), if any replica stopped early.
    std::optional<std::string> boundary;
    for (const auto& reply : result.replies) {
      if (!reply.more || reply.items.empty()) continue;
      const std::string& last = reply.items.back().sk;
      if (!boundary || (asc ? last < *boundary : last > *boundary)) boundary = last;
    }
    std::map<std::string, SiblingSet> merged;
    for (const auto& reply : result.replies)
      for (const auto& item : reply.items) {
        if (boundary && (asc ? item.sk > *boundary : item.sk < *boundary)) continue;
        merged[item.sk].Merge(item.siblings);
      }

    auto emit = [&](const std::string& sk, const SiblingSet& siblings) -> bool {
      // Returns false once the page is full and `sk` became the next start.
      if (out.items.size() == limit) {
        // "" cannot be a next start (it means the end); in descending order
        // the empty sk is the last item there is, so it joins this page.
        if (!(sk.empty() && !asc)) {
          out.next_start_sk = sk;
          return false;
        }
      }
      if (siblings.HasLive())
        out.items.push_back({sk, siblings.LiveValues(), EncodeContext(siblings.Context())});
      return true;
    };
    bool full = false;
    if (asc) {
      for (auto it = merged.begin(); it != merged.end() && !full; ++it) full = !emit(it->first, it->second);
    } else {
      for (auto it = merged.rbegin(); it != merged.rend() && !full; ++it) full = !emit(it->first, it->second);
    }
    if (full || !boundary) {
      out.status = Status::OK();
      return out;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      out.items.clear();
      out.status = Status::TimedOut("query did not finish within " +
                                    std::to_string(options_.request_timeout.count()) + " ms");
      return out;
    }
    cursor = *boundary;
    cursor_exclusive = true;
  }
}

}  // namespace monju
