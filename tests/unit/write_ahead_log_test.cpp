// WriteAheadLog: round trips across files, torn tails, corruption, gaps,
// dropping files, and appends that fail (injected through LogFileFactory).

#include "storage/write_ahead_log.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "test_support.h"

namespace monju {

// Status codes by name in failure messages (found by argument-dependent lookup).
[[maybe_unused]] static void PrintTo(Status::Code code, std::ostream* os) { *os << CodeName(code); }

namespace {

namespace fs = std::filesystem;
using namespace std::string_literals;
using test_support::TempDir;
using Code = Status::Code;
using Records = std::vector<std::pair<uint64_t, std::string>>;

std::string FilePath(const TempDir& dir, uint64_t first_seq) {
  char name[64];
  std::snprintf(name, sizeof name, "/wal-%016llx.log", static_cast<unsigned long long>(first_seq));
  return dir.path() + name;
}

std::string Payload(uint64_t seq) {
  // Varied sizes, an empty one, and binary bytes.
  if (seq % 4 == 0) return "";
  return "payload-" + std::to_string(seq) + "\0\xff"s + std::string(seq * 7 % 50, char('a' + seq % 26));
}

std::unique_ptr<WriteAheadLog> OpenLog(const TempDir& dir, LogFileFactory factory = nullptr) {
  auto log = WriteAheadLog::Open(dir.path(), std::move(factory));
  EXPECT_TRUE(log.ok()) << log.status().ToString();
  return log.ok() ? std::move(log.value()) : nullptr;
}

struct ReplayResult {
  Status status;
  Records records;
  uint64_t last = 0;
};

// Replays a freshly opened log of `dir`, as the store does at start.
ReplayResult ReplayDir(const TempDir& dir, uint64_t after) {
  ReplayResult r;
  auto log = OpenLog(dir);
  if (!log) return r;
  r.last = 12345;  // must be overwritten
  r.status = log->Replay(
      after,
      [&](uint64_t seq, std::string_view payload) {
        r.records.emplace_back(seq, std::string(payload));
        return Status::OK();
      },
      &r.last);
  return r;
}

Records Expected(uint64_t from, uint64_t through) {
  Records out;
  for (uint64_t s = from; s <= through; ++s) out.emplace_back(s, Payload(s));
  return out;
}

// Starts a file at each of `starts` (in order) and appends seqs up to `through`.
void Build(WriteAheadLog& log, const std::vector<uint64_t>& starts, uint64_t through) {
  for (size_t i = 0; i < starts.size(); ++i) {
    ASSERT_TRUE(log.StartFile(starts[i]).ok());
    const uint64_t end = i + 1 < starts.size() ? starts[i + 1] - 1 : through;
    for (uint64_t s = starts[i]; s <= end; ++s) ASSERT_TRUE(log.Append(s, Payload(s)).ok()) << s;
  }
}

uint64_t RecordBytes(uint64_t from, uint64_t through) {
  uint64_t n = 0;
  for (uint64_t s = from; s <= through; ++s) n += WriteAheadLog::kHeaderBytes + Payload(s).size();
  return n;
}

void FlipByte(const std::string& path, uint64_t offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  ASSERT_TRUE(f.good());
  f.seekg(std::streamoff(offset));
  char c;
  f.read(&c, 1);
  c = char(c ^ 0x5a);
  f.seekp(std::streamoff(offset));
  f.write(&c, 1);
  ASSERT_TRUE(f.good());
}

TEST(WriteAheadLogTest, RoundTripAcrossFiles) {
  TempDir dir;
  {
    auto log = OpenLog(dir);
    ASSERT_TRUE(log);
    EXPECT_EQ(log->files(), 0u);
    EXPECT_EQ(log->bytes(), 0u);
    Build(*log, {1, 6}, 9);
    EXPECT_EQ(log->files(), 2u);
    EXPECT_EQ(log->bytes(), RecordBytes(1, 9));
  }
  EXPECT_EQ(fs::file_size(FilePath(dir, 1)), RecordBytes(1, 5));
  EXPECT_EQ(fs::file_size(FilePath(dir, 6)), RecordBytes(6, 9));

  auto reopened = OpenLog(dir);
  EXPECT_EQ(reopened->files(), 2u);
  EXPECT_EQ(reopened->bytes(), RecordBytes(1, 9));

  ReplayResult all = ReplayDir(dir, 0);
  ASSERT_TRUE(all.status.ok()) << all.status.ToString();
  EXPECT_EQ(all.records, Expected(1, 9));
  EXPECT_EQ(all.last, 9u);

  ReplayResult from4 = ReplayDir(dir, 4);
  ASSERT_TRUE(from4.status.ok()) << from4.status.ToString();
  EXPECT_EQ(from4.records, Expected(5, 9));
  EXPECT_EQ(from4.last, 9u);

  ReplayResult from6 = ReplayDir(dir, 6);  // the second file's first record is already held
  ASSERT_TRUE(from6.status.ok()) << from6.status.ToString();
  EXPECT_EQ(from6.records, Expected(7, 9));

  ReplayResult none = ReplayDir(dir, 9);
  ASSERT_TRUE(none.status.ok()) << none.status.ToString();
  EXPECT_TRUE(none.records.empty());
  EXPECT_EQ(none.last, 9u);

  // An error from the callback ends the replay.
  auto log = OpenLog(dir);
  std::vector<uint64_t> seen;
  uint64_t last = 0;
  Status s = log->Replay(
      0,
      [&](uint64_t seq, std::string_view) {
        seen.push_back(seq);
        return seq == 3 ? Status::Corruption("bad payload") : Status::OK();
      },
      &last);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(seen, (std::vector<uint64_t>{1, 2, 3}));
}

TEST(WriteAheadLogTest, EmptyDirectoryReplaysNothing) {
  TempDir dir;
  ReplayResult r = ReplayDir(dir, 7);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(r.records.empty());
  EXPECT_EQ(r.last, 7u);
}

// Ways to tear the last record of the last file.
enum class Tear { kGarbage3, kGarbage40, kZeros25, kCut1, kCutIntoHeader, kCutToHeader };

class WriteAheadLogTornTest : public ::testing::TestWithParam<Tear> {};

TEST_P(WriteAheadLogTornTest, TornTailOfLastFileIsIgnored) {
  TempDir dir;
  {
    auto log = OpenLog(dir);
    Build(*log, {1, 6}, 9);
  }
  const std::string path = FilePath(dir, 6);
  const uint64_t size = fs::file_size(path);
  uint64_t whole_through = 9;
  switch (GetParam()) {
    case Tear::kGarbage3: std::ofstream(path, std::ios::binary | std::ios::app) << "\x01\x02\x03"; break;
    case Tear::kGarbage40: std::ofstream(path, std::ios::binary | std::ios::app) << std::string(40, '\x37'); break;
    case Tear::kZeros25: std::ofstream(path, std::ios::binary | std::ios::app) << std::string(25, '\0'); break;
    case Tear::kCut1:
      ASSERT_EQ(::truncate(path.c_str(), off_t(size - 1)), 0);
      whole_through = 8;
      break;
    case Tear::kCutIntoHeader:
      ASSERT_EQ(::truncate(path.c_str(), off_t(size - Payload(9).size() - 7)), 0);
      whole_through = 8;
      break;
    case Tear::kCutToHeader:  // a whole header, no payload
      ASSERT_EQ(::truncate(path.c_str(), off_t(size - Payload(9).size())), 0);
      whole_through = 8;
      break;
  }
  for (uint64_t after : {0ull, 4ull, 7ull}) {
    SCOPED_TRACE("after " + std::to_string(after));
    ReplayResult r = ReplayDir(dir, after);
    ASSERT_TRUE(r.status.ok()) << r.status.ToString();
    EXPECT_EQ(r.records, Expected(after + 1, whole_through));
    EXPECT_EQ(r.last, whole_through);
  }
}

INSTANTIATE_TEST_SUITE_P(Tears, WriteAheadLogTornTest,
                         ::testing::Values(Tear::kGarbage3, Tear::kGarbage40, Tear::kZeros25, Tear::kCut1,
                                           Tear::kCutIntoHeader, Tear::kCutToHeader));

// Replay cuts a torn tail off, so the file stays readable once a new file
// follows it (the store starts one without Reset() when the replayed records
// cannot be flushed).
TEST(WriteAheadLogTest, TornTailStaysHarmlessOnceTheNextFileStarts) {
  TempDir dir;
  {
    auto log = OpenLog(dir);
    Build(*log, {1, 6}, 9);
  }
  ASSERT_EQ(::truncate(FilePath(dir, 6).c_str(), off_t(RecordBytes(6, 9) - 5)), 0);  // record 9 torn
  {
    auto log = OpenLog(dir);
    uint64_t last = 0;
    ASSERT_TRUE(log->Replay(0, [](uint64_t, std::string_view) { return Status::OK(); }, &last).ok());
    ASSERT_EQ(last, 8u);
    ASSERT_TRUE(log->StartFile(last + 1).ok());
    ASSERT_TRUE(log->Append(9, Payload(9)).ok());
    ASSERT_TRUE(log->Append(10, Payload(10)).ok());
  }
  ReplayResult r = ReplayDir(dir, 0);
  EXPECT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.records, Expected(1, 10));
}

TEST(WriteAheadLogTest, BadRecordInEarlierFileIsCorruption) {
  // Offsets in the first file (records 1..5): a payload byte of record 3,
  // the seq in record 2's header, record 1's length, the last byte of record 5.
  const std::vector<uint64_t> offsets = {RecordBytes(1, 2) + WriteAheadLog::kHeaderBytes + 2,
                                         RecordBytes(1, 1) + 19, 0, RecordBytes(1, 5) - 1};
  for (uint64_t offset : offsets) {
    SCOPED_TRACE("offset " + std::to_string(offset));
    TempDir dir;
    {
      auto log = OpenLog(dir);
      Build(*log, {1, 6}, 9);
    }
    FlipByte(FilePath(dir, 1), offset);
    for (uint64_t after : {0ull, 5ull}) {
      ReplayResult r = ReplayDir(dir, after);
      EXPECT_EQ(r.status.code(), Code::kCorruption) << "after " << after << ": " << r.status.ToString();
    }
  }
  // A torn (cut) end of an earlier file is no tail either.
  TempDir dir;
  {
    auto log = OpenLog(dir);
    Build(*log, {1, 6}, 9);
  }
  ASSERT_EQ(::truncate(FilePath(dir, 1).c_str(), off_t(RecordBytes(1, 5) - 3)), 0);
  EXPECT_EQ(ReplayDir(dir, 0).status.code(), Code::kCorruption);
}

// The header: only the last record of the last file may be torn; "a bad
// record before the last file's tail" is Corruption, "rather than drop
// acknowledged writes". Records 4 and 5 below were written and synced after
// record 3, so record 3 is not a torn tail.
TEST(WriteAheadLogTest, BadRecordFollowedByWholeRecordsInLastFileIsCorruption) {
  TempDir dir;
  {
    auto log = OpenLog(dir);
    Build(*log, {1}, 5);
  }
  FlipByte(FilePath(dir, 1), RecordBytes(1, 2) + WriteAheadLog::kHeaderBytes + 2);  // record 3's payload
  ReplayResult r = ReplayDir(dir, 0);
  EXPECT_EQ(r.status.code(), Code::kCorruption)
      << r.status.ToString() << "; replayed through " << r.last << " of 5 (4 and 5 are whole)";
}

// A damaged length (not a torn write: whole records follow) is found by the
// search past it, not taken for the end of the log.
TEST(WriteAheadLogTest, DamagedLengthFollowedByWholeRecordsIsCorruption) {
  TempDir dir;
  {
    auto log = OpenLog(dir);
    Build(*log, {1}, 6);
  }
  FlipByte(FilePath(dir, 1), RecordBytes(1, 2) + 1);  // record 3's length
  ReplayResult r = ReplayDir(dir, 0);
  EXPECT_EQ(r.status.code(), Code::kCorruption) << r.status.ToString() << "; replayed through " << r.last;
  EXPECT_EQ(fs::file_size(FilePath(dir, 1)), RecordBytes(1, 6)) << "damaged bytes were cut off";
}

// A crash after the file grew but before its pages were written leaves
// zeros at the end, as does a reserve never written: the records before
// them replay, in the last file and in earlier ones.
TEST(WriteAheadLogTest, ATailOfZerosEndsAFilesRecords) {
  TempDir dir;
  {
    auto log = OpenLog(dir);
    Build(*log, {1, 5}, 8);
  }
  for (uint64_t first : {1, 5})
    std::ofstream(FilePath(dir, first), std::ios::binary | std::ios::app) << std::string(4096, '\0');
  ReplayResult r = ReplayDir(dir, 0);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.records, Expected(1, 8));
  auto log = OpenLog(dir);
  uint64_t last = 0;
  ASSERT_TRUE(log->Replay(0, [](uint64_t, std::string_view) { return Status::OK(); }, &last).ok());
  EXPECT_EQ(log->bytes(), RecordBytes(1, 8)) << "zeros counted as log bytes";

  // Zeros then a whole record are no tail: damage before acknowledged writes.
  std::string record;
  {
    TempDir other;
    auto one = OpenLog(other);
    Build(*one, {9}, 9);
    std::ifstream in(FilePath(other, 9), std::ios::binary);
    record.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  std::ofstream(FilePath(dir, 5), std::ios::binary | std::ios::app) << record;
  EXPECT_EQ(ReplayDir(dir, 0).status.code(), Code::kCorruption);
}

// Records lost at the end of a file (zeros, as its reserve reads) are found
// by where the next file starts, even when that one holds no record yet.
TEST(WriteAheadLogTest, RecordsLostBeforeAnEmptyNextFileAreCorruption) {
  TempDir dir;
  {
    auto opened = WriteAheadLog::Open(dir.path(), nullptr, 4096);
    ASSERT_TRUE(opened.ok());
    Build(*opened.value(), {1, 5}, 8);
    ASSERT_TRUE(opened.value()->StartFile(9).ok());  // reserved, nothing appended
  }
  ASSERT_TRUE(ReplayDir(dir, 0).status.ok());
  {
    // Records 7 and 8 come back as zeros.
    std::fstream f(FilePath(dir, 5), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(std::streamoff(RecordBytes(5, 6)));
    const std::string zeros(RecordBytes(7, 8), '\0');
    f.write(zeros.data(), std::streamsize(zeros.size()));
    ASSERT_TRUE(f.good());
  }
  ReplayResult r = ReplayDir(dir, 0);
  EXPECT_EQ(r.status.code(), Code::kCorruption) << r.status.ToString() << "; replayed through " << r.last;
  EXPECT_NE(r.status.message().find("7..8 are missing"), std::string::npos) << r.status.ToString();
  // Once LMDB holds them, nothing is missing.
  EXPECT_TRUE(ReplayDir(dir, 8).status.ok());
}

// With a reserve, each file is allocated ahead in chunks: the file on disk is
// larger than its records, appends past a chunk reserve the next, and every
// record replays, across files and after a failed append's cut.
TEST(WriteAheadLogTest, ReservedFilesReplayWhole) {
  TempDir dir;
  constexpr uint64_t kReserve = 1024;
  {
    auto opened = WriteAheadLog::Open(dir.path(), nullptr, kReserve);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    auto& log = *opened.value();
    Build(log, {1}, 2);
    EXPECT_EQ(fs::file_size(FilePath(dir, 1)), kReserve) << "the first chunk is reserved when the file starts";
    Build(log, {3}, 60);  // past several chunks
    EXPECT_EQ(log.bytes(), RecordBytes(1, 60));
    const uint64_t on_disk = fs::file_size(FilePath(dir, 3));
    EXPECT_GE(on_disk, RecordBytes(3, 60));
    EXPECT_EQ(on_disk % kReserve, 0u) << on_disk;
    EXPECT_LT(on_disk - RecordBytes(3, 60), kReserve) << "more than one chunk ahead";
    // A record larger than a chunk gets a reserve that covers it.
    const std::string big(3 * kReserve, 'x');
    ASSERT_TRUE(log.Append(61, big).ok());
    EXPECT_GE(fs::file_size(FilePath(dir, 3)), RecordBytes(3, 60) + WriteAheadLog::kHeaderBytes + big.size());
  }
  ReplayResult r = ReplayDir(dir, 0);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  Records expected = Expected(1, 60);
  expected.emplace_back(61, std::string(3 * kReserve, 'x'));
  EXPECT_EQ(r.records, expected);
  EXPECT_EQ(r.last, 61u);
}

// A file whose deletion failed after a flush stays behind with records LMDB
// holds: skipped, not taken for a gap.
TEST(WriteAheadLogTest, ALeftoverFileOfFlushedRecordsIsSkipped) {
  TempDir dir;
  {
    auto log = OpenLog(dir);
    Build(*log, {1, 11, 21}, 25);
  }
  fs::remove(FilePath(dir, 11));  // 11..20 dropped, 1..10 left behind
  ReplayResult r = ReplayDir(dir, 20);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.records, Expected(21, 25));
  EXPECT_EQ(ReplayDir(dir, 15).status.code(), Code::kCorruption) << "16..20 are missing";
}

TEST(WriteAheadLogTest, SeqGapIsCorruption) {
  TempDir dir;
  {
    auto log = OpenLog(dir);
    Build(*log, {1, 4, 7}, 9);
  }
  ASSERT_TRUE(fs::remove(FilePath(dir, 4)));
  for (uint64_t after : {0ull, 2ull}) {
    ReplayResult r = ReplayDir(dir, after);
    EXPECT_EQ(r.status.code(), Code::kCorruption) << "after " << after << ": " << r.status.ToString();
  }
}

TEST(WriteAheadLogTest, ReplayMustResumeRightAfterWhatLmdbHolds) {
  TempDir dir;
  {
    auto log = OpenLog(dir);
    Build(*log, {1, 4, 7}, 9);
  }
  ASSERT_TRUE(fs::remove(FilePath(dir, 1)));  // records 1..3 gone: fine only if LMDB holds them
  for (uint64_t after : {0ull, 1ull, 2ull}) {
    ReplayResult r = ReplayDir(dir, after);
    EXPECT_EQ(r.status.code(), Code::kCorruption) << "after " << after << ": " << r.status.ToString();
  }
  for (uint64_t after : {3ull, 5ull}) {
    ReplayResult r = ReplayDir(dir, after);
    ASSERT_TRUE(r.status.ok()) << "after " << after << ": " << r.status.ToString();
    EXPECT_EQ(r.records, Expected(after + 1, 9));
    EXPECT_EQ(r.last, 9u);
  }
}

TEST(WriteAheadLogTest, DropThroughDeletesOnlyFullyHeldFiles) {
  TempDir dir;
  auto log = OpenLog(dir);
  Build(*log, {1, 4, 7}, 9);
  EXPECT_EQ(log->files(), 3u);
  EXPECT_EQ(log->bytes(), RecordBytes(1, 9));

  log->DropThrough(2);  // record 3 of the first file is not held
  EXPECT_EQ(log->files(), 3u);
  EXPECT_TRUE(fs::exists(FilePath(dir, 1)));

  log->DropThrough(3);
  EXPECT_EQ(log->files(), 2u);
  EXPECT_EQ(log->bytes(), RecordBytes(4, 9));
  EXPECT_FALSE(fs::exists(FilePath(dir, 1)));
  EXPECT_TRUE(fs::exists(FilePath(dir, 4)));

  log->DropThrough(8);  // the second file, never the current one
  EXPECT_EQ(log->files(), 1u);
  EXPECT_EQ(log->bytes(), RecordBytes(7, 9));
  EXPECT_FALSE(fs::exists(FilePath(dir, 4)));
  EXPECT_TRUE(fs::exists(FilePath(dir, 7)));

  log->DropThrough(1000);
  EXPECT_EQ(log->files(), 1u);
  EXPECT_TRUE(fs::exists(FilePath(dir, 7)));

  // The current file still takes appends, and an empty current file is kept too.
  ASSERT_TRUE(log->Append(10, Payload(10)).ok());
  ASSERT_TRUE(log->StartFile(11).ok());
  log->DropThrough(10);
  EXPECT_EQ(log->files(), 1u);
  EXPECT_EQ(log->bytes(), 0u);
  EXPECT_FALSE(fs::exists(FilePath(dir, 7)));
  EXPECT_TRUE(fs::exists(FilePath(dir, 11)));
  ASSERT_TRUE(log->Append(11, Payload(11)).ok());
  EXPECT_EQ(log->bytes(), RecordBytes(11, 11));
  log.reset();

  ReplayResult r = ReplayDir(dir, 10);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.records, Expected(11, 11));
}

TEST(WriteAheadLogTest, ResetDeletesEveryFile) {
  TempDir dir;
  auto log = OpenLog(dir);
  Build(*log, {1, 4}, 6);
  ASSERT_TRUE(log->Reset().ok());
  EXPECT_EQ(log->files(), 0u);
  EXPECT_EQ(log->bytes(), 0u);
  EXPECT_TRUE(fs::is_empty(dir.path()));
  EXPECT_FALSE(log->Append(7, Payload(7)).ok());  // StartFile() must come first
  ASSERT_TRUE(log->StartFile(7).ok());
  ASSERT_TRUE(log->Append(7, Payload(7)).ok());
  EXPECT_EQ(log->files(), 1u);
  log.reset();
  ReplayResult r = ReplayDir(dir, 6);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.records, Expected(7, 7));
  EXPECT_EQ(ReplayDir(dir, 0).status.code(), Code::kCorruption);  // 1..6 are gone
}

TEST(WriteAheadLogTest, AppendWithWrongSeqIsInvalidArgument) {
  TempDir dir;
  auto log = OpenLog(dir);
  ASSERT_TRUE(log->StartFile(5).ok());
  EXPECT_EQ(log->Append(4, "x").code(), Code::kInvalidArgument);
  EXPECT_EQ(log->Append(6, "x").code(), Code::kInvalidArgument);
  ASSERT_TRUE(log->Append(5, Payload(5)).ok());
  EXPECT_EQ(log->Append(5, "again").code(), Code::kInvalidArgument);
  EXPECT_EQ(log->Append(7, "skip").code(), Code::kInvalidArgument);
  ASSERT_TRUE(log->Append(6, Payload(6)).ok());
  EXPECT_EQ(log->bytes(), RecordBytes(5, 6));
  log.reset();
  ReplayResult r = ReplayDir(dir, 4);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.records, Expected(5, 6));
}

// ---------------------------------------------------------------------------
// Fault injection

// What the next calls on the log files do; shared by every file the factory opens.
struct Faults {
  Status write;               // returned by the next Write (then cleared)
  size_t write_prefix = 0;    // bytes of that failed Write that still reach the file
  Status sync;                // returned by the next Sync (then cleared)
  Status truncate;            // returned by every Truncate while set
  Status reserve;             // returned by every Reserve while set
  int writes = 0, syncs = 0, truncates = 0, reserves = 0;
};

class FaultyFile final : public LogFile {
 public:
  FaultyFile(std::unique_ptr<LogFile> real, Faults* faults) : real_(std::move(real)), faults_(faults) {}
  Status Write(uint64_t offset, std::string_view data) override {
    ++faults_->writes;
    if (!faults_->write.ok()) {
      Status s = std::exchange(faults_->write, Status::OK());
      if (faults_->write_prefix > 0) {
        Status w = real_->Write(offset, data.substr(0, std::min(faults_->write_prefix, data.size())));
        if (!w.ok()) return w;
      }
      return s;
    }
    return real_->Write(offset, data);
  }
  Status Sync() override {
    ++faults_->syncs;
    if (!faults_->sync.ok()) return std::exchange(faults_->sync, Status::OK());
    return real_->Sync();
  }
  Status Truncate(uint64_t size) override {
    ++faults_->truncates;
    if (!faults_->truncate.ok()) return faults_->truncate;
    return real_->Truncate(size);
  }
  Status Reserve(uint64_t offset, uint64_t length) override {
    ++faults_->reserves;
    if (!faults_->reserve.ok()) return faults_->reserve;
    return real_->Reserve(offset, length);
  }

 private:
  std::unique_ptr<LogFile> real_;
  Faults* faults_;
};

LogFileFactory FaultyFactory(Faults* faults) {
  return [faults](const std::string& path) -> StatusOr<std::unique_ptr<LogFile>> {
    auto real = OpenPosixLogFile(path);
    if (!real.ok()) return real.status();
    return std::unique_ptr<LogFile>(new FaultyFile(std::move(real.value()), faults));
  };
}

TEST(WriteAheadLogFaultTest, FailedWriteLeavesNoRecordAndTheSeqIsReused) {
  TempDir dir;
  Faults faults;
  auto log = OpenLog(dir, FaultyFactory(&faults));
  ASSERT_TRUE(log->StartFile(1).ok());
  ASSERT_TRUE(log->Append(1, Payload(1)).ok());

  faults.write = Status::NoSpace("injected ENOSPC");
  EXPECT_EQ(log->Append(2, "lost").code(), Code::kNoSpace);
  EXPECT_EQ(log->bytes(), RecordBytes(1, 1));
  EXPECT_EQ(fs::file_size(FilePath(dir, 1)), RecordBytes(1, 1));

  faults.write = Status::NoSpace("injected ENOSPC after a short write");
  faults.write_prefix = 13;  // part of the header reaches the file
  EXPECT_EQ(log->Append(2, "lost too").code(), Code::kNoSpace);
  EXPECT_EQ(fs::file_size(FilePath(dir, 1)), RecordBytes(1, 1));  // cut back

  ASSERT_TRUE(log->Append(2, Payload(2)).ok());
  ASSERT_TRUE(log->Append(3, Payload(3)).ok());
  EXPECT_EQ(log->bytes(), RecordBytes(1, 3));
  log.reset();

  ReplayResult r = ReplayDir(dir, 0);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.records, Expected(1, 3));
}

// A reserve is best effort: when the file system refuses it, appends go on
// (tried once a file), and a failed append in a reserved file is cut back
// with its reserve, which the next append takes again.
TEST(WriteAheadLogFaultTest, ReservesThatFailOrAreCutLeaveAWorkingLog) {
  TempDir dir;
  Faults faults;
  constexpr uint64_t kReserve = 4096;
  auto opened = WriteAheadLog::Open(dir.path(), FaultyFactory(&faults), kReserve);
  ASSERT_TRUE(opened.ok());
  auto log = std::move(opened.value());

  faults.reserve = Status::IOError("injected: fallocate not supported");
  ASSERT_TRUE(log->StartFile(1).ok());
  for (uint64_t s = 1; s <= 40; ++s) ASSERT_TRUE(log->Append(s, Payload(s)).ok()) << s;
  EXPECT_EQ(faults.reserves, 1) << "a refused reserve is tried again for the same file";
  EXPECT_EQ(fs::file_size(FilePath(dir, 1)), RecordBytes(1, 40));

  faults.reserve = Status::OK();
  ASSERT_TRUE(log->StartFile(41).ok());
  ASSERT_TRUE(log->Append(41, Payload(41)).ok());
  EXPECT_EQ(fs::file_size(FilePath(dir, 41)), kReserve);
  faults.write = Status::NoSpace("injected ENOSPC after a short write");
  faults.write_prefix = 9;
  EXPECT_EQ(log->Append(42, "lost").code(), Code::kNoSpace);
  EXPECT_EQ(fs::file_size(FilePath(dir, 41)), RecordBytes(41, 41)) << "cut back, reserve and all";
  ASSERT_TRUE(log->Append(42, Payload(42)).ok());
  EXPECT_EQ(fs::file_size(FilePath(dir, 41)), RecordBytes(41, 41) + kReserve) << "reserved again from the cut";
  log.reset();

  ReplayResult r = ReplayDir(dir, 0);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.records, Expected(1, 42));
}

TEST(WriteAheadLogFaultTest, FailedSyncIsCutBackAndNotReplayed) {
  TempDir dir;
  Faults faults;
  auto log = OpenLog(dir, FaultyFactory(&faults));
  ASSERT_TRUE(log->StartFile(1).ok());
  ASSERT_TRUE(log->Append(1, Payload(1)).ok());
  ASSERT_TRUE(log->Append(2, Payload(2)).ok());

  faults.sync = Status::IOError("injected fdatasync failure");
  const int truncates = faults.truncates;
  EXPECT_EQ(log->Append(3, "never acknowledged").code(), Code::kIOError);
  EXPECT_EQ(faults.truncates, truncates + 1);
  EXPECT_EQ(log->bytes(), RecordBytes(1, 2));
  EXPECT_EQ(fs::file_size(FilePath(dir, 1)), RecordBytes(1, 2));

  // Not replayed by a log opened now...
  ReplayResult now = ReplayDir(dir, 0);
  ASSERT_TRUE(now.status.ok()) << now.status.ToString();
  EXPECT_EQ(now.records, Expected(1, 2));

  // ...and the seq is taken by the next append.
  ASSERT_TRUE(log->Append(3, Payload(3)).ok());
  log.reset();
  ReplayResult r = ReplayDir(dir, 0);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.records, Expected(1, 3));
}

// A failed append that cannot be cut back may leave its record whole in
// the file: nothing more is written, no new file starts (it would follow a
// record that may or may not count), until a restart replays the log.
TEST(WriteAheadLogFaultTest, FailedCutBackBreaksTheLogUntilARestart) {
  TempDir dir;
  Faults faults;
  auto log = OpenLog(dir, FaultyFactory(&faults));
  ASSERT_TRUE(log->StartFile(1).ok());
  ASSERT_TRUE(log->Append(1, Payload(1)).ok());
  ASSERT_TRUE(log->Append(2, Payload(2)).ok());

  faults.sync = Status::IOError("injected fdatasync failure");
  faults.truncate = Status::IOError("injected ftruncate failure");
  EXPECT_FALSE(log->Append(3, Payload(3)).ok());
  faults.sync = Status::OK();
  faults.truncate = Status::OK();  // the disk is fine again, but the file is not known to be clean

  const int writes = faults.writes;
  EXPECT_FALSE(log->Append(3, Payload(3)).ok());
  EXPECT_FALSE(log->Append(4, Payload(4)).ok());
  EXPECT_FALSE(log->StartFile(3).ok()) << "a new file would follow a record that may count";
  EXPECT_EQ(faults.writes, writes) << "a broken log must not write";
  EXPECT_EQ(log->bytes(), RecordBytes(1, 2));
  log.reset();

  // The restart: the failed write's record is whole, so it is replayed (its
  // outcome was unknown to its caller), and the log goes on after it.
  auto restarted = OpenLog(dir, FaultyFactory(&faults));
  uint64_t last = 0;
  std::vector<uint64_t> seen;
  ASSERT_TRUE(restarted->Replay(0, [&](uint64_t seq, std::string_view) {
    seen.push_back(seq);
    return Status::OK();
  }, &last).ok());
  EXPECT_EQ(seen, (std::vector<uint64_t>{1, 2, 3}));
  ASSERT_TRUE(restarted->Reset().ok());
  ASSERT_TRUE(restarted->StartFile(last + 1).ok());
  ASSERT_TRUE(restarted->Append(4, Payload(4)).ok());
  EXPECT_EQ(restarted->files(), 1u);
}

}  // namespace
}  // namespace monju
