// WritePlan: the coordinator's decisions for one write, as a pure state
// machine (events in, actions out; no I/O, no clock), so that every choice can
// be stepped and checked in tests.
//
// Decisions
// - Every owner (the key's N replicas) believed alive gets the version.
// - An owner believed down, whose call fails, or that is still silent when
//   the handoff deadline passes (OnHandoffDeadline) gets a hint instead: on the
//   next fallback node (the ring beyond the N owners) that is alive and not yet
//   used by this write, or, when there is none left, on this node (the
//   coordinator, itself an owner). In strict mode hints always stay here.
// - W counts owner slots, each at most once: an owner's own ack fills its
//   slot; in sloppy mode so does a fallback's durable hint for it. A hint kept
//   on this node never counts (this node already counts for its own slot), and
//   neither does any hint in strict mode: the hint is then only for delivery.
// - The write is met at W slots; it has failed when nothing still pending
//   could reach W. Done() also waits for the hints already started, so the
//   answer can say which owners will get the write by handoff (and, after a
//   failure, for every call, so it can say how many replicas took it).
//
// Not thread-safe: the caller serialises events.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace monju {

class WritePlan {
 public:
  enum class Kind {
    kApply,  // send the version to an owner (`member`)
    kHint,   // store it on `member` as a hint for `owner`
  };
  struct Action {
    Kind kind = Kind::kApply;
    uint32_t member = 0;
    uint32_t owner = 0;  // the owner slot this action serves (== member for kApply)
    bool operator==(const Action&) const = default;
  };
  enum class Result { kPending, kMet, kFailed };

  // owners: the preference list; fallbacks: further nodes in ring order;
  // self: this node's member index, one of the owners; alive: this node's
  // failure-detector view. w is 1..owners.size().
  WritePlan(std::vector<uint32_t> owners, std::vector<uint32_t> fallbacks, uint32_t self, int w, bool sloppy,
            std::function<bool(uint32_t member)> alive);

  // The first actions. Call once.
  std::vector<Action> Start();
  // Outcome of an action returned earlier; may return follow-up actions.
  std::vector<Action> OnSuccess(const Action& action);
  std::vector<Action> OnFailure(const Action& action);
  // The handoff deadline passed: owners that have not answered get hints.
  // Only the first call has an effect.
  std::vector<Action> OnHandoffDeadline();

  Result result() const;
  // Met with no hint still in flight, or failed with no call in flight.
  bool Done() const;
  int acked_slots() const { return acked_slots_; }
  int needed() const { return w_; }
  // Members whose ack counted or that hold the version (owners and fallbacks
  // that acknowledged), in order of acknowledgement.
  const std::vector<uint32_t>& acked_members() const { return acked_members_; }
  // Owners for which a hint is durably stored somewhere.
  const std::vector<uint32_t>& hinted_owners() const { return hinted_owners_; }
  // Some counted slot was filled by a fallback's hint.
  bool used_fallback() const { return used_fallback_; }

 private:
  struct Slot {
    uint32_t owner;
    bool apply_pending = false;
    bool acked = false;                  // the owner itself acknowledged
    bool hint_assigned = false;          // a hint was started (or given up on)
    bool counting_hint_pending = false;  // a fallback's hint in flight could fill it
    bool filled = false;                 // counted toward W
  };
  Slot* SlotOf(uint32_t owner);
  // Starts a hint for the slot's owner on the next usable fallback, else here.
  std::vector<Action> AssignHint(Slot& slot);
  void Fill(Slot& slot, bool by_fallback);

  std::vector<Slot> slots_;
  std::vector<uint32_t> fallbacks_;
  size_t next_fallback_ = 0;
  uint32_t self_;
  int w_;
  bool sloppy_;
  std::function<bool(uint32_t)> alive_;
  int acked_slots_ = 0;
  int pending_applies_ = 0;
  int pending_hints_ = 0;
  int pending_counting_hints_ = 0;  // hints whose success would fill a slot
  bool handoff_fired_ = false;
  bool used_fallback_ = false;
  std::vector<uint32_t> acked_members_;
  std::vector<uint32_t> hinted_owners_;
};

}  // namespace monju
