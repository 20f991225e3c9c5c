// A node under a small open-file limit: it raises its soft limit to the hard
// one, sizes its connection caps to leave room for its peers and files, and
// refuses a client flood past the cap while it keeps serving.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "cluster_harness.h"

namespace monju::itest {
namespace {

// The soft "Max open files" of a process, from /proc (0 when unreadable).
uint64_t SoftOpenFileLimit(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/limits");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("Max open files", 0) != 0) continue;
    std::istringstream fields(line.substr(std::string("Max open files").size()));
    uint64_t soft = 0;
    fields >> soft;
    return soft;
  }
  return 0;
}

// A plain TCP connection to 127.0.0.1:port that sends nothing; -1 on failure.
int OpenIdleConnection(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Which of `fds` the other side has closed (EOF or reset pending), by index.
std::vector<bool> ClosedByPeer(const std::vector<int>& fds) {
  std::vector<pollfd> polled;
  for (int fd : fds) polled.push_back({fd, POLLIN | POLLRDHUP, 0});
  poll(polled.data(), polled.size(), 0);
  std::vector<bool> closed;
  for (const auto& p : polled) closed.push_back(p.revents != 0);
  return closed;
}

class DescriptorLimitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // This process holds a few hundred sockets.
    rlimit lim{};
    getrlimit(RLIMIT_NOFILE, &lim);
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
    // The nodes are started with limits up to 4096 (a child cannot raise its
    // hard limit), and this process holds 450 sockets.
    ASSERT_GE(lim.rlim_max, 4096u) << "these tests need a hard open-file limit of at least 4096";
  }
  void TearDown() override {
    for (int fd : held_) close(fd);
    MONJU_DUMP_LOGS_ON_FAILURE(cluster_.get());
  }
  std::unique_ptr<LocalCluster> cluster_;
  std::vector<int> held_;
};

TEST_F(DescriptorLimitTest, ANodeRaisesItsSoftLimitAndSizesItsCapsFromIt) {
  ClusterOptions options;
  options.node_open_file_limit[0] = {512, 4096};
  cluster_ = std::make_unique<LocalCluster>(options);
  ASSERT_TRUE(cluster_->Start());

  EXPECT_EQ(SoftOpenFileLimit(cluster_->pid(0)), 4096u);
  std::map<std::string, int64_t> stats;
  std::string error;
  ASSERT_TRUE(TryStats(*cluster_, 0, &stats, &error)) << error;
  // 4096 - (256 + 2 * 160) = 3520 left: a quarter for peers, the rest for clients.
  EXPECT_EQ(StatOf(stats, "server.peer.max_connections"), 880);
  EXPECT_EQ(StatOf(stats, "server.client.max_connections"), 2640);
  EXPECT_NE(cluster_->ReadLog(0).find("open-file limit raised from 512 to 4096"), std::string::npos);
}

TEST_F(DescriptorLimitTest, AClientFloodPastTheCapIsRefusedAndTheNodeKeepsServing) {
  ClusterOptions options;
  options.node_open_file_limit[0] = {1000, 1000};
  cluster_ = std::make_unique<LocalCluster>(options);
  ASSERT_TRUE(cluster_->Start());
  // 1000 - 576 reserved = 424: 106 for peers, 318 for clients.
  constexpr int kCap = 318;
  constexpr int kFlood = 450;
  for (int i = 0; i < kFlood; ++i) {
    int fd = OpenIdleConnection(cluster_->port(0));
    ASSERT_GE(fd, 0) << "connection " << i << ": " << strerror(errno);
    held_.push_back(fd);
  }
  // The ones past the cap are accepted and closed at once: they read EOF.
  // The first kOperatorConnections of them are kept for operator calls, and
  // closed after a second without one. Those within the cap stay open (idle
  // between calls is allowed).
  size_t closed = 0;
  ASSERT_TRUE(PollUntil(
      [&] {
        const auto by_peer = ClosedByPeer(held_);
        closed = std::count(by_peer.begin(), by_peer.end(), true);
        return closed >= size_t(kFlood - kCap);
      },
      10s))
      << closed << " of " << kFlood << " connections were closed; expected at least " << kFlood - kCap;
  EXPECT_LE(closed, size_t(kFlood - kCap) + 8) << "connections within the cap were closed too";

  // The operator's reserve: while clients hold every ordinary slot, a
  // stats call still gets through (on a reserved connection), and a client
  // call on one is refused.
  std::map<std::string, int64_t> during;
  std::string during_error;
  ASSERT_TRUE(TryStats(*cluster_, 0, &during, &during_error)) << "stats refused under the flood: " << during_error;
  EXPECT_GE(StatOf(during, "server.client.reserved_connections"), 1);
  EXPECT_FALSE(TryPut(*cluster_, 0, "fd-pk", "sk", "v", "", 3).ok()) << "a client call got in past the cap";
  std::map<std::string, int64_t> after_put;
  ASSERT_TRUE(TryStats(*cluster_, 0, &after_put, &during_error)) << during_error;
  EXPECT_GT(StatOf(after_put, "server.client.connections_refused"), StatOf(during, "server.client.connections_refused"))
      << "the put failed, but not by the reserve refusing it";

  // Make room for this test's own calls (close 8 the node holds), then check
  // the node still works end to end: a write that needs every replica,
  // through the flooded node.
  {
    const auto by_peer = ClosedByPeer(held_);
    int freed = 0;
    std::vector<int> kept;
    for (size_t i = 0; i < held_.size(); ++i) {
      if (!by_peer[i] && freed < 8) {
        close(held_[i]);
        ++freed;
      } else {
        kept.push_back(held_[i]);
      }
    }
    ASSERT_EQ(freed, 8);
    held_ = kept;
  }
  CallResult put;
  ASSERT_TRUE(PollUntil([&] { return (put = TryPut(*cluster_, 0, "fd-pk", "sk", "v", "", 3)).ok(); }, 10s))
      << put.message;
  api::GetResult got;
  ASSERT_TRUE(TryGet(*cluster_, 1, "fd-pk", "sk", 3, &got).ok());
  ASSERT_EQ(got.values.size(), 1u);
  EXPECT_EQ(got.values[0], "v");
  std::map<std::string, int64_t> stats;
  std::string error;
  ASSERT_TRUE(TryStats(*cluster_, 0, &stats, &error)) << error;
  EXPECT_EQ(StatOf(stats, "server.client.max_connections"), kCap);
  // Refused at once, or (the reserve's) closed for want of an operator call.
  EXPECT_GE(StatOf(stats, "server.client.connections_refused") + StatOf(stats, "server.client.stalled"),
            kFlood - kCap);
  EXPECT_GE(StatOf(stats, "server.client.stalled"), 16) << "the flood did not go through the operators' reserve";
  EXPECT_TRUE(cluster_->IsRunning(0));
}

TEST_F(DescriptorLimitTest, ALimitTooLowForTheReserveStopsTheNodeWithAClearError) {
  ClusterOptions options;
  options.node_open_file_limit[0] = {300, 300};
  cluster_ = std::make_unique<LocalCluster>(options);
  EXPECT_FALSE(cluster_->Start());
  EXPECT_FALSE(cluster_->IsRunning(0));
  const std::string log = cluster_->ReadLog(0);
  EXPECT_NE(log.find("open-file limit 300 is too low"), std::string::npos) << cluster_->LogTail(0);
  EXPECT_NE(log.find("at least 608"), std::string::npos) << cluster_->LogTail(0);
}

}  // namespace
}  // namespace monju::itest
