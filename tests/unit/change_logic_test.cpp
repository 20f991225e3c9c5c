// The logic of membership changes without a network: when the leader takes a
// change's next step (change_driver.h), which Raft configuration change comes
// next (raft_roster.h), and how a node streams the partitions it gains
// (partition_streamer.h: sources, resuming, rate limit) on a fake clock with
// fake sources and sink.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "change_driver.h"
#include "metadata_commands.h"
#include "partition_streamer.h"
#include "placement.h"
#include "raft_roster.h"
#include "metadata_fakes.h"
#include "test_support.h"

namespace monju {
namespace {

using namespace std::chrono_literals;
using Type = MetadataCommand::Type;

Member MakeMember(int i, MemberState state) { return test_support::MakeMember(i, state, 8); }

ClusterMetadata Step(const ClusterMetadata& md, const MetadataCommand& c) { return test_support::ApplyOrFail(md, c); }

ClusterMetadata Bootstrapped(int members) {
  MetadataCommand c;
  c.type = Type::kBootstrap;
  c.bootstrap.cluster_id = "logic";
  c.bootstrap.partitions = 16;
  c.bootstrap.replicas = 3;
  c.bootstrap.voters = 3;
  for (int i = 1; i <= members; ++i) c.bootstrap.members.push_back(MakeMember(i, MemberState::kNormal));
  return Step({}, c);
}

ClusterMetadata Joining(const ClusterMetadata& md, int i) {
  MetadataCommand c;
  c.type = Type::kBeginJoin;
  c.expected_epoch = md.epoch;
  c.member = MakeMember(i, MemberState::kJoining);
  return Step(md, c);
}

auto AllAlive() {
  return [](const std::string&) { return true; };
}

// ---------------------------------------------------------------------------
// Change driver

TEST(ChangeDriverTest, FinishesStreamingOnlyWhenEveryoneIsThereAndTheNewOwnerIsDone) {
  ClusterMetadata md = Joining(Bootstrapped(3), 4);
  std::map<std::string, NodeReport> reports;
  for (int i = 1; i <= 4; ++i) reports["n" + std::to_string(i)].epoch = md.epoch;
  reports["n2"].epoch = md.epoch - 1;
  DriverDecision d = NextChangeStep(md, reports, AllAlive(), 2);
  EXPECT_FALSE(d.propose);
  EXPECT_NE(d.waiting_for.find("n2 is at epoch 1"), std::string::npos) << d.waiting_for;

  reports["n2"].epoch = md.epoch;
  reports["n4"].stream = StreamReport{md.change->begin_epoch, 10, 4, 100, 1000, false, "", 5};
  d = NextChangeStep(md, reports, AllAlive(), 2);
  EXPECT_FALSE(d.propose);
  EXPECT_NE(d.waiting_for.find("n4 streaming 4/10"), std::string::npos) << d.waiting_for;

  reports["n4"].stream.partitions_done = 10;
  reports["n4"].stream.done = true;
  reports["n4"].stream.change_epoch = md.change->begin_epoch - 1;  // an older change's report
  EXPECT_FALSE(NextChangeStep(md, reports, AllAlive(), 2).propose);
  reports["n4"].stream.change_epoch = md.change->begin_epoch;
  d = NextChangeStep(md, reports, AllAlive(), 2);
  ASSERT_TRUE(d.propose);
  EXPECT_EQ(d.propose->type, Type::kFinishStreaming);
  EXPECT_EQ(d.propose->expected_epoch, md.epoch);
}

TEST(ChangeDriverTest, DownMembersAreNotWaitedForUnlessTheyHavePartitionsToStream) {
  ClusterMetadata md = Joining(Bootstrapped(3), 4);
  std::map<std::string, NodeReport> reports;
  for (const char* id : {"n1", "n3"}) reports[id].epoch = md.epoch;
  reports["n4"] = NodeReport{md.epoch, StreamReport{md.change->begin_epoch, 3, 3, 0, 0, true, "", 0}};
  auto n2_down = [](const std::string& id) { return id != "n2"; };
  EXPECT_TRUE(NextChangeStep(md, reports, n2_down, 2).propose);
  // The joining node down: the change waits for it (or an abort).
  auto n4_down = [](const std::string& id) { return id != "n4"; };
  reports.erase("n4");
  reports["n2"].epoch = md.epoch;
  DriverDecision d = NextChangeStep(md, reports, n4_down, 2);
  EXPECT_FALSE(d.propose);
  EXPECT_NE(d.waiting_for.find("n4 is down"), std::string::npos) << d.waiting_for;
}

TEST(ChangeDriverTest, CompletesOnceEveryoneReadsFromTheNewOwners) {
  MetadataCommand finish;
  finish.type = Type::kFinishStreaming;
  ClusterMetadata md = Joining(Bootstrapped(3), 4);
  finish.expected_epoch = md.epoch;
  md = Step(md, finish);
  std::map<std::string, NodeReport> reports;
  for (int i = 1; i <= 4; ++i) reports["n" + std::to_string(i)].epoch = md.epoch;
  reports.erase("n3");
  EXPECT_FALSE(NextChangeStep(md, reports, AllAlive(), 2).propose);  // n3 does not answer
  reports["n3"].epoch = md.epoch;
  DriverDecision d = NextChangeStep(md, reports, AllAlive(), 2);
  ASSERT_TRUE(d.propose);
  EXPECT_EQ(d.propose->type, Type::kComplete);
  EXPECT_FALSE(NextChangeStep(Bootstrapped(3), reports, AllAlive(), 2).propose);  // no change: idle
}

// ---------------------------------------------------------------------------
// Raft roster

std::vector<RaftServer> Config(const ClusterMetadata& md, std::map<std::string, RaftRole> roles) {
  std::vector<RaftServer> out;
  for (const auto& [id, role] : roles) out.push_back({md.Find(id)->raft_id, md.Find(id)->raft_address, role});
  return out;
}

TEST(RaftRosterTest, BringsTheGroupInLineOneChangeAtATime) {
  ClusterMetadata md = Joining(Bootstrapped(3), 4);
  auto config = Config(md, {{"n1", RaftRole::kVoter}, {"n2", RaftRole::kVoter}, {"n3", RaftRole::kVoter}});
  RosterStep s = NextRosterStep(md, config, AllAlive());
  EXPECT_EQ(s.kind, RosterStep::Kind::kAdd);
  EXPECT_EQ(s.member, "n4");
  config.push_back({md.Find("n4")->raft_id, md.Find("n4")->raft_address, RaftRole::kSpare});
  s = NextRosterStep(md, config, AllAlive());
  EXPECT_EQ(s.kind, RosterStep::Kind::kAssign);
  EXPECT_EQ(s.role, RaftRole::kStandby);
  config.back().role = RaftRole::kStandby;
  EXPECT_EQ(NextRosterStep(md, config, AllAlive()).kind, RosterStep::Kind::kNone);  // a joiner never votes
}

TEST(RaftRosterTest, AReplacedVoterIsRemovedAndANormalStandbyPromoted) {
  ClusterMetadata md = Bootstrapped(4);
  MetadataCommand c;
  c.type = Type::kBeginReplace;
  c.expected_epoch = md.epoch;
  c.target = "n2";
  c.member = MakeMember(5, MemberState::kJoining);
  c.member.token_owner = "n2";
  md = Step(md, c);
  auto dead_n2 = [](const std::string& id) { return id != "n2"; };
  auto config = Config(md, {{"n1", RaftRole::kVoter}, {"n2", RaftRole::kVoter}, {"n3", RaftRole::kVoter},
                            {"n4", RaftRole::kStandby}, {"n5", RaftRole::kStandby}});
  // n2 is leaving: a normal, live standby (n4) votes in its place at once...
  RosterStep s = NextRosterStep(md, config, dead_n2);
  ASSERT_EQ(s.kind, RosterStep::Kind::kAssign);
  EXPECT_EQ(s.member, "n4");
  EXPECT_EQ(s.role, RaftRole::kVoter);
  config[3].role = RaftRole::kVoter;
  // ...and the dead one stops voting: three voters, all of them alive.
  s = NextRosterStep(md, config, dead_n2);
  ASSERT_EQ(s.kind, RosterStep::Kind::kAssign);
  EXPECT_EQ(s.member, "n2");
  EXPECT_EQ(s.role, RaftRole::kStandby);
  config[1].role = RaftRole::kStandby;
  EXPECT_EQ(NextRosterStep(md, config, dead_n2).kind, RosterStep::Kind::kNone);
  // Once complete, n2 is removed from the group.
  MetadataCommand step;
  step.type = Type::kFinishStreaming;
  step.expected_epoch = md.epoch;
  md = Step(md, step);
  step.type = Type::kComplete;
  step.expected_epoch = md.epoch;
  md = Step(md, step);
  s = NextRosterStep(md, config, dead_n2);
  EXPECT_EQ(s.kind, RosterStep::Kind::kRemove);
  EXPECT_EQ(s.id, RaftIdOf("n2"));
}

TEST(RaftRosterTest, VotersAreTheConfiguredNumberOfNormalMembers) {
  ClusterMetadata md = Bootstrapped(5);
  md.voters = 5;
  EXPECT_EQ(TargetVoters(md), 5u);
  md.voters = 3;
  EXPECT_EQ(TargetVoters(md), 3u);
  EXPECT_EQ(TargetVoters(Bootstrapped(4)), 3u);
}

TEST(RaftRosterTest, ReplacingADeadVoterOfThreeNeverLeavesASingleVoter) {
  ClusterMetadata md = Bootstrapped(3);
  MetadataCommand c;
  c.type = Type::kBeginReplace;
  c.expected_epoch = md.epoch;
  c.target = "n3";
  c.member = MakeMember(4, MemberState::kJoining);
  c.member.token_owner = "n3";
  md = Step(md, c);
  auto dead_n3 = [](const std::string& id) { return id != "n3"; };
  auto config = Config(md, {{"n1", RaftRole::kVoter}, {"n2", RaftRole::kVoter}, {"n3", RaftRole::kVoter},
                            {"n4", RaftRole::kStandby}});
  RosterStep s = NextRosterStep(md, config, dead_n3);
  ASSERT_EQ(s.kind, RosterStep::Kind::kAssign);  // the dead voter stops voting: n1 and n2 remain
  EXPECT_EQ(s.member, "n3");
  config[2].role = RaftRole::kStandby;
  EXPECT_EQ(NextRosterStep(md, config, dead_n3).kind, RosterStep::Kind::kNone);
  // Complete: n3 leaves the group and n4, now normal, votes.
  MetadataCommand step;
  step.type = Type::kFinishStreaming;
  step.expected_epoch = md.epoch;
  md = Step(md, step);
  step.type = Type::kComplete;
  step.expected_epoch = md.epoch;
  md = Step(md, step);
  s = NextRosterStep(md, config, dead_n3);
  ASSERT_EQ(s.kind, RosterStep::Kind::kRemove);
  config.erase(config.begin() + 2);
  s = NextRosterStep(md, config, dead_n3);
  ASSERT_EQ(s.kind, RosterStep::Kind::kAssign);
  EXPECT_EQ(s.member, "n4");
  EXPECT_EQ(s.role, RaftRole::kVoter);
}

// ---------------------------------------------------------------------------
// Partition streamer

// Sources hold, per partition, items in storage order; a cursor is the
// index of the next item as text.
class FakeSources final : public StreamSource {
 public:
  Status Fetch(const std::string& source, uint64_t, uint32_t partition, const std::string& cursor,
               uint32_t max_items, uint32_t, StreamChunkData* out) override {
    ++fetches[source];
    if (down.count(source)) return Status::Unavailable(source + " is down");
    const auto& items = data[source][partition];
    size_t at = cursor.empty() ? 0 : std::stoul(cursor);
    fetched_from.insert(at);
    out->items.clear();
    for (; at < items.size() && out->items.size() < max_items; ++at) out->items.push_back(items[at]);
    out->done = at >= items.size();
    out->next_cursor = out->done ? "" : std::to_string(at);
    return Status::OK();
  }
  bool Alive(const std::string& source) override { return !down.count(source); }
  std::map<std::string, std::map<uint32_t, std::vector<StreamedItem>>> data;
  std::set<std::string> down;
  std::map<std::string, int> fetches;
  std::set<size_t> fetched_from;
};

class FakeSink final : public StreamSink {
 public:
  Status Apply(uint32_t partition, const std::vector<StreamedItem>& items) override {
    for (const auto& i : items) received[partition].push_back(i.pk + "/" + i.sk);
    return Status::OK();
  }
  Status LoadProgress(const std::string& key, std::string* value) override {
    auto it = saved.find(key);
    if (it == saved.end()) return Status::NotFound(key);
    *value = it->second;
    return Status::OK();
  }
  Status SaveProgress(const std::string& key, const std::string& value) override {
    saved[key] = value;
    return Status::OK();
  }
  std::map<uint32_t, std::vector<std::string>> received;
  std::map<std::string, std::string> saved;
};

class StreamerTest : public ::testing::Test {
 protected:
  void Fill(const std::string& source, uint32_t partition, int items, size_t value_bytes = 10) {
    for (int i = 0; i < items; ++i)
      sources_.data[source][partition].push_back({"pk" + std::to_string(i), "sk", std::string(value_bytes, 'v')});
  }
  std::unique_ptr<PartitionStreamer> Make(double rate = 1e12, uint32_t chunk = 10) {
    StreamerOptions o;
    o.bytes_per_second = rate;
    o.max_items_per_chunk = chunk;
    o.retry_after = 500ms;
    return std::make_unique<PartitionStreamer>(&sources_, &sink_, &clock_, o);
  }
  // Steps until idle (or `max` steps), advancing the fake clock to each
  // requested time; returns the steps taken.
  int RunToEnd(PartitionStreamer& s, int max = 10000) {
    for (int i = 0; i < max; ++i) {
      auto next = s.Step();
      if (!next) return i;
      if (*next > clock_.Now()) clock_.Advance(*next - clock_.Now());
    }
    return max;
  }
  FakeSources sources_;
  FakeSink sink_;
  test_support::FakeClock clock_;
};

TEST_F(StreamerTest, CopiesEveryPartitionFromEverySourceThatIsUp) {
  Fill("a", 3, 25);
  Fill("b", 3, 25);
  Fill("c", 3, 25);
  Fill("a", 7, 4);
  Fill("b", 7, 4);
  auto s = Make();
  s->Assign(5, {StreamTask{3, {"a", "b", "c"}, 2}, StreamTask{7, {"a", "b"}, 2}});
  RunToEnd(*s);
  StreamReport r = s->Report();
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.change_epoch, 5u);
  EXPECT_EQ(r.partitions_done, 2u);
  EXPECT_EQ(r.items, 25u * 3 + 4 * 2);
  EXPECT_EQ(sink_.received[3].size(), 75u);  // three full copies, merged by the sink
  EXPECT_EQ(sources_.fetches["c"], 3);       // up, so copied although two would do
  EXPECT_EQ(sources_.fetches["a"], 3 + 1);   // 25 items in chunks of 10, then 4
}

TEST_F(StreamerTest, ARestartedStreamerResumesAtItsSavedCursor) {
  Fill("a", 1, 30);
  auto first = Make(1e12, 10);
  first->Assign(9, {StreamTask{1, {"a"}, 1}});
  first->Step();  // one chunk: items 0..9
  first->Step();  // items 10..19
  first.reset();  // the node crashes
  sources_.fetched_from.clear();
  auto second = Make(1e12, 10);
  second->Assign(9, {StreamTask{1, {"a"}, 1}});
  RunToEnd(*second);
  EXPECT_TRUE(second->Report().done);
  EXPECT_EQ(sources_.fetched_from, (std::set<size_t>{20}));  // only the rest
  EXPECT_EQ(sink_.received[1].size(), 30u);
  // A later change does not reuse this one's progress.
  auto third = Make(1e12, 10);
  sources_.fetched_from.clear();
  third->Assign(12, {StreamTask{1, {"a"}, 1}});
  RunToEnd(*third);
  EXPECT_TRUE(sources_.fetched_from.count(0));
}

TEST_F(StreamerTest, AnUnreachableSourceIsSkippedAndTheRequiredCountStillHolds) {
  Fill("a", 2, 5);
  Fill("b", 2, 5);
  Fill("c", 2, 5);
  sources_.down = {"a"};
  auto s = Make();
  s->Assign(4, {StreamTask{2, {"a", "b", "c"}, 2}});
  RunToEnd(*s);
  EXPECT_TRUE(s->Report().done);
  EXPECT_EQ(sources_.fetches["a"], 0);  // known down: not even tried
  // With two of three down, it waits and says why, then finishes once one is back.
  auto t = Make();
  sources_.down = {"a", "b"};
  t->Assign(6, {StreamTask{2, {"a", "b", "c"}, 2}});
  for (int i = 0; i < 20; ++i) {
    auto next = t->Step();
    ASSERT_TRUE(next.has_value());
    if (*next > clock_.Now()) clock_.Advance(*next - clock_.Now());
  }
  StreamReport stuck = t->Report();
  EXPECT_FALSE(stuck.done);
  EXPECT_NE(stuck.waiting_for.find("unreachable"), std::string::npos) << stuck.waiting_for;
  sources_.down = {"a"};
  RunToEnd(*t);
  EXPECT_TRUE(t->Report().done);
}

TEST_F(StreamerTest, TheRateLimitSpreadsTheCopyOverTime) {
  Fill("a", 0, 100, 1000);  // about 100 KB
  auto s = Make(/*bytes per second=*/20000, /*chunk=*/10);
  s->Assign(3, {StreamTask{0, {"a"}, 1}});
  const auto start = clock_.Now();
  RunToEnd(*s);
  const double seconds = std::chrono::duration<double>(clock_.Now() - start).count();
  const double bytes = static_cast<double>(s->Report().bytes);
  EXPECT_TRUE(s->Report().done);
  // One second's worth may go at once; the rest at the rate.
  EXPECT_GE(seconds, (bytes - 20000 - 10 * 1010) / 20000) << bytes << " bytes in " << seconds << " s";
  EXPECT_LE(seconds, bytes / 20000 + 1);
}

TEST_F(StreamerTest, ANewChangeReplacesTheOldOnesWork) {
  Fill("a", 1, 50);
  Fill("a", 2, 5);
  auto s = Make(1e12, 10);
  s->Assign(3, {StreamTask{1, {"a"}, 1}});
  s->Step();
  s->Assign(8, {StreamTask{2, {"a"}, 1}});  // e.g. the first change was aborted
  RunToEnd(*s);
  StreamReport r = s->Report();
  EXPECT_EQ(r.change_epoch, 8u);
  EXPECT_TRUE(r.done);
  EXPECT_EQ(sink_.received[2].size(), 5u);
  EXPECT_EQ(sink_.received[1].size(), 10u);  // the first chunk only
  s->Assign(0, {});
  EXPECT_FALSE(s->Step().has_value());  // idle...
  EXPECT_EQ(s->Report().change_epoch, 8u);  // ...but still reporting the last change
  EXPECT_TRUE(s->Report().done);
}

}  // namespace
}  // namespace monju
