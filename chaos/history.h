// History: every client operation of a chaos run, with when it started and
// ended and how it came out. Appended to by the workload's client threads,
// read by the checker and written to a JSON-lines file for later study.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "common/status.h"

namespace monju::chaos {

enum class OpKind {
  kRead,    // a get (the first half of every read-modify-write)
  kWrite,   // register: a value written with the context of a read
  kAdd,     // set-add: the union of what was read plus one new element
  kCreate,  // deletes workload: a fresh key written once
  kDelete,  // deletes workload: a remove with the context of a read
};

enum class OpOutcome {
  kOk,       // acknowledged
  kFail,     // definitely not applied (refused before anything was sent)
  kUnknown,  // may or may not have been applied (timeout, quorum failure, broken connection)
};

const char* OpKindName(OpKind k);
const char* OpOutcomeName(OpOutcome o);

struct Op {
  uint64_t id = 0;
  int client = 0;
  int node = 0;          // index of the coordinator it was sent to
  OpKind kind = OpKind::kRead;
  std::string key;       // the item's pk (its sk is fixed)
  // kWrite/kCreate: the value written; kAdd: the element added.
  std::string value;
  // Values the operation's read saw: the write's context covers exactly
  // these (for kRead: what it returned).
  std::vector<std::string> observed;
  int64_t start_us = 0, end_us = 0;  // since the run started
  OpOutcome outcome = OpOutcome::kOk;
  std::string error;     // for kFail / kUnknown
};

// Thread-safe append-only list of operations.
class History {
 public:
  uint64_t NextId();
  void Append(Op op);
  std::vector<Op> Snapshot() const;
  size_t size() const;

 private:
  mutable std::mutex mu_;
  uint64_t next_id_ = 1;
  std::vector<Op> ops_;
};

// One JSON object per line. WriteHistory fails with IOError.
Status WriteHistory(const std::vector<Op>& ops, const std::string& path);
// InvalidArgument on a malformed line (naming it).
StatusOr<std::vector<Op>> ParseHistory(const std::string& jsonl);

}  // namespace monju::chaos
