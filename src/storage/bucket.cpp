#include "storage/bucket.h"

#include "common/fixed_codec.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace monju {
namespace {

using fixed::GetBytes;
using fixed::GetU32;
using fixed::GetU64;
using fixed::PutBytes;
using fixed::PutU32;
using fixed::PutU64;

constexpr uint32_t kWithDigests = 0x80000000u;  // v2: count | this, a digest after each entry

bool Less(const Bucket::Entry& e, std::string_view pk, std::string_view sk) {
  int c = std::string_view(e.sk).compare(sk);
  return c < 0 || (c == 0 && std::string_view(e.pk) < pk);
}

}  // namespace

StatusOr<Bucket> Bucket::Decode(std::string_view bytes) {
  Bucket b;
  size_t pos = 0;
  uint32_t n;
  if (!GetU32(bytes, pos, n)) return Status::Corruption("malformed bucket header");
  const bool with_digests = (n & kWithDigests) != 0;
  n &= ~kWithDigests;
  if (n > bytes.size()) return Status::Corruption("malformed bucket header");
  b.entries_.resize(n);
  for (auto& e : b.entries_) {
    if (!GetBytes(bytes, pos, e.pk) || !GetBytes(bytes, pos, e.sk) || !GetBytes(bytes, pos, e.record) ||
        (with_digests && !GetU64(bytes, pos, e.digest)))
      return Status::Corruption("malformed bucket entry");
  }
  if (pos != bytes.size()) return Status::Corruption("trailing bytes in bucket");
  return b;
}

StatusOr<std::vector<Bucket::EntryView>> Bucket::DecodeViews(std::string_view bytes) {
  size_t pos = 0;
  uint32_t n;
  if (!GetU32(bytes, pos, n)) return Status::Corruption("malformed bucket header");
  const bool with_digests = (n & kWithDigests) != 0;
  n &= ~kWithDigests;
  if (n > bytes.size()) return Status::Corruption("malformed bucket header");
  std::vector<EntryView> views(n);
  for (auto& e : views) {
    uint64_t digest;
    if (!fixed::GetBytesView(bytes, pos, e.pk) || !fixed::GetBytesView(bytes, pos, e.sk) ||
        !fixed::GetBytesView(bytes, pos, e.record) || (with_digests && !GetU64(bytes, pos, digest)))
      return Status::Corruption("malformed bucket entry");
  }
  if (pos != bytes.size()) return Status::Corruption("trailing bytes in bucket");
  return views;
}

std::string Bucket::Encode() const {
  std::string out;
  PutU32(out, static_cast<uint32_t>(entries_.size()) | kWithDigests);
  for (const auto& e : entries_) {
    PutBytes(out, e.pk);
    PutBytes(out, e.sk);
    PutBytes(out, e.record);
    PutU64(out, e.digest);
  }
  return out;
}

const Bucket::Entry* Bucket::Find(std::string_view pk, std::string_view sk) const {
  for (const auto& e : entries_)
    if (e.pk == pk && e.sk == sk) return &e;
  return nullptr;
}

void Bucket::Upsert(std::string_view pk, std::string_view sk, std::string record, uint64_t digest) {
  auto it = std::find_if(entries_.begin(), entries_.end(),
                         [&](const Entry& e) { return !Less(e, pk, sk); });
  if (it != entries_.end() && it->pk == pk && it->sk == sk) {
    it->record = std::move(record);
    it->digest = digest;
    return;
  }
  entries_.insert(it, Entry{std::string(pk), std::string(sk), std::move(record), digest});
}

void Bucket::Erase(std::string_view pk, std::string_view sk) {
  std::erase_if(entries_, [&](const Entry& e) { return e.pk == pk && e.sk == sk; });
}

}  // namespace monju
