// The Raft flags of monjud (src/config/node_config.h): bootstrap from
// --peers/--raft-peers, joining with --join, and what is refused.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config/node_config.h"
#include "test_support.h"

namespace monju {
namespace {

class RaftConfigTest : public ::testing::Test {
 protected:
  ParsedArgs Parse(std::vector<std::string> args) {
    args.insert(args.begin(), "monjud");
    std::vector<const char*> argv;
    for (const auto& a : args) argv.push_back(a.c_str());
    return ParseNodeArgs(int(argv.size()), argv.data());
  }
  std::vector<std::string> Bootstrap(std::vector<std::string> extra = {}) {
    std::vector<std::string> a = {"--id", "n2", "--listen", "127.0.0.1:7002", "--data", dir_.path() + "/d",
                                  "--peers", "n1=127.0.0.1:7001,n2=127.0.0.1:7002,n3=127.0.0.1:7003",
                                  "--raft-listen", "127.0.0.1:9002",
                                  "--raft-peers", "n1=127.0.0.1:9001,n2=127.0.0.1:9002,n3=127.0.0.1:9003"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  std::vector<std::string> Joiner(std::vector<std::string> extra = {}) {
    std::vector<std::string> a = {"--id", "n9", "--listen", "127.0.0.1:7009", "--data", dir_.path() + "/j",
                                  "--raft-listen", "127.0.0.1:9009", "--join", "127.0.0.1:7001"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  void ExpectError(const std::vector<std::string>& args, const std::string& text) {
    ParsedArgs p = Parse(args);
    EXPECT_EQ(p.action, ParsedArgs::Action::kError) << "accepted";
    EXPECT_NE(p.text.find(text), std::string::npos) << p.text;
  }
  test_support::TempDir dir_;
};

TEST_F(RaftConfigTest, StaticClustersHaveNoRaft) {
  ParsedArgs p = Parse({"--id", "a", "--listen", "127.0.0.1:7001", "--data", dir_.path() + "/s", "--peers",
                        "a=127.0.0.1:7001", "-N", "1", "-R", "1", "-W", "1"});
  ASSERT_EQ(p.action, ParsedArgs::Action::kRun) << p.text;
  EXPECT_FALSE(p.config.raft_enabled());
  EXPECT_FALSE(p.config.joining());
}

TEST_F(RaftConfigTest, BootstrapFlags) {
  ParsedArgs p = Parse(Bootstrap({"--raft-voters", "1", "--stream-rate-mb", "8"}));
  ASSERT_EQ(p.action, ParsedArgs::Action::kRun) << p.text;
  EXPECT_TRUE(p.config.raft_enabled());
  EXPECT_FALSE(p.config.joining());
  EXPECT_EQ(p.config.raft_listen_host, "127.0.0.1");
  EXPECT_EQ(p.config.raft_listen_port, 9002);
  ASSERT_EQ(p.config.raft_peers.size(), 3u);
  EXPECT_EQ(p.config.raft_peers[2].ToString(), "n3=127.0.0.1:9003");
  EXPECT_EQ(p.config.raft_voters, 1u);
  EXPECT_EQ(p.config.stream_rate_mb, 8u);
  EXPECT_EQ(Parse(Bootstrap()).config.raft_voters, 3u);  // the default
}

TEST_F(RaftConfigTest, JoiningNeedsNoPeers) {
  ParsedArgs p = Parse(Joiner());
  ASSERT_EQ(p.action, ParsedArgs::Action::kRun) << p.text;
  EXPECT_TRUE(p.config.joining());
  EXPECT_EQ(p.config.join_host, "127.0.0.1");
  EXPECT_EQ(p.config.join_port, 7001);
  EXPECT_TRUE(p.config.peers.empty());
}

TEST_F(RaftConfigTest, RefusesInconsistentRaftFlags) {
  ExpectError(Joiner({"--peers", "n9=127.0.0.1:7009"}), "--join");
  ExpectError({"--id", "n9", "--listen", "127.0.0.1:7009", "--data", dir_.path() + "/x", "--join", "127.0.0.1:7001"},
              "--join: needs --raft-listen");
  ExpectError({"--id", "n9", "--listen", "127.0.0.1:7009", "--data", dir_.path() + "/x", "--raft-listen",
               "127.0.0.1:9009"},
              "--peers or --join");
  ExpectError(Bootstrap({"--raft-voters", "2"}), "--raft-voters");
  ExpectError(Bootstrap({"--raft-voters", "0"}), "--raft-voters");
  ExpectError(Bootstrap({"--stream-rate-mb", "0"}), "--stream-rate-mb");
  // --raft-peers must name each --peers member once, this node on --raft-listen's port.
  auto replace = [](std::vector<std::string> a, const std::string& flag, const std::string& value) {
    for (size_t i = 0; i + 1 < a.size(); ++i)
      if (a[i] == flag) a[i + 1] = value;
    return a;
  };
  ExpectError(replace(Bootstrap(), "--raft-peers", "n1=127.0.0.1:9001,n2=127.0.0.1:9002"), "--raft-peers");
  ExpectError(replace(Bootstrap(), "--raft-peers", "n1=127.0.0.1:9001,n2=127.0.0.1:9002,n4=127.0.0.1:9004"),
              "not in --peers");
  ExpectError(replace(Bootstrap(), "--raft-peers", "n1=127.0.0.1:9001,n2=127.0.0.1:9099,n3=127.0.0.1:9003"),
              "does not match --raft-listen");
  ExpectError(replace(Bootstrap(), "--raft-peers", "n1=127.0.0.1:9001,n2=127.0.0.1:9002,n3=127.0.0.1:9001"),
              "used twice");
  ExpectError(replace(Bootstrap(), "--raft-peers", "n1=127.0.0.1:7001,n2=127.0.0.1:9002,n3=127.0.0.1:9003"),
              "used twice");  // a client port
  ExpectError(replace(Bootstrap(), "--raft-peers", "n1=127.0.0.1:8001,n2=127.0.0.1:9002,n3=127.0.0.1:9003"),
              "used twice");  // n1's default peer port
  ExpectError(Joiner({"--peer-port", "7009"}), "--peer-port");
  ExpectError(Bootstrap({"--peer-port", "8102"}), "--peer-port: only with --join");
  EXPECT_EQ(Parse(Joiner({"--peer-port", "8123"})).config.OwnPeerPort(), 8123);
  EXPECT_EQ(Parse(Joiner()).config.OwnPeerPort(), 8009);  // --listen port + the default offset
  ExpectError(replace(Bootstrap(), "--raft-listen", "0.0.0.0:9002"), "wildcard");
  ExpectError(replace(Bootstrap(), "--raft-listen", "127.0.0.1:7002"), "must differ from --listen");
  ExpectError(replace(Bootstrap(), "--raft-listen", "nonsense"), "--raft-listen");
  ExpectError(replace(Joiner(), "--join", "nowhere"), "--join");
}

}  // namespace
}  // namespace monju
