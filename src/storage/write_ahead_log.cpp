#include "storage/write_ahead_log.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "common/fixed_codec.h"

namespace monju {
namespace {

constexpr char kPrefix[] = "wal-";
constexpr char kSuffix[] = ".log";

Status ErrnoStatus(const std::string& what, int err) {
  std::string msg = what + ": " + std::strerror(err);
  if (err == ENOSPC || err == EDQUOT) return Status::NoSpace(msg);
  return Status::IOError(msg);
}

class PosixLogFile final : public LogFile {
 public:
  PosixLogFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~PosixLogFile() override { ::close(fd_); }
  Status Write(uint64_t offset, std::string_view data) override {
    while (!data.empty()) {
      const ssize_t n = ::pwrite(fd_, data.data(), data.size(), static_cast<off_t>(offset));
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus("write " + path_, errno);
      }
      data.remove_prefix(size_t(n));
      offset += uint64_t(n);
    }
    return Status::OK();
  }
  Status Sync() override {
    if (::fdatasync(fd_) != 0) return ErrnoStatus("fdatasync " + path_, errno);
    return Status::OK();
  }
  Status Truncate(uint64_t size) override {
    if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) return ErrnoStatus("ftruncate " + path_, errno);
    return Sync();
  }
  Status Reserve(uint64_t offset, uint64_t length) override {
    if (::fallocate(fd_, 0, static_cast<off_t>(offset), static_cast<off_t>(length)) != 0)
      return ErrnoStatus("fallocate " + path_, errno);
    return Status::OK();
  }

 private:
  int fd_;
  std::string path_;
};

std::string FileName(uint64_t first_seq) {
  char name[64];
  std::snprintf(name, sizeof name, "%s%016llx%s", kPrefix, static_cast<unsigned long long>(first_seq), kSuffix);
  return name;
}

// The first seq a log file name gives, or false when it is not one.
bool ParseFileName(const std::string& name, uint64_t* first_seq) {
  const size_t prefix = sizeof kPrefix - 1, suffix = sizeof kSuffix - 1;
  if (name.size() != prefix + 16 + suffix || name.compare(0, prefix, kPrefix) != 0 ||
      name.compare(prefix + 16, suffix, kSuffix) != 0)
    return false;
  uint64_t v = 0;
  for (size_t i = prefix; i < prefix + 16; ++i) {
    const char c = name[i];
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else {
      return false;
    }
    v = (v << 4) | uint64_t(d);
  }
  *first_seq = v;
  return true;
}

uint64_t Checksum(uint64_t seq, std::string_view payload) {
  return XXH3_64bits_withSeed(payload.data(), payload.size(), seq);
}

// Whether a whole, intact record with a seq above `previous` starts
// anywhere at or after `from` (a search byte by byte; only after damage).
bool WholeRecordAfter(std::string_view bytes, size_t from, uint64_t previous) {
  for (size_t start = from; start + WriteAheadLog::kHeaderBytes <= bytes.size(); ++start) {
    size_t pos = start;
    uint32_t length = 0;
    uint64_t checksum = 0, seq = 0;
    fixed::GetU32(bytes, pos, length);
    fixed::GetU64(bytes, pos, checksum);
    fixed::GetU64(bytes, pos, seq);
    if (seq <= previous || bytes.size() - pos < length) continue;
    if (Checksum(seq, bytes.substr(pos, length)) == checksum) return true;
  }
  return false;
}

bool AllZero(std::string_view bytes) {
  return std::all_of(bytes.begin(), bytes.end(), [](char c) { return c == 0; });
}

// Truncates the file at `path` to `size` bytes, durably.
Status CutBack(const std::string& path, uint64_t size) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("open " + path, errno);
  Status s;
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0 || ::fdatasync(fd) != 0) s = ErrnoStatus("truncate " + path, errno);
  ::close(fd);
  return s;
}

}  // namespace

StatusOr<std::unique_ptr<LogFile>> OpenPosixLogFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus("open " + path, errno);
  return std::unique_ptr<LogFile>(new PosixLogFile(fd, path));
}

WriteAheadLog::WriteAheadLog(std::string dir, LogFileFactory factory, uint64_t reserve_bytes)
    : dir_(std::move(dir)),
      factory_(factory ? std::move(factory) : LogFileFactory(&OpenPosixLogFile)),
      reserve_bytes_(reserve_bytes) {}

WriteAheadLog::~WriteAheadLog() = default;

StatusOr<std::unique_ptr<WriteAheadLog>> WriteAheadLog::Open(const std::string& dir, LogFileFactory factory,
                                                             uint64_t reserve_bytes) {
  std::unique_ptr<WriteAheadLog> log(new WriteAheadLog(dir, std::move(factory), reserve_bytes));
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    uint64_t first = 0;
    if (!entry.is_regular_file() || !ParseFileName(entry.path().filename().string(), &first)) continue;
    log->files_.push_back({first, entry.path().string(), uint64_t(entry.file_size())});
  }
  if (ec) return Status::IOError("cannot list " + dir + ": " + ec.message());
  std::sort(log->files_.begin(), log->files_.end(),
            [](const File& a, const File& b) { return a.first_seq < b.first_seq; });
  return log;
}

Status WriteAheadLog::Replay(uint64_t after, const std::function<Status(uint64_t, std::string_view)>& fn,
                             uint64_t* last) {
  std::vector<File> files;
  {
    std::lock_guard<std::mutex> lock(mu_);
    files = files_;
  }
  *last = after;
  uint64_t previous = 0;  // the seq of the last whole record read, 0 before the first
  for (size_t f = 0; f < files.size(); ++f) {
    const File& file = files[f];
    const bool last_file = f + 1 == files.size();
    // A file starts where the records before it (or LMDB's) end: records
    // lost at the end of the one before (zeros, as a reserve reads) would
    // otherwise go unnoticed when this one holds none yet.
    const uint64_t held = std::max(previous, after);
    if (file.first_seq > held + 1)
      return Status::Corruption("write-ahead log " + file.path + " starts at record " +
                                std::to_string(file.first_seq) + ", but records end at " + std::to_string(held) +
                                ": records " + std::to_string(held + 1) + ".." + std::to_string(file.first_seq - 1) +
                                " are missing");
    std::ifstream in(file.path, std::ios::binary);
    if (!in) return Status::IOError("cannot read " + file.path);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) return Status::IOError("cannot read " + file.path);
    size_t pos = 0;
    while (pos < bytes.size()) {
      size_t at = pos;
      uint32_t length = 0;
      uint64_t checksum = 0, seq = 0;
      const bool header = fixed::GetU32(bytes, at, length) && fixed::GetU64(bytes, at, checksum) &&
                          fixed::GetU64(bytes, at, seq);
      const bool whole = header && bytes.size() - at >= length;
      const std::string_view payload = whole ? std::string_view(bytes).substr(at, length) : std::string_view();
      if (!whole || Checksum(seq, payload) != checksum) {
        // (An all-zero header never checks out.)
        if (AllZero(std::string_view(bytes).substr(pos))) {
          // The file's reserve, never written: its records end here.
          std::lock_guard<std::mutex> lock(mu_);
          for (File& kept : files_)
            if (kept.path == file.path) kept.size = pos;
          break;
        }
        // A crash can tear only the last record written (each append is
        // synced before the next begins), and it runs to the end of the
        // file: a whole record anywhere after these bytes means they were
        // damaged, not torn, and acknowledged writes follow them.
        if (last_file && !WholeRecordAfter(bytes, pos + 1, previous)) {
          // Never acknowledged, since its sync never returned. Cut off, so
          // that the file reads clean once another follows it.
          spdlog::warn("write-ahead log {}: {} bytes at offset {} do not form a whole record (a write cut short "
                       "by a crash); cut off",
                       file.path, bytes.size() - pos, pos);
          Status cut = CutBack(file.path, pos);
          if (!cut.ok()) return cut;
          std::lock_guard<std::mutex> lock(mu_);
          for (File& kept : files_)
            if (kept.path == file.path) kept.size = pos;
          break;
        }
        return Status::Corruption("write-ahead log " + file.path + ": a record at offset " + std::to_string(pos) +
                                  " does not read back, and " +
                                  (last_file ? "whole records follow it" : "later files follow it"));
      }
      pos = at + length;
      previous = seq;
      // Records LMDB holds are skipped (a file whose deletion failed may
      // still hold them); the rest must follow on from it one by one.
      if (seq <= after && *last == after) continue;
      if (seq != *last + 1)
        return Status::Corruption("write-ahead log " + file.path + ": record " + std::to_string(seq) + " where " +
                                  std::to_string(*last + 1) + " was expected" +
                                  (*last == after ? " (LMDB holds records through " + std::to_string(after) + ")"
                                                  : std::string()));
      Status s = fn(seq, payload);
      if (!s.ok()) return s;
      *last = seq;
    }
  }
  return Status::OK();
}

Status WriteAheadLog::SyncDir() {
  const int fd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("open " + dir_, errno);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  return rc == 0 ? Status::OK() : ErrnoStatus("fsync " + dir_, err);
}

Status WriteAheadLog::StartFile(uint64_t first_seq) {
  const std::string path = dir_ + "/" + FileName(first_seq);
  std::lock_guard<std::mutex> lock(mu_);
  if (!files_.empty() && files_.back().first_seq >= first_seq && current_)
    return Status::InvalidArgument("log file " + path + " would not follow the current one");
  // A failed append that could not be cut back left its record in the
  // current file: no file may follow it until a restart replays the log.
  if (!broken_.ok()) return broken_;
  auto file = factory_(path);
  if (!file.ok()) return file.status();
  Status s = SyncDir();
  if (!s.ok()) {
    // Not kept: an untracked file would make the current one look not last.
    ::unlink(path.c_str());
    return s;
  }
  // A file of that name left from before (all its records flushed) was
  // truncated by the open: it is the new current file.
  std::erase_if(files_, [&](const File& f) { return f.path == path; });
  files_.push_back({first_seq, path, 0});
  current_ = std::move(file.value());
  next_seq_ = first_seq;
  ReserveThrough(files_.back(), 1);
  return Status::OK();
}

void WriteAheadLog::ReserveThrough(File& file, uint64_t end) {
  if (reserve_bytes_ == 0 || file.cannot_reserve || end <= file.reserved) return;
  const uint64_t length = std::max(reserve_bytes_, end - file.reserved);
  Status s = current_->Reserve(file.reserved, length);
  if (!s.ok()) {
    // Appends still work, each sync also writing the file's new size.
    spdlog::debug("write-ahead log: no reserve ahead in {}: {}", file.path, s.ToString());
    file.cannot_reserve = true;
    return;
  }
  file.reserved += length;
}

Status WriteAheadLog::Append(uint64_t seq, std::string_view payload) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!current_) return Status::IOError("write-ahead log: no file started");
  if (!broken_.ok()) return broken_;
  if (seq != next_seq_)
    return Status::InvalidArgument("write-ahead log: record " + std::to_string(seq) + " where " +
                                   std::to_string(next_seq_) + " was expected");
  if (payload.size() > kMaxPayloadBytes) return Status::InvalidArgument("write-ahead log: record too large");
  std::string record;
  record.reserve(kHeaderBytes + payload.size());
  fixed::PutU32(record, static_cast<uint32_t>(payload.size()));
  fixed::PutU64(record, Checksum(seq, payload));
  fixed::PutU64(record, seq);
  record.append(payload);
  File& file = files_.back();
  ReserveThrough(file, file.size + record.size());
  Status s = current_->Write(file.size, record);
  if (s.ok()) s = current_->Sync();
  if (!s.ok()) {
    // Nothing of the record may stay to be replayed as if acknowledged.
    Status cut = current_->Truncate(file.size);
    file.reserved = file.size;  // the reserve went with the cut (or is unknown)
    if (!cut.ok()) {
      broken_ = Status::IOError("write-ahead log: a failed append could not be cut back (" + cut.ToString() +
                                "); no more writes until a restart replays the log");
      spdlog::error("{}", broken_.message());
    }
    return s;
  }
  file.size += record.size();
  next_seq_ = seq + 1;
  return Status::OK();
}

void WriteAheadLog::DropThrough(uint64_t seq) {
  std::vector<std::string> doomed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // File i holds seqs [first_i, first_{i+1}); never the current (last) one.
    size_t keep_from = 0;
    while (keep_from + 1 < files_.size() && files_[keep_from + 1].first_seq <= seq + 1) ++keep_from;
    for (size_t i = 0; i < keep_from; ++i) doomed.push_back(files_[i].path);
    files_.erase(files_.begin(), files_.begin() + static_cast<long>(keep_from));
  }
  for (const std::string& path : doomed) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT)
      spdlog::warn("write-ahead log: cannot delete {} (its records are in LMDB): {}", path, std::strerror(errno));
  }
}

Status WriteAheadLog::Reset() {
  std::vector<File> doomed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    current_.reset();
    broken_ = Status::OK();  // nothing is left of the file it concerned
    doomed.swap(files_);
  }
  for (const File& f : doomed)
    if (::unlink(f.path.c_str()) != 0 && errno != ENOENT) return ErrnoStatus("delete " + f.path, errno);
  return doomed.empty() ? Status::OK() : SyncDir();
}

uint64_t WriteAheadLog::bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t total = 0;
  for (const File& f : files_) total += f.size;
  return total;
}

size_t WriteAheadLog::files() const {
  std::lock_guard<std::mutex> lock(mu_);
  return files_.size();
}

}  // namespace monju
