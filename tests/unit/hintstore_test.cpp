// HintStore: durability across reopen, per-owner order, caps, any key bytes.
#include "hintstore.h"

#include "test_support.h"

#include <gtest/gtest.h>

#include <filesystem>

namespace monju {
namespace {

class HintStoreTest : public ::testing::Test {
 protected:

  static Hint MakeHint(const std::string& owner, const std::string& pk, const std::string& value) {
    Hint h;
    h.owner = owner;
    h.partition = 7;
    h.pk = pk;
    h.sk = "sk:" + pk;
    h.version = value;
    h.created_unix_ms = 1700000000123;
    return h;
  }

  test_support::TempDir tmp_{"monju-hints"};
  const std::string dir_ = tmp_.path();
};

TEST_F(HintStoreTest, HintsSurviveReopenInOrderPerOwner) {
  {
    auto store = HintStore::Open(dir_, {});
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(store.value()->Add(MakeHint("b", "k" + std::to_string(i), "v")).ok());
    ASSERT_TRUE(store.value()->Add(MakeHint("c", "other", "v")).ok());
  }
  auto store = HintStore::Open(dir_, {});
  ASSERT_TRUE(store.ok());
  EXPECT_EQ(store.value()->PendingFor("b"), 5u);
  EXPECT_EQ(store.value()->PendingFor("c"), 1u);
  EXPECT_EQ(store.value()->PendingTotal(), 6u);
  std::vector<StoredHint> hints;
  ASSERT_TRUE(store.value()->Oldest("b", 100, &hints).ok());
  ASSERT_EQ(hints.size(), 5u);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(hints[i].hint.pk, "k" + std::to_string(i));
    EXPECT_EQ(hints[i].hint.owner, "b");
    EXPECT_EQ(hints[i].hint.partition, 7u);
    EXPECT_EQ(hints[i].hint.created_unix_ms, 1700000000123);
    if (i) {
      EXPECT_GT(hints[i].sequence, hints[i - 1].sequence);
    }
  }
  // New hints after reopen sort after the old ones.
  ASSERT_TRUE(store.value()->Add(MakeHint("b", "late", "v")).ok());
  ASSERT_TRUE(store.value()->Oldest("b", 100, &hints).ok());
  ASSERT_EQ(hints.size(), 6u);
  EXPECT_EQ(hints.back().hint.pk, "late");
}

TEST_F(HintStoreTest, RemoveIsDurableAndIdempotent) {
  auto store = HintStore::Open(dir_, {});
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE(store.value()->Add(MakeHint("b", "k", "v")).ok());
  std::vector<StoredHint> hints;
  ASSERT_TRUE(store.value()->Oldest("b", 10, &hints).ok());
  ASSERT_EQ(hints.size(), 1u);
  ASSERT_TRUE(store.value()->Remove("b", hints[0].sequence).ok());
  ASSERT_TRUE(store.value()->Remove("b", hints[0].sequence).ok());
  EXPECT_EQ(store.value()->PendingTotal(), 0u);
  EXPECT_TRUE(store.value()->PendingByOwner().empty());
  store = HintStore::Open(dir_ + "/../" + std::filesystem::path(dir_).filename().string(), {});
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE(store.value()->Oldest("b", 10, &hints).ok());
  EXPECT_TRUE(hints.empty());
}

TEST_F(HintStoreTest, CapsRefuseAndStoreNothing) {
  HintLimits limits;
  limits.max_per_owner = 3;
  limits.max_total = 5;
  auto store = HintStore::Open(dir_, limits);
  ASSERT_TRUE(store.ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(store.value()->Add(MakeHint("b", std::to_string(i), "v")).ok());
  Status s = store.value()->Add(MakeHint("b", "over", "v"));
  EXPECT_TRUE(s.Is(Status::Code::kNoSpace)) << s.ToString();
  EXPECT_EQ(store.value()->PendingFor("b"), 3u);
  ASSERT_TRUE(store.value()->Add(MakeHint("c", "1", "v")).ok());
  ASSERT_TRUE(store.value()->Add(MakeHint("d", "1", "v")).ok());
  s = store.value()->Add(MakeHint("e", "1", "v"));
  EXPECT_TRUE(s.Is(Status::Code::kNoSpace)) << s.ToString();
  EXPECT_EQ(store.value()->PendingTotal(), 5u);
}

TEST_F(HintStoreTest, AnyKeyBytesRoundTrip) {
  auto store = HintStore::Open(dir_, {});
  ASSERT_TRUE(store.ok());
  const std::string pk = std::string("a:b/c d\0\xff", 10);
  const std::string version = std::string("\0\x01\x02:", 4);
  Hint h = MakeHint("node-1.x", pk, version);
  h.sk = std::string("\xff\0:/ ", 5);
  ASSERT_TRUE(store.value()->Add(h).ok());
  std::vector<StoredHint> hints;
  ASSERT_TRUE(store.value()->Oldest("node-1.x", 10, &hints).ok());
  ASSERT_EQ(hints.size(), 1u);
  EXPECT_EQ(hints[0].hint.pk, pk);
  EXPECT_EQ(hints[0].hint.sk, h.sk);
  EXPECT_EQ(hints[0].hint.version, version);
  // An owner whose id is a prefix of another's does not see its hints.
  ASSERT_TRUE(store.value()->Oldest("node-1", 10, &hints).ok());
  EXPECT_TRUE(hints.empty());
}

}  // namespace
}  // namespace monju
