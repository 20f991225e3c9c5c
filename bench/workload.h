// The pure parts of a YCSB-style workload: which operation comes next, which
// record it touches, how records are named and what values look like. No I/O
// and no clocks; randomness comes from the caller's seeded generator, so
// every choice is reproducible from the seed.
//
// Thread safety: the choosers are immutable after construction and may be
// shared; each thread passes its own Rng.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <string_view>

#include "common/status.h"

namespace monju::bench {

using Rng = std::mt19937_64;

// Rng seed of thread `index` for a run seeded with `seed` (splitmix64 of the
// pair, so neighbouring threads get unrelated streams).
uint64_t ThreadSeed(uint64_t seed, uint64_t index);

enum class OpType { kRead = 0, kUpdate = 1, kQuery = 2, kInsert = 3 };
inline constexpr size_t kOpTypes = 4;
const char* OpName(OpType op);

// Proportions of the run phase's operations (inserts happen in the load phase).
struct OpMix {
  double read = 0, update = 0, query = 0;
  std::string ToString() const;  // "read 50% update 50%"
};

// YCSB's core workloads by name: a (50/50 read/update), b (95/5), c (read
// only), write (update only), query (query only: one pk's items in sk order).
// InvalidArgument for other names.
StatusOr<OpMix> WorkloadMix(std::string_view name);
// "R:U:Q" weights, e.g. "90:10:0"; InvalidArgument when malformed or all zero.
StatusOr<OpMix> ParseMix(std::string_view text);

class OpChooser {
 public:
  explicit OpChooser(const OpMix& mix);
  OpType Next(Rng& rng) const;

 private:
  double read_cut_, update_cut_;  // cumulative, normalised to 1
};

// Picks a record number in [0, records).
class KeyChooser {
 public:
  virtual ~KeyChooser() = default;
  virtual uint64_t Next(Rng& rng) const = 0;
  virtual std::string Describe() const = 0;
};

// Every record equally likely.
class UniformChooser final : public KeyChooser {
 public:
  explicit UniformChooser(uint64_t records);
  uint64_t Next(Rng& rng) const override;
  std::string Describe() const override;

 private:
  uint64_t records_;
};

// Zipfian ranks: rank 0 is the most popular, rank k has weight 1/(k+1)^theta
// (Gray et al., "Quickly generating billion-record synthetic databases";
// YCSB's generator). Construction is O(records) (the zeta sum).
class ZipfianRanks {
 public:
  ZipfianRanks(uint64_t records, double theta);
  uint64_t Next(Rng& rng) const;
  uint64_t records() const { return n_; }
  double theta() const { return theta_; }

 private:
  uint64_t n_;
  double theta_, alpha_, zetan_, eta_, half_pow_theta_;
};

// Zipfian popularity with the popular records spread over the key space (a
// rank is hashed to a record, as YCSB's scrambled zipfian does), so hot keys
// do not all land in one partition.
class ZipfianChooser final : public KeyChooser {
 public:
  ZipfianChooser(uint64_t records, double theta = 0.99);
  uint64_t Next(Rng& rng) const override;
  std::string Describe() const override;
  // The record a rank maps to (a fixed permutation-like hash).
  uint64_t RecordOfRank(uint64_t rank) const;

 private:
  ZipfianRanks ranks_;
};

// "zipfian" or "uniform"; InvalidArgument otherwise.
StatusOr<std::unique_ptr<KeyChooser>> MakeKeyChooser(std::string_view distribution, uint64_t records,
                                                    double theta);

// How record numbers become (pk, sk): records are grouped `rows_per_pk` to a
// partition key, so a query of one pk returns up to that many items.
struct ItemName {
  std::string pk, sk;
};
class KeyLayout {
 public:
  KeyLayout(uint64_t records, uint32_t rows_per_pk);
  ItemName Name(uint64_t record) const;
  // The pk of a record (for queries).
  std::string Pk(uint64_t record) const;
  uint64_t records() const { return records_; }
  uint32_t rows_per_pk() const { return rows_; }

 private:
  uint64_t records_;
  uint32_t rows_;
};

// Values of a fixed size whose bytes differ from write to write (printable,
// so every system stores them as they are).
class ValueMaker {
 public:
  ValueMaker(size_t size, uint64_t seed);
  // A view into an internal buffer, valid until the next call.
  std::string_view Next(Rng& rng);

 private:
  size_t size_;
  std::string pool_;
};

}  // namespace monju::bench
