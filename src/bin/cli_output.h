// Rendering of `monju` results and errors: human text and JSON. Pure: builds
// strings and JSON values; the caller prints them.
#pragma once

#include <nlohmann/json.hpp>
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
std::string HumanWrite(const std::string& context);
std::string HumanQuery(const QueryView& query);
// One line, no newline: "monju: unavailable: why (needed 2, alive 1)".
std::string HumanError(const CliError& error);

nlohmann::json JsonGet(const CliOptions& options, const ReadView& read);
nlohmann::json JsonWrite(const CliOptions& options, const std::string& context);
nlohmann::json JsonQuery(const CliOptions& options, const QueryView& query);
nlohmann::json JsonError(const CliError& error);
// One line; invalid UTF-8 in strings is replaced, never thrown on.
std::string DumpJson(const nlohmann::json& value);

}  // namespace monju::cli
