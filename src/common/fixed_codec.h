// Big-endian fixed-width integers and length-prefixed byte strings, for the
// small record formats of storage, the hint store and cluster metadata. Readers are
// bounds-checked: they return false instead of reading past the input.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace monju::fixed {

inline void PutU32(std::string& out, uint32_t v) {
  const char b[4] = {char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
  out.append(b, 4);
}

inline bool GetU32(std::string_view in, size_t& pos, uint32_t& v) {
  if (in.size() - pos < 4) return false;
  v = (uint32_t(uint8_t(in[pos])) << 24) | (uint32_t(uint8_t(in[pos + 1])) << 16) |
      (uint32_t(uint8_t(in[pos + 2])) << 8) | uint32_t(uint8_t(in[pos + 3]));
  pos += 4;
  return true;
}

inline void PutU64(std::string& out, uint64_t v) {
  PutU32(out, static_cast<uint32_t>(v >> 32));
  PutU32(out, static_cast<uint32_t>(v));
}

inline bool GetU64(std::string_view in, size_t& pos, uint64_t& v) {
  uint32_t hi, lo;
  if (!GetU32(in, pos, hi) || !GetU32(in, pos, lo)) return false;
  v = (uint64_t(hi) << 32) | lo;
  return true;
}

inline bool GetU8(std::string_view in, size_t& pos, uint8_t& v) {
  if (pos >= in.size()) return false;
  v = static_cast<uint8_t>(in[pos++]);
  return true;
}

// A u32 length, then the bytes.
inline void PutBytes(std::string& out, std::string_view bytes) {
  PutU32(out, static_cast<uint32_t>(bytes.size()));
  out.append(bytes);
}

inline bool GetBytes(std::string_view in, size_t& pos, std::string& out) {
  uint32_t n;
  if (!GetU32(in, pos, n) || in.size() - pos < n) return false;
  out.assign(in.substr(pos, n));
  pos += n;
  return true;
}

// GetBytes() without a copy: `out` points into `in`.
inline bool GetBytesView(std::string_view in, size_t& pos, std::string_view& out) {
  uint32_t n;
  if (!GetU32(in, pos, n) || in.size() - pos < n) return false;
  out = in.substr(pos, n);
  pos += n;
  return true;
}

}  // namespace monju::fixed
