// Rendering of `monju` results and errors: human text and JSON. Pure: builds
// strings and JSON values; the caller prints them.
#pragma once

#include <nlohmann/json.hpp>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cli_args.h"

namespace monju::cli {

enum ExitCode : int {
  kExitOk = 0,
  kExitNotFound = 1,     // get of an absent key
  kExitInvalid = 2,      // bad arguments, InvalidRequest, bad --context
  kExitUnavailable = 3,  // Unavailable, QuorumFailed, TimedOut
  kExitConnect = 4,      // cannot connect or the call broke off
};

// What the client got back, independent of the wire types.
struct ReadView {
  bool found = false;
  std::vector<std::string> values;
  std::string context;  // raw bytes
};

struct ItemView {
  std::string sk;
  std::vector<std::string> values;
  std::string context;
};

struct QueryView {
  std::vector<ItemView> items;
  std::string next_start_sk;  // empty at the end
};

struct WriteView {
  std::string context;  // raw bytes
  std::vector<std::string> acked_by;
  bool used_fallback = false;
  std::vector<std::string> hinted_for;
};

struct PeerView {
  std::string id, address, state;
  double phi = 0;
  int64_t ms_since_heard = 0;
  int64_t pending_hints = 0;
  int32_t partitions = 0;
};

struct StatusView {
  std::string id, ring;
  bool sloppy_quorum = true;
  std::vector<PeerView> peers;
  int64_t pending_hints_total = 0;
  bool repair_paused = false;
};

// One anti-entropy exchange as `monju repair` reports it.
struct ExchangeView {
  int32_t partition = 0;
  std::string peer;
  bool ok = true;
  std::string error;
  bool different = false;
  int64_t leaves_different = 0, keys_different = 0;
  int64_t keys_sent = 0, keys_received = 0, versions_sent = 0, versions_received = 0, withheld = 0;
  int64_t bytes_sent = 0, bytes_received = 0, round_trips = 0, elapsed_ms = 0;
};

struct RepairView {
  std::vector<ExchangeView> exchanges;
  int64_t elapsed_ms = 0;
  int32_t trees_rebuilt = 0;
};

struct CliError {
  std::string kind;  // "invalid", "unavailable", "quorum_failed", "timed_out", "connect", "transport", ...
  std::string why;
  int exit_code = kExitInvalid;
  // For unavailable/quorum_failed: how many were needed and how many were
  // alive (count_name "alive") or acknowledged ("acked").
  std::optional<int> needed;
  std::optional<int> count;
  std::string count_name;
};

bool IsValidUtf8(std::string_view bytes);
// Printable for a terminal: control bytes, backslash and invalid UTF-8 are
// escaped (\n, \t, \r, \\, \xNN); valid printable UTF-8 is kept.
std::string Escape(std::string_view bytes);

// Human text; each ends with a newline. A get that found nothing gives only
// the context line (or nothing when the context is empty).
std::string HumanGet(const ReadView& read);
// "ok", then who acknowledged, fallbacks and hinted owners, then the context.
std::string HumanWrite(const WriteView& write);
// A table of peers (state, suspicion, partitions, pending hints).
std::string HumanStatus(const StatusView& status);
// "name value" lines in name order.
std::string HumanStats(const std::map<std::string, int64_t>& stats);
std::string HumanQuery(const QueryView& query);
// One line per exchange that found a difference or failed, then a summary
// line ("repair: N exchanges ...").
std::string HumanRepair(const RepairView& repair);
// One line, no newline: "monju: unavailable: why (needed 2, alive 1)".
std::string HumanError(const CliError& error);

nlohmann::json JsonGet(const CliOptions& options, const ReadView& read);
nlohmann::json JsonWrite(const CliOptions& options, const WriteView& write);
nlohmann::json JsonStatus(const StatusView& status);
nlohmann::json JsonStats(const std::map<std::string, int64_t>& stats);
nlohmann::json JsonQuery(const CliOptions& options, const QueryView& query);
// Every exchange, and the totals.
nlohmann::json JsonRepair(const RepairView& repair);
nlohmann::json JsonError(const CliError& error);
// One line; invalid UTF-8 in strings is replaced, never thrown on.
std::string DumpJson(const nlohmann::json& value);

}  // namespace monju::cli
