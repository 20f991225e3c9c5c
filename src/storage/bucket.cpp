#include "storage/bucket.h"

#include "common/fixed_codec.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace monju {
namespace {

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

// The one reader of the encoding: calls reserve(count), then
// entry(pk, sk, record, digest) for each entry, the views pointing into
// `bytes`.
template <typename Reserve, typename OnEntry>
Status Parse(std::string_view bytes, Reserve&& reserve, OnEntry&& entry) {
  size_t pos = 0;
  uint32_t n;
  if (!GetU32(bytes, pos, n)) return Status::Corruption("malformed bucket header");
  const bool with_digests = (n & kWithDigests) != 0;
  n &= ~kWithDigests;
  if (n > bytes.size()) return Status::Corruption("malformed bucket header");
  reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    std::string_view pk, sk, record;
    uint64_t digest = 0;
    if (!fixed::GetBytesView(bytes, pos, pk) || !fixed::GetBytesView(bytes, pos, sk) ||
        !fixed::GetBytesView(bytes, pos, record) || (with_digests && !GetU64(bytes, pos, digest)))
      return Status::Corruption("malformed bucket entry");
    entry(pk, sk, record, digest);
  }
  if (pos != bytes.size()) return Status::Corruption("trailing bytes in bucket");
  return Status::OK();
}

}  // namespace

StatusOr<Bucket> Bucket::Decode(std::string_view bytes) {
  Bucket b;
  Status s = Parse(
      bytes, [&](uint32_t n) { b.entries_.reserve(n); },
      [&](std::string_view pk, std::string_view sk, std::string_view record, uint64_t digest) {
        b.entries_.push_back({std::string(pk), std::string(sk), std::string(record), digest});
      });
  if (!s.ok()) return s;
  return b;
}

StatusOr<std::vector<Bucket::EntryView>> Bucket::DecodeViews(std::string_view bytes) {
  std::vector<EntryView> views;
  Status s = Parse(
      bytes, [&](uint32_t n) { views.reserve(n); },
      [&](std::string_view pk, std::string_view sk, std::string_view record, uint64_t) {
        views.push_back({pk, sk, record});
      });
  if (!s.ok()) return s;
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
