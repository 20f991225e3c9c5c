#include "epoch_gate.h"

namespace monju {

EpochGate::EpochGate(Membership* membership, size_t remembered)
    : membership_(membership), remembered_(std::max<size_t>(remembered, 2)) {
  recent_.push_back(membership_->Current());
}

EpochGate::Ticket& EpochGate::Ticket::operator=(Ticket&& other) noexcept {
  if (this != &other) {
    Release();
    gate_ = other.gate_;
    epoch_ = other.epoch_;
    other.gate_ = nullptr;
  }
  return *this;
}

void EpochGate::Ticket::Release() {
  if (gate_) gate_->Exit(epoch_);
  gate_ = nullptr;
}

bool EpochGate::Install(std::shared_ptr<const ClusterView> view) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!view || view->epoch() <= recent_.back()->epoch()) return false;
  membership_->Replace(view);
  recent_.push_back(std::move(view));
  while (recent_.size() > remembered_) recent_.pop_front();
  drained_.notify_all();
  return true;
}

std::shared_ptr<const ClusterView> EpochGate::Current() const {
  std::lock_guard<std::mutex> lock(mu_);
  return recent_.back();
}

uint64_t EpochGate::epoch() const {
  std::lock_guard<std::mutex> lock(mu_);
  return recent_.back()->epoch();
}

std::shared_ptr<const ClusterView> EpochGate::ViewAt(uint64_t epoch) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& v : recent_)
    if (v->epoch() == epoch) return v;
  return nullptr;
}

Status EpochGate::Check(const ClusterView* planned_view, uint64_t planned, const ClusterView& current,
                        uint32_t partition) const {
  if (planned == 0 || planned >= current.epoch()) return Status::OK();
  const ClusterView* old = planned_view;
  std::shared_ptr<const ClusterView> remembered;
  if (!old) {
    for (const auto& v : recent_)
      if (v->epoch() == planned) remembered = v;
    old = remembered.get();
  }
  if (old && old->SamePlacement(current, partition)) return Status::OK();
  return Status::StaleEpoch("planned at membership epoch " + std::to_string(planned) + ", but this node is at epoch " +
                            std::to_string(current.epoch()) + (old ? " and partition " + std::to_string(partition) +
                                                                         " has other owners now"
                                                                   : ", too far ahead to compare"));
}

void EpochGate::Enter(uint64_t epoch, Ticket* ticket) {
  ++inflight_[epoch];
  ticket->gate_ = this;
  ticket->epoch_ = epoch;
}

void EpochGate::Exit(uint64_t epoch) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = inflight_.find(epoch);
  if (it == inflight_.end()) return;
  if (--it->second == 0) {
    inflight_.erase(it);
    drained_.notify_all();
  }
}

Status EpochGate::Admit(uint64_t planned, uint32_t partition, Ticket* ticket) {
  ticket->Release();
  std::lock_guard<std::mutex> lock(mu_);
  const ClusterView& current = *recent_.back();
  Status s = Check(nullptr, planned, current, partition);
  if (s.ok()) Enter(current.epoch(), ticket);
  return s;
}

Status EpochGate::Admit(const ClusterView& planned, uint32_t partition, Ticket* ticket) {
  ticket->Release();
  std::lock_guard<std::mutex> lock(mu_);
  const ClusterView& current = *recent_.back();
  Status s = Check(&planned, planned.epoch(), current, partition);
  if (s.ok()) Enter(current.epoch(), ticket);
  return s;
}

bool EpochGate::WaitDrained(uint64_t epoch, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return drained_.wait_for(lock, timeout, [&] {
    return inflight_.empty() || inflight_.begin()->first >= epoch;
  });
}

}  // namespace monju
