// Node configuration parsing and validation (src/config/node_config.h).
#include "test_support.h"
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>
#include <vector>

#include "config/node_config.h"

namespace monju {
namespace {

using monju::test_support::TempDir;


class ConfigTest : public ::testing::Test {
 protected:
  // argv[0] is added; `args` are the flags.
  ParsedArgs Parse(std::vector<std::string> args) {
    args.insert(args.begin(), "monjud");
    std::vector<const char*> argv;
    for (const auto& a : args) argv.push_back(a.c_str());
    return ParseNodeArgs(int(argv.size()), argv.data());
  }
  // A valid command line, with `extra` appended (later flags must not repeat
  // earlier ones: program_options rejects repeats).
  std::vector<std::string> Good(std::initializer_list<std::string> extra = {}) {
    std::vector<std::string> a = {
        "--id",   "n2",   "--listen", "127.0.0.1:7002",
        "--data", data(), "--peers",  "n1=127.0.0.1:7001,n2=127.0.0.1:7002,n3=127.0.0.1:7003"};
    a.insert(a.end(), extra);
    return a;
  }
  // Good() with one flag's value replaced.
  std::vector<std::string> With(const std::string& flag, const std::string& value) {
    std::vector<std::string> a = Good();
    for (size_t i = 0; i + 1 < a.size(); ++i)
      if (a[i] == flag) {
        a[i + 1] = value;
        return a;
      }
    a.push_back(flag);
    a.push_back(value);
    return a;
  }
  std::vector<std::string> Without(const std::string& flag) {
    std::vector<std::string> a = Good();
    for (size_t i = 0; i + 1 < a.size(); ++i)
      if (a[i] == flag) {
        a.erase(a.begin() + i, a.begin() + i + 2);
        break;
      }
    return a;
  }
  std::string data() const { return dir_.path() + "/node-data"; }

  // Expects kError and a message naming `flag`.
  void ExpectError(const std::vector<std::string>& args, const std::string& flag) {
    ParsedArgs p = Parse(args);
    std::string joined;
    for (const auto& a : args) joined += a + " ";
    EXPECT_EQ(p.action, ParsedArgs::Action::kError) << joined;
    EXPECT_NE(p.text.find(flag), std::string::npos)
        << "error '" << p.text << "' does not name " << flag << " for: " << joined;
  }

  TempDir dir_;
};

TEST_F(ConfigTest, GoodArgsRunWithFields) {
  ParsedArgs p = Parse(Good({"-N",
                             "3",
                             "-R",
                             "1",
                             "-W",
                             "3",
                             "--vnodes",
                             "16",
                             "--partitions",
                             "1024",
                             "--request-timeout-ms",
                             "500",
                             "--max-value-bytes",
                             "4096",
                             "--map-size-mb",
                             "8",
                             "--memtable-mb",
                             "2",
                             "--worker-threads",
                             "4",
                             "--fanout-threads",
                             "8",
                             "--forward-threads",
                             "3",
                             "--log-level",
                             "debug"}));
  ASSERT_EQ(p.action, ParsedArgs::Action::kRun) << p.text;
  const NodeConfig& c = p.config;
  EXPECT_EQ(c.id, "n2");
  EXPECT_EQ(c.listen_host, "127.0.0.1");
  EXPECT_EQ(c.listen_port, 7002);
  EXPECT_EQ(c.data_dir, data());
  ASSERT_EQ(c.peers.size(), 3u);
  EXPECT_EQ(c.peers[0], (PeerAddress{"n1", "127.0.0.1", 7001}));
  EXPECT_EQ(c.peers[2], (PeerAddress{"n3", "127.0.0.1", 7003}));
  EXPECT_EQ(c.replicas, 3u);
  EXPECT_EQ(c.read_quorum, 1u);
  EXPECT_EQ(c.write_quorum, 3u);
  EXPECT_EQ(c.vnodes, 16u);
  EXPECT_EQ(c.partitions, 1024u);
  EXPECT_EQ(c.request_timeout_ms, 500u);
  EXPECT_EQ(c.max_value_bytes, 4096u);
  EXPECT_EQ(c.map_size_mb, 8u);
  EXPECT_EQ(c.memtable_mb, 2u);
  EXPECT_EQ(c.worker_threads, 4u);
  EXPECT_EQ(c.fanout_threads, 8u);
  EXPECT_EQ(c.forward_threads, 3u);
  EXPECT_EQ(c.log_level, "debug");
  EXPECT_TRUE(std::filesystem::is_directory(data()));  // created
}

TEST_F(ConfigTest, DefaultsApply) {
  ParsedArgs p = Parse(Good());
  ASSERT_EQ(p.action, ParsedArgs::Action::kRun) << p.text;
  NodeConfig d;
  EXPECT_EQ(p.config.vnodes, d.vnodes);
  EXPECT_EQ(p.config.partitions, 256u);
  EXPECT_EQ(p.config.replicas, 3u);
  EXPECT_EQ(p.config.read_quorum, 2u);
  EXPECT_EQ(p.config.write_quorum, 2u);
  EXPECT_EQ(p.config.request_timeout_ms, d.request_timeout_ms);
}

TEST_F(ConfigTest, LongQuorumFlagsAndIpv6Listen) {
  ParsedArgs p = Parse({"--id", "a", "--listen", "[::1]:9000", "--data", data(), "--peers", "a=[::1]:9000",
                        "--replicas", "1", "--read-quorum", "1", "--write-quorum", "1"});
  ASSERT_EQ(p.action, ParsedArgs::Action::kRun) << p.text;
  EXPECT_EQ(p.config.listen_host, "::1");
  EXPECT_EQ(p.config.listen_port, 9000);
  EXPECT_EQ(p.config.peers[0].host, "::1");
  EXPECT_EQ(p.config.replicas, 1u);
}

TEST_F(ConfigTest, QuorumErrors) {
  ExpectError(Good({"-R", "4", "-N", "3"}), "-R");  // R > N
  ExpectError(Good({"-N", "2", "-R", "3"}), "-R");
  ExpectError(Good({"-W", "0"}), "-W");  // W = 0
  ExpectError(Good({"-R", "0"}), "-R");
  ExpectError(Good({"-W", "4"}), "-W");          // W > N
  ExpectError(Good({"-N", "4"}), "--replicas");  // N > peers
  ExpectError(Good({"-N", "0"}), "--replicas");
  ExpectError(Good({"-W", "abc"}), "write-quorum");  // not a number
}

TEST_F(ConfigTest, PeerErrors) {
  ExpectError(With("--peers", "n1=127.0.0.1:7001,n3=127.0.0.1:7003"), "--peers");                    // own id missing
  ExpectError(With("--peers", "n1=127.0.0.1:7001,n2=127.0.0.1:7002,n1=127.0.0.1:7004"), "--peers");  // dup id
  ExpectError(With("--peers", "n1=127.0.0.1:7001,n2=127.0.0.1:7002,n3=127.0.0.1:7001"), "--peers");  // dup addr
  ExpectError(With("--peers", "n1=127.0.0.1:7001,n2=127.0.0.1:7002,n3=127.0.0.1:0"), "--peers");     // port 0
  ExpectError(With("--peers", "n1=127.0.0.1:70001,n2=127.0.0.1:7002"), "--peers");                   // port > 65535
  ExpectError(With("--peers", "n1=127.0.0.1:x,n2=127.0.0.1:7002"), "--peers");         // port not a number
  ExpectError(With("--peers", "n1=127.0.0.1,n2=127.0.0.1:7002"), "--peers");           // no port
  ExpectError(With("--peers", "n1,n2=127.0.0.1:7002"), "--peers");                     // no address
  ExpectError(With("--peers", "bad id=127.0.0.1:7001,n2=127.0.0.1:7002"), "--peers");  // bad id
  ExpectError(With("--peers", ",,,"), "--peers");                                      // empty
  ExpectError(Without("--peers"), "--peers");
  // The own entry must agree with --listen.
  ExpectError(With("--peers", "n1=127.0.0.1:7001,n2=127.0.0.1:7005,n3=127.0.0.1:7003"), "--peers");
}

TEST_F(ConfigTest, PeerPortsDefaultToOffsetOrAreGiven) {
  ParsedArgs p = Parse(Good());
  ASSERT_EQ(p.action, ParsedArgs::Action::kRun) << p.text;
  EXPECT_EQ(p.config.peer_port_offset, 1000u);
  EXPECT_EQ(p.config.peer_threads, DefaultPeerThreads());
  EXPECT_GE(p.config.peer_threads, 2u);
  EXPECT_GE(p.config.worker_threads, 4u);
  EXPECT_EQ(p.config.worker_threads, DefaultWorkerThreads());
  auto resolved = ResolvePeerPorts(p.config);
  ASSERT_EQ(resolved.size(), 3u);
  EXPECT_EQ(resolved[0], (PeerAddress{"n1", "127.0.0.1", 7001, 8001}));
  EXPECT_EQ(resolved[2].peer_port, 8003);
  EXPECT_EQ(resolved[2].ToString(), "n3=127.0.0.1:7003/8003");

  p = Parse(With("--peers", "n1=127.0.0.1:7001/9101,n2=127.0.0.1:7002,n3=[::1]:7003/9103"));
  ASSERT_EQ(p.action, ParsedArgs::Action::kRun) << p.text;
  EXPECT_EQ(p.config.peers[0], (PeerAddress{"n1", "127.0.0.1", 7001, 9101}));
  EXPECT_EQ(p.config.peers[1].peer_port, 0) << "not given: resolved later";
  EXPECT_EQ(p.config.peers[2], (PeerAddress{"n3", "::1", 7003, 9103}));
  resolved = ResolvePeerPorts(p.config);
  EXPECT_EQ(resolved[0].peer_port, 9101);
  EXPECT_EQ(resolved[1].peer_port, 8002);

  p = Parse(Good({"--peer-port-offset", "5", "--peer-threads", "6"}));
  ASSERT_EQ(p.action, ParsedArgs::Action::kRun) << p.text;
  EXPECT_EQ(ResolvePeerPorts(p.config)[1].peer_port, 7007);
  EXPECT_EQ(p.config.peer_threads, 6u);
}

TEST_F(ConfigTest, PeerPortErrors) {
  ExpectError(With("--peers", "n1=127.0.0.1:7001/,n2=127.0.0.1:7002,n3=127.0.0.1:7003"), "--peers");
  ExpectError(With("--peers", "n1=127.0.0.1:7001/x,n2=127.0.0.1:7002,n3=127.0.0.1:7003"), "--peers");
  ExpectError(With("--peers", "n1=127.0.0.1:7001/0,n2=127.0.0.1:7002,n3=127.0.0.1:7003"), "--peers");
  ExpectError(With("--peers", "n1=127.0.0.1:7001/65536,n2=127.0.0.1:7002,n3=127.0.0.1:7003"), "--peers");
  // A peer port that is another member's client port, or the same as another's peer port.
  ExpectError(With("--peers", "n1=127.0.0.1:7001/7003,n2=127.0.0.1:7002,n3=127.0.0.1:7003"), "--peers");
  ExpectError(With("--peers", "n1=127.0.0.1:7001/9000,n2=127.0.0.1:7002/9000,n3=127.0.0.1:7003"), "--peers");
  // The default peer port collides: offset 1 makes n1's peer port n2's client port.
  ExpectError(Good({"--peer-port-offset", "1"}), "--peers");
  ExpectError(With("--peers", "n1=127.0.0.1:65000,n2=127.0.0.1:7002,n3=127.0.0.1:7003"), "--peers");  // 65000 + 1000
  ExpectError(Good({"--peer-port-offset", "0"}), "--peer-port-offset");
  ExpectError(Good({"--peer-threads", "0"}), "--peer-threads");
}

TEST_F(ConfigTest, ListenErrors) {
  ExpectError(Without("--listen"), "--listen");
  ExpectError(With("--listen", "127.0.0.1"), "--listen");
  ExpectError(With("--listen", "127.0.0.1:0"), "--listen");
  ExpectError(With("--listen", "127.0.0.1:65536"), "--listen");
  ExpectError(With("--listen", "127.0.0.1:12x"), "--listen");
  ExpectError(With("--listen", ":7002"), "--listen");
}

TEST_F(ConfigTest, IdErrors) {
  ExpectError(With("--id", "has space"), "--id");
  ExpectError(With("--id", std::string(65, 'a')), "--id");
  ExpectError(Without("--id"), "--id");
}

TEST_F(ConfigTest, DataDirErrors) {
  const std::string file = dir_.path() + "/a-file";
  std::ofstream(file) << "not a directory";
  ExpectError(With("--data", file), "--data");
  ExpectError(With("--data", file + "/below"), "--data");  // cannot create under a file
  ExpectError(Without("--data"), "--data");
}

TEST_F(ConfigTest, RangeErrors) {
  ExpectError(With("--vnodes", "0"), "--vnodes");
  ExpectError(With("--vnodes", "5000"), "--vnodes");
  ExpectError(With("--partitions", "0"), "--partitions");
  ExpectError(With("--partitions", "65537"), "--partitions");
  ExpectError(With("--request-timeout-ms", "0"), "--request-timeout-ms");
  ExpectError(With("--max-value-bytes", "0"), "--max-value-bytes");
  ExpectError(With("--map-size-mb", "0"), "--map-size-mb");
  ExpectError(With("--memtable-mb", "0"), "--memtable-mb");
  ExpectError(With("--memtable-mb", "1025"), "--memtable-mb");
  ExpectError(With("--worker-threads", "0"), "--worker-threads");
  ExpectError(With("--fanout-threads", "4097"), "--fanout-threads");
  ExpectError(With("--forward-threads", "0"), "--forward-threads");
  ExpectError(With("--forward-threads", "65"), "--forward-threads");
  ExpectError(With("--max-client-connections", "0"), "--max-client-connections");
  ExpectError(With("--max-client-connections", "1000001"), "--max-client-connections");
  ParsedArgs capped = Parse(With("--max-client-connections", "500"));
  ASSERT_EQ(capped.action, ParsedArgs::Action::kRun) << capped.text;
  EXPECT_EQ(capped.config.max_client_connections, 500u);
}

// 0 (the default) derives the pool from the cluster's size: 4 threads per
// other member, within 4..256; a value given is kept as it is.
TEST_F(ConfigTest, FanoutThreadsFollowTheMembers) {
  ParsedArgs three = Parse(Good());
  ASSERT_EQ(three.action, ParsedArgs::Action::kRun) << three.text;
  EXPECT_EQ(three.config.fanout_threads, 0u);
  EXPECT_EQ(three.config.PlannedMembers(), 3u);
  EXPECT_EQ(three.config.FanoutThreads(), 8u);

  NodeConfig c = three.config;
  c.peers.resize(1);  // a cluster of one still gets the minimum (hints, repairs)
  EXPECT_EQ(c.FanoutThreads(), kMinFanoutThreads);
  c.peers.resize(11, c.peers[0]);
  EXPECT_EQ(c.FanoutThreads(), 40u);
  c.peers.resize(200, c.peers[0]);
  EXPECT_EQ(c.FanoutThreads(), kMaxFanoutThreads);
  c.peers.clear();  // joining: plans for the Raft voters
  c.raft_listen_port = 9001;
  c.raft_voters = 5;
  EXPECT_EQ(c.PlannedMembers(), 5u);
  EXPECT_EQ(c.FanoutThreads(), 16u);

  ParsedArgs given = Parse(With("--fanout-threads", "3"));
  ASSERT_EQ(given.action, ParsedArgs::Action::kRun) << given.text;
  EXPECT_EQ(given.config.FanoutThreads(), 3u);
}

TEST_F(ConfigTest, FailureHandlingFlags) {
  ParsedArgs p = Parse(Good());
  ASSERT_EQ(p.action, ParsedArgs::Action::kRun) << p.text;
  EXPECT_TRUE(p.config.sloppy_quorum);
  EXPECT_LE(p.config.hint_ttl_s, p.config.tombstone_grace_s);
  p = Parse(Good({"--quorum-mode", "strict", "--hint-max-per-owner", "20", "--hint-ttl-s", "5",
                  "--tombstone-grace-s", "6", "--reap-interval-ms", "200", "--handoff-after-ms", "50"}));
  ASSERT_EQ(p.action, ParsedArgs::Action::kRun) << p.text;
  EXPECT_FALSE(p.config.sloppy_quorum);
  EXPECT_EQ(p.config.hint_max_per_owner, 20u);
  EXPECT_EQ(p.config.hint_ttl_s, 5u);
  EXPECT_EQ(p.config.tombstone_grace_s, 6u);
  EXPECT_EQ(p.config.reap_interval_ms, 200u);
  EXPECT_EQ(p.config.handoff_after_ms, 50u);

  ExpectError(With("--quorum-mode", "loose"), "--quorum-mode");
  ExpectError(With("--handoff-after-ms", "0"), "--handoff-after-ms");
  ExpectError(With("--handoff-after-ms", "2000"), "--handoff-after-ms");  // not below the request timeout
  ExpectError(With("--probe-interval-ms", "1"), "--probe-interval-ms");
  ExpectError(With("--hint-max-total", "0"), "--hint-max");
  ExpectError(With("--hint-rate", "0"), "--hint-rate");
  // A hint outliving the tombstone grace could resurrect a reaped delete.
  ExpectError(Good({"--hint-ttl-s", "100", "--tombstone-grace-s", "50"}), "--hint-ttl-s");
  ExpectError(Good({"--hint-ttl-s", "50", "--tombstone-grace-s", "50"}), "--hint-ttl-s");
}

TEST_F(ConfigTest, ReadFanoutFlags) {
  ParsedArgs p = Parse(Good());
  ASSERT_EQ(p.action, ParsedArgs::Action::kRun) << p.text;
  EXPECT_FALSE(p.config.read_quorum_only) << "a get asks every replica unless told otherwise";
  EXPECT_EQ(p.config.read_speculate_ms, 10u);
  p = Parse(Good({"--read-fanout", "quorum", "--read-speculate-ms", "25"}));
  ASSERT_EQ(p.action, ParsedArgs::Action::kRun) << p.text;
  EXPECT_TRUE(p.config.read_quorum_only);
  EXPECT_EQ(p.config.read_speculate_ms, 25u);

  ExpectError(With("--read-fanout", "some"), "--read-fanout");
  ExpectError(With("--read-speculate-ms", "0"), "--read-speculate-ms");
  ExpectError(With("--read-speculate-ms", "2000"), "--read-speculate-ms");  // not below the request timeout
}

TEST_F(ConfigTest, CpuSchedulingFlag) {
  ParsedArgs p = Parse(Good());
  ASSERT_EQ(p.action, ParsedArgs::Action::kRun) << p.text;
  EXPECT_FALSE(p.config.batch_scheduling) << "threads keep the kernel's default policy unless told otherwise";
  p = Parse(Good({"--cpu-scheduling", "batch"}));
  ASSERT_EQ(p.action, ParsedArgs::Action::kRun) << p.text;
  EXPECT_TRUE(p.config.batch_scheduling);
  p = Parse(Good({"--cpu-scheduling", "normal"}));
  ASSERT_EQ(p.action, ParsedArgs::Action::kRun) << p.text;
  EXPECT_FALSE(p.config.batch_scheduling);

  ExpectError(Good({"--cpu-scheduling", "realtime"}), "--cpu-scheduling");
  ExpectError(Good({"--cpu-scheduling", ""}), "--cpu-scheduling");
}

TEST_F(ConfigTest, AntiEntropyFlags) {
  ParsedArgs p = Parse(Good());
  ASSERT_EQ(p.action, ParsedArgs::Action::kRun) << p.text;
  EXPECT_EQ(p.config.ae_interval_s, 600u);
  EXPECT_EQ(p.config.ae_rate_bytes, 4u << 20);
  EXPECT_EQ(p.config.ae_max_concurrent, 1u);
  EXPECT_EQ(p.config.ae_verify_interval_s, 86400u);
  p = Parse(Good({"--ae-interval-s", "0", "--ae-rate-bytes", "0", "--ae-max-concurrent", "4",
                  "--ae-verify-interval-s", "60"}));
  ASSERT_EQ(p.action, ParsedArgs::Action::kRun) << p.text;
  EXPECT_EQ(p.config.ae_interval_s, 0u);
  EXPECT_EQ(p.config.ae_rate_bytes, 0u);
  EXPECT_EQ(p.config.ae_max_concurrent, 4u);
  EXPECT_EQ(p.config.ae_verify_interval_s, 60u);
  ExpectError(With("--ae-max-concurrent", "0"), "--ae-max-concurrent");
  ExpectError(With("--ae-max-concurrent", "65"), "--ae-max-concurrent");
  ExpectError(With("--ae-rate-bytes", "100"), "--ae-rate-bytes");
  ExpectError(With("--ae-interval-s", "9999999"), "--ae-interval-s");
  ExpectError(With("--ae-verify-interval-s", "0"), "--ae-verify-interval-s");
}

TEST_F(ConfigTest, UnknownAndRepeatedFlagsAreErrors) {
  ParsedArgs p = Parse(Good({"--no-such-flag", "1"}));
  EXPECT_EQ(p.action, ParsedArgs::Action::kError);
  EXPECT_NE(p.text.find("no-such-flag"), std::string::npos) << p.text;
  p = Parse(Good({"--id", "n1"}));
  EXPECT_EQ(p.action, ParsedArgs::Action::kError);
  EXPECT_NE(p.text.find("id"), std::string::npos) << p.text;
}

TEST_F(ConfigTest, ConfigFileSuppliesKeys) {
  const std::string path = dir_.path() + "/monjud.conf";
  std::ofstream(path) << "# a comment\n"
                      << "id = n1\n"
                      << "listen = 127.0.0.1:7001\n"
                      << "data = " << data() << "\n"
                      << "peers = n1=127.0.0.1:7001,n2=127.0.0.1:7002,n3=127.0.0.1:7003\n"
                      << "vnodes = 32\n"
                      << "write-quorum = 3\n";
  ParsedArgs p = Parse({"--config", path});
  ASSERT_EQ(p.action, ParsedArgs::Action::kRun) << p.text;
  EXPECT_EQ(p.config.id, "n1");
  EXPECT_EQ(p.config.listen_port, 7001);
  EXPECT_EQ(p.config.data_dir, data());
  EXPECT_EQ(p.config.peers.size(), 3u);
  EXPECT_EQ(p.config.vnodes, 32u);
  EXPECT_EQ(p.config.write_quorum, 3u);
  EXPECT_EQ(p.config.read_quorum, 2u);  // default, not in the file

  // The command line wins over the file.
  p = Parse({"--config", path, "--vnodes", "8"});
  ASSERT_EQ(p.action, ParsedArgs::Action::kRun) << p.text;
  EXPECT_EQ(p.config.vnodes, 8u);

  // Values from the file are validated like flags.
  const std::string bad = dir_.path() + "/bad.conf";
  std::ofstream(bad) << "id = n1\nlisten = 127.0.0.1:7001\ndata = " << data()
                     << "\npeers = n1=127.0.0.1:7001\nreplicas = 2\n";
  ExpectError({"--config", bad}, "--replicas");
}

TEST_F(ConfigTest, MissingConfigFileIsAnError) {
  ExpectError({"--config", dir_.path() + "/does-not-exist.conf"}, "--config");
}

TEST_F(ConfigTest, HelpDocumentsEveryFlag) {
  ParsedArgs p = Parse({"--help"});
  ASSERT_EQ(p.action, ParsedArgs::Action::kHelp);
  for (const char* flag : {"--help",
                           "--config",
                           "--id",
                           "--listen",
                           "--data",
                           "--peers",
                           "--vnodes",
                           "--partitions",
                           "--replicas",
                           "--read-quorum",
                           "--write-quorum",
                           "-N",
                           "-R",
                           "-W",
                           "--request-timeout-ms",
                           "--max-value-bytes",
                           "--map-size-mb",
                           "--worker-threads",
                           "--fanout-threads",
                           "--forward-threads",
                           "--peer-threads",
                           "--peer-port-offset",
                           "--log-level",
                           "--quorum-mode",
                           "--handoff-after-ms",
                           "--probe-interval-ms",
                           "--probe-timeout-ms",
                           "--hint-max-per-owner",
                           "--hint-max-total",
                           "--hint-map-size-mb",
                           "--hint-ttl-s",
                           "--hint-rate",
                           "--tombstone-grace-s",
                           "--reap-interval-ms",
                           "--ae-interval-s",
                           "--ae-rate-bytes",
                           "--ae-max-concurrent",
                           "--ae-verify-interval-s"})
    EXPECT_NE(p.text.find(flag), std::string::npos) << flag << " missing from help:\n" << p.text;
  // -h works and wins over otherwise invalid flags.
  EXPECT_EQ(Parse({"-h", "--vnodes", "0"}).action, ParsedArgs::Action::kHelp);
}

TEST(ParseHelpersTest, HostPort) {
  std::string host;
  uint16_t port = 0;
  ASSERT_TRUE(ParseHostPort("localhost:1", &host, &port).ok());
  EXPECT_EQ(host, "localhost");
  EXPECT_EQ(port, 1);
  ASSERT_TRUE(ParseHostPort("10.0.0.1:65535", &host, &port).ok());
  EXPECT_EQ(port, 65535);
  ASSERT_TRUE(ParseHostPort("[fe80::1]:80", &host, &port).ok());
  EXPECT_EQ(host, "fe80::1");
  for (const char* bad :
       {"", ":", "host", "host:", ":80", "host:0", "host:65536", "host:-1", "host:8o", "host:99999999999999999999"})
    EXPECT_EQ(ParseHostPort(bad, &host, &port).code(), Status::Code::kInvalidArgument) << bad;
}

TEST(ParseHelpersTest, NodeIds) {
  EXPECT_TRUE(IsValidNodeId("a"));
  EXPECT_TRUE(IsValidNodeId("node-1.rack_2"));
  EXPECT_TRUE(IsValidNodeId(std::string(64, 'x')));
  EXPECT_FALSE(IsValidNodeId(""));
  EXPECT_FALSE(IsValidNodeId(std::string(65, 'x')));
  EXPECT_FALSE(IsValidNodeId("a/b"));  // '/' separates the incarnation in actor names
  EXPECT_FALSE(IsValidNodeId("a=b"));
  EXPECT_FALSE(IsValidNodeId("a,b"));
  EXPECT_FALSE(IsValidNodeId("a b"));
}

}  // namespace
}  // namespace monju
