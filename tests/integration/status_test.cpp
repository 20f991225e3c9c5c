// Operator visibility: `monju status` / `monju stats` against a real cluster
// while a node fails and returns, and what a write's answer says about who
// acknowledged it and who gets it by hinted handoff.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "cluster_harness.h"

namespace monju::itest {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr int kRequestTimeoutMs = 2000;
constexpr int kPartitions = 256;  // monjud's default Q; the harness does not pass --partitions

std::vector<std::string> FastFlags() {
  return {"--probe-interval-ms", "100", "--probe-timeout-ms", "300"};
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::stringstream ss(text);
  for (std::string line; std::getline(ss, line);) lines.push_back(line);
  return lines;
}

// The line of the human status table that starts with the peer id.
std::string PeerLine(const std::string& out, const std::string& id) {
  for (const auto& line : Lines(out)) {
    std::stringstream ss(line);
    std::string first;
    ss >> first;
    if (first == id) return line;
  }
  return "";
}

std::vector<std::string> Strings(const nlohmann::json& array) {
  std::vector<std::string> out;
  if (!array.is_array()) return out;
  for (const auto& v : array)
    if (v.is_string()) out.push_back(v.get<std::string>());
  return out;
}

class StatusTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_FALSE(CliPath().empty()) << "MONJU_CLI is not set"; }
  void TearDown() override { MONJU_DUMP_LOGS_ON_FAILURE(cluster_.get()); }

  LocalCluster& StartCluster(ClusterOptions options) {
    options.request_timeout_ms = kRequestTimeoutMs;
    options.extra_flags = FastFlags();
    cluster_ = std::make_unique<LocalCluster>(std::move(options));
    auto started = cluster_->Start();
    EXPECT_TRUE(started);
    if (!started) throw std::runtime_error("cluster did not start");
    return *cluster_;
  }

  ProcessResult Cli(int node, std::vector<std::string> args) {
    std::vector<std::string> full = {"--addr", cluster_->addr(node)};
    for (auto& a : args) full.push_back(std::move(a));
    return RunCli(full);
  }

  // Runs the CLI with --json; the parsed output, or a discarded value.
  nlohmann::json CliJson(int node, std::vector<std::string> args, ProcessResult* raw = nullptr) {
    args.insert(args.begin(), "--json");
    ProcessResult r = Cli(node, std::move(args));
    if (raw != nullptr) *raw = r;
    if (!r.exited || r.exit_code != 0) return nlohmann::json::value_t::discarded;
    return nlohmann::json::parse(r.out, nullptr, false);
  }

  // The JSON entry of `peer` in `monju --json status` output, or null.
  static nlohmann::json PeerEntry(const nlohmann::json& status, const std::string& peer) {
    if (status.is_discarded() || !status.contains("peers") || !status["peers"].is_array()) return nullptr;
    for (const auto& p : status["peers"])
      if (p.contains("id") && p["id"] == peer) return p;
    return nullptr;
  }

  // Polls `monju --json status` on `node` until pred holds; the last status.
  nlohmann::json PollStatus(int node, const std::function<bool(const nlohmann::json&)>& pred,
                            std::chrono::milliseconds timeout, bool* ok) {
    nlohmann::json last;
    *ok = PollUntil(
        [&] {
          last = CliJson(node, {"status"});
          return !last.is_discarded() && pred(last);
        },
        timeout, 100ms);
    return last;
  }

  std::unique_ptr<LocalCluster> cluster_;
};

// 7. status lists self and peers with their state, partitions and pending
// hints, through a failure and a recovery; stats counts what happened.
TEST_F(StatusTest, StatusShowsPeerStatesAndPendingHints) {
  LocalCluster& c = StartCluster({});
  constexpr int kWrites = 5;

  auto state_is = [&](const nlohmann::json& s, const std::string& peer, const std::string& state) {
    auto p = PeerEntry(s, peer);
    return !p.is_null() && p.contains("state") && p["state"] == state;
  };
  bool ok = false;
  nlohmann::json st = PollStatus(
      0, [&](const nlohmann::json& s) { return state_is(s, "n2", "alive") && state_is(s, "n3", "alive"); }, 10s, &ok);
  ASSERT_TRUE(ok) << "n1's status never showed n2 and n3 alive; last: " << st.dump();
  EXPECT_EQ(st["id"], "n1") << st.dump();
  EXPECT_EQ(st["sloppy_quorum"], true) << st.dump();
  EXPECT_EQ(st["pending_hints"], 0) << st.dump();
  EXPECT_TRUE(st.contains("ring") && st["ring"].is_string() && !st["ring"].get<std::string>().empty()) << st.dump();
  ASSERT_TRUE(st["peers"].is_array() && st["peers"].size() == 3u) << st.dump();
  for (int i = 0; i < 3; ++i) {
    auto p = PeerEntry(st, c.id(i));
    ASSERT_FALSE(p.is_null()) << c.id(i) << " missing: " << st.dump();
    EXPECT_EQ(p["state"], i == 0 ? "self" : "alive") << p.dump();
    EXPECT_EQ(p["address"], c.addr(i)) << p.dump();
    // Three nodes, N=3: every node replicates every partition.
    EXPECT_EQ(p["partitions"], kPartitions) << p.dump();
    EXPECT_EQ(p["pending_hints"], 0) << p.dump();
    for (const char* field : {"phi", "ms_since_heard"}) EXPECT_TRUE(p.contains(field)) << field << ": " << p.dump();
  }

  ProcessResult human = Cli(0, {"status"});
  ASSERT_TRUE(human.exited && human.exit_code == 0) << human.Describe();
  {
    std::string self = PeerLine(human.out, "n1"), n2 = PeerLine(human.out, "n2"), n3 = PeerLine(human.out, "n3");
    EXPECT_THAT(self, HasSubstr("self")) << human.out;
    EXPECT_THAT(n2, HasSubstr("alive")) << human.out;
    EXPECT_THAT(n3, HasSubstr("alive")) << human.out;
    EXPECT_THAT(n2, HasSubstr(c.addr(1))) << human.out;
    for (const auto& line : {self, n2, n3}) EXPECT_THAT(line, HasSubstr(std::to_string(kPartitions))) << human.out;
    EXPECT_THAT(human.out, HasSubstr("pending hints: 0")) << human.out;
  }

  ProcessResult raw;
  nlohmann::json stats0 = CliJson(0, {"stats"}, &raw);
  ASSERT_FALSE(stats0.is_discarded()) << raw.Describe();
  ASSERT_TRUE(stats0.is_object() && stats0.contains("requests.put")) << raw.out;
  for (const char* name : {"hints.stored", "hints.delivered", "hints.pending", "hints.refused", "hints.expired",
                           "read_repairs", "read_repairs.dropped", "writes.hinted", "writes.with_fallback", "tombstones.reaped",
                           "peer_links.calls", "peer_links.connects", "peer_links.failures", "peer_links.connect_failures", "peer_links.resends",
                           "peer_links.idle_closes", "peer_links.paused_failures"})
    EXPECT_TRUE(stats0.contains(name)) << name << " missing from stats: " << raw.out;
  const int64_t puts0 = stats0.value("requests.put", int64_t{0});
  const int64_t stored0 = stats0.value("hints.stored", int64_t{0});
  const int64_t link_calls0 = stats0.value("peer_links.calls", int64_t{0});

  // n1's links to n2 and n3 are connected before n3 goes.
  CallResult before = TryPut(c, 0, "status-pk", "before-kill", "v", "", 3);
  ASSERT_TRUE(before.ok()) << before.message;
  c.Kill(2);
  for (int k = 0; k < kWrites; ++k) {
    CallResult r = TryPut(c, 0, "status-pk", "k" + std::to_string(k), "v", "", 2);
    ASSERT_TRUE(r.ok()) << r.message;
  }
  auto t0 = Clock::now();
  st = PollStatus(
      0,
      [&](const nlohmann::json& s) {
        return state_is(s, "n3", "down") && s.value("pending_hints", int64_t{0}) > 0;
      },
      15s, &ok);
  ASSERT_TRUE(ok) << "n1's status never showed n3 down with pending hints; last: " << st.dump();
  std::cout << "[measure] n1's status showed n3 down " << std::chrono::duration<double>(Clock::now() - t0).count()
            << " s after the writes that followed its SIGKILL\n";
  EXPECT_EQ(st["pending_hints"], kWrites) << st.dump();
  EXPECT_EQ(PeerEntry(st, "n3")["pending_hints"], kWrites) << st.dump();
  EXPECT_EQ(PeerEntry(st, "n2")["pending_hints"], 0) << st.dump();
  EXPECT_EQ(PeerEntry(st, "n2")["state"], "alive") << st.dump();
  human = Cli(0, {"status"});
  EXPECT_THAT(PeerLine(human.out, "n3"), HasSubstr("down")) << human.out;
  EXPECT_THAT(human.out, HasSubstr("pending hints: " + std::to_string(kWrites))) << human.out;

  ASSERT_TRUE(c.StartNode(2));
  st = PollStatus(
      0,
      [&](const nlohmann::json& s) { return state_is(s, "n3", "alive") && s.value("pending_hints", int64_t{-1}) == 0; },
      30s, &ok);
  ASSERT_TRUE(ok) << "n1's status never showed n3 alive with no pending hints; last: " << st.dump();
  EXPECT_EQ(PeerEntry(st, "n3")["pending_hints"], 0) << st.dump();
  // n1's link to n3 saw its connection close with the process and connects
  // again: the first write that needs n3's ack succeeds.
  CallResult all_three = TryPut(c, 0, "status-pk", "after-restart", "v", "", 3);
  EXPECT_TRUE(all_three.ok()) << all_three.message;

  nlohmann::json stats1 = CliJson(0, {"stats"}, &raw);
  ASSERT_FALSE(stats1.is_discarded()) << raw.Describe();
  EXPECT_GE(stats1.value("requests.put", int64_t{0}) - puts0, kWrites) << raw.out;
  const int64_t stored = stats1.value("hints.stored", int64_t{0}) - stored0;
  EXPECT_EQ(stored, kWrites) << raw.out;
  EXPECT_EQ(stats1.value("hints.delivered", int64_t{-1}), stats1.value("hints.stored", int64_t{-2})) << raw.out;
  EXPECT_EQ(stats1.value("hints.pending", int64_t{-1}), 0) << raw.out;
  // Coalesced writes to peers went over links (peer_link.h), each write at
  // least one call to n2; the calls to the killed n3 failed.
  EXPECT_GE(stats1.value("peer_links.calls", int64_t{0}) - link_calls0, kWrites + 2) << raw.out;
  EXPECT_GE(stats1.value("peer_links.failures", int64_t{0}), 1) << raw.out;
  EXPECT_GE(stats1.value("peer_links.connects", int64_t{0}), 3) << raw.out;  // n2, n3, n3 again
  ProcessResult human_stats = Cli(0, {"stats"});
  ASSERT_EQ(human_stats.exit_code, 0) << human_stats.Describe();
  EXPECT_THAT(Lines(human_stats.out), Contains("hints.delivered " + std::to_string(kWrites))) << human_stats.out;
}

// 8. A write's answer names who acknowledged it, whether a fallback counted,
// and which owners get it by hinted handoff (JSON and human).
TEST_F(StatusTest, WriteResultNamesAcksAndHints) {
  const std::set<std::string> three = {"n1", "n2", "n3"};
  {
    LocalCluster& c = StartCluster({});
    ProcessResult raw;
    nlohmann::json put = CliJson(0, {"put", "wr-pk", "up", "v"}, &raw);
    ASSERT_FALSE(put.is_discarded()) << raw.Describe();
    auto acked = Strings(put["acked_by"]);
    EXPECT_TRUE(acked.size() == 2 || acked.size() == 3) << raw.out;
    for (const auto& id : acked) EXPECT_TRUE(three.count(id)) << id << " in " << raw.out;
    EXPECT_EQ(std::set<std::string>(acked.begin(), acked.end()).size(), acked.size()) << "duplicates: " << raw.out;
    EXPECT_EQ(put["used_fallback"], false) << raw.out;
    EXPECT_TRUE(put["hinted_for"].is_array() && put["hinted_for"].empty()) << raw.out;
    ProcessResult human = Cli(1, {"put", "wr-pk", "up-human", "v"});
    ASSERT_EQ(human.exit_code, 0) << human.Describe();
    EXPECT_THAT(human.out, HasSubstr("acked by: ")) << human.out;
    EXPECT_THAT(human.out, Not(HasSubstr("hinted for"))) << human.out;

    c.Kill(2);
    auto down = WaitPeerState(c, 0, "n3", "down");
    ASSERT_TRUE(down) << down.message();
    put = CliJson(0, {"put", "wr-pk", "down", "v"}, &raw);
    ASSERT_FALSE(put.is_discarded()) << raw.Describe();
    acked = Strings(put["acked_by"]);
    EXPECT_EQ(std::set<std::string>(acked.begin(), acked.end()), (std::set<std::string>{"n1", "n2"})) << raw.out;
    EXPECT_THAT(Strings(put["hinted_for"]), Contains("n3")) << raw.out;
    EXPECT_EQ(put["used_fallback"], false) << "no fallback exists with 3 nodes and N=3: " << raw.out;

    human = Cli(0, {"put", "wr-pk", "down-human", "v"});
    ASSERT_EQ(human.exit_code, 0) << human.Describe();
    EXPECT_THAT(human.out, HasSubstr("hinted for: n3 (delivered when back)")) << human.out;
    EXPECT_THAT(human.out, Not(HasSubstr("a fallback holding a hint counted"))) << human.out;
    EXPECT_THAT(PeerLine(human.out, "acked"), HasSubstr("n1")) << human.out;
    EXPECT_THAT(PeerLine(human.out, "acked"), HasSubstr("n2")) << human.out;

    nlohmann::json rm = CliJson(1, {"rm", "wr-pk", "down"}, &raw);
    ASSERT_FALSE(rm.is_discarded()) << raw.Describe();
    EXPECT_THAT(Strings(rm["hinted_for"]), Contains("n3")) << raw.out;
    EXPECT_THAT(Strings(rm["acked_by"]), Not(Contains("n3"))) << raw.out;
  }
  MONJU_DUMP_LOGS_ON_FAILURE(cluster_.get());
  if (HasFailure()) return;

  // Five nodes, N=3, n5 down, W=3: a key n5 owns needs a fallback.
  ClusterOptions five;
  five.nodes = 5;
  LocalCluster& c = StartCluster(five);
  // Owners of candidate pks: with all up, W=3 is acknowledged by exactly the three owners.
  std::string pk;
  std::set<std::string> owners;
  for (int k = 0; k < 50 && pk.empty(); ++k) {
    std::string candidate = "wr5-" + std::to_string(k);
    api::WriteResult wr;
    CallResult r = TryPut(c, 0, candidate, "probe", "v", "", 3, &wr);
    ASSERT_TRUE(r.ok()) << r.message;
    std::set<std::string> acked(wr.acked_by.begin(), wr.acked_by.end());
    if (!wr.used_fallback && acked.size() == 3 && acked.count("n5")) {
      pk = candidate;
      owners = acked;
    }
  }
  ASSERT_FALSE(pk.empty()) << "no pk among 50 is owned by n5";
  c.Kill(4);
  auto seen = WaitAllSee(c, 4, "down");
  ASSERT_TRUE(seen) << seen.message();

  ProcessResult raw;
  nlohmann::json put = CliJson(0, {"-w", "3", "put", pk, "fallback", "v"}, &raw);
  ASSERT_FALSE(put.is_discarded()) << raw.Describe();
  EXPECT_EQ(put["used_fallback"], true) << raw.out;
  EXPECT_THAT(Strings(put["hinted_for"]), Contains("n5")) << raw.out;
  auto acked = Strings(put["acked_by"]);
  EXPECT_THAT(acked, Not(Contains("n5"))) << raw.out;
  EXPECT_EQ(acked.size(), 3u) << raw.out;
  std::vector<std::string> fallbacks;
  for (const auto& id : acked)
    if (!owners.count(id)) fallbacks.push_back(id);
  EXPECT_EQ(fallbacks.size(), 1u) << "acked_by " << raw.out << " should name one fallback beside the two live owners";
  std::cout << "[measure] " << pk << " (owners incl. n5): W=3 met with acked_by " << put["acked_by"].dump()
            << ", hinted_for " << put["hinted_for"].dump() << "\n";

  ProcessResult human = Cli(1, {"-w", "3", "put", pk, "fallback-human", "v"});
  ASSERT_EQ(human.exit_code, 0) << human.Describe();
  EXPECT_THAT(human.out, HasSubstr("(a fallback holding a hint counted)")) << human.out;
  EXPECT_THAT(human.out, HasSubstr("hinted for: n5")) << human.out;
  EXPECT_GE(SumStat(c, "writes.with_fallback"), 2);
}

}  // namespace
}  // namespace monju::itest
