#include "cli_output.h"

#include <cstdint>
#include <cstdio>

#include "common/base64.h"

namespace monju::cli {
namespace {

// Length of the valid UTF-8 sequence starting at bytes[i], or 0 when the
// bytes there are not one (overlong forms, surrogates and values above
// U+10FFFF are invalid).
size_t Utf8SequenceLength(std::string_view bytes, size_t i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(bytes[k]); };
  unsigned char b0 = byte(i);
  if (b0 < 0x80) return 1;
  size_t len;
  uint32_t cp;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2;
    cp = b0 & 0x1F;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3;
    cp = b0 & 0x0F;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4;
    cp = b0 & 0x07;
  } else {
    return 0;
  }
  if (i + len > bytes.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (byte(i + k) & 0x3F);
  }
  static constexpr uint32_t kMinForLength[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMinForLength[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

// C1 control characters (U+0080..U+009F) are encoded as C2 80..C2 9F.
bool IsC1Control(std::string_view bytes, size_t i, size_t len) {
  return len == 2 && static_cast<unsigned char>(bytes[i]) == 0xC2 &&
         static_cast<unsigned char>(bytes[i + 1]) < 0xA0;
}

void AppendHexEscape(std::string& out, unsigned char b) {
  char buf[5];
  std::snprintf(buf, sizeof buf, "\\x%02x", b);
  out += buf;
}

void AppendEscapedAscii(std::string& out, unsigned char b) {
  switch (b) {
    case '\n': out += "\\n"; return;
    case '\t': out += "\\t"; return;
    case '\r': out += "\\r"; return;
    case '\\': out += "\\\\"; return;
    default: break;
  }
  if (b < 0x20 || b == 0x7F) AppendHexEscape(out, b);
  else out += static_cast<char>(b);
}

// "quorum_failed" -> "quorum failed"; usage errors need no label.
std::string ErrorLabel(const std::string& kind) {
  if (kind == "usage") return "";
  if (kind == "connect") return "cannot connect";
  if (kind == "invalid") return "invalid request";
  std::string label = kind;
  for (char& c : label)
    if (c == '_') c = ' ';
  return label;
}

std::string ContextLine(const std::string& context) { return "context: " + Base64Encode(context) + "\n"; }

// "a | b" for display; a single value as is.
std::string JoinValues(const std::vector<std::string>& values) {
  std::string out;
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += " | ";
    out += Escape(values[i]);
  }
  return out;
}

// values: each as a string when valid UTF-8, else null; values_b64: each in
// base64, always.
void AddValues(nlohmann::json& obj, const std::vector<std::string>& values) {
  nlohmann::json text = nlohmann::json::array(), b64 = nlohmann::json::array();
  for (const std::string& v : values) {
    text.push_back(IsValidUtf8(v) ? nlohmann::json(v) : nlohmann::json(nullptr));
    b64.push_back(Base64Encode(v));
  }
  obj["values"] = std::move(text);
  obj["values_b64"] = std::move(b64);
}

// A key as text; when it is not valid UTF-8, also `<name>_b64` with its bytes.
void AddKey(nlohmann::json& obj, const std::string& name, const std::string& key) {
  obj[name] = key;
  if (!IsValidUtf8(key)) obj[name + "_b64"] = Base64Encode(key);
}

nlohmann::json BaseObject(const CliOptions& options) {
  nlohmann::json obj = nlohmann::json::object();
  obj["op"] = CommandName(options.command);
  AddKey(obj, "pk", options.pk);
  if (options.command != Command::kQuery) AddKey(obj, "sk", options.sk);
  return obj;
}

}  // namespace

bool IsValidUtf8(std::string_view bytes) {
  for (size_t i = 0; i < bytes.size();) {
    size_t len = Utf8SequenceLength(bytes, i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

std::string Escape(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (size_t i = 0; i < bytes.size();) {
    unsigned char b = static_cast<unsigned char>(bytes[i]);
    if (b < 0x80) {
      AppendEscapedAscii(out, b);
      ++i;
      continue;
    }
    size_t len = Utf8SequenceLength(bytes, i);
    if (len == 0 || IsC1Control(bytes, i, len)) {
      size_t n = len == 0 ? 1 : len;
      for (size_t k = 0; k < n; ++k) AppendHexEscape(out, static_cast<unsigned char>(bytes[i + k]));
      i += n;
      continue;
    }
    out.append(bytes.substr(i, len));
    i += len;
  }
  return out;
}

std::string HumanGet(const ReadView& read) {
  std::string out;
  if (read.found) {
    if (read.values.size() > 1) out += std::to_string(read.values.size()) + " siblings:\n";
    for (const std::string& v : read.values) out += Escape(v) + "\n";
  }
  if (read.found || !read.context.empty()) out += ContextLine(read.context);
  return out;
}

namespace {
std::string JoinIds(const std::vector<std::string>& ids) {
  std::string out;
  for (const auto& id : ids) out += (out.empty() ? "" : ", ") + id;
  return out;
}
}  // namespace

std::string HumanWrite(const WriteView& write) {
  std::string out = "ok\n";
  if (!write.acked_by.empty()) {
    out += "acked by: " + JoinIds(write.acked_by);
    if (write.used_fallback) out += " (a fallback holding a hint counted)";
    out += "\n";
  }
  if (!write.hinted_for.empty()) out += "hinted for: " + JoinIds(write.hinted_for) + " (delivered when back)\n";
  return out + ContextLine(write.context);
}

std::string HumanStatus(const StatusView& status) {
  char line[512];
  std::string out = "node " + status.id + " (" + (status.sloppy_quorum ? "sloppy" : "strict") + " quorum)\n";
  out += "ring: " + status.ring + "\n";
  std::snprintf(line, sizeof line, "%-16s %-22s %-8s %7s %10s %10s %13s\n", "PEER", "ADDRESS", "STATE", "PHI",
                "HEARD_MS", "PARTITIONS", "PENDING_HINTS");
  out += line;
  for (const PeerView& p : status.peers) {
    bool self = p.state == "self";
    std::snprintf(line, sizeof line, "%-16s %-22s %-8s %7s %10s %10d %13lld\n", Escape(p.id).c_str(),
                  p.address.c_str(), p.state.c_str(), self ? "-" : std::to_string(p.phi).substr(0, 6).c_str(),
                  self ? "-" : std::to_string(p.ms_since_heard).c_str(), p.partitions,
                  static_cast<long long>(p.pending_hints));
    out += line;
  }
  out += "pending hints: " + std::to_string(status.pending_hints_total) + "\n";
  out += std::string("anti-entropy: ") + (status.repair_paused ? "paused" : "running") + "\n";
  return out;
}

std::string HumanStats(const std::map<std::string, int64_t>& stats) {
  std::string out;
  for (const auto& [name, value] : stats) out += name + " " + std::to_string(value) + "\n";
  return out;
}

std::string HumanQuery(const QueryView& query) {
  std::string out;
  for (const ItemView& item : query.items) {
    out += Escape(item.sk) + "\t";
    if (item.values.size() > 1) out += "[" + std::to_string(item.values.size()) + " siblings] ";
    out += JoinValues(item.values) + "\n";
  }
  if (!query.next_start_sk.empty()) out += "next: " + Escape(query.next_start_sk) + "\n";
  return out;
}

namespace {
std::string Plural(int64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

struct RepairTotals {
  int64_t exchanges = 0, in_sync = 0, repaired = 0, failed = 0;
  int64_t keys_different = 0, keys_sent = 0, keys_received = 0, versions_sent = 0, versions_received = 0;
  int64_t withheld = 0, bytes_sent = 0, bytes_received = 0;
};

RepairTotals Totals(const RepairView& repair) {
  RepairTotals t;
  for (const ExchangeView& e : repair.exchanges) {
    ++t.exchanges;
    if (!e.ok) ++t.failed;
    else if (e.different) ++t.repaired;
    else ++t.in_sync;
    t.keys_different += e.keys_different;
    t.keys_sent += e.keys_sent;
    t.keys_received += e.keys_received;
    t.versions_sent += e.versions_sent;
    t.versions_received += e.versions_received;
    t.withheld += e.withheld;
    t.bytes_sent += e.bytes_sent;
    t.bytes_received += e.bytes_received;
  }
  return t;
}
}  // namespace

std::string HumanRepair(const RepairView& repair) {
  std::string out;
  for (const ExchangeView& e : repair.exchanges) {
    const std::string head = "partition " + std::to_string(e.partition) + " with " + Escape(e.peer) + ": ";
    if (!e.ok) {
      out += head + "failed: " + Escape(e.error) + "\n";
    } else if (e.different) {
      out += head + Plural(e.keys_different, "key", "keys") + " differed; sent " + Plural(e.keys_sent, "key", "keys") +
             ", received " + Plural(e.keys_received, "key", "keys");
      if (e.withheld) out += ", " + std::to_string(e.withheld) + " reapable tombstones withheld";
      out += "; " + std::to_string(e.bytes_sent) + " bytes out, " + std::to_string(e.bytes_received) + " in; " +
             std::to_string(e.elapsed_ms) + " ms\n";
    }
  }
  const RepairTotals t = Totals(repair);
  out += "repair: " + Plural(t.exchanges, "exchange", "exchanges") + " (" + std::to_string(t.in_sync) + " in sync, " +
         std::to_string(t.repaired) + " repaired, " + std::to_string(t.failed) + " failed) in " +
         std::to_string(repair.elapsed_ms) + " ms; " + Plural(t.keys_different, "key", "keys") + " differed, " +
         std::to_string(t.keys_sent) + " sent, " + std::to_string(t.keys_received) + " received (" +
         std::to_string(t.versions_sent) + " versions out, " + std::to_string(t.versions_received) + " in); " +
         std::to_string(t.bytes_sent) + " bytes out, " + std::to_string(t.bytes_received) + " in";
  if (t.withheld) out += "; " + std::to_string(t.withheld) + " reapable tombstones withheld";
  if (repair.trees_rebuilt) out += "; " + std::to_string(repair.trees_rebuilt) + " inconsistent trees rebuilt first";
  return out + "\n";
}

std::string HumanError(const CliError& error) {
  std::string out = "monju: ";
  if (std::string label = ErrorLabel(error.kind); !label.empty()) out += label + ": ";
  out += Escape(error.why);
  if (error.needed && error.count)
    out += " (needed " + std::to_string(*error.needed) + ", " + error.count_name + " " +
           std::to_string(*error.count) + ")";
  return out;
}

nlohmann::json JsonGet(const CliOptions& options, const ReadView& read) {
  nlohmann::json obj = BaseObject(options);
  obj["found"] = read.found;
  AddValues(obj, read.found ? read.values : std::vector<std::string>{});
  obj["context"] = Base64Encode(read.context);
  return obj;
}

nlohmann::json JsonWrite(const CliOptions& options, const WriteView& write) {
  nlohmann::json obj = BaseObject(options);
  obj["ok"] = true;
  obj["context"] = Base64Encode(write.context);
  obj["acked_by"] = write.acked_by;
  obj["used_fallback"] = write.used_fallback;
  obj["hinted_for"] = write.hinted_for;
  return obj;
}

nlohmann::json JsonStatus(const StatusView& status) {
  nlohmann::json obj = nlohmann::json::object();
  obj["id"] = status.id;
  obj["ring"] = status.ring;
  obj["sloppy_quorum"] = status.sloppy_quorum;
  obj["pending_hints"] = status.pending_hints_total;
  obj["repair_paused"] = status.repair_paused;
  nlohmann::json peers = nlohmann::json::array();
  for (const PeerView& p : status.peers) {
    nlohmann::json e = nlohmann::json::object();
    e["id"] = p.id;
    e["address"] = p.address;
    e["state"] = p.state;
    e["phi"] = p.phi;
    e["ms_since_heard"] = p.ms_since_heard;
    e["partitions"] = p.partitions;
    e["pending_hints"] = p.pending_hints;
    peers.push_back(std::move(e));
  }
  obj["peers"] = std::move(peers);
  return obj;
}

nlohmann::json JsonStats(const std::map<std::string, int64_t>& stats) {
  nlohmann::json obj = nlohmann::json::object();
  for (const auto& [name, value] : stats) obj[name] = value;
  return obj;
}

nlohmann::json JsonQuery(const CliOptions& options, const QueryView& query) {
  nlohmann::json obj = BaseObject(options);
  nlohmann::json items = nlohmann::json::array();
  for (const ItemView& item : query.items) {
    nlohmann::json entry = nlohmann::json::object();
    AddKey(entry, "sk", item.sk);
    AddValues(entry, item.values);
    entry["context"] = Base64Encode(item.context);
    items.push_back(std::move(entry));
  }
  obj["items"] = std::move(items);
  if (query.next_start_sk.empty()) obj["next"] = nullptr;
  else AddKey(obj, "next", query.next_start_sk);
  return obj;
}

nlohmann::json JsonRepair(const RepairView& repair) {
  nlohmann::json obj = nlohmann::json::object();
  obj["op"] = "repair";
  nlohmann::json list = nlohmann::json::array();
  for (const ExchangeView& e : repair.exchanges) {
    nlohmann::json x = nlohmann::json::object();
    x["partition"] = e.partition;
    x["peer"] = e.peer;
    x["ok"] = e.ok;
    if (!e.ok) x["error"] = e.error;
    x["different"] = e.different;
    x["leaves_different"] = e.leaves_different;
    x["keys_different"] = e.keys_different;
    x["keys_sent"] = e.keys_sent;
    x["keys_received"] = e.keys_received;
    x["versions_sent"] = e.versions_sent;
    x["versions_received"] = e.versions_received;
    x["withheld"] = e.withheld;
    x["bytes_sent"] = e.bytes_sent;
    x["bytes_received"] = e.bytes_received;
    x["round_trips"] = e.round_trips;
    x["elapsed_ms"] = e.elapsed_ms;
    list.push_back(std::move(x));
  }
  obj["exchanges"] = std::move(list);
  const RepairTotals t = Totals(repair);
  obj["in_sync"] = t.in_sync;
  obj["repaired"] = t.repaired;
  obj["failed"] = t.failed;
  obj["keys_different"] = t.keys_different;
  obj["keys_sent"] = t.keys_sent;
  obj["keys_received"] = t.keys_received;
  obj["bytes_sent"] = t.bytes_sent;
  obj["bytes_received"] = t.bytes_received;
  obj["withheld"] = t.withheld;
  obj["trees_rebuilt"] = repair.trees_rebuilt;
  obj["elapsed_ms"] = repair.elapsed_ms;
  return obj;
}

nlohmann::json JsonError(const CliError& error) {
  nlohmann::json obj = nlohmann::json::object();
  obj["error"] = error.kind;
  obj["why"] = error.why;
  if (error.needed) obj["needed"] = *error.needed;
  if (error.count) obj[error.count_name] = *error.count;
  obj["exit_code"] = error.exit_code;
  return obj;
}

std::string DumpJson(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace monju::cli
