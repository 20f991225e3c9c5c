// EpochGate: epoch fencing between the data path and membership changes.
//
// Views are installed here (Install), which publishes them through
// Membership::Replace and remembers recent ones by epoch. A data operation
// on one partition that was planned under some view, or that a peer
// coordinated under some epoch, is admitted only while the current view
// places that partition as the planned one did (ClusterView::SamePlacement);
// otherwise Admit() refuses with StaleEpoch and the coordinator re-plans under
// the newer view. An unknown old epoch (older than the remembered ones, or
// never seen here) is refused too. Epoch 0 (static membership, or a node not
// bootstrapped yet) is never fenced.
//
// Drain. An admitted operation holds a ticket until it finished (a local
// apply is durable when it returns). WaitDrained(E) returns once no operation
// admitted while an epoch below E was current is still running: a partition
// streamed out after WaitDrained(E) holds every write this node accepted
// under the placements before E. Install never waits for the data path, and
// the data path never waits for Raft.
//
// Thread safety: every method may be called concurrently.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>

#include "common/status.h"
#include "membership.h"

namespace monju {

class EpochGate {
 public:
  // Does not own `membership`; its current view becomes the first one.
  explicit EpochGate(Membership* membership, size_t remembered = 64);
  EpochGate(const EpochGate&) = delete;
  EpochGate& operator=(const EpochGate&) = delete;

  // Publishes `view` when its epoch is above the current one; false (and
  // nothing changes) otherwise.
  bool Install(std::shared_ptr<const ClusterView> view);
  std::shared_ptr<const ClusterView> Current() const;
  uint64_t epoch() const;
  // The view of `epoch`, while remembered; null otherwise.
  std::shared_ptr<const ClusterView> ViewAt(uint64_t epoch) const;

  class Ticket {
   public:
    Ticket() = default;
    Ticket(Ticket&& other) noexcept : gate_(other.gate_), epoch_(other.epoch_) { other.gate_ = nullptr; }
    Ticket& operator=(Ticket&& other) noexcept;
    ~Ticket() { Release(); }
    void Release();

   private:
    friend class EpochGate;
    EpochGate* gate_ = nullptr;
    uint64_t epoch_ = 0;
  };

  // Admits an operation on `partition` planned under epoch `planned` (from
  // a peer's request) or under view `planned`. StaleEpoch names both epochs.
  // An epoch above the current one is admitted: the caller already fetched
  // what it could (see MembershipService::CatchUp).
  Status Admit(uint64_t planned, uint32_t partition, Ticket* ticket);
  Status Admit(const ClusterView& planned, uint32_t partition, Ticket* ticket);

  // True once every operation admitted under an epoch below `epoch` ended;
  // false at the timeout.
  bool WaitDrained(uint64_t epoch, std::chrono::milliseconds timeout);

 private:
  Status Check(const ClusterView* planned_view, uint64_t planned, const ClusterView& current,
               uint32_t partition) const;
  void Enter(uint64_t epoch, Ticket* ticket);
  void Exit(uint64_t epoch);

  Membership* const membership_;
  const size_t remembered_;
  mutable std::mutex mu_;
  std::condition_variable drained_;
  std::deque<std::shared_ptr<const ClusterView>> recent_;  // ascending epochs
  std::map<uint64_t, uint64_t> inflight_;                  // epoch -> admitted, not finished
};

}  // namespace monju
