#include "history.h"

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/base64.h"

namespace monju::chaos {

namespace {

const std::map<std::string, OpKind>& KindsByName() {
  static const std::map<std::string, OpKind> m = {{"read", OpKind::kRead},     {"write", OpKind::kWrite},
                                                  {"add", OpKind::kAdd},       {"create", OpKind::kCreate},
                                                  {"delete", OpKind::kDelete}};
  return m;
}

const std::map<std::string, OpOutcome>& OutcomesByName() {
  static const std::map<std::string, OpOutcome> m = {
      {"ok", OpOutcome::kOk}, {"fail", OpOutcome::kFail}, {"unknown", OpOutcome::kUnknown}};
  return m;
}

}  // namespace

const char* OpKindName(OpKind k) {
  switch (k) {
    case OpKind::kRead: return "read";
    case OpKind::kWrite: return "write";
    case OpKind::kAdd: return "add";
    case OpKind::kCreate: return "create";
    case OpKind::kDelete: return "delete";
  }
  return "?";
}

const char* OpOutcomeName(OpOutcome o) {
  switch (o) {
    case OpOutcome::kOk: return "ok";
    case OpOutcome::kFail: return "fail";
    case OpOutcome::kUnknown: return "unknown";
  }
  return "?";
}

uint64_t History::NextId() {
  std::lock_guard<std::mutex> lock(mu_);
  return next_id_++;
}

void History::Append(Op op) {
  std::lock_guard<std::mutex> lock(mu_);
  ops_.push_back(std::move(op));
}

std::vector<Op> History::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ops_;
}

size_t History::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ops_.size();
}

Status WriteHistory(const std::vector<Op>& ops, const std::string& path) {
  std::ofstream out(path, std::ios::trunc);
  if (!out) return Status::IOError("cannot write " + path);
  for (const Op& op : ops) {
    // Keys and values are the workload's own ASCII, but base64 keeps the
    // file valid whatever they hold.
    nlohmann::json j = {{"id", op.id},
                        {"client", op.client},
                        {"node", op.node},
                        {"kind", OpKindName(op.kind)},
                        {"key", Base64Encode(op.key)},
                        {"value", Base64Encode(op.value)},
                        {"start_us", op.start_us},
                        {"end_us", op.end_us},
                        {"outcome", OpOutcomeName(op.outcome)},
                        {"error", op.error}};
    nlohmann::json observed = nlohmann::json::array();
    for (const auto& v : op.observed) observed.push_back(Base64Encode(v));
    j["observed"] = std::move(observed);
    out << j.dump() << "\n";
  }
  out.flush();
  if (!out) return Status::IOError("write to " + path + " failed");
  return Status::OK();
}

StatusOr<std::vector<Op>> ParseHistory(const std::string& jsonl) {
  std::vector<Op> ops;
  std::istringstream in(jsonl);
  std::string line;
  int number = 0;
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument("history line " + std::to_string(number) + ": " + why);
  };
  auto decode = [](const nlohmann::json& v, std::string* out) {
    auto d = Base64Decode(v.get<std::string>());
    if (!d) return false;
    *out = std::move(*d);
    return true;
  };
  while (std::getline(in, line)) {
    ++number;
    if (line.empty()) continue;
    try {
      nlohmann::json j = nlohmann::json::parse(line);
      Op op;
      op.id = j.at("id").get<uint64_t>();
      op.client = j.at("client").get<int>();
      op.node = j.at("node").get<int>();
      auto kind = KindsByName().find(j.at("kind").get<std::string>());
      auto outcome = OutcomesByName().find(j.at("outcome").get<std::string>());
      if (kind == KindsByName().end()) return bad("unknown kind");
      if (outcome == OutcomesByName().end()) return bad("unknown outcome");
      op.kind = kind->second;
      op.outcome = outcome->second;
      if (!decode(j.at("key"), &op.key) || !decode(j.at("value"), &op.value)) return bad("bad base64");
      for (const auto& v : j.at("observed")) {
        std::string s;
        if (!decode(v, &s)) return bad("bad base64 in observed");
        op.observed.push_back(std::move(s));
      }
      op.start_us = j.at("start_us").get<int64_t>();
      op.end_us = j.at("end_us").get<int64_t>();
      op.error = j.at("error").get<std::string>();
      ops.push_back(std::move(op));
    } catch (const nlohmann::json::exception& e) {
      return bad(e.what());
    }
  }
  return ops;
}

}  // namespace monju::chaos
