// The `monju` CLI end to end against a real cluster: output, exit codes
// (0 ok, 1 not found, 2 invalid input, 3 quorum/availability, 4 cannot
// connect) and its interplay with the API.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "cluster_harness.h"
#include "common/base64.h"

namespace monju::itest {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::UnorderedElementsAre;

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::stringstream ss(text);
  for (std::string line; std::getline(ss, line);) lines.push_back(line);
  return lines;
}

class CliTest : public SharedClusterTest {
 protected:
  void SetUp() override {
    SharedClusterTest::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_FALSE(CliPath().empty()) << "MONJU_CLI is not set";
  }

  // monju --addr <node> args...
  static ProcessResult Cli(int node, std::vector<std::string> args) {
    std::vector<std::string> full = {"--addr", cluster_->addr(node)};
    for (auto& a : args) full.push_back(std::move(a));
    return RunCli(full);
  }
  static api::GetResult ApiGet(const std::string& pk, const std::string& sk) {
    api::GetResult g;
    cluster_->Client(0)->get(g, pk, sk, 3);
    return g;
  }

};


TEST_F(CliTest, PutThenGet) {
  ProcessResult put = Cli(0, {"put", "cli-pk", "s", "v"});
  EXPECT_TRUE(put.exited && put.exit_code == 0) << put.Describe();

  ProcessResult get = Cli(1, {"get", "cli-pk", "s"});
  EXPECT_TRUE(get.exited && get.exit_code == 0) << get.Describe();
  auto lines = Lines(get.out);
  ASSERT_FALSE(lines.empty()) << get.Describe();
  EXPECT_EQ(lines[0], "v") << get.Describe();
  EXPECT_THAT(get.out, Not(HasSubstr("siblings"))) << get.Describe();

  // The API sees what the CLI wrote.
  EXPECT_THAT(ApiGet("cli-pk", "s").values, ElementsAre("v"));
}

TEST_F(CliTest, GetAbsentKeyExitsOne) {
  ProcessResult get = Cli(2, {"get", "cli-pk", "never-written"});
  EXPECT_TRUE(get.exited) << get.Describe();
  EXPECT_EQ(get.exit_code, 1) << get.Describe();
}

TEST_F(CliTest, JsonGet) {
  ASSERT_EQ(Cli(0, {"put", "cli-json", "s", "json value"}).exit_code, 0);
  ProcessResult get = Cli(1, {"--json", "get", "cli-json", "s"});
  ASSERT_TRUE(get.exited && get.exit_code == 0) << get.Describe();
  nlohmann::json doc;
  ASSERT_NO_THROW(doc = nlohmann::json::parse(get.out)) << get.Describe();
  ASSERT_TRUE(doc.is_object()) << get.out;
  ASSERT_TRUE(doc.contains("values")) << get.out;
  ASSERT_TRUE(doc["values"].is_array()) << get.out;
  EXPECT_EQ(doc["values"].size(), 1u) << get.out;
  EXPECT_EQ(doc["values"][0], "json value") << get.out;

  // An absent key in JSON: still parseable, exit 1.
  ProcessResult absent = Cli(1, {"--json", "get", "cli-json", "absent"});
  EXPECT_EQ(absent.exit_code, 1) << absent.Describe();
  EXPECT_FALSE(nlohmann::json::parse(absent.out, nullptr, false).is_discarded()) << absent.Describe();
}

TEST_F(CliTest, UnreachableAddressExitsFour) {
  auto ports = PickFreePorts(1);
  ASSERT_EQ(ports.size(), 1u);
  ProcessResult r = RunCli({"--addr", "127.0.0.1:" + std::to_string(ports[0]), "get", "pk", "sk"});
  EXPECT_TRUE(r.exited) << r.Describe();
  EXPECT_EQ(r.exit_code, 4) << r.Describe();
  EXPECT_LT(r.elapsed, 10s) << r.Describe();
  ProcessResult p = RunCli({"--addr", "127.0.0.1:" + std::to_string(ports[0]), "put", "pk", "sk", "v"});
  EXPECT_EQ(p.exit_code, 4) << p.Describe();
}

TEST_F(CliTest, InvalidInputExitsTwo) {
  ProcessResult empty_pk = Cli(0, {"put", "", "s", "v"});
  EXPECT_TRUE(empty_pk.exited) << empty_pk.Describe();
  EXPECT_EQ(empty_pk.exit_code, 2) << empty_pk.Describe();
  EXPECT_EQ(Cli(0, {"get", "", "s"}).exit_code, 2);
  EXPECT_EQ(Cli(0, {"put", std::string(1025, 'p'), "s", "v"}).exit_code, 2);
  EXPECT_EQ(Cli(0, {"-w", "4", "put", "cli-pk", "s", "v"}).exit_code, 2);   // server says InvalidRequest
  EXPECT_EQ(Cli(0, {"-r", "4", "get", "cli-pk", "s"}).exit_code, 2);
  EXPECT_EQ(Cli(0, {"--context", "!!!not base64", "put", "cli-pk", "s", "v"}).exit_code, 2);
  // Valid base64 of bytes that are no context: the server refuses.
  EXPECT_EQ(Cli(0, {"--context", Base64Encode("not a context"), "put", "cli-pk", "s", "v"}).exit_code, 2);
  EXPECT_EQ(Cli(0, {"query", "cli-pk", "--limit", "1001"}).exit_code, 2);
  EXPECT_EQ(Cli(0, {"frobnicate", "a", "b"}).exit_code, 2);
  EXPECT_EQ(Cli(0, {"get", "only-pk"}).exit_code, 2);
  // The key written by PutThenGet (if any) was not replaced by the refused puts.
  api::GetResult g = ApiGet("cli-pk", "s");
  for (const auto& v : g.values) EXPECT_EQ(v, "v");
}

TEST_F(CliTest, RemoveAndQuery) {
  for (const char* sk : {"p/1", "p/2", "p/3", "q/1"})
    ASSERT_EQ(Cli(0, {"put", "cli-query", sk, std::string("val-") + sk}).exit_code, 0);

  ProcessResult q = Cli(1, {"query", "cli-query", "--prefix", "p/"});
  ASSERT_EQ(q.exit_code, 0) << q.Describe();
  for (const char* sk : {"p/1", "p/2", "p/3"}) {
    EXPECT_THAT(q.out, HasSubstr(sk)) << q.Describe();
    EXPECT_THAT(q.out, HasSubstr(std::string("val-") + sk)) << q.Describe();
  }
  EXPECT_THAT(q.out, Not(HasSubstr("q/1"))) << q.Describe();

  ProcessResult qj = Cli(2, {"--json", "query", "cli-query", "--prefix", "p/", "--limit", "2", "--desc"});
  ASSERT_EQ(qj.exit_code, 0) << qj.Describe();
  nlohmann::json doc;
  ASSERT_NO_THROW(doc = nlohmann::json::parse(qj.out)) << qj.Describe();
  ASSERT_TRUE(doc.contains("items") && doc["items"].is_array()) << qj.out;
  ASSERT_EQ(doc["items"].size(), 2u) << qj.out;
  EXPECT_EQ(doc["items"][0]["sk"], "p/3") << qj.out;
  EXPECT_EQ(doc["items"][1]["sk"], "p/2") << qj.out;

  ProcessResult rm = Cli(2, {"rm", "cli-query", "p/2"});
  EXPECT_EQ(rm.exit_code, 0) << rm.Describe();
  EXPECT_EQ(Cli(0, {"get", "cli-query", "p/2"}).exit_code, 1);
  EXPECT_FALSE(ApiGet("cli-query", "p/2").found);
  ProcessResult q2 = Cli(0, {"query", "cli-query", "--prefix", "p/"});
  ASSERT_EQ(q2.exit_code, 0) << q2.Describe();
  EXPECT_THAT(q2.out, Not(HasSubstr("p/2"))) << q2.Describe();
  EXPECT_THAT(q2.out, HasSubstr("p/3")) << q2.Describe();
}

// put reads first and writes with that context: no siblings. --blind makes
// one; --context writes with a given context.
TEST_F(CliTest, ContextHandling) {
  ASSERT_EQ(Cli(0, {"put", "cli-ctx", "k", "one"}).exit_code, 0);
  ASSERT_EQ(Cli(1, {"put", "cli-ctx", "k", "two"}).exit_code, 0);
  EXPECT_THAT(ApiGet("cli-ctx", "k").values, ElementsAre("two"));

  ASSERT_EQ(Cli(2, {"--blind", "put", "cli-ctx", "k", "three"}).exit_code, 0);
  EXPECT_THAT(ApiGet("cli-ctx", "k").values, UnorderedElementsAre("two", "three"));
  ProcessResult get = Cli(0, {"get", "cli-ctx", "k"});
  EXPECT_EQ(get.exit_code, 0) << get.Describe();
  EXPECT_THAT(get.out, HasSubstr("two")) << get.Describe();
  EXPECT_THAT(get.out, HasSubstr("three")) << get.Describe();

  // --overwrite replaces both without a read.
  // (-w 3: every replica, the overwrite's coordinator too, holds both.)
  ASSERT_EQ(Cli(0, {"--blind", "-w", "3", "put", "cli-ctx", "k2", "a"}).exit_code, 0);
  ASSERT_EQ(Cli(1, {"--blind", "-w", "3", "put", "cli-ctx", "k2", "b"}).exit_code, 0);
  EXPECT_THAT(ApiGet("cli-ctx", "k2").values, UnorderedElementsAre("a", "b"));
  ProcessResult over = Cli(2, {"--overwrite", "put", "cli-ctx", "k2", "c"});
  EXPECT_EQ(over.exit_code, 0) << over.Describe();
  EXPECT_THAT(ApiGet("cli-ctx", "k2").values, ElementsAre("c"));
  EXPECT_EQ(Cli(0, {"--overwrite", "rm", "cli-ctx", "k2"}).exit_code, 2);
  EXPECT_EQ(Cli(0, {"--overwrite", "--blind", "put", "cli-ctx", "k2", "d"}).exit_code, 2);

  // Write with the context of an API read: resolves both.
  api::GetResult g = ApiGet("cli-ctx", "k");
  ProcessResult with_ctx = Cli(1, {"--context", Base64Encode(g.context), "put", "cli-ctx", "k", "four"});
  EXPECT_EQ(with_ctx.exit_code, 0) << with_ctx.Describe();
  EXPECT_THAT(ApiGet("cli-ctx", "k").values, ElementsAre("four"));

  // The context the CLI prints works with the API.
  ProcessResult jget = Cli(2, {"--json", "get", "cli-ctx", "k"});
  ASSERT_EQ(jget.exit_code, 0) << jget.Describe();
  nlohmann::json doc = nlohmann::json::parse(jget.out, nullptr, false);
  ASSERT_FALSE(doc.is_discarded()) << jget.out;
  ASSERT_TRUE(doc.contains("context") && doc["context"].is_string()) << jget.out;
  auto ctx = Base64Decode(doc["context"].get<std::string>());
  ASSERT_TRUE(ctx.has_value()) << jget.out;
  api::WriteResult wr;
  cluster_->Client(0)->put(wr, "cli-ctx", "k", "five", *ctx, 0);
  EXPECT_THAT(ApiGet("cli-ctx", "k").values, ElementsAre("five"));
}

// Exit 3 when the quorum cannot be met; a fresh cluster, since nodes die.
TEST(CliQuorumTest, QuorumFailureExitsThree) {
  ASSERT_FALSE(CliPath().empty());
  ClusterOptions o;
  o.request_timeout_ms = 2000;
  LocalCluster c(o);
  ASSERT_TRUE(c.Start());
  ProcessResult ok = RunCli({"--addr", c.addr(0), "put", "cli-q", "k", "v"});
  ASSERT_EQ(ok.exit_code, 0) << ok.Describe();
  c.Kill(1);
  c.Kill(2);
  ProcessResult put = RunCli({"--addr", c.addr(0), "--blind", "put", "cli-q", "k", "v2"});
  EXPECT_EQ(put.exit_code, 3) << put.Describe();
  ProcessResult get = RunCli({"--addr", c.addr(0), "get", "cli-q", "k"});
  EXPECT_EQ(get.exit_code, 3) << get.Describe();
  ProcessResult one = RunCli({"--addr", c.addr(0), "-r", "1", "get", "cli-q", "k"});
  EXPECT_EQ(one.exit_code, 0) << one.Describe();
  EXPECT_LT(put.elapsed + get.elapsed, 12s);
  if (HasFailure()) std::cerr << c.AllLogTails();
}

}  // namespace
}  // namespace monju::itest
