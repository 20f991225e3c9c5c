// HintIntake: where hinted writes enter this node's hint store, from the
// local coordinator or from a peer's apply_hinted. Counts what it stored and
// refused, and wakes the delivery worker. Thread-safe.
#pragma once

#include <atomic>

#include "clock/codec.h"
#include "common/clock.h"
#include "hint_delivery.h"
#include "hintstore.h"
#include "storage/data_store.h"

namespace monju {

class HintIntake {
 public:
  HintIntake(HintStore* store, const WallClock* wall) : store_(store), wall_(wall) {}
  // Called once the delivery worker exists (it is started after the intake).
  void set_delivery(HintDelivery* delivery) { delivery_.store(delivery); }

  // Durable before it returns OK. NoSpace when a cap is reached: nothing stored.
  Status Store(const std::string& owner, const ItemKey& key, std::string encoded_version) {
    Hint h;
    h.owner = owner;
    h.partition = key.partition;
    h.pk = key.pk;
    h.sk = key.sk;
    h.version = std::move(encoded_version);
    h.created_unix_ms = wall_->UnixMillis();
    Status s = store_->Add(h);
    if (s.ok()) {
      ++stored_;
      if (HintDelivery* d = delivery_.load()) d->Notify();
    } else if (s.Is(Status::Code::kNoSpace)) {
      ++refused_;
    }
    return s;
  }

  uint64_t stored() const { return stored_; }
  uint64_t refused() const { return refused_; }
  HintStore& store() { return *store_; }

 private:
  HintStore* store_;
  const WallClock* wall_;
  std::atomic<HintDelivery*> delivery_{nullptr};
  std::atomic<uint64_t> stored_{0}, refused_{0};
};

}  // namespace monju
