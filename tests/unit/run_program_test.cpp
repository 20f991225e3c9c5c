// RunProgram (chaos/net_faults.h): the chaos tool runs ip and iptables with
// it, so a failure must carry the program's output and a hung program must
// not hang the run.
#include <gtest/gtest.h>

#include "net_faults.h"

namespace monju::chaos {
namespace {

using namespace std::chrono_literals;

TEST(RunProgramTest, SuccessIsOk) {
  Status s = RunProgram({"sh", "-c", "echo fine; exit 0"});
  EXPECT_TRUE(s.ok()) << s.ToString();
}

TEST(RunProgramTest, FailureCarriesTheCommandAndItsOutput) {
  Status s = RunProgram({"sh", "-c", "echo oops >&2; exit 3"});
  ASSERT_TRUE(s.Is(Status::Code::kIOError)) << s.ToString();
  EXPECT_NE(s.ToString().find("oops"), std::string::npos) << s.ToString();
  EXPECT_NE(s.ToString().find("sh -c"), std::string::npos) << s.ToString();
}

TEST(RunProgramTest, MissingProgramIsAnError) {
  Status s = RunProgram({"monju-no-such-program-anywhere"});
  ASSERT_TRUE(s.Is(Status::Code::kIOError)) << s.ToString();
  EXPECT_NE(s.ToString().find("cannot run"), std::string::npos) << s.ToString();
}

TEST(RunProgramTest, EmptyCommandIsInvalid) {
  EXPECT_TRUE(RunProgram({}).Is(Status::Code::kInvalidArgument));
}

TEST(RunProgramTest, AHungProgramIsKilledAtTheDeadline) {
  Status s = RunProgram({"sleep", "600"}, 200ms);
  ASSERT_TRUE(s.Is(Status::Code::kTimedOut)) << s.ToString();
  EXPECT_NE(s.ToString().find("sleep 600"), std::string::npos) << s.ToString();
}

TEST(RunProgramTest, AProgramThatClosesItsOutputAndHangsIsKilledToo) {
  Status s = RunProgram({"sh", "-c", "exec >/dev/null 2>&1; exec sleep 600"}, 200ms);
  ASSERT_TRUE(s.Is(Status::Code::kTimedOut)) << s.ToString();
}

}  // namespace
}  // namespace monju::chaos
