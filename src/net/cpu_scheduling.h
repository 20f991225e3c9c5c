// The CPU scheduling policy of a node's threads (sched(7)).
//
// A node's threads hand work to each other and to their clients all the
// time: a send wakes the thread that reads it. Under SCHED_OTHER the kernel
// lets a thread it wakes preempt the one running, so the sender is often
// switched out in the middle of a batch of replies it was sending. Under
// SCHED_BATCH a woken thread waits for the running one to block or use up
// its slice; the kernel documents the policy for workloads that want no
// "interactivity causing extra preemptions (between the workload's tasks)".
//
// Measured on the 2-core VM with 3 nodes and the load generator (README,
// `--cpu-scheduling`; docs/design.md, "Scheduling policy"): 12-15% fewer
// context switches per operation and reads faster (C: 6 of 6 pairs), but
// durable writes no better and often slower (why is not settled: the
// store's writer thread alone on the normal policy did not win them back).
// So it is opt-in: `--cpu-scheduling batch` for read-heavy nodes. Both
// policies have the same priority (no privilege needed; nice values still
// apply).
#pragma once

#include <sys/types.h>

#include <string>

#include "common/status.h"

namespace monju {

enum class CpuScheduling { kBatch, kNormal };

// "batch" or "normal", as --cpu-scheduling spells it.
const char* CpuSchedulingName(CpuScheduling policy);

// A kernel policy as sched(7) names it ("SCHED_OTHER", "SCHED_BATCH", ...).
std::string KernelPolicyName(int policy);

// Gives the calling thread the policy (kNormal: SCHED_OTHER); threads it
// starts afterwards inherit it, threads started before keep theirs (so
// monjud calls it before starting any). Affects only the calling thread, so
// it is safe from any thread. IOError with the errno when the kernel
// refuses.
Status ApplyCpuScheduling(CpuScheduling policy);

// The policy of thread `tid` (a pid or a thread id): SCHED_OTHER,
// SCHED_BATCH, ... as sched_getscheduler(2) returns it; -1 when unknown.
int SchedulingPolicyOf(pid_t tid);

}  // namespace monju
