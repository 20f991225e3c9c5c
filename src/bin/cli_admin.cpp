#include "cli_admin.h"

#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <sstream>
#include <thread>

#include "cli_output.h"

#include <thrift/TApplicationException.h>

namespace monju::cli {
namespace {

std::string Mib(int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return buf;
}

std::string Pad(const std::string& s, size_t width) { return s.size() >= width ? s + " " : s + std::string(width - s.size(), ' '); }

void Print(const std::string& text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

}  // namespace

std::string ProgressLine(const membership::MembersReply& r) {
  std::string line = "epoch " + std::to_string(r.epoch) + " " + (r.change.empty() ? "no change" : r.change);
  for (const auto& p : r.progress) {
    line += "; " + p.node + " " + std::to_string(p.partitions_done) + "/" + std::to_string(p.partitions_total) +
            " partitions, " + std::to_string(p.items) + " items, " + Mib(p.bytes);
    if (!p.waiting_for.empty()) line += " (" + p.waiting_for + ")";
  }
  return line;
}

std::string HumanMembers(const membership::MembersReply& r) {
  std::ostringstream out;
  out << "cluster " << r.cluster_id << ", epoch " << r.epoch << ": Q=" << r.partitions << " N=" << r.replicas
      << ", " << r.voters << " Raft voters; leader " << (r.leader.empty() ? "(none known)" : r.leader) << "\n";
  out << "this node: " << r.self_id << ", Raft " << r.raft_state << " (term " << r.raft_term << ", applied epoch "
      << r.applied_epoch << ")\n";
  out << "change: " << (r.change.empty() ? "none" : r.change) << "\n";
  out << Pad("ID", 10) << Pad("ADDRESS", 22) << Pad("RAFT ADDRESS", 22) << Pad("STATE", 9) << Pad("RAFT", 8)
      << Pad("HEALTH", 8) << Pad("READS", 6) << Pad("WRITES", 7) << "VNODES\n";
  for (const auto& m : r.members) {
    out << Pad(m.id, 10) << Pad(m.address, 22) << Pad(m.raft_address, 22) << Pad(m.state, 9)
        << Pad(m.raft_role.empty() ? "-" : m.raft_role, 8) << Pad(m.health.empty() ? "-" : m.health, 8)
        << Pad(std::to_string(m.partitions_read), 6) << Pad(std::to_string(m.partitions_written), 7) << m.vnodes;
    if (m.token_owner != m.id) out << " (tokens of " << m.token_owner << ")";
    out << "\n";
  }
  for (const auto& p : r.progress) {
    out << "streaming into " << p.node << ": " << p.partitions_done << "/" << p.partitions_total << " partitions, "
        << p.items << " items, " << Mib(p.bytes) << ", " << p.elapsed_ms / 1000.0 << " s"
        << (p.done ? ", done" : "") << (p.waiting_for.empty() ? "" : " (" + p.waiting_for + ")") << "\n";
  }
  return out.str();
}

nlohmann::json JsonMembers(const membership::MembersReply& r) {
  nlohmann::json j = {{"epoch", r.epoch},         {"partitions", r.partitions}, {"replicas", r.replicas},
                      {"voters", r.voters},       {"cluster_id", r.cluster_id}, {"self", r.self_id},
                      {"raft_state", r.raft_state}, {"leader", r.leader},       {"raft_term", r.raft_term},
                      {"applied_epoch", r.applied_epoch}, {"change", r.change}};
  j["members"] = nlohmann::json::array();
  for (const auto& m : r.members)
    j["members"].push_back({{"id", m.id}, {"address", m.address}, {"peer_address", m.peer_address},
                            {"raft_address", m.raft_address},
                            {"vnodes", m.vnodes}, {"state", m.state}, {"token_owner", m.token_owner},
                            {"raft_role", m.raft_role}, {"health", m.health},
                            {"partitions_read", m.partitions_read}, {"partitions_written", m.partitions_written}});
  j["progress"] = nlohmann::json::array();
  for (const auto& p : r.progress)
    j["progress"].push_back({{"node", p.node}, {"change_epoch", p.change_epoch},
                             {"partitions_total", p.partitions_total}, {"partitions_done", p.partitions_done},
                             {"items", p.items}, {"bytes", p.bytes}, {"done", p.done},
                             {"waiting_for", p.waiting_for}, {"elapsed_ms", p.elapsed_ms}});
  return j;
}

std::string HumanRing(const membership::RingReply& r) {
  std::ostringstream out;
  std::map<std::string, int> reads, writes;
  int pending = 0;
  out << "epoch " << r.epoch << ", " << r.partitions.size() << " partitions, N=" << r.replicas << "\n";
  for (const auto& p : r.partitions) {
    out << Pad(std::to_string(p.partition), 6);
    for (const auto& id : p.readers) {
      out << " " << id;
      ++reads[id];
    }
    if (p.writers.size() > p.readers.size()) {
      ++pending;
      out << "   writes also to:";
      for (size_t i = p.readers.size(); i < p.writers.size(); ++i) out << " " << p.writers[i];
    }
    for (const auto& id : p.writers) ++writes[id];
    out << "\n";
  }
  out << "partitions read / written per member:";
  for (const auto& [id, n] : reads) out << " " << id << "=" << n << "/" << writes[id];
  for (const auto& [id, n] : writes)
    if (!reads.count(id)) out << " " << id << "=0/" << n;
  out << "\n";
  if (pending) out << pending << " partitions have pending owners\n";
  return out.str();
}

nlohmann::json JsonRing(const membership::RingReply& r) {
  nlohmann::json j = {{"epoch", r.epoch}, {"replicas", r.replicas}};
  j["partitions"] = nlohmann::json::array();
  for (const auto& p : r.partitions) j["partitions"].push_back({{"partition", p.partition}, {"read", p.readers}, {"write", p.writers}});
  return j;
}

int RunAdminCommand(membership::MonjuMembershipClient& client, const CliOptions& o);

int RunAdmin(membership::MonjuMembershipClient& client, const CliOptions& o) {
  try {
    return RunAdminCommand(client, o);
  } catch (const apache::thrift::TApplicationException& e) {
    if (e.getType() != apache::thrift::TApplicationException::UNKNOWN_METHOD &&
        std::string(e.what()).find("membership") == std::string::npos)
      throw;
    std::cerr << "monju: this node's membership is static (--peers); admin commands need nodes started with "
                 "--raft-listen"
              << std::endl;
    return kExitInvalid;
  }
}

int RunAdminCommand(membership::MonjuMembershipClient& client, const CliOptions& o) {
  const std::string& a = o.admin_action;
  if (a == "members") {
    membership::MembersReply r;
    client.members(r);
    if (o.json) Print(DumpJson(JsonMembers(r)) + "\n");
    else Print(HumanMembers(r));
    return kExitOk;
  }
  if (a == "ring") {
    membership::RingReply r;
    client.ring(r);
    if (o.json) Print(DumpJson(JsonRing(r)) + "\n");
    else Print(HumanRing(r));
    return kExitOk;
  }
  membership::ChangeReply began;
  if (a == "join") client.join(began);
  else if (a == "leave") client.leave(began, o.admin_args[0]);
  else if (a == "replace") client.replace(began, o.admin_args[0], o.admin_args[1]);
  else client.abort(began);
  if (!o.json) Print(a + ": epoch " + std::to_string(began.epoch) + ": " + began.summary + "\n");
  nlohmann::json result = {{"op", "admin " + a}, {"epoch", began.epoch}, {"summary", began.summary}};
  if (o.no_wait || a == "abort") {
    if (o.json) Print(DumpJson(result) + "\n");
    return kExitOk;
  }
  // Follow the change until the metadata has none left.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(o.wait_s);
  std::string last;
  membership::MembersReply r;
  for (;;) {
    client.members(r);
    if (r.change.empty() && r.epoch >= began.epoch) break;
    std::string line = ProgressLine(r);
    // The node answering may not have installed the change's epoch yet.
    if (line != last && !o.json && r.epoch >= began.epoch) Print(line + "\n");
    last = line;
    if (std::chrono::steady_clock::now() >= deadline) {
      std::cerr << "monju: the change is still in progress after " << o.wait_s << " s: " << line << std::endl;
      result["done"] = false;
      if (o.json) Print(DumpJson(result) + "\n");
      return kExitUnavailable;
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  result["done"] = true;
  result["members"] = JsonMembers(r);
  if (o.json) Print(DumpJson(result) + "\n");
  else Print("done: epoch " + std::to_string(r.epoch) + "\n" + HumanMembers(r));
  return kExitOk;
}

}  // namespace monju::cli
