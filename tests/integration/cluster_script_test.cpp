// scripts/cluster, the README's way to run the store: up, kill, restore,
// status and down against real nodes (the build step is skipped: the test
// runs from the build it is part of).
#include <stdlib.h>

#include <gtest/gtest.h>

#include "cluster_harness.h"

namespace monju::itest {
namespace {

class ClusterScriptTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* source = getenv("MONJU_SOURCE_ROOT");
    const char* build = getenv("MONJU_BUILD_ROOT");
    ASSERT_NE(source, nullptr);
    ASSERT_NE(build, nullptr);
    script_ = std::string(source) + "/scripts/cluster";
    setenv("MONJU_BUILD_DIR", build, 1);
    setenv("MONJU_VAR_DIR", (dir_.path() + "/var").c_str(), 1);
    setenv("MONJU_SKIP_BUILD", "1", 1);
  }
  void TearDown() override {
    if (started_) RunProcess("/bin/bash", {script_, "down"}, 30s);
  }

  ProcessResult Script(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {script_};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunProcess("/bin/bash", argv, 60s);
  }

  TempDir dir_{"monju-script-test"};
  std::string script_;
  bool started_ = false;
};

TEST_F(ClusterScriptTest, UpKillRestoreDown) {
  ProcessResult up;
  uint16_t base = 0;
  for (int attempt = 0; attempt < 5 && !(up.exited && up.exit_code == 0); ++attempt) {
    base = PickFreePorts(1)[0];
    if (base > 65000) continue;
    setenv("MONJU_BASE_PORT", std::to_string(base).c_str(), 1);
    up = Script({"up", "3"});
  }
  ASSERT_TRUE(up.exited && up.exit_code == 0) << up.Describe();
  started_ = true;
  // It prints how to talk to the nodes.
  EXPECT_NE(up.out.find("127.0.0.1:" + std::to_string(base)), std::string::npos) << up.out;

  const std::string a1 = "127.0.0.1:" + std::to_string(base);
  const std::string a3 = "127.0.0.1:" + std::to_string(base + 2);
  ProcessResult put = RunCli({"--addr", a1, "put", "script", "k", "v1"});
  ASSERT_EQ(put.exit_code, 0) << put.Describe();
  ProcessResult get = RunCli({"--addr", a3, "get", "script", "k"});
  ASSERT_EQ(get.exit_code, 0) << get.Describe();
  EXPECT_NE(get.out.find("v1"), std::string::npos) << get.out;

  ProcessResult kill = Script({"kill", "n2"});
  ASSERT_EQ(kill.exit_code, 0) << kill.Describe();
  ProcessResult status = Script({"status"});
  EXPECT_NE(status.out.find("n2"), std::string::npos) << status.Describe();
  // Two of three still make W=2 and R=2.
  put = RunCli({"--addr", a1, "put", "script", "k", "v2"});
  EXPECT_EQ(put.exit_code, 0) << put.Describe();

  ProcessResult restore = Script({"restore", "n2"});
  ASSERT_EQ(restore.exit_code, 0) << restore.Describe();
  const std::string a2 = "127.0.0.1:" + std::to_string(base + 1);
  // n2 serves again on its old data: the first write reached all three.
  get = RunCli({"--addr", a2, "get", "script", "k"});
  EXPECT_EQ(get.exit_code, 0) << get.Describe();

  ProcessResult down = Script({"down"});
  ASSERT_EQ(down.exit_code, 0) << down.Describe();
  started_ = false;
  get = RunCli({"--addr", a1, "get", "script", "k"});
  EXPECT_EQ(get.exit_code, 4) << "nodes should be stopped: " << get.Describe();
}

}  // namespace
}  // namespace monju::itest
