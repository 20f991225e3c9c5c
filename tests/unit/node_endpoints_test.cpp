// NodeEndpoints: one remote endpoint per member and view, found again on
// every call (from the view's table without a lock), a fresh one when the
// view changes, and the old view's again when a request still holds it.
// Endpoints connect lazily, so nothing here touches the network.
#include "replica_endpoints.h"
#include "exchange_peers.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "membership.h"

namespace monju {
namespace {

std::vector<PeerAddress> Members(uint16_t first_port) {
  std::vector<PeerAddress> members;
  for (int i = 0; i < 3; ++i)
    members.push_back(
        {"n" + std::to_string(i + 1), "127.0.0.1", uint16_t(first_port + i), uint16_t(first_port + 100 + i)});
  return members;
}

std::shared_ptr<const ClusterView> View(std::vector<PeerAddress> members) {
  auto view = ClusterView::Create(std::move(members), 8, 16, 3);
  EXPECT_TRUE(view.ok()) << view.status().ToString();
  return view.value();
}

class NodeEndpointsTest : public ::testing::Test {
 protected:
  SteadyClock clock_;
  NodeEndpoints endpoints_{"n1", nullptr, nullptr, ConnectionOptions{}, &clock_, DetectorOptions{}};
};

TEST_F(NodeEndpointsTest, SameViewSameEndpoint) {
  auto view = View(Members(7000));
  ASSERT_EQ(view->members()[0].id, "n1");
  EXPECT_EQ(endpoints_.Remote(*view, 0), nullptr);  // this node
  RemoteReplicaEndpoint* n2 = endpoints_.Remote(*view, 1);
  RemoteReplicaEndpoint* n3 = endpoints_.Remote(*view, 2);
  ASSERT_NE(n2, nullptr);
  ASSERT_NE(n3, nullptr);
  EXPECT_NE(n2, n3);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(endpoints_.Remote(*view, 1), n2);
    EXPECT_EQ(endpoints_.Remote(*view, 2), n3);
    EXPECT_EQ(&endpoints_.Endpoint(*view, 1), n2);
  }
  // Another snapshot of the same membership shares them.
  auto again = View(Members(7000));
  EXPECT_EQ(endpoints_.Remote(*again, 1), n2);
}

TEST_F(NodeEndpointsTest, ChangedAddressGetsFreshEndpointAndOldViewKeepsItsOwn) {
  auto old_view = View(Members(7000));
  auto moved = Members(7000);
  moved[1].peer_port = 9999;  // n2 moved
  auto new_view = View(moved);
  RemoteReplicaEndpoint* old_n2 = endpoints_.Remote(*old_view, 1);
  RemoteReplicaEndpoint* new_n2 = endpoints_.Remote(*new_view, 1);
  EXPECT_NE(old_n2, new_n2);
  // Back and forth, as requests planned under either view still run.
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(endpoints_.Remote(*old_view, 1), old_n2);
    EXPECT_EQ(endpoints_.Remote(*new_view, 1), new_n2);
  }
}

TEST_F(NodeEndpointsTest, ConcurrentCallersAgree) {
  auto a = View(Members(7000));
  auto b = View(Members(8000));
  // n2's endpoints are made before the threads start, n3's by them.
  RemoteReplicaEndpoint* a2 = endpoints_.Remote(*a, 1);
  RemoteReplicaEndpoint* b2 = endpoints_.Remote(*b, 1);
  std::atomic<RemoteReplicaEndpoint*> seen_a3{nullptr}, seen_b3{nullptr};
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        const bool use_a = (i + t) % 3 != 0;
        RemoteReplicaEndpoint* got = endpoints_.Remote(use_a ? *a : *b, 1);
        if (got != (use_a ? a2 : b2)) ++mismatches;
        RemoteReplicaEndpoint* n3 = endpoints_.Remote(use_a ? *a : *b, 2);
        RemoteReplicaEndpoint* expected = nullptr;
        auto& seen = use_a ? seen_a3 : seen_b3;
        if (n3 == nullptr || (!seen.compare_exchange_strong(expected, n3) && expected != n3)) ++mismatches;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_NE(seen_a3.load(), seen_b3.load());
  EXPECT_EQ(endpoints_.Remote(*a, 2), seen_a3.load());
}

// The anti-entropy scheduler lists its pairs again only when LayoutId()
// changes: it must change with every view that places partitions otherwise.
TEST_F(NodeEndpointsTest, ExchangeLayoutIdFollowsTheView) {
  Membership membership(View(Members(7000)));
  NodeExchangeDirectory directory(&membership, &endpoints_);
  const uint64_t three = directory.LayoutId();
  membership.Replace(View(Members(7000)));  // another snapshot of the same view
  EXPECT_EQ(directory.LayoutId(), three);
  std::vector<PeerAddress> four = Members(7000);
  four.push_back({"n4", "127.0.0.1", 7003, 7103});
  membership.Replace(View(four));
  EXPECT_NE(directory.LayoutId(), three);

  // Raft-managed views share one fingerprint; each change has its own epoch.
  auto raft_view = [](uint64_t epoch) {
    ViewLayout layout;
    layout.epoch = epoch;
    layout.partitions = 16;
    layout.replicas = 3;
    layout.members = Members(7000);
    for (const auto& m : layout.members) layout.read_ring.push_back({m.id, m.id, 8});
    layout.identity = "cluster-1";
    auto view = ClusterView::Create(std::move(layout));
    EXPECT_TRUE(view.ok()) << view.status().ToString();
    return view.value();
  };
  membership.Replace(raft_view(5));
  const uint64_t at5 = directory.LayoutId();
  membership.Replace(raft_view(6));
  EXPECT_EQ(raft_view(5)->fingerprint(), raft_view(6)->fingerprint());
  EXPECT_NE(directory.LayoutId(), at5);
}

}  // namespace
}  // namespace monju
