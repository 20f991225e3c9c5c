// PartitionTrees: one MerkleTree per partition of this node's store, kept
// equal to the digests of the store's items (src/storage/data_store.h) at all times.
//
// Contract
// - Install() registers with the store as its commit listener and then
//   builds every partition's tree from the items' digests. From then on each
//   commit's item changes are applied on the store's writer thread, in commit
//   order, before the Apply() calls of that commit return: once a write,
//   delete, anti-entropy merge or tombstone reap has returned, the trees
//   include it. A failed commit changes nothing, in LMDB or here. Exchanges
//   never rescan anything to learn a tree.
// - The trees are memory only. After a crash the next start's Install()
//   builds them again from the digests the items carry (written in the same
//   LMDB write as the item), so no crash can leave a tree and the data apart.
//   Building reads every item once, values included (no record is decoded).
// - Rebuild(p) builds p's tree again from one read snapshot of the items
//   while writes go on, and installs it: the snapshot's transaction id tells
//   which commits it already holds, and a snapshot that a later commit to p
//   overtook is retried. It reports whether the old tree differed (it was
//   inconsistent; counted in rebuilt()). While not installed (before
//   Install(), after Uninstall()) no commit is followed, and Rebuild() simply
//   installs the snapshot.
// - A partition whose build failed (its items could not be read) is not
//   ready: Hashes() gives Unavailable until a Rebuild() succeeds.
//
// Thread safety: every method may be called concurrently. One mutex guards
// the trees; readers hold it for the few hashes they copy.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "merkle_tree.h"
#include "storage/data_store.h"

namespace monju {

class PartitionTrees final : public CommitListener {
 public:
  // Trees for partitions 0..partitions-1, of depth MerkleTree::DepthFor(partitions).
  // The store is not owned and must outlive Install()..Uninstall().
  PartitionTrees(DataStore* store, uint32_t partitions);
  ~PartitionTrees() override;

  // Errors: the store's (ShuttingDown, IOError). A partition that could not
  // be built is logged and left not ready; the first such error is returned
  // after every other partition was built.
  Status Install();
  // Stops following the store (idempotent). Trees stay readable.
  void Uninstall();

  // Rebuilds one partition from the items' digests (see above). true when the tree it
  // replaced differed. Unavailable when writes to the partition kept
  // overtaking the snapshot; the store's errors otherwise.
  StatusOr<bool> Rebuild(uint32_t partition);

  uint32_t partitions() const { return partitions_; }
  uint32_t depth() const { return depth_; }

  // The hashes of `nodes` at `level` of the partition's tree, in order.
  // InvalidArgument for a partition, level or node out of range; Unavailable
  // when the partition is not ready.
  Status Hashes(uint32_t partition, uint32_t level, const std::vector<uint32_t>& nodes,
                std::vector<uint64_t>* out) const;
  // Items in one partition's tree.
  int64_t Items(uint32_t partition) const;
  // A copy of one tree (tests, benchmarks, diagnostics).
  MerkleTree Copy(uint32_t partition) const;
  bool Ready(uint32_t partition) const;

  // Items in all trees; trees found inconsistent by Rebuild(); time the last
  // Install() took to build every tree.
  int64_t items() const;
  uint64_t rebuilt() const { return rebuilt_.load(); }
  int64_t install_ms() const { return install_ms_.load(); }

  void OnCommit(uint64_t txn, const std::vector<DigestChange>& changes) override;

 private:
  // Builds from one snapshot; installs when no commit after it touched the
  // partition. *installed false: retry.
  Status BuildOnce(uint32_t partition, bool* installed, bool* differed);

  DataStore* const store_;
  const uint32_t partitions_;
  const uint32_t depth_;
  const MerkleTree empty_;  // what a partition without items hashes to

  mutable std::mutex mu_;
  std::vector<std::unique_ptr<MerkleTree>> trees_;  // null: empty (or not ready)
  std::vector<uint8_t> ready_;
  std::vector<uint64_t> last_change_;  // txn of the last commit that changed the partition
  uint64_t applied_ = 0;               // txn of the last commit whose changes are applied
  bool installed_ = false;

  std::atomic<uint64_t> rebuilt_{0};
  std::atomic<int64_t> install_ms_{0};
};

}  // namespace monju
