#include "membership_checks.h"

#include <algorithm>

#include "ring/ring.h"

namespace monju::itest {

WriteLoad::WriteLoad(RaftCluster* cluster, int threads, int per_second, std::string prefix)
    : cluster_(cluster), threads_(threads), per_second_(per_second), prefix_(std::move(prefix)) {
  for (int i = 0; i < cluster_->options().initial; ++i) nodes_.push_back(i);
}

WriteLoad::~WriteLoad() { Stop(); }

void WriteLoad::Start() {
  for (int t = 0; t < threads_; ++t) workers_.emplace_back([this, t] { Run(t); });
}

void WriteLoad::Stop() {
  stop_ = true;
  for (auto& w : workers_)
    if (w.joinable()) w.join();
  workers_.clear();
}

void WriteLoad::SetPhase(const std::string& phase) {
  std::lock_guard<std::mutex> lock(mu_);
  phase_ = phase;
}

void WriteLoad::SetNodes(std::vector<int> nodes) {
  std::lock_guard<std::mutex> lock(mu_);
  nodes_ = std::move(nodes);
}

std::vector<std::string> WriteLoad::Acked() const {
  std::lock_guard<std::mutex> lock(mu_);
  return acked_;
}

std::vector<std::chrono::microseconds> WriteLoad::Latencies(const std::string& phase) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = latencies_.find(phase);
  return it == latencies_.end() ? std::vector<std::chrono::microseconds>{} : it->second;
}

void WriteLoad::Run(int thread) {
  const auto gap = std::chrono::microseconds(1000000 / std::max(per_second_, 1));
  std::map<int, std::unique_ptr<api::MonjuKVClient>> clients;
  auto next = Clock::now();
  for (uint64_t i = 0; !stop_; ++i) {
    next += gap;
    std::this_thread::sleep_until(next);
    int node;
    {
      std::lock_guard<std::mutex> lock(mu_);
      node = nodes_[(i + thread) % nodes_.size()];
    }
    const std::string key = prefix_ + "-" + std::to_string(thread) + "-" + std::to_string(i);
    const auto start = Clock::now();
    bool ok = false;
    try {
      auto& client = clients[node];
      if (!client) client = cluster_->local().Client(node, 3000);
      api::WriteResult res;
      client->put(res, key, "s", key, "", 0);
      ok = true;
    } catch (const apache::thrift::transport::TTransportException&) {
      clients.erase(node);
    } catch (const std::exception&) {
    }
    const auto took = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start);
    if (!ok) {
      ++failures_;
      continue;
    }
    std::lock_guard<std::mutex> lock(mu_);
    acked_.push_back(key);
    latencies_[phase_].push_back(took);
  }
}

std::map<int, std::set<std::string>> OwnersByPartition(const membership::RingReply& ring) {
  std::map<int, std::set<std::string>> out;
  for (const auto& p : ring.partitions) out[p.partition] = std::set<std::string>(p.readers.begin(), p.readers.end());
  return out;
}

uint32_t PartitionOfPk(const std::string& pk, int partitions) {
  return static_cast<uint32_t>((static_cast<unsigned __int128>(Ring::HashPk(pk)) * partitions) >> 64);
}

::testing::AssertionResult AllReadBack(RaftCluster& c, const std::vector<std::string>& keys) {
  std::vector<int> running;
  for (int i = 0; i < c.max_nodes(); ++i)
    if (c.local().IsRunning(i)) running.push_back(i);
  size_t missing = 0;
  std::string first;
  std::map<int, std::unique_ptr<api::MonjuKVClient>> clients;
  for (size_t k = 0; k < keys.size(); ++k) {
    const int node = running[k % running.size()];
    bool found = false;
    std::string why;
    for (int attempt = 0; attempt < 3 && !found; ++attempt) {
      try {
        auto& client = clients[node];
        if (!client) client = c.local().Client(node, 5000);
        api::GetResult got;
        client->get(got, keys[k], "s", 2);
        found = got.found && got.values == std::vector<std::string>{keys[k]};
        if (!found) why = got.found ? "wrong value" : "not found";
      } catch (const std::exception& e) {
        clients.erase(node);
        why = DescribeException(e);
      }
    }
    if (!found) {
      if (first.empty()) first = keys[k] + " via " + c.id(node) + ": " + why;
      ++missing;
    }
  }
  if (missing == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << missing << " of " << keys.size()
                                       << " acknowledged keys do not read back with R=2; first: " << first;
}

::testing::AssertionResult KeysOnExactlyTheirOwners(RaftCluster& c, const std::vector<std::string>& all_keys,
                                                    std::chrono::milliseconds timeout) {
  // A sample spread over the whole load keeps each poll short.
  std::vector<std::string> keys;
  const size_t step = std::max<size_t>(1, all_keys.size() / 400);
  for (size_t k = 0; k < all_keys.size(); k += step) keys.push_back(all_keys[k]);
  std::string why;
  bool ok = PollUntil(
      [&] {
        membership::RingReply ring;
        int reference = -1;
        for (int i = 0; i < c.max_nodes() && reference < 0; ++i)
          if (c.local().IsRunning(i)) reference = i;
        if (reference < 0 || !c.TryRing(reference, &ring, &why)) return false;
        auto owners = OwnersByPartition(ring);
        for (int i = 0; i < c.max_nodes(); ++i) {
          if (!c.local().IsRunning(i)) continue;
          ReplicaClient replica(c.local(), i);
          for (const auto& key : keys) {
            const bool owner = owners[PartitionOfPk(key, c.options().partitions)].count(c.id(i)) > 0;
            const bool holds = !replica.Read(key, "s").empty();
            if (owner != holds) {
              why = c.id(i) + (holds ? " still holds " : " lacks ") + key;
              return false;
            }
          }
        }
        return true;
      },
      timeout, 250ms);
  if (ok) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "keys are not on exactly their owners after " << timeout.count()
                                       << " ms: " << why;
}

MoveReport CompareRings(const membership::RingReply& before, const membership::RingReply& after) {
  MoveReport r;
  auto was = OwnersByPartition(before);
  for (const auto& [p, owners] : OwnersByPartition(after)) {
    int gained = 0;
    for (const auto& id : owners) gained += was[p].count(id) ? 0 : 1;
    r.slots_moved += gained;
    r.slots_total += static_cast<int>(owners.size());
    r.partitions_changed += gained ? 1 : 0;
  }
  return r;
}

}  // namespace monju::itest
