// The connection caps a node derives from its open-file limit.
#include "descriptor_budget.h"

#include <gtest/gtest.h>
#include <sys/resource.h>

namespace monju {
namespace {

TEST(FitConnectionCaps, AGenerousLimitGivesWhatWasAsked) {
  auto caps = FitConnectionCaps(1 << 20, 3, 10000, 10000);
  ASSERT_TRUE(caps.ok()) << caps.status().ToString();
  EXPECT_EQ(caps->client, 10000u);
  EXPECT_EQ(caps->peer, 10000u);
}

TEST(FitConnectionCaps, ATightLimitLeavesTheReserveAndSplitsTheRest) {
  // 3 members: 256 + 2 * 160 = 576 reserved; 424 left, a quarter to peers.
  auto caps = FitConnectionCaps(1000, 3, 10000, 10000);
  ASSERT_TRUE(caps.ok()) << caps.status().ToString();
  EXPECT_EQ(caps->peer, 106u);
  EXPECT_EQ(caps->client, 318u);
  EXPECT_LE(caps->client + caps->peer + kReservedDescriptors + 2 * kOutboundPerPeer, 1000u);
}

TEST(FitConnectionCaps, ASmallRequestIsKeptUnderAnyLimitThatFitsIt) {
  auto caps = FitConnectionCaps(1000, 3, 50, 10000);
  ASSERT_TRUE(caps.ok());
  EXPECT_EQ(caps->client, 50u);
  EXPECT_EQ(caps->peer, 106u);
}

TEST(FitConnectionCaps, EachMemberReservesItsOutboundConnections) {
  auto small = FitConnectionCaps(4000, 3, 100000, 100000);
  auto large = FitConnectionCaps(4000, 13, 100000, 100000);
  ASSERT_TRUE(small.ok() && large.ok());
  EXPECT_EQ(small->client + small->peer - (large->client + large->peer), 10 * kOutboundPerPeer);
}

TEST(FitConnectionCaps, ALimitBelowTheReserveIsAnErrorThatNamesWhatIsNeeded) {
  auto caps = FitConnectionCaps(607, 3, 10000, 10000);
  ASSERT_FALSE(caps.ok());
  EXPECT_EQ(caps.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(caps.status().message().find("at least 608"), std::string::npos) << caps.status().message();
  EXPECT_TRUE(FitConnectionCaps(608, 3, 10000, 10000).ok());
}

TEST(RaiseDescriptorLimit, RaisesTheSoftLimitToTheHardOne) {
  rlimit saved{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  ASSERT_GE(saved.rlim_max, 64u);
  rlimit lowered = saved;
  lowered.rlim_cur = saved.rlim_max / 2;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &lowered), 0);

  auto raised = RaiseDescriptorLimit();
  rlimit now{};
  getrlimit(RLIMIT_NOFILE, &now);
  setrlimit(RLIMIT_NOFILE, &saved);
  ASSERT_TRUE(raised.ok()) << raised.status().ToString();
  EXPECT_EQ(raised->before, uint64_t(saved.rlim_max / 2));
  EXPECT_EQ(raised->soft, uint64_t(saved.rlim_max));
  EXPECT_EQ(raised->hard, uint64_t(saved.rlim_max));
  EXPECT_EQ(now.rlim_cur, saved.rlim_max);
  auto current = CurrentDescriptorLimit();
  ASSERT_TRUE(current.ok());
  EXPECT_EQ(current.value(), uint64_t(saved.rlim_max));
}

}  // namespace
}  // namespace monju
