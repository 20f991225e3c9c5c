#include "admin_handler.h"

#include <spdlog/spdlog.h>

namespace monju {

void AdminHandler::status(admin::NodeStatus& _return) {
  auto view = src_.membership->Current();
  const Ring& ring = view->ring();
  _return.id = src_.self_id;
  _return.ring = view->description();
  _return.fingerprint = static_cast<int64_t>(view->fingerprint());
  _return.sloppy_quorum = src_.sloppy_quorum;
  auto pending = src_.hints->store().PendingByOwner();
  int64_t total = 0;
  for (const auto& [owner, count] : pending) total += static_cast<int64_t>(count);
  _return.pending_hints_total = total;
  for (uint32_t p = 0; p < ring.partitions(); ++p)
    for (uint32_t m : ring.PreferenceList(p)) ++_return.partitions_owned[view->members()[m].id];
  for (const auto& member : view->members()) {
    admin::PeerStatus peer;
    peer.id = member.id;
    peer.address = member.host + ":" + std::to_string(member.port);
    auto it = pending.find(member.id);
    peer.pending_hints = it == pending.end() ? 0 : static_cast<int64_t>(it->second);
    if (member.id == src_.self_id) {
      peer.state = "self";
    } else {
      PeerHealthSnapshot snap = src_.endpoints->Detector(member.id)->Snapshot();
      peer.state = PeerStateName(snap.state);
      peer.phi = snap.phi;
      peer.ms_since_heard = snap.ms_since_heard;
    }
    _return.peers.push_back(std::move(peer));
  }
  // Hints for nodes no longer in the view still count.
  for (const auto& [owner, count] : pending) {
    if (view->IndexOf(owner) >= 0) continue;
    admin::PeerStatus peer;
    peer.id = owner;
    peer.state = "not a member";
    peer.pending_hints = static_cast<int64_t>(count);
    _return.peers.push_back(std::move(peer));
  }
}

void AdminHandler::stats(std::map<std::string, int64_t>& _return) {
  auto put = [&](const std::string& name, uint64_t v) { _return[name] = static_cast<int64_t>(v); };
  CoordinatorStats c = src_.coordinator->stats();
  put("requests.put", c.puts);
  put("requests.get", c.gets);
  put("requests.remove", c.removes);
  put("requests.query", c.queries);
  put("errors.unavailable", c.unavailable);
  put("errors.quorum_failed", c.quorum_failed);
  put("errors.timed_out", c.timed_out);
  put("errors.invalid", c.invalid);
  put("writes.with_fallback", c.writes_with_fallback);
  put("writes.hinted", c.writes_hinted);
  put("read_repairs", c.read_repairs);
  put("hints.stored", src_.hints->stored());
  put("hints.refused", src_.hints->refused());
  DeliveryStats d = src_.delivery->stats();
  put("hints.delivered", d.delivered);
  put("hints.expired", d.expired);
  put("hints.failed_batches", d.failed_batches);
  uint64_t total = 0;
  for (const auto& [owner, count] : src_.hints->store().PendingByOwner()) {
    put("hints.pending." + owner, count);
    total += count;
  }
  put("hints.pending", total);
  ReaperStats r = src_.reaper->stats();
  put("tombstones.reaped", r.reaped);
  put("tombstones.checked", r.checked);
  put("tombstones.blocked", r.blocked);
  DataStore::Stats s = src_.replica->store().stats();
  put("storage.commits", s.commits);
  put("storage.applied", s.applied);
}

void AdminHandler::set_link_faults(const std::map<std::string, admin::LinkFaultSpec>& faults) {
  if (!src_.link_faults) {
    admin::AdminError e;
    e.why = "fault injection is off; start monjud with --fault-injection (testing only)";
    throw e;
  }
  std::map<std::string, LinkFault> next;
  for (const auto& [peer, spec] : faults) {
    if (spec.delay_ms < 0 || spec.delay_ms > 60000) {
      admin::AdminError e;
      e.why = "delay_ms for " + peer + " must be 0..60000";
      throw e;
    }
    next[peer] = LinkFault{spec.drop, std::chrono::milliseconds(spec.delay_ms)};
  }
  for (const auto& [peer, f] : next)
    spdlog::warn("injected fault on calls to {}: {}{} ms delay", peer, f.drop ? "drop, " : "", f.delay.count());
  if (next.empty()) spdlog::warn("injected link faults cleared");
  src_.link_faults->Set(std::move(next));
}

}  // namespace monju
