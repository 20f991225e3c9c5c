// Basic operations against one 3-node cluster (N=3, R=2, W=2) shared by every
// test in this file; each test uses its own partition keys.
//
// Covers: replication across coordinators, query paging, siblings and
// contexts, removes, and binary / punctuated keys.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <mutex>
#include <thread>

#include "cluster_harness.h"

namespace monju::itest {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::UnorderedElementsAre;

class BasicOpsTest : public SharedClusterTest {
 protected:

  static std::unique_ptr<MonjuKVClient> Client(int i) { return cluster_->Client(i); }

  // The calls below throw std::runtime_error naming the call, the node and
  // the API error (gtest prints it), instead of the bare Thrift exception.
  template <typename Fn>
  static void Described(const std::string& what, int node, Fn&& fn) {
    try {
      fn(*Client(node));
    } catch (const std::exception& e) {
      throw std::runtime_error(what + " via n" + std::to_string(node + 1) + ": " + DescribeException(e));
    }
  }

  static api::WriteResult Put(int node, const std::string& pk, const std::string& sk, const std::string& value,
                              const std::string& context = "", int32_t w = 0) {
    api::WriteResult res;
    Described("put(" + Printable(pk) + ", " + Printable(sk) + ")", node,
              [&](MonjuKVClient& c) { c.put(res, pk, sk, value, context, w); });
    return res;
  }
  static api::GetResult Get(int node, const std::string& pk, const std::string& sk, int32_t r = 0) {
    api::GetResult res;
    Described("get(" + Printable(pk) + ", " + Printable(sk) + ")", node,
              [&](MonjuKVClient& c) { c.get(res, pk, sk, r); });
    return res;
  }
  static api::WriteResult Remove(int node, const std::string& pk, const std::string& sk, const std::string& context,
                                 int32_t w = 0) {
    api::WriteResult res;
    Described("remove(" + Printable(pk) + ", " + Printable(sk) + ")", node,
              [&](MonjuKVClient& c) { c.remove(res, pk, sk, context, w); });
    return res;
  }
  static api::QueryResult Query(int node, const std::string& pk, const std::string& prefix, const std::string& start,
                                int32_t limit, bool ascending, int32_t r = 0) {
    api::QueryResult res;
    Described("query(" + Printable(pk) + ", prefix " + Printable(prefix) + ", start " + Printable(start) +
                  ", limit " + std::to_string(limit) + (ascending ? ", asc)" : ", desc)"),
              node, [&](MonjuKVClient& c) { c.query(res, pk, prefix, start, limit, ascending, r); });
    return res;
  }

  struct Paged {
    std::vector<api::Item> items;
    std::vector<size_t> page_sizes;
    bool ok = true;
    std::string error;
  };
  // Follows next_start_sk until it is empty (at most 200 pages).
  static Paged QueryAllPages(int node, const std::string& pk, const std::string& prefix, int32_t limit,
                             bool ascending) {
    Paged out;
    std::string start;
    for (int page = 0; page < 200; ++page) {
      api::QueryResult res = Query(node, pk, prefix, start, limit, ascending);
      out.page_sizes.push_back(res.items.size());
      for (auto& item : res.items) out.items.push_back(item);
      if (res.next_start_sk.empty()) return out;
      if (res.next_start_sk == start) {
        out.ok = false;
        out.error = "next_start_sk did not advance: " + Printable(start);
        return out;
      }
      start = res.next_start_sk;
    }
    out.ok = false;
    out.error = "more than 200 pages";
    return out;
  }

  static std::vector<std::string> Sks(const std::vector<api::Item>& items) {
    std::vector<std::string> sks;
    for (const auto& i : items) sks.push_back(i.sk);
    return sks;
  }

};


std::string ItemSk(const char* prefix, int n) {
  char buf[32];
  snprintf(buf, sizeof buf, "%s%02d", prefix, n);
  return buf;
}

// (a) A write through one coordinator is read through the others.
TEST_F(BasicOpsTest, PutThroughOneNodeGetThroughOthers) {
  const std::string pk = "basic-a";
  api::WriteResult w = Put(0, pk, "greeting", "hello from n1");
  EXPECT_FALSE(w.context.empty()) << "put must return a context";

  for (int node : {1, 2}) {
    api::GetResult g = Get(node, pk, "greeting");
    EXPECT_TRUE(g.found) << "via n" << node + 1;
    EXPECT_THAT(g.values, ElementsAre("hello from n1")) << "via n" << node + 1;
    EXPECT_FALSE(g.context.empty()) << "via n" << node + 1;
  }
  // Every replica answering still gives the one value.
  api::GetResult all = Get(2, pk, "greeting", 3);
  EXPECT_TRUE(all.found);
  EXPECT_THAT(all.values, ElementsAre("hello from n1"));

  // A key never written: not found, no values.
  api::GetResult absent = Get(1, pk, "never-written");
  EXPECT_FALSE(absent.found);
  EXPECT_TRUE(absent.values.empty());

  // Same sk under another pk is another key.
  api::GetResult other = Get(1, pk + "-other", "greeting");
  EXPECT_FALSE(other.found);
}

// (b) Query pages chain through next_start_sk, both directions, and honour
// the prefix, removes and the limit rules.
TEST_F(BasicOpsTest, QueryPaging) {
  const std::string pk = "basic-b";
  std::vector<std::string> expected;
  for (int n = 0; n < 25; ++n) {
    std::string sk = ItemSk("item/", n);
    Put(n % 3, pk, sk, "v-" + sk);
    expected.push_back(sk);
  }
  // Neighbours of the prefix that must not be listed.
  for (const char* sk : {"other/00", "other/01", "other/02", "item", "item.", "itel/99", "itemz/00", "j"})
    Put(0, pk, sk, std::string("v-") + sk);

  // Ascending, 7 per page.
  Paged asc = QueryAllPages(1, pk, "item/", 7, true);
  ASSERT_TRUE(asc.ok) << asc.error;
  EXPECT_THAT(Sks(asc.items), ElementsAreArray(expected));
  EXPECT_GE(asc.page_sizes.size(), 3u);
  for (size_t s : asc.page_sizes) EXPECT_LE(s, 7u);
  EXPECT_EQ(asc.page_sizes.front(), 7u);
  for (const auto& item : asc.items) {
    EXPECT_EQ(item.pk, pk);
    EXPECT_THAT(item.values, ElementsAre("v-" + item.sk));
    EXPECT_FALSE(item.context.empty()) << item.sk;
  }

  // The first page by itself: 7 items and a continuation.
  api::QueryResult first = Query(2, pk, "item/", "", 7, true);
  EXPECT_EQ(first.items.size(), 7u);
  EXPECT_FALSE(first.next_start_sk.empty());

  // Descending: the same items in reverse.
  Paged desc = QueryAllPages(2, pk, "item/", 7, false);
  ASSERT_TRUE(desc.ok) << desc.error;
  std::vector<std::string> reversed(expected.rbegin(), expected.rend());
  EXPECT_THAT(Sks(desc.items), ElementsAreArray(reversed));
  EXPECT_GE(desc.page_sizes.size(), 3u);
  for (size_t s : desc.page_sizes) EXPECT_LE(s, 7u);

  // start_sk is inclusive, in either direction.
  api::QueryResult from10 = Query(0, pk, "item/", "item/10", 3, true);
  EXPECT_THAT(Sks(from10.items), ElementsAre("item/10", "item/11", "item/12"));
  api::QueryResult down10 = Query(0, pk, "item/", "item/10", 3, false);
  EXPECT_THAT(Sks(down10.items), ElementsAre("item/10", "item/09", "item/08"));

  // The whole pk without a prefix, in order.
  api::QueryResult everything = Query(1, pk, "", "", 1000, true);
  std::vector<std::string> all_sks = Sks(everything.items);
  EXPECT_EQ(all_sks.size(), 33u);
  EXPECT_TRUE(std::is_sorted(all_sks.begin(), all_sks.end()));
  EXPECT_TRUE(everything.next_start_sk.empty());

  // A removed item is not listed, alone or while paging.
  api::GetResult g13 = Get(0, pk, "item/13");
  ASSERT_TRUE(g13.found);
  Remove(1, pk, "item/13", g13.context);
  std::vector<std::string> without13 = expected;
  without13.erase(std::find(without13.begin(), without13.end(), "item/13"));
  api::QueryResult one_page = Query(0, pk, "item/", "", 100, true);
  EXPECT_THAT(Sks(one_page.items), ElementsAreArray(without13));
  EXPECT_TRUE(one_page.next_start_sk.empty());
  Paged after_remove = QueryAllPages(2, pk, "item/", 7, true);
  ASSERT_TRUE(after_remove.ok) << after_remove.error;
  EXPECT_THAT(Sks(after_remove.items), ElementsAreArray(without13));
  Paged after_remove_desc = QueryAllPages(0, pk, "item/", 7, false);
  ASSERT_TRUE(after_remove_desc.ok) << after_remove_desc.error;
  EXPECT_THAT(Sks(after_remove_desc.items), ElementsAreArray(std::vector<std::string>(without13.rbegin(), without13.rend())));

  // A prefix nothing starts with.
  api::QueryResult none = Query(0, pk, "nothing/", "", 10, true);
  EXPECT_TRUE(none.items.empty());
  EXPECT_TRUE(none.next_start_sk.empty());

  // limit > 1000 is invalid.
  CallResult too_many = Call([&] {
    api::QueryResult res;
    Client(0)->query(res, pk, "item/", "", 1001, true, 0);
  });
  EXPECT_EQ(too_many.outcome, Outcome::kInvalidRequest) << too_many.message;
  // limit 1000 is fine.
  EXPECT_EQ(Query(0, pk, "item/", "", 1000, true).items.size(), 24u);
}

// (b) limit 0 means 100.
TEST_F(BasicOpsTest, QueryLimitZeroMeansHundred) {
  const std::string pk = "basic-b-limit0";
  for (int n = 0; n < 130; ++n) {
    char sk[16];
    snprintf(sk, sizeof sk, "k%03d", n);
    Put(n % 3, pk, sk, "v");
  }
  api::QueryResult res = Query(1, pk, "", "", 0, true);
  EXPECT_EQ(res.items.size(), 100u);
  ASSERT_FALSE(res.items.empty());
  EXPECT_EQ(res.items.front().sk, "k000");
  EXPECT_EQ(res.items.back().sk, "k099");
  EXPECT_EQ(res.next_start_sk, "k100");
  api::QueryResult rest = Query(2, pk, "", res.next_start_sk, 0, true);
  EXPECT_EQ(rest.items.size(), 30u);
  EXPECT_TRUE(rest.next_start_sk.empty());
}

// (c) Concurrent blind writes become siblings; a write with a read's context
// replaces exactly what was read.
TEST_F(BasicOpsTest, SiblingsAndContexts) {
  const std::string pk = "basic-c";
  Put(0, pk, "k", "from-n1");
  Put(1, pk, "k", "from-n2");  // empty context: concurrent with the first
  api::GetResult g = Get(2, pk, "k");
  ASSERT_TRUE(g.found);
  EXPECT_THAT(g.values, UnorderedElementsAre("from-n1", "from-n2"));
  api::GetResult g_all = Get(0, pk, "k", 3);
  EXPECT_THAT(g_all.values, UnorderedElementsAre("from-n1", "from-n2"));

  // A put with the read's context resolves both.
  api::WriteResult resolved = Put(2, pk, "k", "resolved", g.context);
  EXPECT_FALSE(resolved.context.empty());
  for (int node : {0, 1, 2}) {
    api::GetResult after = Get(node, pk, "k");
    EXPECT_TRUE(after.found);
    EXPECT_THAT(after.values, ElementsAre("resolved")) << "via n" << node + 1;
  }

  // Two blind puts through the same node are concurrent too.
  Put(0, pk, "same-node", "one");
  Put(0, pk, "same-node", "two");
  EXPECT_THAT(Get(1, pk, "same-node").values, UnorderedElementsAre("one", "two"));

  // A blind put on an existing single value adds a sibling.
  Put(1, pk, "k", "blind-again");
  EXPECT_THAT(Get(0, pk, "k").values, UnorderedElementsAre("resolved", "blind-again"));

  // A stale context (from before the last blind put) supersedes only what it saw.
  api::WriteResult from_stale = Put(2, pk, "k", "from-stale", resolved.context);
  EXPECT_FALSE(from_stale.context.empty());
  EXPECT_THAT(Get(1, pk, "k").values, UnorderedElementsAre("blind-again", "from-stale"));
}

// (c) A chain of writes, each with the previous write's context, through
// different coordinators, never produces siblings.
TEST_F(BasicOpsTest, ContextChainThroughDifferentNodesHasNoSiblings) {
  const std::string pk = "basic-c-chain";
  api::WriteResult w = Put(0, pk, "counter", "0");
  for (int n = 1; n <= 9; ++n) {
    ASSERT_FALSE(w.context.empty()) << "step " << n;
    w = Put(n % 3, pk, "counter", std::to_string(n), w.context);
    api::GetResult g = Get((n + 1) % 3, pk, "counter");
    ASSERT_THAT(g.values, ElementsAre(std::to_string(n))) << "after step " << n;
  }
  // And with the context from a read each time.
  for (int n = 10; n < 16; ++n) {
    api::GetResult g = Get(n % 3, pk, "counter");
    ASSERT_EQ(g.values.size(), 1u);
    Put((n + 2) % 3, pk, "counter", std::to_string(n), g.context);
  }
  EXPECT_THAT(Get(1, pk, "counter", 3).values, ElementsAre("15"));
}

// (d) Remove with the read's context: not found afterwards, context still
// returned, not listed by query; a put with that context brings it back.
TEST_F(BasicOpsTest, RemoveWithContext) {
  const std::string pk = "basic-d";
  Put(0, pk, "gone", "soon removed");
  Put(0, pk, "stays", "kept");
  api::GetResult g = Get(1, pk, "gone");
  ASSERT_TRUE(g.found);
  api::WriteResult rm = Remove(2, pk, "gone", g.context);
  EXPECT_FALSE(rm.context.empty());

  for (int node : {0, 1, 2}) {
    api::GetResult after = Get(node, pk, "gone");
    EXPECT_FALSE(after.found) << "via n" << node + 1;
    EXPECT_TRUE(after.values.empty()) << "via n" << node + 1;
    EXPECT_FALSE(after.context.empty()) << "a removed key still has a context (via n" << node + 1 << ")";
  }
  api::GetResult all = Get(0, pk, "gone", 3);
  EXPECT_FALSE(all.found);

  api::QueryResult q = Query(1, pk, "", "", 100, true);
  EXPECT_THAT(Sks(q.items), ElementsAre("stays"));

  // Writing after the remove with its context: one value, no ghost.
  api::GetResult tomb = Get(2, pk, "gone");
  Put(0, pk, "gone", "back", tomb.context);
  api::GetResult back = Get(1, pk, "gone");
  EXPECT_TRUE(back.found);
  EXPECT_THAT(back.values, ElementsAre("back"));
  EXPECT_THAT(Sks(Query(2, pk, "", "", 100, true).items), ElementsAre("gone", "stays"));

  // Removing with the put's own context works too.
  api::WriteResult w = Put(1, pk, "direct", "x");
  Remove(0, pk, "direct", w.context);
  EXPECT_FALSE(Get(2, pk, "direct").found);
}

// (i) Keys with ':', '/', spaces and binary bytes round-trip through
// put/get/query; byte order is unsigned and prefixes are exact.
TEST_F(BasicOpsTest, BinaryAndPunctuatedKeys) {
  using namespace std::string_literals;
  const std::vector<std::string> pks = {
      "pk:with/colon and space"s, "nul\0inside"s, "\xff\xfe\x00\x01"s, "x"s, "x\0"s, "\0"s, " "s, "/:/"s,
  };
  const std::vector<std::string> sks = {
      "a:b"s, "a/b"s, "a b"s, "a\0b"s, "a\0c"s, "a\xff"s, "\xff"s, "\xff\xff"s, "\xff\x00"s, "\xfe"s, "\0"s,
  };
  auto value_for = [](const std::string& pk, const std::string& sk) {
    return "v\0\xff|"s + pk + "|"s + sk;
  };
  int n = 0;
  for (const auto& pk : pks)
    for (const auto& sk : sks) Put(n++ % 3, pk, sk, value_for(pk, sk));

  n = 0;
  for (const auto& pk : pks) {
    for (const auto& sk : sks) {
      api::GetResult g = Get(++n % 3, pk, sk);
      EXPECT_TRUE(g.found) << "pk=" << Printable(pk) << " sk=" << Printable(sk);
      EXPECT_THAT(g.values, ElementsAre(value_for(pk, sk))) << "pk=" << Printable(pk) << " sk=" << Printable(sk);
    }
    std::vector<std::string> sorted = sks;
    std::sort(sorted.begin(), sorted.end());  // char_traits<char> compares as unsigned bytes
    api::QueryResult q = Query(n % 3, pk, "", "", 100, true);
    EXPECT_THAT(Sks(q.items), ElementsAreArray(sorted)) << "pk=" << Printable(pk);
    for (const auto& item : q.items) {
      EXPECT_EQ(item.pk, pk);
      EXPECT_THAT(item.values, ElementsAre(value_for(pk, item.sk)));
    }
    api::QueryResult qd = Query((n + 1) % 3, pk, "", "", 100, false);
    EXPECT_THAT(Sks(qd.items), ElementsAreArray(std::vector<std::string>(sorted.rbegin(), sorted.rend())))
        << "pk=" << Printable(pk);
  }

  // "x" and "x\0" are different partition keys: neither lists the other's items.
  api::QueryResult qx = Query(0, "x", "", "", 1000, true);
  EXPECT_EQ(qx.items.size(), sks.size());
  Put(1, "x\0\0"s, "only-here", "y");
  EXPECT_EQ(Query(2, "x", "", "", 1000, true).items.size(), sks.size());
  EXPECT_EQ(Query(2, "x\0"s, "", "", 1000, true).items.size(), sks.size());
  EXPECT_FALSE(Get(0, "x", "only-here").found);
  EXPECT_FALSE(Get(0, "x\0"s, "only-here").found);

  // Prefixes containing NUL and 0xff.
  const std::string pk = pks[0];
  EXPECT_THAT(Sks(Query(0, pk, "a\0"s, "", 100, true).items), ElementsAre("a\0b"s, "a\0c"s));
  EXPECT_THAT(Sks(Query(1, pk, "a\0"s, "", 100, false).items), ElementsAre("a\0c"s, "a\0b"s));
  EXPECT_THAT(Sks(Query(2, pk, "\xff"s, "", 100, true).items), ElementsAre("\xff"s, "\xff\x00"s, "\xff\xff"s));
  EXPECT_THAT(Sks(Query(0, pk, "\xff"s, "", 100, false).items), ElementsAre("\xff\xff"s, "\xff\x00"s, "\xff"s));
  EXPECT_THAT(Sks(Query(1, pk, "\xff\xff"s, "", 100, false).items), ElementsAre("\xff\xff"s));
  EXPECT_THAT(Sks(Query(1, pk, "a"s, "", 100, true).items),
              ElementsAre("a\0b"s, "a\0c"s, "a b"s, "a/b"s, "a:b"s, "a\xff"s));
  // Paging across binary sks.
  api::QueryResult p1 = Query(2, pk, "", "", 4, true);
  ASSERT_EQ(p1.items.size(), 4u);
  ASSERT_FALSE(p1.next_start_sk.empty());
  api::QueryResult p2 = Query(2, pk, "", p1.next_start_sk, 100, true);
  std::vector<std::string> both = Sks(p1.items);
  for (const auto& sk : Sks(p2.items)) both.push_back(sk);
  std::vector<std::string> sorted = sks;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_THAT(both, ElementsAreArray(sorted));
}

// The empty sort key is a key like any other: listed first ascending, last
// descending, and paging in either direction reaches it exactly once.
TEST_F(BasicOpsTest, EmptySortKey) {
  const std::string pk = "basic-empty-sk";
  for (const char* sk : {"", "a", "b", "c"}) Put(0, pk, sk, std::string("v") + sk);
  api::GetResult g = Get(1, pk, "");
  EXPECT_TRUE(g.found);
  EXPECT_THAT(g.values, ElementsAre("v"));
  for (int32_t limit : {1, 2, 3, 100}) {
    Paged asc = QueryAllPages(2, pk, "", limit, true);
    ASSERT_TRUE(asc.ok) << asc.error;
    EXPECT_THAT(Sks(asc.items), ElementsAre("", "a", "b", "c")) << "limit " << limit;
    Paged desc = QueryAllPages(0, pk, "", limit, false);
    ASSERT_TRUE(desc.ok) << desc.error;
    EXPECT_THAT(Sks(desc.items), ElementsAre("c", "b", "a", "")) << "limit " << limit;
  }
}

// Many clients at once through every node: every call succeeds and reads
// see the writes (no spurious errors under contention).
TEST_F(BasicOpsTest, ConcurrentClients) {
  constexpr int kThreads = 8, kOps = 40;
  std::mutex mu;
  std::vector<std::string> errors;
  std::atomic<int> done{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      try {
        auto client = Client(t % 3);
        auto reader = Client((t + 1) % 3);
        const std::string pk = "basic-concurrent-" + std::to_string(t);
        for (int n = 0; n < kOps; ++n) {
          const std::string sk = "k" + std::to_string(n), value = "v" + std::to_string(t) + "/" + std::to_string(n);
          api::WriteResult w;
          client->put(w, pk, sk, value, "", 0);
          api::GetResult g;
          reader->get(g, pk, sk, 0);
          if (g.values != std::vector<std::string>{value}) {
            std::lock_guard<std::mutex> lock(mu);
            errors.push_back(pk + "/" + sk + ": read back " + std::to_string(g.values.size()) + " values");
          }
          done.fetch_add(1);
        }
        api::QueryResult q;
        reader->query(q, pk, "", "", 0, true, 0);
        if (q.items.size() != static_cast<size_t>(kOps)) {
          std::lock_guard<std::mutex> lock(mu);
          errors.push_back(pk + ": query listed " + std::to_string(q.items.size()) + " items");
        }
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> lock(mu);
        errors.push_back("thread " + std::to_string(t) + ": " + DescribeException(e));
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_THAT(errors, ::testing::IsEmpty());
  EXPECT_EQ(done.load(), kThreads * kOps);
}

// Values are opaque bytes, empty ones included.
TEST_F(BasicOpsTest, BinaryAndEmptyValues) {
  using namespace std::string_literals;
  const std::string pk = "basic-values";
  std::string all_bytes;
  for (int b = 0; b < 256; ++b) all_bytes.push_back(static_cast<char>(b));
  Put(0, pk, "bytes", all_bytes);
  EXPECT_THAT(Get(1, pk, "bytes").values, ElementsAre(all_bytes));
  Put(1, pk, "empty", "");
  api::GetResult e = Get(2, pk, "empty");
  EXPECT_TRUE(e.found);
  EXPECT_THAT(e.values, ElementsAre(""));
}

}  // namespace
}  // namespace monju::itest
