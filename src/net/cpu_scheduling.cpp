#include "cpu_scheduling.h"

#include <sched.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace monju {

const char* CpuSchedulingName(CpuScheduling policy) {
  return policy == CpuScheduling::kBatch ? "batch" : "normal";
}

std::string KernelPolicyName(int policy) {
  switch (policy) {
    case SCHED_OTHER: return "SCHED_OTHER";
    case SCHED_BATCH: return "SCHED_BATCH";
    case SCHED_IDLE: return "SCHED_IDLE";
    case SCHED_FIFO: return "SCHED_FIFO";
    case SCHED_RR: return "SCHED_RR";
    default: return "policy " + std::to_string(policy);
  }
}

Status ApplyCpuScheduling(CpuScheduling policy) {
  sched_param param{};
  param.sched_priority = 0;  // the only priority of both policies
  const int kernel_policy = policy == CpuScheduling::kBatch ? SCHED_BATCH : SCHED_OTHER;
  if (sched_setscheduler(0, kernel_policy, &param) != 0)
    return Status::IOError(std::string("sched_setscheduler(") + CpuSchedulingName(policy) + "): " + std::strerror(errno));
  return Status::OK();
}

int SchedulingPolicyOf(pid_t tid) { return sched_getscheduler(tid); }

}  // namespace monju
