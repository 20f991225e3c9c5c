// The anti-entropy digest of one stored item: a hash of its key and of the
// dots of its sibling set.
//
// A dot names one version for good (dots are never reissued with other
// content), so two replicas hold the same versions of a key exactly when they
// hold the same dots, whatever bytes their records happen to be (a record
// rewritten in a newer encoding digests the same). Superseded versions are
// not part of a record and do not count. The dots are sorted first, so the
// order they were stored in does not matter either. A record that does not
// decode digests its raw bytes instead (it differs from every good one).
//
// Every node of a cluster must use the same digest: kClockDigestName names
// this one in the store's index and in the anti-entropy protocol.
#pragma once

#include <cstdint>
#include <string_view>

namespace monju {

inline constexpr char kClockDigestName[] = "clock-v1";

// Never 0. Matches storage's RecordDigestFn.
uint64_t ClockDigest(std::string_view pk, std::string_view sk, std::string_view record);

}  // namespace monju
