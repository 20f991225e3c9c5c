#include "exchange.h"

#include "storage/data_store.h"

#include <algorithm>
#include <optional>

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

// The order both sides list in: key hash, then storage order.
bool KeyLess(const KeyDigest& a, const KeyDigest& b) {
  if (a.key_hash != b.key_hash) return a.key_hash < b.key_hash;
  return DataStore::StorageOrderLess(a.pk, a.sk, b.pk, b.sk);
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
    std::vector<uint32_t> nodes;
    Status s = Descend(&nodes);
    if (!s.ok()) return s;
    stats_.leaves_different = nodes.size();
    const size_t group = std::max<size_t>(limits_.nodes_per_group, 1);
    for (size_t i = 0; i < nodes.size(); i += group) {
      std::vector<uint32_t> part(nodes.begin() + i, nodes.begin() + std::min(nodes.size(), i + group));
      s = SettleNodes(part);
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

  // Root (level 0) or the children of `parents` at `level`, a bounded
  // number of parents per call.
  Status HashesOf(bool remote, uint32_t level, const std::vector<uint32_t>& parents, std::vector<uint64_t>* out,
                  int64_t* items) {
    out->clear();
    const size_t chunk = std::max<size_t>(limits_.parents_per_call, 1);
    std::vector<uint64_t> part;
    for (size_t i = 0; i < std::max<size_t>(parents.size(), 1); i += chunk) {
      std::vector<uint32_t> ask;
      if (level > 0) ask.assign(parents.begin() + i, parents.begin() + std::min(parents.size(), i + chunk));
      Status s = Checkpoint();
      if (!s.ok()) return s;
      if (remote) {
        Sent(4 * ask.size() + 4 * kFieldBytes);
        ++stats_.round_trips;
      }
      s = (remote ? remote_ : local_).ChildHashes(partition_, format_, level, ask, &part, items);
      if (!s.ok()) return s;
      const size_t want = level == 0 ? 1 : 16 * ask.size();
      if (part.size() != want)
        return Status::Corruption("asked for " + std::to_string(want) + " tree hashes, got " +
                                  std::to_string(part.size()));
      if (remote) Received(8 * part.size() + 2 * kFieldBytes + 8);
      out->insert(out->end(), part.begin(), part.end());
      if (level == 0) break;
    }
    return Status::OK();
  }

  // The level where listing keys is cheaper than descending further.
  uint32_t StopLevel(int64_t items) const {
    const uint64_t per_node = std::max<size_t>(limits_.keys_per_listed_node, 1);
    uint32_t level = 0;
    uint64_t nodes = 1;
    while (level < kMaxExchangeLevel && uint64_t(std::max<int64_t>(items, 0)) > per_node * nodes) {
      ++level;
      nodes *= 16;
    }
    return level;
  }

  // The differing nodes at the stop level, visiting only children of
  // differing nodes.
  Status Descend(std::vector<uint32_t>* nodes) {
    std::vector<uint64_t> mine, theirs;
    int64_t my_items = 0, their_items = 0;
    Status s = HashesOf(false, 0, {}, &mine, &my_items);
    if (s.ok()) s = HashesOf(true, 0, {}, &theirs, &their_items);
    if (!s.ok()) return s;
    stats_.nodes_compared += 1;
    nodes->clear();
    stats_.different = mine[0] != theirs[0];
    if (!stats_.different) return Status::OK();
    stop_level_ = StopLevel(std::max(my_items, their_items));
    std::vector<uint32_t> differing = {0};
    for (uint32_t level = 1; level <= stop_level_; ++level) {
      int64_t ignored;
      s = HashesOf(false, level, differing, &mine, &ignored);
      if (s.ok()) s = HashesOf(true, level, differing, &theirs, &ignored);
      if (!s.ok()) return s;
      stats_.nodes_compared += mine.size();
      std::vector<uint32_t> next;
      for (size_t i = 0; i < mine.size(); ++i)
        if (mine[i] != theirs[i]) next.push_back(differing[i / 16] * 16 + uint32_t(i % 16));
      differing = std::move(next);
      if (differing.empty()) break;  // the roots differed by a collision of sums; nothing to list
    }
    *nodes = std::move(differing);
    return Status::OK();
  }

  // One side's listing of the nodes being settled, a page at a time, so that
  // a node holding many keys (a wide pk: its rows share one key hash) is
  // never held whole.
  class Listing {
   public:
    Listing(ExchangeRun& run, bool remote, const std::vector<uint32_t>& nodes)
        : run_(run), remote_(remote), nodes_(nodes) {}

    // The next entry, or nullptr at the end (or on error: *status).
    const KeyDigest* Head(Status* status) {
      while (next_ == page_.size() && more_) {
        *status = NextPage();
        if (!status->ok()) return nullptr;
      }
      return next_ < page_.size() ? &page_[next_] : nullptr;
    }
    void Pop() { ++next_; }

   private:
    Status NextPage() {
      Status s = run_.Checkpoint();
      if (!s.ok()) return s;
      if (remote_) {
        run_.Sent(4 * nodes_.size() + 9 * kFieldBytes + (after_ ? after_->pk.size() + after_->sk.size() : 0));
        ++run_.stats_.round_trips;
      }
      bool more = false;
      s = (remote_ ? run_.remote_ : run_.local_)
              .ListKeys(run_.partition_, run_.format_, run_.stop_level_, nodes_, after_ ? &*after_ : nullptr,
                        run_.limits_.list_page, &page_, &more);
      next_ = 0;
      if (!s.ok()) return s;
      // Strictly ascending across pages, so a side that repeats itself ends
      // the exchange instead of keeping it going.
      const KeyDigest* previous = after_ ? &*after_ : nullptr;
      size_t bytes = kFieldBytes;
      for (const auto& d : page_) {
        if (previous && !KeyLess(*previous, d)) return Status::Corruption("leaf listing went backwards or repeated");
        previous = &d;
        bytes += WireSize(d);
      }
      if (remote_) run_.Received(bytes);
      if (more && page_.empty()) return Status::Corruption("leaf listing made no progress");
      if (!page_.empty()) after_ = page_.back();
      more_ = more;
      return Status::OK();
    }

    ExchangeRun& run_;
    const bool remote_;
    const std::vector<uint32_t>& nodes_;
    std::vector<KeyDigest> page_;
    size_t next_ = 0;
    bool more_ = true;
    std::optional<KeyDigest> after_;
  };

  // Merge-joins both sides' listings (both in KeyLess order, checked as the
  // pages come); a key listed on one side only, or with other digests,
  // differs and is reconciled a batch at a time.
  Status SettleNodes(const std::vector<uint32_t>& nodes) {
    Listing mine(*this, false, nodes), theirs(*this, true, nodes);
    std::vector<KeyQuery> differing;
    const size_t batch = std::max<size_t>(limits_.fetch_keys, 1);
    for (;;) {
      Status s;
      const KeyDigest* m = mine.Head(&s);
      if (!s.ok()) return s;
      const KeyDigest* t = theirs.Head(&s);
      if (!s.ok()) return s;
      if (!m && !t) break;
      if (!t || (m && KeyLess(*m, *t))) {
        differing.push_back({m->pk, m->sk, "", false});
        mine.Pop();
      } else if (!m || KeyLess(*t, *m)) {
        differing.push_back({t->pk, t->sk, "", false});
        theirs.Pop();
      } else {
        if (m->digest != t->digest) differing.push_back({m->pk, m->sk, "", false});
        mine.Pop();
        theirs.Pop();
      }
      if (differing.size() >= batch) {
        stats_.keys_different += differing.size();
        s = Reconcile(std::move(differing));
        if (!s.ok()) return s;
        differing.clear();
      }
    }
    stats_.keys_different += differing.size();
    return differing.empty() ? Status::OK() : Reconcile(std::move(differing));
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
  uint32_t stop_level_ = 0;  // where keys are listed
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
