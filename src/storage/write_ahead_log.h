// WriteAheadLog: the store's commits, each one record made durable
// (fdatasync) before the commit is acknowledged, until LMDB holds them
// (data_store.h, "Write-ahead log").
//
// Files `wal-<first seq, 16 hex digits>.log` in one directory; a new file is
// started when a memtable is set aside for flushing, so that each file can
// be deleted once LMDB holds its records. A record is a 20-byte header (u32
// payload length, u64 XXH3 checksum of the payload seeded with the seq, u64
// seq; big-endian) and the payload. Seqs increase by one from record to
// record across files.
//
// Each file is reserved ahead (fallocate) in chunks of `reserve_bytes`, so
// that an append and its fdatasync write the record's blocks and need not
// journal a new file size: on ext4 that is 2 device writes a sync instead
// of 3, and a sync 25-35% sooner. Zeros after the last record are that
// reserve (or a file that grew but whose pages a crash never wrote): they
// end the file's records, in any file.
//
// A crash can leave the last record of the last file torn; Replay() cuts
// it off, so the file reads clean once another follows it. Anything else
// that does not read back (a bad record followed by whole ones, a bad record
// in an earlier file, a gap in the seqs) is Corruption: the store refuses to
// open rather than drop acknowledged writes.
//
// Thread safety: Append() and StartFile() from one thread (the store's
// writer); DropThrough(), bytes() and files() from any.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace monju {

// One open log file. The default is a POSIX file; tests inject faults.
class LogFile {
 public:
  virtual ~LogFile() = default;
  // Writes all of `data` at `offset`, or fails (NoSpace for ENOSPC).
  virtual Status Write(uint64_t offset, std::string_view data) = 0;
  // fdatasync: what was written is durable once this returns OK.
  virtual Status Sync() = 0;
  // Cuts the file back to `size` bytes (and syncs that).
  virtual Status Truncate(uint64_t size) = 0;
  // Allocates [offset, offset + length) and extends the file's size over it
  // (reading as zeros), so that writes there change no size. Best effort:
  // an error only means the log goes on without a reserve.
  virtual Status Reserve(uint64_t offset, uint64_t length) {
    (void)offset;
    (void)length;
    return Status::OK();
  }
};

// Creates (or truncates) the file at `path` for writing.
using LogFileFactory = std::function<StatusOr<std::unique_ptr<LogFile>>(const std::string& path)>;
StatusOr<std::unique_ptr<LogFile>> OpenPosixLogFile(const std::string& path);

class WriteAheadLog {
 public:
  static constexpr size_t kHeaderBytes = 20;
  static constexpr uint32_t kMaxPayloadBytes = 0xffffffffu - kHeaderBytes;

  // Finds the log files in `dir` (which must exist). `factory` null: POSIX
  // files. `reserve_bytes`: each file is reserved ahead in chunks of this
  // many bytes (0: none).
  static StatusOr<std::unique_ptr<WriteAheadLog>> Open(const std::string& dir, LogFileFactory factory = nullptr,
                                                       uint64_t reserve_bytes = 0);
  ~WriteAheadLog();

  // Calls fn(seq, payload) for every record with seq > after, oldest first,
  // before any Append(). Stops at a torn tail of the last file, and cuts it off. Corruption
  // for any other record that does not read back, a seq that does not follow
  // the one before, or an error fn returns. *last: the last seq read (after
  // when none).
  Status Replay(uint64_t after, const std::function<Status(uint64_t seq, std::string_view payload)>& fn,
                uint64_t* last);

  // Starts file wal-<first_seq>.log; later appends go to it. Its directory
  // entry is made durable before this returns.
  Status StartFile(uint64_t first_seq);

  // Appends one record to the current file and syncs it. On failure the
  // file is cut back to where the record began; if even that fails, every
  // later Append() and StartFile() fails too, until Reset() (the record may
  // be in the file whole: a restart replays it, as the outcome of a failed
  // write is unknown).
  Status Append(uint64_t seq, std::string_view payload);

  // Deletes every file whose records all have seq <= `seq`, never the
  // current one.
  void DropThrough(uint64_t seq);

  // Deletes every file (once LMDB holds all their records); StartFile()
  // must follow before the next Append().
  Status Reset();

  // Bytes in the log files kept, and how many there are.
  uint64_t bytes() const;
  size_t files() const;

 private:
  struct File {
    uint64_t first_seq;
    std::string path;
    uint64_t size;          // of its records
    uint64_t reserved = 0;  // the file's size on disk, when more (the current file)
    bool cannot_reserve = false;  // Reserve() failed: not tried again for this file
  };
  WriteAheadLog(std::string dir, LogFileFactory factory, uint64_t reserve_bytes);
  Status SyncDir();
  // Makes the current file's reserve cover `end`; best effort.
  void ReserveThrough(File& file, uint64_t end);

  const std::string dir_;
  const LogFileFactory factory_;
  const uint64_t reserve_bytes_;
  mutable std::mutex mu_;
  std::vector<File> files_;  // by first_seq; the last is current once StartFile() ran
  std::unique_ptr<LogFile> current_;
  uint64_t next_seq_ = 0;    // the seq Append() expects; 0 before the first
  Status broken_;            // set when a failed append could not be cut back
};

}  // namespace monju
