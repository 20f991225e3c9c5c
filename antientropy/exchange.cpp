#include "exchange.h"

#include <algorithm>
#include <tuple>

namespace monju {
namespace {

// Approximate Thrift binary framing per field (type, id, length).
constexpr size_t kFieldBytes = 7;

size_t WireSize(const KeyQuery& q) {
  return q.pk.size() + q.sk.size() + q.asker_context.size() + 5 * kFieldBytes;
}
size_t WireSize(const KeyAnswer& a) {
  size_t n = a.pk.size() + a.sk.size() + a.context.size() + 6 * kFieldBytes;
  for (const auto& v : a.versions) n += v.size() + 4;
  return n;
}
size_t WireSize(const KeyDigest& d) { return d.pk.size() + d.sk.size() + 16 + 5 * kFieldBytes; }
size_t WireSize(const KeyedVersionBytes& v) { return v.pk.size() + v.sk.size() + v.version.size() + 4 * kFieldBytes; }

bool KeyLess(const KeyDigest& a, const KeyDigest& b) {
  return std::tie(a.key_hash, a.pk, a.sk) < std::tie(b.key_hash, b.pk, b.sk);
}

class ExchangeRun {
 public:
  ExchangeRun(uint32_t partition, uint32_t format, ExchangePeer& local, ExchangePeer& remote, ExchangeControl* control,
              const ExchangeLimits& limits, ExchangeStats* stats)
      : partition_(partition),
        format_(format),
        depth_(format & 0xff),
        local_(local),
        remote_(remote),
        control_(control),
        limits_(limits),
        stats_(*stats) {}

  Status Go() {
    std::vector<uint32_t> leaves;
    Status s = Descend(&leaves);
    if (!s.ok()) return s;
    stats_.leaves_different = leaves.size();
    const size_t group = std::max<size_t>(limits_.leaves_per_group, 1);
    for (size_t i = 0; i < leaves.size(); i += group) {
      std::vector<uint32_t> part(leaves.begin() + i, leaves.begin() + std::min(leaves.size(), i + group));
      s = SettleLeaves(part);
      if (!s.ok()) return s;
    }
    return Status::OK();
  }

 private:
  Status Checkpoint() {
    if (control_ && control_->Cancelled()) return Status::Unavailable("exchange cancelled");
    return Status::OK();
  }
  void Sent(size_t bytes) {
    stats_.bytes_sent += bytes;
    if (control_) control_->Spend(bytes);
  }
  void Received(size_t bytes) {
    stats_.bytes_received += bytes;
    if (control_) control_->Spend(bytes);
  }

  Status HashesOf(bool remote, uint32_t level, const std::vector<uint32_t>& nodes, std::vector<uint64_t>* out) {
    out->clear();
    const size_t chunk = std::max<size_t>(limits_.nodes_per_call, 1);
    std::vector<uint64_t> part;
    for (size_t i = 0; i < nodes.size(); i += chunk) {
      std::vector<uint32_t> ask(nodes.begin() + i, nodes.begin() + std::min(nodes.size(), i + chunk));
      Status s = Checkpoint();
      if (!s.ok()) return s;
      if (remote) {
        Sent(4 * ask.size() + 4 * kFieldBytes);
        ++stats_.round_trips;
      }
      s = (remote ? remote_ : local_).Hashes(partition_, format_, level, ask, &part);
      if (!s.ok()) return s;
      if (part.size() != ask.size())
        return Status::Corruption("asked for " + std::to_string(ask.size()) + " tree hashes, got " +
                                  std::to_string(part.size()));
      if (remote) Received(8 * part.size() + kFieldBytes);
      out->insert(out->end(), part.begin(), part.end());
    }
    return Status::OK();
  }

  // The differing leaves, visiting only children of differing nodes.
  Status Descend(std::vector<uint32_t>* leaves) {
    std::vector<uint32_t> nodes = {0};
    std::vector<uint64_t> mine, theirs;
    for (uint32_t level = 0;; ++level) {
      Status s = HashesOf(false, level, nodes, &mine);
      if (s.ok()) s = HashesOf(true, level, nodes, &theirs);
      if (!s.ok()) return s;
      stats_.nodes_compared += nodes.size();
      std::vector<uint32_t> differing;
      for (size_t i = 0; i < nodes.size(); ++i)
        if (mine[i] != theirs[i]) differing.push_back(nodes[i]);
      if (level == 0) stats_.different = !differing.empty();
      if (differing.empty() || level == depth_) {
        *leaves = std::move(differing);
        return Status::OK();
      }
      nodes.clear();
      for (uint32_t parent : differing)
        for (uint32_t c = 0; c < 16; ++c) nodes.push_back(parent * 16 + c);
    }
  }

  Status ListAll(bool remote, const std::vector<uint32_t>& leaves, std::vector<KeyDigest>* out) {
    out->clear();
    std::optional<uint64_t> after;
    std::vector<KeyDigest> page;
    for (;;) {
      Status s = Checkpoint();
      if (!s.ok()) return s;
      if (remote) {
        Sent(4 * leaves.size() + 6 * kFieldBytes);
        ++stats_.round_trips;
      }
      bool more = false;
      s = (remote ? remote_ : local_).ListLeaves(partition_, format_, leaves, after, limits_.list_page, &page, &more);
      if (!s.ok()) return s;
      size_t bytes = kFieldBytes;
      for (auto& d : page) {
        if (after && d.key_hash <= *after) return Status::Corruption("leaf listing went backwards");
        bytes += WireSize(d);
      }
      if (remote) Received(bytes);
      if (more && page.empty()) return Status::Corruption("leaf listing made no progress");
      if (!page.empty()) after = page.back().key_hash;
      for (auto& d : page) out->push_back(std::move(d));
      if (!more || *after == UINT64_MAX) break;
    }
    std::sort(out->begin(), out->end(), KeyLess);
    return Status::OK();
  }

  Status SettleLeaves(const std::vector<uint32_t>& leaves) {
    std::vector<KeyDigest> mine, theirs;
    Status s = ListAll(false, leaves, &mine);
    if (s.ok()) s = ListAll(true, leaves, &theirs);
    if (!s.ok()) return s;
    // Merge join: keys on one side only, or with other digests.
    std::vector<KeyQuery> differing;
    size_t i = 0, j = 0;
    while (i < mine.size() || j < theirs.size()) {
      if (j == theirs.size() || (i < mine.size() && KeyLess(mine[i], theirs[j]))) {
        differing.push_back({mine[i].pk, mine[i].sk, "", false});
        ++i;
      } else if (i == mine.size() || KeyLess(theirs[j], mine[i])) {
        differing.push_back({theirs[j].pk, theirs[j].sk, "", false});
        ++j;
      } else {
        if (mine[i].digest != theirs[j].digest) differing.push_back({mine[i].pk, mine[i].sk, "", false});
        ++i;
        ++j;
      }
    }
    stats_.keys_different += differing.size();
    const size_t batch = std::max<size_t>(limits_.fetch_keys, 1);
    for (size_t k = 0; k < differing.size(); k += batch) {
      std::vector<KeyQuery> part(differing.begin() + k, differing.begin() + std::min(differing.size(), k + batch));
      s = Reconcile(std::move(part));
      if (!s.ok()) return s;
    }
    return Status::OK();
  }

  // Fetches every query's answer, a bounded request at a time; a side may
  // answer a prefix of a request.
  Status FetchAll(bool remote, const std::vector<KeyQuery>& queries, std::vector<KeyAnswer>* out) {
    out->clear();
    size_t next = 0;
    std::vector<KeyAnswer> part;
    while (next < queries.size()) {
      std::vector<KeyQuery> ask;
      size_t bytes = 0;
      while (next + ask.size() < queries.size() && ask.size() < std::max<size_t>(limits_.fetch_keys, 1)) {
        const KeyQuery& q = queries[next + ask.size()];
        if (!ask.empty() && bytes + WireSize(q) > limits_.fetch_request_bytes) break;
        bytes += WireSize(q);
        ask.push_back(q);
      }
      Status s = Checkpoint();
      if (!s.ok()) return s;
      if (remote) {
        Sent(bytes + kFieldBytes);
        ++stats_.round_trips;
      }
      s = (remote ? remote_ : local_).Fetch(partition_, ask, &part);
      if (!s.ok()) return s;
      if (part.empty() || part.size() > ask.size())
        return Status::Corruption("asked about " + std::to_string(ask.size()) + " keys, got " +
                                  std::to_string(part.size()) + " answers");
      size_t reply = kFieldBytes;
      for (size_t k = 0; k < part.size(); ++k) {
        if (part[k].pk != ask[k].pk || part[k].sk != ask[k].sk)
          return Status::Corruption("a fetch answer names another key than was asked");
        reply += WireSize(part[k]);
      }
      if (remote) Received(reply);
      next += part.size();
      for (auto& a : part) out->push_back(std::move(a));
    }
    return Status::OK();
  }

  Status PushAll(bool remote, std::vector<KeyedVersionBytes> versions) {
    size_t next = 0;
    while (next < versions.size()) {
      std::vector<KeyedVersionBytes> batch;
      size_t bytes = 0;
      while (next < versions.size() && batch.size() < std::max<size_t>(limits_.push_versions, 1)) {
        const size_t size = WireSize(versions[next]);
        if (!batch.empty() && bytes + size > limits_.push_bytes) break;
        bytes += size;
        batch.push_back(std::move(versions[next++]));
      }
      Status s = Checkpoint();
      if (!s.ok()) return s;
      if (remote) {
        Sent(bytes + 2 * kFieldBytes);
        ++stats_.round_trips;
      }
      s = (remote ? remote_ : local_).Push(partition_, batch);
      if (!s.ok()) return s;
    }
    return Status::OK();
  }

  // Settles one batch of differing keys in both directions.
  Status Reconcile(std::vector<KeyQuery> keys) {
    std::vector<KeyAnswer> local_state, remote_state, local_offer;
    // What this side holds (contexts only).
    Status s = FetchAll(false, keys, &local_state);
    if (!s.ok()) return s;
    // What the peer has that this side lacks, and the peer's contexts.
    for (size_t k = 0; k < keys.size(); ++k) {
      keys[k].asker_context = local_state[k].context;
      keys[k].want_versions = true;
    }
    s = FetchAll(true, keys, &remote_state);
    if (!s.ok()) return s;
    std::vector<KeyedVersionBytes> incoming;
    for (const KeyAnswer& a : remote_state) {
      if (a.withheld) ++stats_.withheld;
      if (!a.versions.empty()) ++stats_.keys_received;
      for (const std::string& v : a.versions) incoming.push_back({a.pk, a.sk, v});
    }
    stats_.versions_received += incoming.size();
    s = PushAll(false, std::move(incoming));
    if (!s.ok()) return s;
    // What the peer lacks, against the contexts it reported.
    for (size_t k = 0; k < keys.size(); ++k) keys[k].asker_context = remote_state[k].context;
    s = FetchAll(false, keys, &local_offer);
    if (!s.ok()) return s;
    std::vector<KeyedVersionBytes> outgoing;
    for (const KeyAnswer& a : local_offer) {
      if (a.withheld) ++stats_.withheld;
      if (!a.versions.empty()) ++stats_.keys_sent;
      for (const std::string& v : a.versions) outgoing.push_back({a.pk, a.sk, v});
    }
    stats_.versions_sent += outgoing.size();
    return PushAll(true, std::move(outgoing));
  }

  const uint32_t partition_;
  const uint32_t format_;
  const uint32_t depth_;
  ExchangePeer& local_;
  ExchangePeer& remote_;
  ExchangeControl* control_;
  const ExchangeLimits limits_;
  ExchangeStats& stats_;
};

}  // namespace

ExchangeStats RunExchange(uint32_t partition, uint32_t format, ExchangePeer& local, ExchangePeer& remote,
                          ExchangeControl* control, const ExchangeLimits& limits) {
  ExchangeStats stats;
  ExchangeRun run(partition, format, local, remote, control, limits, &stats);
  stats.status = run.Go();
  return stats;
}

}  // namespace monju
