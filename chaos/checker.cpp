#include "checker.h"

#include <set>
#include <unordered_map>

#include "element_set.h"

namespace monju::chaos {

namespace {

bool IsWriteLike(OpKind k) { return k != OpKind::kRead; }
bool MayHaveApplied(const Op& op) { return op.outcome != OpOutcome::kFail; }

std::string Describe(const Op& op) {
  return std::string(OpKindName(op.kind)) + " #" + std::to_string(op.id) + " by client " +
         std::to_string(op.client) + " via node " + std::to_string(op.node) + " of '" + op.value + "' to " + op.key +
         " (" + OpOutcomeName(op.outcome) + ", " + std::to_string(op.start_us) + ".." +
         std::to_string(op.end_us) + " us)";
}

void Example(std::vector<std::string>* examples, std::string text) {
  if (examples->size() < 10) examples->push_back(std::move(text));
}

// What the end state of one key shows.
struct KeyEnd {
  std::set<std::string> values;    // live values on any readable owner
  std::set<std::string> elements;  // set-add elements in those values
};

// Survival of register writes: present, or read (so replaced) by a later op
// that may have applied and, for a write, survived itself.
class Survival {
 public:
  Survival(const std::vector<Op>& ops, const std::map<std::string, KeyEnd>& ends) : ends_(ends) {
    for (const Op& op : ops) {
      if (!IsWriteLike(op.kind) || !MayHaveApplied(op)) continue;
      for (const auto& v : op.observed) readers_[Id(op.key, v)].push_back(&op);
    }
  }

  bool Survived(const std::string& key, const std::string& value) {
    // Iterative depth-first search over "read by" edges; a cycle (impossible
    // in a real history) counts as not survived instead of looping.
    const std::string root = Id(key, value);
    if (auto it = memo_.find(root); it != memo_.end()) return it->second == kYes;
    struct Frame {
      std::string id;
      size_t next = 0;  // the reader being looked at
    };
    std::vector<Frame> stack{{root}};
    memo_[root] = kVisiting;
    while (!stack.empty()) {
      const std::string id = stack.back().id;
      size_t next = stack.back().next;
      bool yes = next == 0 && Present(id);
      bool descended = false;
      auto readers = readers_.find(id);
      const size_t count = readers == readers_.end() ? 0 : readers->second.size();
      while (!yes && next < count) {
        const Op* reader = readers->second[next];
        if (reader->kind == OpKind::kDelete) {
          yes = true;  // a delete that may have applied replaced it
          break;
        }
        const std::string child = Id(reader->key, reader->value);
        auto m = memo_.find(child);
        if (m == memo_.end()) {  // look at it first; this reader is seen again after
          memo_[child] = kVisiting;
          stack.back().next = next;
          stack.push_back({child});
          descended = true;
          break;
        }
        if (m->second == kYes) {
          yes = true;
          break;
        }
        ++next;  // not survived (or on the current path)
      }
      if (descended) continue;
      memo_[id] = yes ? kYes : kNo;
      stack.pop_back();
    }
    return memo_[root] == kYes;
  }

 private:
  enum State { kVisiting, kYes, kNo };
  static std::string Id(const std::string& key, const std::string& value) { return key + '\0' + value; }
  bool Present(const std::string& id) const {
    const size_t sep = id.find('\0');
    auto e = ends_.find(id.substr(0, sep));
    return e != ends_.end() && e->second.values.count(id.substr(sep + 1)) > 0;
  }

  const std::map<std::string, KeyEnd>& ends_;
  std::unordered_map<std::string, std::vector<const Op*>> readers_;
  std::unordered_map<std::string, int> memo_;
};

}  // namespace

CheckResult Check(const std::vector<Op>& history, const FinalState& final_state) {
  CheckResult r;
  std::map<std::string, KeyEnd> ends;
  for (const auto& [key, copies] : final_state) {
    ++r.keys;
    KeyEnd& end = ends[key];
    const SiblingSet* first = nullptr;
    bool divergent = false;
    for (const ReplicaCopy& copy : copies) {
      if (!copy.versions) {
        ++r.unreadable_copies;
        divergent = true;
        continue;
      }
      for (const auto& v : copy.versions->LiveValues()) end.values.insert(v);
      if (!first) {
        first = &*copy.versions;
      } else if (!(*first == *copy.versions)) {
        divergent = true;
      }
    }
    end.elements = UnionOfElements({end.values.begin(), end.values.end()});
    if (divergent) {
      ++r.divergent_keys;
      std::string text = key + ":";
      for (const ReplicaCopy& copy : copies)
        text += " " + copy.node + "=" +
                (copy.versions ? std::to_string(copy.versions->size()) + " versions" : std::string("unreadable"));
      Example(&r.divergent_examples, text);
    }
  }

  Survival survival(history, ends);
  for (const Op& op : history) {
    ++r.ops;
    if (op.outcome == OpOutcome::kFail) ++r.failed;
    if (op.outcome == OpOutcome::kUnknown) ++r.unknown;
    if (!IsWriteLike(op.kind)) continue;
    ++r.writes;
    const KeyEnd& end = ends[op.key];
    if (op.outcome == OpOutcome::kUnknown) {
      bool present = op.kind == OpKind::kAdd ? end.elements.count(op.value) > 0 : end.values.count(op.value) > 0;
      if (present) ++r.unknown_present;
    }
    if (op.outcome != OpOutcome::kOk) continue;
    ++r.acknowledged;
    switch (op.kind) {
      case OpKind::kAdd:
        ++r.set_elements_acknowledged;
        if (end.elements.count(op.value) == 0) {
          ++r.lost;
          Example(&r.lost_examples, "element of " + Describe(op) + " is in no final value");
        }
        break;
      case OpKind::kWrite:
      case OpKind::kCreate:
        if (!survival.Survived(op.key, op.value)) {
          ++r.lost;
          Example(&r.lost_examples, Describe(op) + " is neither present nor replaced by a later write");
        }
        break;
      default:
        break;
    }
    // What an acknowledged op read, it replaced: it must not be back.
    for (const auto& v : op.observed) {
      if (end.values.count(v) == 0) continue;
      ++r.resurrected;
      Example(&r.resurrected_examples, "'" + v + "' is present although " + Describe(op) + " replaced it");
    }
  }
  return r;
}

}  // namespace monju::chaos
