#include "common/status.h"

namespace monju {

const char* CodeName(Status::Code code) {
  switch (code) {
    case Status::Code::kOk: return "OK";
    case Status::Code::kNotFound: return "NotFound";
    case Status::Code::kInvalidArgument: return "InvalidArgument";
    case Status::Code::kIOError: return "IOError";
    case Status::Code::kNoSpace: return "NoSpace";
    case Status::Code::kCorruption: return "Corruption";
    case Status::Code::kUnavailable: return "Unavailable";
    case Status::Code::kTimedOut: return "TimedOut";
    case Status::Code::kQuorumFailed: return "QuorumFailed";
    case Status::Code::kMismatch: return "Mismatch";
    case Status::Code::kShuttingDown: return "ShuttingDown";
    case Status::Code::kStaleEpoch: return "StaleEpoch";
    case Status::Code::kNotOwner: return "NotOwner";
  }
  return "Unknown";
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  return std::string(CodeName(code_)) + ": " + message_;
}

}  // namespace monju
