#include "storage/bucket.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace monju {
namespace {

void PutU32(std::string& out, uint32_t v) {
  char b[4] = {char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
  out.append(b, 4);
}

bool GetU32(std::string_view in, size_t& pos, uint32_t& v) {
  if (in.size() - pos < 4) return false;
  v = (uint32_t(uint8_t(in[pos])) << 24) | (uint32_t(uint8_t(in[pos + 1])) << 16) |
      (uint32_t(uint8_t(in[pos + 2])) << 8) | uint32_t(uint8_t(in[pos + 3]));
  pos += 4;
  return true;
}

bool GetBytes(std::string_view in, size_t& pos, std::string& out) {
  uint32_t n;
  if (!GetU32(in, pos, n) || in.size() - pos < n) return false;
  out.assign(in.substr(pos, n));
  pos += n;
  return true;
}

bool Less(const Bucket::Entry& e, std::string_view pk, std::string_view sk) {
  int c = std::string_view(e.sk).compare(sk);
  return c < 0 || (c == 0 && std::string_view(e.pk) < pk);
}

}  // namespace

StatusOr<Bucket> Bucket::Decode(std::string_view bytes) {
  Bucket b;
  size_t pos = 0;
  uint32_t n;
  if (!GetU32(bytes, pos, n) || n > bytes.size()) return Status::Corruption("malformed bucket header");
  b.entries_.resize(n);
  for (auto& e : b.entries_) {
    if (!GetBytes(bytes, pos, e.pk) || !GetBytes(bytes, pos, e.sk) || !GetBytes(bytes, pos, e.record))
      return Status::Corruption("malformed bucket entry");
  }
  if (pos != bytes.size()) return Status::Corruption("trailing bytes in bucket");
  return b;
}

std::string Bucket::Encode() const {
  std::string out;
  PutU32(out, static_cast<uint32_t>(entries_.size()));
  for (const auto& e : entries_) {
    PutU32(out, static_cast<uint32_t>(e.pk.size()));
    out += e.pk;
    PutU32(out, static_cast<uint32_t>(e.sk.size()));
    out += e.sk;
    PutU32(out, static_cast<uint32_t>(e.record.size()));
    out += e.record;
  }
  return out;
}

const Bucket::Entry* Bucket::Find(std::string_view pk, std::string_view sk) const {
  for (const auto& e : entries_)
    if (e.pk == pk && e.sk == sk) return &e;
  return nullptr;
}

void Bucket::Upsert(std::string_view pk, std::string_view sk, std::string record) {
  auto it = std::find_if(entries_.begin(), entries_.end(),
                         [&](const Entry& e) { return !Less(e, pk, sk); });
  if (it != entries_.end() && it->pk == pk && it->sk == sk) {
    it->record = std::move(record);
    return;
  }
  entries_.insert(it, Entry{std::string(pk), std::string(sk), std::move(record)});
}

void Bucket::Erase(std::string_view pk, std::string_view sk) {
  std::erase_if(entries_, [&](const Entry& e) { return e.pk == pk && e.sk == sk; });
}

}  // namespace monju
