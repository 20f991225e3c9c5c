#include "clock/codec.h"

#include <algorithm>
#include <cstdint>

namespace monju {
namespace {

constexpr uint8_t kFormat = 1;
constexpr uint64_t kMaxActors = 4096;
constexpr uint64_t kMaxCloud = 1 << 16;
constexpr uint64_t kMaxSiblings = 1 << 16;
constexpr uint64_t kMaxActorLen = 256;

// A version's flags byte. kTombstoneNoTime is what records written before
// delete times existed hold; it still decodes (time 0, unknown).
constexpr uint8_t kLive = 0;
constexpr uint8_t kTombstoneNoTime = 1;
constexpr uint8_t kTombstoneTimed = 2;  // followed by a varint: deleted_unix_ms

void PutVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out += char((v & 0x7f) | 0x80);
    v >>= 7;
  }
  out += char(v);
}

void PutBytes(std::string& out, std::string_view b) {
  PutVarint(out, b.size());
  out.append(b);
}

class Reader {
 public:
  explicit Reader(std::string_view b) : b_(b) {}
  bool Varint(uint64_t& v) {
    v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= b_.size()) return false;
      uint8_t byte = uint8_t(b_[pos_++]);
      v |= uint64_t(byte & 0x7f) << shift;
      if (!(byte & 0x80)) return true;
    }
    return false;
  }
  bool Bytes(std::string& s, uint64_t max_len) {
    uint64_t n;
    if (!Varint(n) || n > max_len || n > b_.size() - pos_) return false;
    s.assign(b_.substr(pos_, n));
    pos_ += n;
    return true;
  }
  bool Skip(uint64_t max_len) {
    uint64_t n;
    if (!Varint(n) || n > max_len || n > b_.size() - pos_) return false;
    pos_ += n;
    return true;
  }
  bool Byte(uint8_t& v) {
    if (pos_ >= b_.size()) return false;
    v = uint8_t(b_[pos_++]);
    return true;
  }
  bool done() const { return pos_ == b_.size(); }

 private:
  std::string_view b_;
  size_t pos_ = 0;
};

void PutContext(std::string& out, const CausalContext& c) {
  PutVarint(out, c.entries().size());
  for (const auto& [actor, e] : c.entries()) {
    PutBytes(out, actor);
    PutVarint(out, e.base);
    PutVarint(out, e.cloud.size());
    uint64_t prev = e.base;
    for (uint64_t x : e.cloud) {  // ascending, all > base: store deltas
      PutVarint(out, x - prev);
      prev = x;
    }
  }
}

bool ReadContext(Reader& r, CausalContext& c) {
  uint64_t n;
  if (!r.Varint(n) || n > kMaxActors) return false;
  for (uint64_t i = 0; i < n; ++i) {
    std::string actor;
    CausalContext::Entry e;
    uint64_t cloud_n;
    if (!r.Bytes(actor, kMaxActorLen) || actor.empty() || !r.Varint(e.base) || !r.Varint(cloud_n) ||
        cloud_n > kMaxCloud)
      return false;
    uint64_t prev = e.base;
    for (uint64_t j = 0; j < cloud_n; ++j) {
      uint64_t d;
      if (!r.Varint(d) || d == 0 || prev + d < prev) return false;
      prev += d;
      e.cloud.insert(e.cloud.end(), prev);  // ascending: append at the end
    }
    c.SetEntry(std::move(actor), std::move(e));
  }
  return true;
}

void PutVersion(std::string& out, const Version& v) {
  PutBytes(out, v.dot.actor);
  PutVarint(out, v.dot.counter);
  if (v.tombstone) {
    out += char(kTombstoneTimed);
    PutVarint(out, uint64_t(std::max<int64_t>(v.deleted_unix_ms, 0)));  // a negative time is no time
  } else {
    out += char(kLive);
  }
  PutContext(out, v.past);
  PutBytes(out, v.value);
}

bool ReadVersion(Reader& r, Version& v) {
  uint8_t flags;
  if (!r.Bytes(v.dot.actor, kMaxActorLen) || v.dot.actor.empty() || !r.Varint(v.dot.counter) ||
      v.dot.counter == 0 || !r.Byte(flags) || flags > kTombstoneTimed)
    return false;
  v.tombstone = flags == kTombstoneNoTime || flags == kTombstoneTimed;
  if (flags == kTombstoneTimed) {
    uint64_t ms;
    if (!r.Varint(ms) || ms > uint64_t(INT64_MAX)) return false;
    v.deleted_unix_ms = int64_t(ms);
  }
  if (!ReadContext(r, v.past)) return false;
  if (!r.Bytes(v.value, UINT32_MAX)) return false;
  return !(v.tombstone && !v.value.empty());
}

// A version's dot; the rest is checked as ReadVersion would, but not kept.
bool ReadDotOnly(Reader& r, Dot& dot) {
  uint8_t flags;
  if (!r.Bytes(dot.actor, kMaxActorLen) || dot.actor.empty() || !r.Varint(dot.counter) || dot.counter == 0 ||
      !r.Byte(flags) || flags > kTombstoneTimed)
    return false;
  if (flags == kTombstoneTimed) {
    uint64_t ms;
    if (!r.Varint(ms) || ms > uint64_t(INT64_MAX)) return false;
  }
  CausalContext past;
  if (!ReadContext(r, past)) return false;
  return r.Skip(UINT32_MAX);
}

}  // namespace

std::string EncodeContext(const CausalContext& c) {
  if (c.empty()) return {};
  std::string out(1, char(kFormat));
  PutContext(out, c);
  return out;
}

StatusOr<CausalContext> DecodeContext(std::string_view bytes) {
  CausalContext c;
  if (bytes.empty()) return c;
  Reader r(bytes);
  uint8_t format;
  if (!r.Byte(format) || format != kFormat || !ReadContext(r, c) || !r.done())
    return Status::Corruption("malformed context");
  return c;
}

std::string EncodeVersion(const Version& v) {
  std::string out(1, char(kFormat));
  PutVersion(out, v);
  return out;
}

StatusOr<Version> DecodeVersion(std::string_view bytes) {
  Version v;
  Reader r(bytes);
  uint8_t format;
  if (!r.Byte(format) || format != kFormat || !ReadVersion(r, v) || !r.done())
    return Status::Corruption("malformed version");
  return v;
}

std::string EncodeSiblings(const SiblingSet& s) {
  if (s.empty()) return {};
  std::string out(1, char(kFormat));
  PutVarint(out, s.size());
  for (const auto& v : s.versions()) PutVersion(out, v);
  return out;
}

StatusOr<SiblingSet> DecodeSiblings(std::string_view bytes) {
  if (bytes.empty()) return SiblingSet();
  Reader r(bytes);
  uint8_t format;
  uint64_t n;
  // Every version takes several bytes: a count above the input length is a
  // lie, and must not size the allocation below.
  if (!r.Byte(format) || format != kFormat || !r.Varint(n) || n > kMaxSiblings || n > bytes.size())
    return Status::Corruption("malformed sibling set");
  std::vector<Version> versions(n);
  for (auto& v : versions)
    if (!ReadVersion(r, v)) return Status::Corruption("malformed sibling set");
  if (!r.done()) return Status::Corruption("trailing bytes after sibling set");
  return SiblingSet(std::move(versions));
}

StatusOr<std::vector<Dot>> DecodeDots(std::string_view bytes) {
  std::vector<Dot> dots;
  if (bytes.empty()) return dots;
  Reader r(bytes);
  uint8_t format;
  uint64_t n;
  if (!r.Byte(format) || format != kFormat || !r.Varint(n) || n > kMaxSiblings || n > bytes.size())
    return Status::Corruption("malformed sibling set");
  dots.resize(n);
  for (auto& d : dots)
    if (!ReadDotOnly(r, d)) return Status::Corruption("malformed sibling set");
  if (!r.done()) return Status::Corruption("trailing bytes after sibling set");
  return dots;
}

}  // namespace monju
