// Byte encodings of clocks and versions: one format for the LMDB records,
// the node-to-node RPCs and the client's opaque context.
//
// Decoding treats its input as untrusted: every length is bounds-checked, and
// malformed bytes give Status::Corruption, never a crash or a huge allocation.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "clock/causal.h"
#include "common/status.h"

namespace monju {

std::string EncodeContext(const CausalContext& c);
StatusOr<CausalContext> DecodeContext(std::string_view bytes);

std::string EncodeVersion(const Version& v);
StatusOr<Version> DecodeVersion(std::string_view bytes);

std::string EncodeSiblings(const SiblingSet& s);
// An empty input decodes to an empty set (an absent key).
StatusOr<SiblingSet> DecodeSiblings(std::string_view bytes);

// The dots of an encoded sibling set, in stored order, without copying the
// values (anti-entropy digests). Corruption as DecodeSiblings would give.
StatusOr<std::vector<Dot>> DecodeDots(std::string_view siblings);

}  // namespace monju
