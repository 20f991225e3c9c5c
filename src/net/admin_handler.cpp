#include "admin_handler.h"

#include <spdlog/spdlog.h>
#include <algorithm>

namespace monju {

void AdminHandler::status(admin::NodeStatus& _return) {
  auto view = src_.membership->Current();
  const Ring& ring = view->ring();
  _return.id = src_.self_id;
  _return.ring = view->description();
  _return.fingerprint = static_cast<int64_t>(view->fingerprint());
  _return.sloppy_quorum = src_.sloppy_quorum;
  _return.repair_paused = src_.anti_entropy->paused();
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
  put("read_repairs.dropped", c.read_repairs_dropped);
  put("reads.speculative", c.speculative_reads);
  put("reads.spare_skipped", c.spare_reads_skipped);
  // Percentiles since the start, and of the last 1-2 minutes (`.recent`);
  // the histograms' buckets are within 0.8%.
  auto put_histogram = [&](const std::string& name, const LatencyHistogram& h) {
    put(name + ".count", h.count());
    put(name + ".p50", h.Percentile(0.50));
    put(name + ".p99", h.Percentile(0.99));
    put(name + ".p999", h.Percentile(0.999));
    put(name + ".max", h.max());
  };
  put_histogram("latency.put_us", c.put_us);
  put_histogram("latency.get_us", c.get_us);
  put_histogram("latency.remove_us", c.remove_us);
  put_histogram("latency.query_us", c.query_us);
  put_histogram("latency.put_us.recent", c.recent_put_us);
  put_histogram("latency.get_us.recent", c.recent_get_us);
  put_histogram("latency.remove_us.recent", c.recent_remove_us);
  put_histogram("latency.query_us.recent", c.recent_query_us);
  const CoalescerStats writes = src_.endpoints->coalesced_writes();
  put("peer_writes.calls", writes.calls);
  put("peer_writes.sent", writes.items);
  const CoalescerStats reads = src_.endpoints->coalesced_reads();
  put("peer_reads.calls", reads.calls);
  put("peer_reads.sent", reads.items);
  const PeerLinkStats links = src_.endpoints->link_stats();
  put("peer_links.calls", links.calls);
  put("peer_links.connects", links.connects);
  put("peer_links.failures", links.failures);
  put("peer_links.connect_failures", links.connect_failures);
  put("peer_links.resends", links.resends);
  put("peer_links.idle_closes", links.idle_closes);
  put("peer_links.paused_failures", links.paused_failures);
  for (auto [name, server] : {std::pair{"client", src_.client_server}, std::pair{"peer", src_.peer_server}}) {
    const CallServer* serving = server ? server->load() : nullptr;
    if (!serving) continue;
    const CallServer::Stats st = serving->stats();
    const std::string prefix = std::string("server.") + name + ".";
    put(prefix + "connections", st.accepted);
    put(prefix + "connections_refused", st.refused);
    put(prefix + "max_connections", serving->max_connections());
    put(prefix + "reserved_connections", st.reserved_open);
    put(prefix + "calls", st.calls);
    put(prefix + "bad_frames", st.bad_frames);
    put(prefix + "stalled", st.stalled);
  }
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
  put("storage.flushes", s.flushes);
  put("storage.flush_failures", s.flush_failures);
  put("storage.memtable_bytes", s.memtable_bytes);
  put("storage.log_bytes", s.log_bytes);
  put_histogram("storage.commit_us", s.commit_us);
  put_histogram("storage.batch_ops", s.batch_ops);
  put_histogram("storage.apply_wait_us", s.apply_wait_us);
  put_histogram("storage.commit_us.recent", s.recent_commit_us);
  put_histogram("storage.batch_ops.recent", s.recent_batch_ops);
  put_histogram("storage.apply_wait_us.recent", s.recent_apply_wait_us);
  SchedulerStats ae = src_.anti_entropy->stats();
  put("ae.exchanges", ae.exchanges);
  put("ae.exchanges_failed", ae.exchanges_failed);
  put("ae.partitions_different", ae.partitions_different);
  put("ae.leaves_different", ae.leaves_different);
  put("ae.keys_different", ae.keys_different);
  put("ae.keys_sent", ae.keys_sent);
  put("ae.keys_received", ae.keys_received);
  put("ae.versions_sent", ae.versions_sent);
  put("ae.versions_received", ae.versions_received);
  put("ae.bytes_sent", ae.bytes_sent);
  put("ae.bytes_received", ae.bytes_received);
  put("ae.tombstones_withheld", ae.withheld);
  put("ae.exchange_ms_total", ae.exchange_ms_total);
  put("ae.exchange_ms_max", ae.exchange_ms_max);
  put("ae.exchange_ms_last", ae.exchange_ms_last);
  put("ae.exchange_ms_mean", ae.exchanges ? ae.exchange_ms_total / ae.exchanges : 0);
  put("ae.oldest_partition_age_ms", static_cast<uint64_t>(std::max<int64_t>(ae.oldest_partition_age_ms, 0)));
  put("ae.partitions_never_exchanged", ae.partitions_never_exchanged);
  put("ae.running", ae.running);
  put("ae.paused", ae.paused ? 1 : 0);
  put("ae.trees_rebuilt", src_.trees->rebuilt());
  put("ae.tree_items", static_cast<uint64_t>(std::max<int64_t>(src_.trees->items(), 0)));
  put("ae.tree_build_ms", static_cast<uint64_t>(src_.trees->install_ms()));
}

void AdminHandler::repair(admin::RepairResult& _return, int32_t partition, const std::string& node) {
  std::optional<uint32_t> which;
  if (partition >= 0) which = static_cast<uint32_t>(partition);
  auto report = src_.anti_entropy->RunNow(which, node);
  if (!report.ok()) {
    admin::AdminError e;
    e.why = report.status().message();
    e.code = static_cast<int32_t>(report.status().code());
    throw e;
  }
  _return.elapsed_ms = report->elapsed.count();
  _return.trees_rebuilt = static_cast<int32_t>(report->trees_rebuilt);
  for (const ExchangeReport& r : report->exchanges) {
    admin::ExchangeResult x;
    const ExchangeStats& s = r.stats;
    x.partition = static_cast<int32_t>(r.partition);
    x.peer = r.peer;
    x.ok = s.status.ok();
    if (!x.ok) x.error = s.status.ToString();
    x.different = s.different;
    x.leaves_different = static_cast<int64_t>(s.leaves_different);
    x.keys_different = static_cast<int64_t>(s.keys_different);
    x.keys_sent = static_cast<int64_t>(s.keys_sent);
    x.keys_received = static_cast<int64_t>(s.keys_received);
    x.versions_sent = static_cast<int64_t>(s.versions_sent);
    x.versions_received = static_cast<int64_t>(s.versions_received);
    x.withheld = static_cast<int64_t>(s.withheld);
    x.bytes_sent = static_cast<int64_t>(s.bytes_sent);
    x.bytes_received = static_cast<int64_t>(s.bytes_received);
    x.round_trips = static_cast<int64_t>(s.round_trips);
    x.elapsed_ms = r.elapsed.count();
    _return.exchanges.push_back(std::move(x));
  }
}

bool AdminHandler::set_repair_paused(bool paused) { return src_.anti_entropy->SetPaused(paused); }

void AdminHandler::set_link_faults(const std::map<std::string, admin::LinkFaultSpec>& faults) {
  if (!src_.link_faults) {
    admin::AdminError e;
    e.why = "fault injection is off; start monjud with --fault-injection (testing only)";
    e.code = static_cast<int32_t>(Status::Code::kInvalidArgument);
    throw e;
  }
  std::map<std::string, LinkFault> next;
  for (const auto& [peer, spec] : faults) {
    if (spec.delay_ms < 0 || spec.delay_ms > 60000) {
      admin::AdminError e;
      e.why = "delay_ms for " + peer + " must be 0..60000";
      e.code = static_cast<int32_t>(Status::Code::kInvalidArgument);
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
