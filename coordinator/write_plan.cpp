#include "write_plan.h"

#include <algorithm>

namespace monju {

WritePlan::WritePlan(std::vector<uint32_t> owners, std::vector<uint32_t> fallbacks, uint32_t self, int w,
                     bool sloppy, std::function<bool(uint32_t member)> alive)
    : fallbacks_(std::move(fallbacks)), self_(self), w_(w), sloppy_(sloppy), alive_(std::move(alive)) {
  for (uint32_t o : owners) slots_.push_back(Slot{o});
}

WritePlan::Slot* WritePlan::SlotOf(uint32_t owner) {
  for (auto& s : slots_)
    if (s.owner == owner) return &s;
  return nullptr;
}

std::vector<WritePlan::Action> WritePlan::Start() {
  std::vector<Action> out;
  for (auto& slot : slots_) {
    if (slot.owner == self_ || alive_(slot.owner)) {
      slot.apply_pending = true;
      ++pending_applies_;
      out.push_back({Kind::kApply, slot.owner, slot.owner});
    } else {
      auto hint = AssignHint(slot);
      out.insert(out.end(), hint.begin(), hint.end());
    }
  }
  return out;
}

std::vector<WritePlan::Action> WritePlan::AssignHint(Slot& slot) {
  slot.hint_assigned = true;
  // Strict mode: hints only serve delivery, so the cheapest durable place is here.
  while (sloppy_ && next_fallback_ < fallbacks_.size()) {
    uint32_t f = fallbacks_[next_fallback_++];
    if (!alive_(f)) continue;
    ++pending_hints_;
    slot.counting_hint_pending = !slot.filled;
    return {{Kind::kHint, f, slot.owner}};
  }
  // No fallback left: keep the hint here, unless this node is the owner.
  if (slot.owner == self_) return {};
  ++pending_hints_;
  return {{Kind::kHint, self_, slot.owner}};
}

void WritePlan::Fill(Slot& slot, bool by_fallback) {
  if (slot.filled) return;
  slot.filled = true;
  ++acked_slots_;
  if (by_fallback) used_fallback_ = true;
}

std::vector<WritePlan::Action> WritePlan::OnSuccess(const Action& a) {
  Slot* slot = SlotOf(a.owner);
  if (!slot) return {};
  if (std::find(acked_members_.begin(), acked_members_.end(), a.member) == acked_members_.end())
    acked_members_.push_back(a.member);
  if (a.kind == Kind::kApply) {
    slot->apply_pending = false;
    --pending_applies_;
    slot->acked = true;
    Fill(*slot, false);
    return {};
  }
  --pending_hints_;
  slot->counting_hint_pending = false;
  if (std::find(hinted_owners_.begin(), hinted_owners_.end(), a.owner) == hinted_owners_.end())
    hinted_owners_.push_back(a.owner);
  if (sloppy_ && a.member != self_) Fill(*slot, true);
  return {};
}

std::vector<WritePlan::Action> WritePlan::OnFailure(const Action& a) {
  Slot* slot = SlotOf(a.owner);
  if (!slot) return {};
  if (a.kind == Kind::kApply) {
    slot->apply_pending = false;
    --pending_applies_;
    if (slot->hint_assigned) return {};
    return AssignHint(*slot);
  }
  --pending_hints_;
  slot->counting_hint_pending = false;
  if (a.member == self_) return {};  // the last resort failed; anti-entropy must repair this owner
  return AssignHint(*slot);          // the next fallback, or here
}

std::vector<WritePlan::Action> WritePlan::OnHandoffDeadline() {
  if (handoff_fired_) return {};
  handoff_fired_ = true;
  std::vector<Action> out;
  for (auto& slot : slots_) {
    // This node's own apply being slow is not helped by a hint.
    if (slot.acked || slot.hint_assigned || slot.owner == self_) continue;
    auto hint = AssignHint(slot);
    out.insert(out.end(), hint.begin(), hint.end());
  }
  return out;
}

WritePlan::Result WritePlan::result() const {
  if (acked_slots_ >= w_) return Result::kMet;
  int could_fill = 0;
  for (const auto& slot : slots_)
    if (!slot.filled && (slot.apply_pending || slot.counting_hint_pending)) ++could_fill;
  return acked_slots_ + could_fill < w_ ? Result::kFailed : Result::kPending;
}

bool WritePlan::Done() const {
  // A failure waits for the calls in flight too, so the answer says how many
  // replicas really took the write (they are not rolled back).
  Result r = result();
  if (r == Result::kMet) return pending_hints_ == 0;
  return r == Result::kFailed && pending_hints_ == 0 && pending_applies_ == 0;
}

}  // namespace monju
