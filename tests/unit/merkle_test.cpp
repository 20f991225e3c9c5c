// Merkle trees (antientropy/merkle_tree.h) and the per-partition trees kept in
// step with a real store (antientropy/partition_trees.h).
//
// Randomized tests use a fixed default seed and print it; set
// MONJU_TEST_SEED=<n> to run them with another one.
#include <gtest/gtest.h>
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "ae_support.h"
#include "merkle_tree.h"

namespace monju {
namespace {

using ae_test::AeReplica;
using ae_test::Live;
using ae_test::Saw;
using ae_test::Tomb;
using test_support::FakeWallClock;
using test_support::TestSeed;

TEST(MerkleTreeTest, DepthForKeepsLeavesWithinBudget) {
  EXPECT_EQ(MerkleTree::DepthFor(1), 4u);
  EXPECT_EQ(MerkleTree::DepthFor(16), 4u);
  EXPECT_EQ(MerkleTree::DepthFor(17), 3u);
  EXPECT_EQ(MerkleTree::DepthFor(256), 3u);
  EXPECT_EQ(MerkleTree::DepthFor(4096), 2u);
  EXPECT_EQ(MerkleTree::DepthFor(65536), 1u);
  for (uint32_t q : {1u, 3u, 100u, 256u, 1000u, 4096u, 65536u})
    EXPECT_LE(uint64_t(q) * MerkleTree(MerkleTree::DepthFor(q)).leaves(), uint64_t(1) << 20) << q;
}

TEST(MerkleTreeTest, LeavesCutTheKeyHashSpaceInOrder) {
  MerkleTree t(2);
  EXPECT_EQ(t.leaves(), 256u);
  EXPECT_EQ(t.LeafRange(0), std::make_pair(uint64_t(0), (uint64_t(1) << 56) - 1));
  EXPECT_EQ(t.LeafRange(255).second, UINT64_MAX);
  for (uint32_t leaf : {0u, 1u, 77u, 255u}) {
    auto [first, last] = t.LeafRange(leaf);
    EXPECT_EQ(t.LeafOf(first), leaf);
    EXPECT_EQ(t.LeafOf(last), leaf);
    if (leaf < 255) {
      EXPECT_EQ(t.LeafOf(last + 1), leaf + 1);
    }
  }
}

// Random inserts, overwrites and deletes applied one by one give the same
// tree as the final set added from scratch in another order, at every depth.
TEST(MerkleTreeTest, IncrementalEqualsFromScratch) {
  std::mt19937_64 rng(TestSeed(4242));
  for (uint32_t depth = MerkleTree::kMinDepth; depth <= MerkleTree::kMaxDepth; ++depth) {
    MerkleTree incremental(depth);
    std::map<uint64_t, uint64_t> model;  // key hash -> digest
    std::vector<uint64_t> keys;
    for (int i = 0; i < 3000; ++i) {
      const int op = static_cast<int>(rng() % 10);
      if (op < 5 || keys.empty()) {  // insert
        const uint64_t k = rng();
        const uint64_t d = rng() | 1;
        incremental.Update(k, model[k], d);
        model[k] = d;
        keys.push_back(k);
      } else {
        const uint64_t k = keys[rng() % keys.size()];
        const uint64_t after = op < 8 ? (rng() | 1) : 0;  // overwrite or delete
        incremental.Update(k, model[k], after);
        model[k] = after;
      }
    }
    std::erase_if(model, [](const auto& kv) { return kv.second == 0; });
    std::vector<std::pair<uint64_t, uint64_t>> shuffled(model.begin(), model.end());
    std::shuffle(shuffled.begin(), shuffled.end(), rng);
    MerkleTree scratch(depth);
    for (auto [k, d] : shuffled) scratch.Update(k, 0, d);
    EXPECT_TRUE(incremental == scratch) << "depth " << depth;
    EXPECT_EQ(incremental.items(), static_cast<int64_t>(model.size()));
    EXPECT_TRUE(incremental.DifferingLeaves(scratch).empty());
    // Removing everything gives the empty tree back.
    for (auto [k, d] : model) incremental.Update(k, d, 0);
    EXPECT_TRUE(incremental == MerkleTree(depth)) << "depth " << depth;
  }
}

// The hash format nodes compare across versions: a leaf is the sum of its
// items' digests, an inner node XXH3-64 of its 16 children as little-endian
// 64-bit words. Computed here independently of the tree's own code.
TEST(MerkleTreeTest, InnerHashesAreXxh3OfTheChildrenAsLittleEndianWords) {
  std::mt19937_64 rng(TestSeed(515));
  MerkleTree tree(2);
  std::vector<uint64_t> leaves(256, 0);
  for (int i = 0; i < 300; ++i) {
    const uint64_t k = rng();
    const uint64_t d = rng() | 1;
    tree.Update(k, 0, d);
    leaves[k >> 56] += d;
  }
  auto hash16 = [](const uint64_t* children) {
    unsigned char bytes[16 * 8];
    for (int c = 0; c < 16; ++c)
      for (int b = 0; b < 8; ++b) bytes[8 * c + b] = static_cast<unsigned char>(children[c] >> (8 * b));
    return XXH3_64bits(bytes, sizeof bytes);
  };
  std::vector<uint64_t> level1(16);
  for (int n = 0; n < 16; ++n) {
    level1[n] = hash16(&leaves[16 * n]);
    EXPECT_EQ(tree.Hash(1, n), level1[n]) << "node 1/" << n;
  }
  for (int leaf = 0; leaf < 256; ++leaf) EXPECT_EQ(tree.Hash(2, leaf), leaves[leaf]) << "leaf " << leaf;
  EXPECT_EQ(tree.Root(), hash16(level1.data()));
}

// Inner hashes are settled lazily, by reads: reads between updates (of the
// root, of single nodes, through a copy) always see every update before
// them, and equal a tree built from scratch with no read in between.
TEST(MerkleTreeTest, ReadsBetweenUpdatesSeeEveryChange) {
  std::mt19937_64 rng(TestSeed(7321));
  for (uint32_t depth = MerkleTree::kMinDepth; depth <= MerkleTree::kMaxDepth; ++depth) {
    MerkleTree tree(depth);
    std::map<uint64_t, uint64_t> model;  // key hash -> digest
    for (int round = 0; round < 40; ++round) {
      const int changes = static_cast<int>(rng() % 50);
      for (int i = 0; i < changes; ++i) {
        // Few distinct keys, so that leaves and their parents change repeatedly.
        const uint64_t top = rng() % 64;
        const uint64_t k = top << (64 - 4 * depth) | (rng() & 0xff);
        const bool erase = rng() % 4 == 0;
        const uint64_t after = erase ? 0 : (rng() | 1);
        tree.Update(k, model[k], after);
        model[k] = after;
      }
      MerkleTree scratch(depth);
      for (auto [k, d] : model)
        if (d) scratch.Update(k, 0, d);
      const MerkleTree copy = tree;  // copied with its stale nodes
      switch (round % 3) {
        case 0:
          ASSERT_EQ(tree.Root(), scratch.Root()) << "depth " << depth << ", round " << round;
          break;
        case 1:
          for (uint32_t l = 0; l <= depth; ++l)
            for (uint32_t n = 0; n < MerkleTree::NodesAt(l); ++n)
              ASSERT_EQ(tree.Hash(l, n), scratch.Hash(l, n)) << "depth " << depth << ", node " << l << "/" << n;
          break;
        case 2:
          ASSERT_TRUE(tree.DifferingLeaves(scratch).empty()) << "depth " << depth << ", round " << round;
          break;
      }
      EXPECT_TRUE(copy == scratch) << "depth " << depth << ", round " << round;
    }
  }
}

// Changing any single item changes its leaf and the root; DifferingLeaves
// finds exactly the leaves of the changed items.
TEST(MerkleTreeTest, DifferingLeavesAreExactlyThoseOfChangedItems) {
  std::mt19937_64 rng(TestSeed(99));
  MerkleTree a(3), b(3);
  std::vector<std::pair<uint64_t, uint64_t>> items;
  for (int i = 0; i < 5000; ++i) {
    items.emplace_back(rng(), rng() | 1);
    a.Update(items.back().first, 0, items.back().second);
    b.Update(items.back().first, 0, items.back().second);
  }
  ASSERT_EQ(a.Root(), b.Root());
  std::set<uint32_t> changed;
  for (int i = 0; i < 25; ++i) {
    auto& [k, d] = items[rng() % items.size()];
    const uint64_t next = d + 2;  // same key, another clock
    b.Update(k, d, next);
    d = next;
    changed.insert(b.LeafOf(k));
  }
  const uint64_t extra = rng();
  b.Update(extra, 0, 5);  // a key only b holds
  changed.insert(b.LeafOf(extra));
  EXPECT_NE(a.Root(), b.Root());
  std::vector<uint32_t> diff = a.DifferingLeaves(b);
  EXPECT_EQ(std::set<uint32_t>(diff.begin(), diff.end()), changed);
  EXPECT_TRUE(std::is_sorted(diff.begin(), diff.end()));
}

// --------------------------------------------------------------- PartitionTrees on a real store

constexpr uint32_t kPartitions = 16;

// Random writes, concurrent siblings, overwrites with contexts, deletes and
// reaps through the Replica: the incrementally kept trees equal trees built
// from the records from scratch, and a rebuild from the index finds nothing
// to fix. After a restart (as after a crash: the trees are rebuilt) they are
// the same again.
TEST(PartitionTreesTest, IncrementalTreesEqualTreesBuiltFromScratch) {
  FakeWallClock wall;
  AeReplica node("n1", kPartitions, &wall);
  std::mt19937_64 rng(TestSeed(7));
  std::map<ae_test::KeyName, SiblingSet> model;
  uint64_t counter = 0;
  for (int i = 0; i < 1500; ++i) {
    const uint32_t p = rng() % kPartitions;
    const std::string pk = "pk" + std::to_string(rng() % 30);
    const std::string sk = "sk" + std::to_string(rng() % 20);
    SiblingSet current = node.Read(p, pk, sk);
    const int op = static_cast<int>(rng() % 10);
    const std::string actor = "w" + std::to_string(rng() % 3) + "/1";
    if (op == 9 && current.AllTombstones()) {
      std::string record;
      ASSERT_TRUE(node.replica().ReadEncoded({p, pk, sk}, &record).ok());
      auto reaped = node.replica().ReapIfUnchanged({p, pk, sk}, record);
      ASSERT_TRUE(reaped.ok());
      continue;
    }
    const CausalContext past = op < 3 ? CausalContext() : current.Context();  // blind: a sibling
    Version v = op >= 7 ? Tomb(actor, ++counter, past, wall.UnixMillis()) : Live(actor, ++counter, past, "v" + std::to_string(i));
    ASSERT_NO_FATAL_FAILURE(node.Apply(p, pk, sk, v));
    if (rng() % 5 == 0) {
      ASSERT_NO_FATAL_FAILURE(node.Apply(p, pk, sk, v));  // a repeat changes nothing
    }
  }
  const std::vector<MerkleTree> scratch = node.TreesFromRecords();
  int64_t items = 0;
  for (uint32_t p = 0; p < kPartitions; ++p) {
    EXPECT_TRUE(node.trees().Copy(p) == scratch[p]) << "partition " << p;
    items += scratch[p].items();
    auto differed = node.trees().Rebuild(p);
    ASSERT_TRUE(differed.ok()) << differed.status().ToString();
    EXPECT_FALSE(differed.value()) << "partition " << p << " was inconsistent";
  }
  EXPECT_EQ(node.trees().items(), items);
  EXPECT_EQ(node.trees().rebuilt(), 0u);

  node.Close();
  node.Open();
  for (uint32_t p = 0; p < kPartitions; ++p) EXPECT_TRUE(node.trees().Copy(p) == scratch[p]) << "after restart, " << p;
}

// Writers run while partitions are rebuilt over and over: the snapshot
// protocol never installs a tree that misses or doubles a commit.
TEST(PartitionTreesTest, RebuildsRacingWritesStayExact) {
  FakeWallClock wall;
  AeReplica node("n1", 4, &wall);
  std::atomic<bool> done{false};
  std::vector<std::thread> writers;
  for (int w = 0; w < 4; ++w)
    writers.emplace_back([&, w] {
      for (uint64_t i = 1; i <= 400; ++i) {
        const std::string pk = "pk" + std::to_string(i % 17);
        Status s = node.replica().Apply({uint32_t(i % 4), pk, "s" + std::to_string(i % 31)},
                                        Live("w" + std::to_string(w) + "/1", i, {}, "x"));
        EXPECT_TRUE(s.ok()) << s.ToString();
      }
    });
  std::thread rebuilder([&] {
    while (!done.load())
      for (uint32_t p = 0; p < 4; ++p) {
        auto r = node.trees().Rebuild(p);
        EXPECT_TRUE(r.ok() || r.status().Is(Status::Code::kUnavailable)) << r.status().ToString();
      }
  });
  for (auto& t : writers) t.join();
  done.store(true);
  rebuilder.join();
  const std::vector<MerkleTree> scratch = node.TreesFromRecords();
  for (uint32_t p = 0; p < 4; ++p) EXPECT_TRUE(node.trees().Copy(p) == scratch[p]) << "partition " << p;
  EXPECT_EQ(node.trees().rebuilt(), 0u) << "a rebuild found a difference the protocol should have prevented";
}

// A tree that missed commits (here: it stopped following the store) is
// found inconsistent by Rebuild(), which replaces it.
TEST(PartitionTreesTest, RebuildFindsAndFixesAStaleTree) {
  FakeWallClock wall;
  AeReplica node("n1", kPartitions, &wall);
  ASSERT_NO_FATAL_FAILURE(node.Apply(3, "pk", "a", Live("w/1", 1, {}, "x")));
  node.trees().Uninstall();
  ASSERT_NO_FATAL_FAILURE(node.Apply(3, "pk", "b", Live("w/1", 2, {}, "y")));
  const MerkleTree stale = node.trees().Copy(3);
  auto differed = node.trees().Rebuild(3);
  ASSERT_TRUE(differed.ok());
  EXPECT_TRUE(differed.value());
  EXPECT_EQ(node.trees().rebuilt(), 1u);
  EXPECT_FALSE(stale == node.trees().Copy(3));
  EXPECT_TRUE(node.trees().Copy(3) == node.TreesFromRecords()[3]);
  differed = node.trees().Rebuild(4);  // untouched partition: consistent
  ASSERT_TRUE(differed.ok());
  EXPECT_FALSE(differed.value());
}

TEST(PartitionTreesTest, HashesCheckTheirArguments) {
  FakeWallClock wall;
  AeReplica node("n1", kPartitions, &wall);
  std::vector<uint64_t> out;
  EXPECT_TRUE(node.trees().Hashes(0, 0, {0}, &out).ok());
  EXPECT_EQ(out, std::vector<uint64_t>{MerkleTree(node.trees().depth()).Root()});
  EXPECT_EQ(node.trees().Hashes(kPartitions, 0, {0}, &out).code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(node.trees().Hashes(0, node.trees().depth() + 1, {0}, &out).code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(node.trees().Hashes(0, 1, {16}, &out).code(), Status::Code::kInvalidArgument);
}

}  // namespace
}  // namespace monju
