#include "clock/clock_digest.h"

#define XXH_STATIC_LINKING_ONLY  // XXH3_state_t on the stack
#include <xxhash.h>

#include <algorithm>
#include <vector>

#include "clock/codec.h"

namespace monju {
namespace {

constexpr uint64_t kClockSeed = 0x6d6f6e6a752d6364;    // "monju-cd"
constexpr uint64_t kGarbageSeed = 0x6d6f6e6a752d6762;  // records that do not decode

void Update(XXH3_state_t* state, std::string_view bytes) {
  const auto n = static_cast<uint32_t>(bytes.size());
  unsigned char len[4] = {uint8_t(n), uint8_t(n >> 8), uint8_t(n >> 16), uint8_t(n >> 24)};
  XXH3_64bits_update(state, len, sizeof len);
  XXH3_64bits_update(state, bytes.data(), bytes.size());
}

void UpdateU64(XXH3_state_t* state, uint64_t v) {
  unsigned char b[8];
  for (int i = 0; i < 8; ++i) b[i] = uint8_t(v >> (8 * i));
  XXH3_64bits_update(state, b, sizeof b);
}

}  // namespace

uint64_t ClockDigest(std::string_view pk, std::string_view sk, std::string_view record) {
  XXH3_state_t state;
  auto dots = DecodeDots(record);
  XXH3_64bits_reset_withSeed(&state, dots.ok() ? kClockSeed : kGarbageSeed);
  Update(&state, pk);
  Update(&state, sk);
  if (dots.ok()) {
    std::vector<Dot>& sorted = dots.value();
    std::sort(sorted.begin(), sorted.end());
    UpdateU64(&state, sorted.size());
    for (const Dot& d : sorted) {
      Update(&state, d.actor);
      UpdateU64(&state, d.counter);
    }
  } else {
    Update(&state, record);
  }
  const uint64_t digest = XXH3_64bits_digest(&state);
  return digest ? digest : 1;
}

}  // namespace monju
