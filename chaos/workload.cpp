#include "workload.h"

#include <deque>
#include <set>

#include "element_set.h"
#include "node_clients.h"

namespace monju::chaos {

using SteadyTime = std::chrono::steady_clock::time_point;

class Workload::Client {
 public:
  Client(int index, int node, const WorkloadOptions& options, const NodeSpec& spec, History* history,
         const std::atomic<bool>* stop)
      : index_(index),
        node_(node),
        options_(options),
        history_(history),
        stop_(stop),
        session_(spec.host, spec.port, options.request_timeout_ms + 1000),
        rng_(options.seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(index)) {}

  void Run(SteadyTime epoch) {
    epoch_ = epoch;
    const auto interval = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(options_.clients / options_.ops_per_second));
    auto next = std::chrono::steady_clock::now();
    const int total = options_.register_weight + options_.set_weight + options_.delete_weight;
    while (!stop_->load()) {
      // Paced, not bursting: a client that fell behind (a slow call) resumes
      // at the normal rate instead of catching up.
      std::this_thread::sleep_until(next);
      next += interval;
      const auto now = std::chrono::steady_clock::now();
      if (next < now) next = now;
      int pick = std::uniform_int_distribution<int>(0, total - 1)(rng_);
      if ((pick -= options_.register_weight) < 0) {
        Register();
      } else if ((pick -= options_.set_weight) < 0) {
        SetAdd();
      } else {
        Deletes();
      }
    }
  }

 private:
  int64_t Micros() const {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - epoch_).count();
  }

  Op Begin(OpKind kind, const std::string& key) {
    Op op;
    op.id = history_->NextId();
    op.client = index_;
    op.node = node_;
    op.kind = kind;
    op.key = key;
    op.start_us = Micros();
    return op;
  }

  void End(Op op, const CallOutcome& c) {
    op.end_us = Micros();
    op.outcome = c.outcome;
    op.error = c.error;
    history_->Append(std::move(op));
  }

  // A recorded read; true when it answered.
  bool Read(const std::string& key, ReadResult* out) {
    Op op = Begin(OpKind::kRead, key);
    *out = session_.Get(key, kItemSk, 0);
    op.observed = out->values;
    const bool ok = out->outcome == OpOutcome::kOk;
    End(std::move(op), *out);
    return ok;
  }

  std::string Token(const char* prefix) { return prefix + std::to_string(index_) + "." + std::to_string(++seq_); }

  // Reads `key`, then writes a new token over exactly what it read.
  void OverwriteWhatWasRead(const std::string& key, const char* token_prefix) {
    ReadResult r;
    if (!Read(key, &r)) return;
    Op op = Begin(OpKind::kWrite, key);
    op.value = Token(token_prefix);
    op.observed = r.values;
    End(op, session_.Put(key, kItemSk, op.value, r.context, 0));
  }

  void Register() {
    OverwriteWhatWasRead(
        "reg/" + std::to_string(std::uniform_int_distribution<int>(0, options_.register_keys - 1)(rng_)), "r");
  }

  void SetAdd() {
    const int64_t minute = Micros() / 60'000'000;
    const std::string key = "set/" + std::to_string(minute) + "/" +
                            std::to_string(std::uniform_int_distribution<int>(0, options_.set_keys - 1)(rng_));
    ReadResult r;
    if (!Read(key, &r)) return;
    Op op = Begin(OpKind::kAdd, key);
    op.value = Token("e");
    op.observed = r.values;
    std::set<std::string> elements = UnionOfElements(r.values);
    elements.insert(op.value);
    End(op, session_.Put(key, kItemSk, EncodeElements(elements), r.context, 0));
  }

  void Deletes() {
    const int coin = std::uniform_int_distribution<int>(0, 9)(rng_);
    if (!rewrite_.empty() && coin < 3) {
      OverwriteWhatWasRead(rewrite_.front(), "again");
      rewrite_.pop_front();
    } else if (created_.size() >= 2 || (!created_.empty() && coin < 5)) {
      const std::string key = created_.front();
      created_.pop_front();
      ReadResult r;
      if (!Read(key, &r)) return;
      Op op = Begin(OpKind::kDelete, key);
      op.observed = r.values;
      End(op, session_.Remove(key, kItemSk, r.context, 0));
      if (coin < 3) rewrite_.push_back(key);
    } else {
      const std::string key = "del/" + std::to_string(index_) + "/" + std::to_string(++created_count_);
      Op op = Begin(OpKind::kCreate, key);
      op.value = Token("d");
      CallOutcome c = session_.Put(key, kItemSk, op.value, "", 0);
      const bool keep = c.outcome == OpOutcome::kOk;
      End(op, c);
      if (keep) created_.push_back(key);
    }
  }

  const int index_;
  const int node_;
  const WorkloadOptions& options_;
  History* history_;
  const std::atomic<bool>* stop_;
  KvSession session_;
  std::mt19937_64 rng_;
  SteadyTime epoch_;
  uint64_t seq_ = 0;
  uint64_t created_count_ = 0;
  std::deque<std::string> created_, rewrite_;
};

Workload::Workload(WorkloadOptions options, std::vector<NodeSpec> nodes, History* history)
    : options_(std::move(options)), nodes_(std::move(nodes)), history_(history) {}

Workload::~Workload() { Stop(); }

void Workload::Start(SteadyTime epoch) {
  stop_ = false;
  for (int i = 0; i < options_.clients; ++i) {
    const int node = i % static_cast<int>(nodes_.size());
    clients_.push_back(std::make_unique<Client>(i, node, options_, nodes_[node], history_, &stop_));
  }
  for (auto& c : clients_) threads_.emplace_back([client = c.get(), epoch] { client->Run(epoch); });
}

void Workload::Stop() {
  stop_ = true;
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
  clients_.clear();
}

}  // namespace monju::chaos
