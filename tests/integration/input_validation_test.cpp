// Bad input: requests the API must refuse (and keep serving afterwards), raw
// garbage on the port, and monjud started with bad flags.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <random>
#include <set>

#include "clock/codec.h"
#include "cluster_harness.h"
#include "config/node_config.h"

namespace monju::itest {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using namespace std::string_literals;

constexpr size_t kMiB = 1 << 20;

class InputValidationTest : public SharedClusterTest {
 protected:

  // The node still answers a normal request and its process is alive.
  static void ExpectServing(int node, const std::string& after) {
    EXPECT_TRUE(cluster_->IsRunning(node)) << "n" << node + 1 << " died after " << after << ": "
                                           << cluster_->ExitDescription(node);
    api::GetResult g;
    CallResult r = TryGet(*cluster_, node, "valid-pk", "probe", 0, &g);
    EXPECT_TRUE(r.ok()) << "n" << node + 1 << " does not serve after " << after << ": " << OutcomeName(r.outcome)
                        << " " << r.message;
  }

  static void ExpectInvalid(const CallResult& r, const std::string& what) {
    EXPECT_EQ(r.outcome, Outcome::kInvalidRequest) << what << ": got " << OutcomeName(r.outcome) << " " << r.message;
  }

};


TEST_F(InputValidationTest, KeyLimits) {
  LocalCluster& c = *cluster_;
  ExpectInvalid(TryPut(c, 0, "", "sk", "v"), "put with empty pk");
  ExpectInvalid(TryGet(c, 1, "", "sk"), "get with empty pk");
  ExpectInvalid(Call([&] {
                  api::WriteResult res;
                  c.Client(2)->remove(res, "", "sk", "", 0);
                }),
                "remove with empty pk");
  ExpectInvalid(Call([&] {
                  api::QueryResult res;
                  c.Client(0)->query(res, "", "", "", 10, true, 0);
                }),
                "query with empty pk");

  const std::string pk1024(1024, 'p'), pk1025(1025, 'p');
  const std::string sk1024(1024, '\xff'), sk1025(1025, 's');
  ExpectInvalid(TryPut(c, 0, pk1025, "sk", "v"), "put with a 1025-byte pk");
  ExpectInvalid(TryGet(c, 1, pk1025, "sk"), "get with a 1025-byte pk");
  ExpectInvalid(TryPut(c, 1, "valid-pk", sk1025, "v"), "put with a 1025-byte sk");
  ExpectInvalid(TryGet(c, 2, "valid-pk", sk1025), "get with a 1025-byte sk");

  // The limits themselves are accepted.
  api::GetResult g;
  CallResult put = TryPut(c, 2, pk1024, sk1024, "at the limit");
  EXPECT_TRUE(put.ok()) << "1024-byte pk and sk: " << put.message;
  CallResult get = TryGet(c, 0, pk1024, sk1024, 0, &g);
  EXPECT_TRUE(get.ok()) << get.message;
  EXPECT_THAT(g.values, ElementsAre("at the limit"));
  CallResult q = Call([&] {
    api::QueryResult res;
    c.Client(1)->query(res, pk1024, "", "", 10, true, 0);
    ASSERT_EQ(res.items.size(), 1u);
    EXPECT_EQ(res.items[0].sk, sk1024);
  });
  EXPECT_TRUE(q.ok()) << q.message;

  for (int i = 0; i < 3; ++i) ExpectServing(i, "invalid keys");
}

TEST_F(InputValidationTest, ValueSizeLimit) {
  LocalCluster& c = *cluster_;
  const std::string exact(kMiB, 'x');
  std::string too_big(kMiB + 1, 'y');
  ExpectInvalid(TryPut(c, 0, "size-pk", "big", too_big), "put of 1 MiB + 1");
  ExpectServing(0, "an oversized value");
  api::GetResult g;
  ASSERT_TRUE(TryGet(c, 0, "size-pk", "big", 0, &g).ok());
  EXPECT_FALSE(g.found) << "the oversized value was stored";

  CallResult ok = TryPut(c, 1, "size-pk", "exact", exact, "", 3);
  EXPECT_TRUE(ok.ok()) << "put of exactly 1 MiB with w=3: " << OutcomeName(ok.outcome) << " " << ok.message;
  for (int i = 0; i < 3; ++i) {
    api::GetResult got;
    CallResult r = TryGet(c, i, "size-pk", "exact", 3, &got);
    EXPECT_TRUE(r.ok()) << r.message;
    ASSERT_EQ(got.values.size(), 1u);
    EXPECT_EQ(got.values[0].size(), kMiB);
    EXPECT_EQ(got.values[0], exact);
  }
  // A 1 MiB sibling next to another 1 MiB value: a read carries 2 MiB.
  ASSERT_TRUE(TryPut(c, 2, "size-pk", "exact", std::string(kMiB, 'z')).ok());
  api::GetResult two;
  ASSERT_TRUE(TryGet(c, 0, "size-pk", "exact", 3, &two).ok());
  EXPECT_EQ(two.values.size(), 2u);
  for (int i = 0; i < 3; ++i) ExpectServing(i, "1 MiB values");
}

TEST_F(InputValidationTest, MalformedContext) {
  LocalCluster& c = *cluster_;
  ASSERT_TRUE(TryPut(c, 0, "ctx-pk", "k", "v").ok());
  for (const std::string& bad : {"garbage"s, "\xff\xff\xff\xff\xff\xff\xff\xff"s, "\0"s, "\x01"s,
                                 std::string(200, '\x7f'), std::string(70 * 1024, '\x01')}) {
    ExpectInvalid(TryPut(c, 1, "ctx-pk", "k", "v2", bad), "put with context " + Printable(bad, 16));
    ExpectInvalid(Call([&] {
                    api::WriteResult res;
                    c.Client(2)->remove(res, "ctx-pk", "k", bad, 0);
                  }),
                  "remove with context " + Printable(bad, 16));
  }
  // A truncated real context.
  api::GetResult g;
  ASSERT_TRUE(TryGet(c, 0, "ctx-pk", "k", 0, &g).ok());
  ASSERT_FALSE(g.context.empty());
  if (g.context.size() > 1)
    ExpectInvalid(TryPut(c, 0, "ctx-pk", "k", "v3", g.context.substr(0, g.context.size() - 1)),
                  "put with a truncated context");
  // Nothing changed.
  api::GetResult after;
  ASSERT_TRUE(TryGet(c, 2, "ctx-pk", "k", 3, &after).ok());
  EXPECT_THAT(after.values, ElementsAre("v"));
  for (int i = 0; i < 3; ++i) ExpectServing(i, "malformed contexts");
}

TEST_F(InputValidationTest, QuorumOutOfRange) {
  LocalCluster& c = *cluster_;
  ExpectInvalid(TryPut(c, 0, "q-pk", "k", "v", "", 4), "put w=4 with N=3");
  ExpectInvalid(TryPut(c, 0, "q-pk", "k", "v", "", -1), "put w=-1");
  ExpectInvalid(TryGet(c, 1, "q-pk", "k", 4), "get r=4 with N=3");
  ExpectInvalid(TryGet(c, 1, "q-pk", "k", -1), "get r=-1");
  ExpectInvalid(Call([&] {
                  api::WriteResult res;
                  c.Client(2)->remove(res, "q-pk", "k", "", 4);
                }),
                "remove w=4");
  ExpectInvalid(Call([&] {
                  api::QueryResult res;
                  c.Client(2)->query(res, "q-pk", "", "", 10, true, 4);
                }),
                "query r=4");
  ExpectInvalid(Call([&] {
                  api::QueryResult res;
                  c.Client(0)->query(res, "q-pk", "", "", 1001, true, 0);
                }),
                "query limit=1001");
  api::GetResult g;
  ASSERT_TRUE(TryGet(c, 0, "q-pk", "k", 0, &g).ok());
  EXPECT_FALSE(g.found) << "a refused put was stored";
  for (int i = 0; i < 3; ++i) ExpectServing(i, "out-of-range quorums");
}

// Raw bytes on the client port: the node must survive all of them.
int ConnectRaw(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return -1;
  }
  timeval tv{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  return fd;
}

// Sends bytes, then waits briefly for the server to answer or hang up (it
// may also just wait for more bytes: all three are fine).
void SendRaw(uint16_t port, const std::string& bytes) {
  int fd = ConnectRaw(port);
  ASSERT_GE(fd, 0) << "connect failed";
  size_t sent = 0;
  while (sent < bytes.size()) {
    ssize_t n = send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may hang up early: fine
    sent += static_cast<size_t>(n);
  }
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, 500) > 0) {
    char buf[4096];
    (void)!recv(fd, buf, sizeof buf, 0);
  }
  close(fd);
}

std::string BigEndian32(uint32_t v) {
  uint32_t be = htonl(v);
  return std::string(reinterpret_cast<const char*>(&be), 4);
}

TEST_F(InputValidationTest, GarbageOnTheWireDoesNotCrashTheNode) {
  LocalCluster& c = *cluster_;
  const int node = 1;
  const uint16_t port = c.port(node);
  std::mt19937 rng(12345);
  auto random_bytes = [&](size_t n) {
    std::string s(n, '\0');
    for (auto& ch : s) ch = static_cast<char>(rng());
    return s;
  };

  struct Case {
    std::string name;
    std::string bytes;
  };
  std::vector<Case> cases = {
      {"HTTP request", "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"},
      {"frame length 0x7fffffff", BigEndian32(0x7fffffff) + random_bytes(1000)},
      {"frame length 0xffffffff (negative)", BigEndian32(0xffffffff) + random_bytes(100)},
      {"frame length 0x80000000", BigEndian32(0x80000000)},
      {"frame length 0", BigEndian32(0)},
      {"frame length 0 twice", BigEndian32(0) + BigEndian32(0)},
      {"frame of random bytes", BigEndian32(64) + random_bytes(64)},
      {"frame shorter than declared", BigEndian32(1000) + random_bytes(10)},
      {"1 MiB of random bytes", random_bytes(kMiB)},
      {"3 bytes", "\x00\x00\x01"s},
      // A framed binary-protocol call header naming an unknown method.
      {"unknown method", BigEndian32(4 + 4 + 7 + 4 + 1) + BigEndian32(0x80010001) + BigEndian32(7) + "nothing" +
                             BigEndian32(1) + "\x00"s},
      // A framed "get" whose string length claims 2 GB.
      {"get with a huge string length", BigEndian32(4 + 4 + 3 + 4 + 1 + 2 + 4) + BigEndian32(0x80010001) +
                                            BigEndian32(3) + "get" + BigEndian32(1) + "\x0b\x00\x01"s +
                                            BigEndian32(0x7ffffff0)},
      // A framed replica "apply_batch" whose list of structs claims 2^31 - 16
      // elements (Thrift would size a vector to that before reading any).
      {"apply_batch with a huge list count",
       BigEndian32(4 + 4 + 19 + 4 + 3 + 8 + 3 + 1 + 4 + 1) + BigEndian32(0x80010001) + BigEndian32(19) +
           "replica:apply_batch" + BigEndian32(1) + "\x0a\x00\x01"s + std::string(8, '\0') + "\x0f\x00\x02\x0c"s +
           BigEndian32(0x7ffffff0) + "\x00"s},
      // A framed "put" with a list/field type that does not match.
      {"put with wrong field types", BigEndian32(4 + 4 + 3 + 4 + 1 + 2 + 4 + 1) + BigEndian32(0x80010001) +
                                         BigEndian32(3) + "put" + BigEndian32(1) + "\x08\x00\x01"s +
                                         BigEndian32(42) + "\x00"s},
  };
  const int64_t peak_before_kib = VmHwmKiB(c.pid(node));
  const auto stats_before = AdminClient(c, node).Stats();
  // Both servers: the client port and the node-to-node peer port.
  for (const uint16_t target : {port, c.peer_port(node)}) {
    for (const auto& kase : cases) {
      SCOPED_TRACE(kase.name + (target == port ? " (client port)" : " (peer port)"));
      SendRaw(target, kase.bytes);
      ExpectServing(node, kase.name);
    }
  }
  // Each server counts the connections it closed for a bad length or an
  // undecodable call: at least the 8 cases above that are surely either.
  const auto stats_after = AdminClient(c, node).Stats();
  for (const char* name : {"server.client.bad_frames", "server.peer.bad_frames"}) {
    ASSERT_TRUE(stats_after.count(name)) << name;
    EXPECT_GE(StatOf(stats_after, name) - StatOf(stats_before, name), 8) << name;
  }
  // Sizes claimed by a frame are not allocated before they are checked: a
  // 2 GB string or list header costs nothing (the node's peak memory shows it).
  const int64_t peak_after_kib = VmHwmKiB(c.pid(node));
  ASSERT_GT(peak_before_kib, 0);
  EXPECT_LT(peak_after_kib - peak_before_kib, 64 * 1024)
      << "peak RSS grew from " << peak_before_kib << " KiB to " << peak_after_kib << " KiB on garbage frames";
  // A connection that declares a huge frame and then stalls must not block
  // other clients.
  int stalled = ConnectRaw(port);
  ASSERT_GE(stalled, 0);
  std::string header = BigEndian32(15 * 1000 * 1000);
  ASSERT_EQ(send(stalled, header.data(), header.size(), MSG_NOSIGNAL), 4);
  ExpectServing(node, "a stalled connection with a large declared frame");
  close(stalled);
  ExpectServing(node, "closing the stalled connection");
  for (int i = 0; i < 3; ++i) ExpectServing(i, "garbage on n2's port");
}

// apply_many and read_many (a coordinator's coalesced writes and reads to a
// peer) judge every item on its own: bad ones are refused with their reason,
// the rest are durable (or read).
TEST_F(InputValidationTest, ApplyManyAndReadManyJudgeEachItemOnItsOwn) {
  const int node = 2;
  ReplicaClient replica(*cluster_, node);
  auto item = [](std::string pk, std::string sk, std::string version) {
    rpc::KeyedVersion kv;
    kv.pk = std::move(pk);
    kv.sk = std::move(sk);
    kv.version = std::move(version);
    return kv;
  };
  auto version = [](const std::string& value) {
    Version v;
    v.dot = {"apply-many-test", 1};
    v.value = value;
    return EncodeVersion(v);
  };
  const std::vector<rpc::KeyedVersion> items = {
      item("am-pk", "good-1", version("one")),
      item("", "empty-pk", version("lost")),
      item("am-pk", "garbage-version", "\x07not a version"),
      item("am-pk", std::string(kMaxSkBytes + 1, 's'), version("lost")),
      item("am-pk", "good-2", version("two")),
  };
  const std::vector<rpc::ApplyOutcome> outcomes = replica.ApplyMany(items);
  ASSERT_EQ(outcomes.size(), items.size());
  auto code = [](const rpc::ApplyOutcome& o) { return static_cast<Status::Code>(o.code); };
  EXPECT_EQ(code(outcomes[0]), Status::Code::kOk) << outcomes[0].why;
  EXPECT_EQ(code(outcomes[1]), Status::Code::kInvalidArgument) << outcomes[1].why;
  EXPECT_EQ(code(outcomes[2]), Status::Code::kCorruption) << outcomes[2].why;
  EXPECT_THAT(outcomes[2].why, HasSubstr("malformed version"));
  EXPECT_EQ(code(outcomes[3]), Status::Code::kInvalidArgument) << outcomes[3].why;
  EXPECT_EQ(code(outcomes[4]), Status::Code::kOk) << outcomes[4].why;

  // The good items are on this node's replica; nothing else of the call is.
  EXPECT_EQ(DescribeSiblings(replica.Read("am-pk", "good-1")), "live [one]");
  EXPECT_EQ(DescribeSiblings(replica.Read("am-pk", "good-2")), "live [two]");
  const auto stored = replica.ScanPk("am-pk");
  EXPECT_EQ(stored.size(), 2u);

  // More items than the stated limit: the whole call is refused.
  std::vector<rpc::KeyedVersion> too_many(4097, item("am-pk", "many", version("x")));
  try {
    replica.ApplyMany(too_many);
    ADD_FAILURE() << "apply_many of 4097 items was accepted";
  } catch (const rpc::ReplicaError& e) {
    EXPECT_EQ(static_cast<Status::Code>(e.code), Status::Code::kInvalidArgument);
    EXPECT_THAT(e.why, HasSubstr("the limit is 4096"));
  }
  EXPECT_EQ(replica.ScanPk("am-pk").count("many"), 0u);
  ExpectServing(node, "apply_many with bad items");

  // read_many, the same way: each key its own answer.
  const std::vector<rpc::ReadOutcome> reads =
      replica.ReadMany({{"am-pk", "good-1"}, {"", "empty-pk"}, {"am-pk", "good-2"}, {"am-pk", "absent"}});
  ASSERT_EQ(reads.size(), 4u);
  auto siblings = [](const rpc::ReadOutcome& o) {
    auto decoded = DecodeSiblings(o.siblings);
    return decoded.ok() ? DescribeSiblings(decoded.value()) : "undecodable: " + decoded.status().ToString();
  };
  EXPECT_EQ(static_cast<Status::Code>(reads[0].code), Status::Code::kOk) << reads[0].why;
  EXPECT_EQ(siblings(reads[0]), "live [one]");
  EXPECT_EQ(static_cast<Status::Code>(reads[1].code), Status::Code::kInvalidArgument) << reads[1].why;
  EXPECT_EQ(siblings(reads[2]), "live [two]");
  EXPECT_EQ(static_cast<Status::Code>(reads[3].code), Status::Code::kOk) << reads[3].why;
  EXPECT_EQ(siblings(reads[3]), "absent");
  for (const auto& o : reads) EXPECT_FALSE(o.deferred);
  // A reply stops growing past 8 MiB: the keys after that are deferred.
  std::vector<std::pair<std::string, std::string>> big_keys;
  for (int i = 0; i < 9; ++i) {
    const std::string sk = "big-" + std::to_string(i);
    const auto applied = replica.ApplyMany({item("am-big", sk, version(std::string(kMiB, 'b')))});
    ASSERT_EQ(applied.size(), 1u);
    ASSERT_EQ(applied[0].code, 0) << applied[0].why;
    big_keys.emplace_back("am-big", sk);
  }
  const auto big = replica.ReadMany(big_keys);
  ASSERT_EQ(big.size(), 9u);
  for (int i = 0; i < 8; ++i) {
    EXPECT_FALSE(big[i].deferred) << i;
    EXPECT_GT(big[i].siblings.size(), kMiB) << i;
  }
  EXPECT_TRUE(big[8].deferred);
  EXPECT_TRUE(big[8].siblings.empty());

  std::vector<std::pair<std::string, std::string>> too_many_keys(4097, {"am-pk", "good-1"});
  EXPECT_THROW(replica.ReadMany(too_many_keys), rpc::ReplicaError);
  ExpectServing(node, "read_many with bad keys");
}

// ---------------------------------------------------------------- flags

class MonjudFlagsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Peers() gives no peer ports, so each is its port + 1000: none may
    // equal another member's port, or monjud would refuse for that instead.
    for (int attempt = 0; attempt < 20 && !DerivedPortsAreDistinct(); ++attempt) ports_ = PickFreePorts(3);
    ASSERT_TRUE(DerivedPortsAreDistinct());
  }
  bool DerivedPortsAreDistinct() const {
    if (ports_.size() != 3) return false;
    std::set<int> all;
    for (uint16_t p : ports_) all.insert({p, p + 1000});
    return all.size() == 6;
  }
  std::string Addr(int i) const { return "127.0.0.1:" + std::to_string(ports_[i]); }
  std::string Peers() const { return "n1=" + Addr(0) + ",n2=" + Addr(1) + ",n3=" + Addr(2); }
  std::vector<std::string> Base() const {
    return {"--id", "n1", "--listen", Addr(0), "--data", dir_.path() + "/n1", "--peers", Peers()};
  }

  // monjud must exit non-zero quickly with one line on stderr naming the flag.
  // `flag` may list alternatives separated by '|' ("-R|--read-quorum").
  void ExpectRefused(const std::vector<std::string>& args, const std::string& flag) {
    ProcessResult r = RunProcess(MonjudPath(), args, 15s);
    ASSERT_TRUE(r.started);
    EXPECT_FALSE(r.timed_out) << "monjud kept running with a bad " << flag << "\n" << r.Describe();
    EXPECT_TRUE(r.exited) << r.Describe();
    EXPECT_NE(r.exit_code, 0) << r.Describe();
    EXPECT_LT(r.elapsed, 5s) << r.Describe();
    std::vector<std::string> lines;
    std::stringstream ss(r.err);
    for (std::string line; std::getline(ss, line);)
      if (!line.empty()) lines.push_back(line);
    EXPECT_EQ(lines.size(), 1u) << "expected exactly one line on stderr\n" << r.Describe();
    std::vector<::testing::Matcher<std::string>> names;
    std::stringstream alternatives(flag);
    for (std::string name; std::getline(alternatives, name, '|');) names.push_back(HasSubstr(name));
    EXPECT_THAT(r.err, ::testing::AnyOfArray(names)) << r.Describe();
  }

  std::vector<std::string> With(std::vector<std::string> extra) const {
    auto a = Base();
    for (auto& e : extra) a.push_back(std::move(e));
    return a;
  }
  // Base() with the value after `flag` replaced.
  std::vector<std::string> Replacing(const std::string& flag, const std::string& value) const {
    auto a = Base();
    for (size_t k = 0; k + 1 < a.size(); ++k)
      if (a[k] == flag) a[k + 1] = value;
    return a;
  }
  std::vector<std::string> Without(const std::string& flag) const {
    auto a = Base();
    for (size_t k = 0; k + 1 < a.size(); ++k)
      if (a[k] == flag) {
        a.erase(a.begin() + static_cast<long>(k), a.begin() + static_cast<long>(k) + 2);
        break;
      }
    return a;
  }

  TempDir dir_{"monju-flags"};
  std::vector<uint16_t> ports_;
};

TEST_F(MonjudFlagsTest, ReadQuorumAboveN) { ExpectRefused(With({"-N", "3", "-R", "4"}), "-R|--read-quorum"); }
TEST_F(MonjudFlagsTest, WriteQuorumZero) { ExpectRefused(With({"-W", "0"}), "-W|--write-quorum"); }
TEST_F(MonjudFlagsTest, ReplicasAbovePeers) { ExpectRefused(With({"-N", "4"}), "-N|--replicas"); }
TEST_F(MonjudFlagsTest, OwnIdNotInPeers) { ExpectRefused(Replacing("--id", "n9"), "--peers"); }
TEST_F(MonjudFlagsTest, DuplicateIds) {
  ExpectRefused(Replacing("--peers", "n1=" + Addr(0) + ",n2=" + Addr(1) + ",n2=" + Addr(2)), "--peers");
}
TEST_F(MonjudFlagsTest, DuplicateAddresses) {
  ExpectRefused(Replacing("--peers", "n1=" + Addr(0) + ",n2=" + Addr(1) + ",n3=" + Addr(1)), "--peers");
}
TEST_F(MonjudFlagsTest, MissingData) { ExpectRefused(Without("--data"), "--data"); }
TEST_F(MonjudFlagsTest, DataNotWritable) {
  ExpectRefused(Replacing("--data", "/proc/monju-cannot-create-this"), "--data");
}
TEST_F(MonjudFlagsTest, MissingPeers) { ExpectRefused(Without("--peers"), "--peers"); }
TEST_F(MonjudFlagsTest, MissingListen) { ExpectRefused(Without("--listen"), "--listen"); }
TEST_F(MonjudFlagsTest, BadListenPort) {
  ExpectRefused(Replacing("--listen", "127.0.0.1:99999"), "--listen");
  ExpectRefused(Replacing("--listen", "127.0.0.1:http"), "--listen");
  ExpectRefused(Replacing("--listen", "127.0.0.1:0"), "--listen");
  ExpectRefused(Replacing("--listen", "127.0.0.1"), "--listen");
}
TEST_F(MonjudFlagsTest, BadPeerPort) {
  ExpectRefused(Replacing("--peers", "n1=" + Addr(0) + ",n2=127.0.0.1:70000,n3=" + Addr(2)), "--peers");
}
TEST_F(MonjudFlagsTest, NotANumber) { ExpectRefused(With({"-R", "two"}), "-R|--read-quorum"); }
TEST_F(MonjudFlagsTest, UnknownFlag) { ExpectRefused(With({"--bogus-flag", "1"}), "--bogus-flag"); }

// The listen port is taken: monjud must say so and exit, not hang.
TEST_F(MonjudFlagsTest, ListenPortInUse) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(ports_[0]);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(listen(fd, 4), 0);
  ProcessResult r = RunProcess(MonjudPath(), Base(), 15s);
  close(fd);
  EXPECT_FALSE(r.timed_out) << r.Describe();
  EXPECT_TRUE(r.exited) << r.Describe();
  EXPECT_NE(r.exit_code, 0) << r.Describe();
  EXPECT_FALSE(r.err.empty() && r.out.empty()) << "no message at all\n" << r.Describe();
}

TEST_F(MonjudFlagsTest, Help) {
  ProcessResult r = RunProcess(MonjudPath(), {"--help"}, 15s);
  ASSERT_TRUE(r.exited) << r.Describe();
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_LT(r.elapsed, 5s);
  std::string text = r.out + r.err;
  for (const char* flag : {"--id", "--listen", "--data", "--peers", "--vnodes", "--partitions", "--replicas",
                           "--read-quorum", "--write-quorum", "-N", "-R", "-W", "--request-timeout-ms",
                           "--max-value-bytes", "--map-size-mb", "--worker-threads", "--fanout-threads",
                           "--log-level", "--config", "--help"})
    EXPECT_THAT(text, HasSubstr(flag)) << "--help does not mention " << flag;
  ProcessResult h = RunProcess(MonjudPath(), {"-h"}, 15s);
  EXPECT_TRUE(h.exited && h.exit_code == 0) << h.Describe();
}

}  // namespace
}  // namespace monju::itest
