// Dotted version vectors for one key.
//
// Every write is identified by a Dot (actor, counter): the actor is the
// coordinating node's id plus its incarnation, the counter is that actor's
// per-key sequence. A Version carries its Dot and the causal context the
// writer had seen ("past"). Version A is superseded by version B exactly when
// B's past contains A's dot; otherwise, unless they are the same dot, they are
// concurrent siblings.
//
// A CausalContext is exact: a contiguous prefix 1..base per actor plus a
// "cloud" of isolated counters. A context from a read therefore covers exactly
// the versions that read saw, even when a replica received dot 31 of an actor
// before dot 30, which a plain max-counter vector would wrongly cover.
//
// All types are values; none is thread-safe for concurrent mutation.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace monju {

struct Dot {
  std::string actor;
  uint64_t counter = 0;
  bool operator==(const Dot&) const = default;
  auto operator<=>(const Dot&) const = default;
};

class CausalContext {
 public:
  struct Entry {
    uint64_t base = 0;          // every counter 1..base is included
    std::set<uint64_t> cloud;   // further counters, all > base + 1
    bool operator==(const Entry&) const = default;
  };

  bool Contains(const Dot& dot) const;
  // True when every dot of `other` is contained here.
  bool Covers(const CausalContext& other) const;
  void Add(const Dot& dot);
  void Merge(const CausalContext& other);
  // Highest counter of `actor` contained here, 0 when none.
  uint64_t MaxCounter(const std::string& actor) const;
  bool empty() const { return entries_.empty(); }
  const std::map<std::string, Entry>& entries() const { return entries_; }
  // For decoding: installs an entry as given (normalised: cloud above base).
  void SetEntry(std::string actor, Entry entry);
  bool operator==(const CausalContext&) const = default;

 private:
  static void Compact(Entry& e);
  std::map<std::string, Entry> entries_;
};

struct Version {
  Dot dot;
  CausalContext past;
  bool tombstone = false;
  std::string value;  // empty for tombstones
  // When the delete was written (coordinator's wall clock, Unix ms). Only
  // meaningful for tombstones: it starts the reaping grace period. 0 = unknown
  // (written before delete times were recorded), which counts as long ago.
  int64_t deleted_unix_ms = 0;

  // past plus this version's own dot: what a reader of it has seen.
  CausalContext FullContext() const;
  bool operator==(const Version&) const = default;
};

enum class Order { kEqual, kBefore, kAfter, kConcurrent };
// kBefore: a is superseded by b. kAfter: a supersedes b.
Order Compare(const Version& a, const Version& b);

// The current versions of one key: no member supersedes another.
class SiblingSet {
 public:
  SiblingSet() = default;
  explicit SiblingSet(std::vector<Version> versions);

  // Merges one version by causality: a version already present or superseded
  // changes nothing; otherwise it joins and drops what it supersedes.
  // Returns true when the set changed. Idempotent and order-independent.
  bool Add(const Version& v);
  // Add() of every version of `other`.
  bool Merge(const SiblingSet& other);

  // Join of every sibling's FullContext(): what a reader of this set has seen.
  CausalContext Context() const;
  // Highest counter `actor` has in this set's versions or their pasts.
  uint64_t MaxCounter(const std::string& actor) const;
  // Values of siblings that are not tombstones, in a stable order (by dot).
  std::vector<std::string> LiveValues() const;
  bool HasLive() const;
  // Non-empty and every version a tombstone: the key reads as deleted.
  bool AllTombstones() const;
  // Latest deleted_unix_ms among the tombstones; 0 when there are none or no
  // tombstone knows its delete time.
  int64_t LatestDeleteMs() const;
  bool empty() const { return versions_.empty(); }
  size_t size() const { return versions_.size(); }
  const std::vector<Version>& versions() const { return versions_; }
  bool operator==(const SiblingSet&) const = default;

 private:
  std::vector<Version> versions_;  // sorted by dot
};

}  // namespace monju
