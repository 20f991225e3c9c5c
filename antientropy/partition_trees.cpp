#include "partition_trees.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <thread>

namespace monju {
namespace {
constexpr int kRebuildAttempts = 64;
}  // namespace

PartitionTrees::PartitionTrees(DataStore* store, uint32_t partitions)
    : store_(store),
      partitions_(partitions),
      depth_(MerkleTree::DepthFor(partitions)),
      empty_(depth_),
      trees_(partitions),
      ready_(partitions, 0),
      last_change_(partitions, 0) {}

PartitionTrees::~PartitionTrees() { Uninstall(); }

Status PartitionTrees::Install() {
  const auto started = std::chrono::steady_clock::now();
  auto last = store_->SetCommitListener(this);
  if (!last.ok()) return last.status();
  {
    std::lock_guard<std::mutex> lock(mu_);
    installed_ = true;
    applied_ = last.value();
  }
  Status first_error;
  for (uint32_t p = 0; p < partitions_; ++p) {
    auto built = Rebuild(p);
    if (!built.ok()) {
      spdlog::error("anti-entropy: the tree of partition {} could not be built: {}", p, built.status().ToString());
      if (first_error.ok()) first_error = built.status();
    }
  }
  // A first build is not an inconsistency.
  rebuilt_.store(0);
  install_ms_.store(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count());
  return first_error;
}

void PartitionTrees::Uninstall() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!installed_) return;
    installed_ = false;
  }
  // The store may already be closing; then it calls nobody any more.
  (void)store_->SetCommitListener(nullptr);
}

StatusOr<bool> PartitionTrees::Rebuild(uint32_t partition) {
  if (partition >= partitions_) return Status::InvalidArgument("partition out of range");
  for (int attempt = 0; attempt < kRebuildAttempts; ++attempt) {
    bool installed = false, differed = false;
    Status s = BuildOnce(partition, &installed, &differed);
    if (!s.ok()) return s;
    if (installed) {
      if (differed) rebuilt_.fetch_add(1);
      return differed;
    }
    std::this_thread::yield();  // a commit is being applied, or overtook the snapshot
  }
  return Status::Unavailable("partition " + std::to_string(partition) +
                             ": writes kept overtaking the tree rebuild; try again later");
}

Status PartitionTrees::BuildOnce(uint32_t partition, bool* installed, bool* differed) {
  auto fresh = std::make_unique<MerkleTree>(depth_);
  uint64_t snapshot = 0;
  Status s = store_->ForEachDigest(
      partition, [&](uint64_t key_hash, uint64_t digest) { fresh->Update(key_hash, 0, digest); }, &snapshot);
  if (!s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  // Every commit up to the snapshot is applied, and none after it changed
  // this partition: the live tree and the fresh one describe the same state.
  // Not following the store, the snapshot is simply the latest truth.
  if (installed_ && (applied_ < snapshot || last_change_[partition] > snapshot)) return Status::OK();
  *installed = true;
  const MerkleTree& old = trees_[partition] ? *trees_[partition] : empty_;
  *differed = ready_[partition] && !(old == *fresh);
  if (*differed)
    spdlog::warn("anti-entropy: the tree of partition {} did not match the items' digests ({} items held, {} stored); "
                 "replaced",
                 partition, old.items(), fresh->items());
  trees_[partition] = fresh->items() == 0 ? nullptr : std::move(fresh);
  ready_[partition] = 1;
  return Status::OK();
}

void PartitionTrees::OnCommit(uint64_t txn, const std::vector<DigestChange>& changes) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const DigestChange& c : changes) {
    if (c.partition >= partitions_) continue;  // not a partition of this cluster; never listed
    last_change_[c.partition] = txn;
    if (!ready_[c.partition]) continue;  // its build will read this commit from the items
    auto& tree = trees_[c.partition];
    if (!tree) tree = std::make_unique<MerkleTree>(depth_);
    tree->Update(c.key_hash, c.before, c.after);
  }
  applied_ = txn;
}

Status PartitionTrees::Hashes(uint32_t partition, uint32_t level, const std::vector<uint32_t>& nodes,
                              std::vector<uint64_t>* out) const {
  out->clear();
  if (partition >= partitions_) return Status::InvalidArgument("partition out of range");
  if (level > depth_) return Status::InvalidArgument("tree level out of range");
  const uint32_t count = MerkleTree::NodesAt(level);
  for (uint32_t n : nodes)
    if (n >= count) return Status::InvalidArgument("tree node out of range");
  std::lock_guard<std::mutex> lock(mu_);
  if (!ready_[partition]) return Status::Unavailable("the tree of partition " + std::to_string(partition) + " is not built");
  const MerkleTree& tree = trees_[partition] ? *trees_[partition] : empty_;
  out->reserve(nodes.size());
  for (uint32_t n : nodes) out->push_back(tree.Hash(level, n));
  return Status::OK();
}

MerkleTree PartitionTrees::Copy(uint32_t partition) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (partition < partitions_ && trees_[partition]) {
    trees_[partition]->Settle();  // the copy's readers then write nothing
    return *trees_[partition];
  }
  return MerkleTree(depth_);
}

bool PartitionTrees::Ready(uint32_t partition) const {
  std::lock_guard<std::mutex> lock(mu_);
  return partition < partitions_ && ready_[partition];
}

int64_t PartitionTrees::Items(uint32_t partition) const {
  std::lock_guard<std::mutex> lock(mu_);
  return partition < partitions_ && trees_[partition] ? trees_[partition]->items() : 0;
}

int64_t PartitionTrees::items() const {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t n = 0;
  for (const auto& t : trees_)
    if (t) n += t->items();
  return n;
}

}  // namespace monju
