// Status: the cheap error type used across Monju (after LevelDB's Status).
//
// A Status is either OK or carries a code and a one-line message meant for a
// human. Functions that can fail return Status (or StatusOr<T>); they never
// throw across component boundaries. Copying is cheap for OK statuses.
#pragma once

#include <optional>
#include <string>
#include <utility>

namespace monju {

class Status {
 public:
  // Codes are stable: they travel in ReplicaError.code.
  enum class Code : int {
    kOk = 0,
    kNotFound = 1,         // the thing asked for does not exist
    kInvalidArgument = 2,  // the caller's input is wrong; retrying will not help
    kIOError = 3,          // the disk or OS failed an operation
    kNoSpace = 4,          // the store is full (LMDB map full or disk full)
    kCorruption = 5,       // stored or received bytes do not decode
    kUnavailable = 6,      // not enough live replicas / peer unreachable
    kTimedOut = 7,         // a deadline passed; outcome unknown
    kQuorumFailed = 8,     // replicas answered but too few acknowledged
    kMismatch = 9,         // a peer's cluster parameters differ from ours
    kShuttingDown = 10,    // the node is stopping
    kStaleEpoch = 11,      // planned under an older membership epoch whose placement no longer holds
    kNotOwner = 12,        // this node does not replicate the key in its current view; nothing was done
  };

  Status() = default;
  static Status OK() { return Status(); }
  static Status NotFound(std::string m) { return {Code::kNotFound, std::move(m)}; }
  static Status InvalidArgument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
  static Status IOError(std::string m) { return {Code::kIOError, std::move(m)}; }
  static Status NoSpace(std::string m) { return {Code::kNoSpace, std::move(m)}; }
  static Status Corruption(std::string m) { return {Code::kCorruption, std::move(m)}; }
  static Status Unavailable(std::string m) { return {Code::kUnavailable, std::move(m)}; }
  static Status TimedOut(std::string m) { return {Code::kTimedOut, std::move(m)}; }
  static Status QuorumFailed(std::string m) { return {Code::kQuorumFailed, std::move(m)}; }
  static Status Mismatch(std::string m) { return {Code::kMismatch, std::move(m)}; }
  static Status ShuttingDown(std::string m) { return {Code::kShuttingDown, std::move(m)}; }
  static Status StaleEpoch(std::string m) { return {Code::kStaleEpoch, std::move(m)}; }
  static Status NotOwner(std::string m) { return {Code::kNotOwner, std::move(m)}; }
  static Status FromCode(int code, std::string m) { return {static_cast<Code>(code), std::move(m)}; }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  bool Is(Code c) const { return code_ == c; }

  // "NoSpace: mdb_put: MDB_MAP_FULL ..." or "OK".
  std::string ToString() const;

 private:
  Status(Code c, std::string m) : code_(c), message_(std::move(m)) {}
  Code code_ = Code::kOk;
  std::string message_;
};

const char* CodeName(Status::Code code);

// A value or the Status explaining why there is none.
template <typename T>
class StatusOr {
 public:
  StatusOr(T value) : value_(std::move(value)) {}                 // NOLINT: implicit by design
  StatusOr(Status status) : status_(std::move(status)) {}         // NOLINT: must not be OK
  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace monju
