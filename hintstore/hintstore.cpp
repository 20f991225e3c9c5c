#include "hintstore.h"

#include <lmdb.h>

#include <filesystem>

#include "common/fixed_codec.h"

namespace monju {
namespace {

// LMDB key: owner length (1 byte) + owner + sequence (8 bytes, big-endian):
// one owner's hints are one range, in sequence order.
std::string HintKey(const std::string& owner, uint64_t sequence) {
  std::string k(1, char(owner.size()));
  k += owner;
  for (int i = 7; i >= 0; --i) k += char((sequence >> (8 * i)) & 0xff);
  return k;
}

bool ParseKey(std::string_view k, std::string* owner, uint64_t* sequence) {
  if (k.empty() || k.size() != 1 + size_t(uint8_t(k[0])) + 8) return false;
  *owner = std::string(k.substr(1, uint8_t(k[0])));
  *sequence = 0;
  for (size_t i = k.size() - 8; i < k.size(); ++i) *sequence = (*sequence << 8) | uint8_t(k[i]);
  return true;
}

using fixed::GetBytes;
using fixed::GetU32;
using fixed::PutBytes;
using fixed::PutU32;

std::string EncodeHint(const Hint& h) {
  std::string out;
  PutU32(out, h.partition);
  PutU32(out, uint32_t(h.created_unix_ms >> 32));
  PutU32(out, uint32_t(h.created_unix_ms & 0xffffffff));
  PutBytes(out, h.pk);
  PutBytes(out, h.sk);
  PutBytes(out, h.version);
  return out;
}

bool DecodeHint(std::string_view in, Hint* h) {
  size_t pos = 0;
  uint32_t hi, lo;
  if (!GetU32(in, pos, h->partition) || !GetU32(in, pos, hi) || !GetU32(in, pos, lo)) return false;
  h->created_unix_ms = static_cast<int64_t>((uint64_t(hi) << 32) | lo);
  return GetBytes(in, pos, h->pk) && GetBytes(in, pos, h->sk) && GetBytes(in, pos, h->version) && pos == in.size();
}

Status Err(const char* what, int rc) {
  std::string m = std::string(what) + ": " + mdb_strerror(rc);
  return rc == MDB_MAP_FULL || rc == ENOSPC ? Status::NoSpace(m) : Status::IOError(m);
}

MDB_val Val(std::string_view s) { return MDB_val{s.size(), const_cast<char*>(s.data())}; }

}  // namespace

class HintStore::Impl {
 public:
  ~Impl() {
    if (env_) mdb_env_close(env_);
  }

  Status Open(const std::string& path, HintLimits limits) {
    limits_ = limits;
    std::error_code ec;
    std::filesystem::create_directories(path, ec);
    if (ec) return Status::IOError("cannot create " + path + ": " + ec.message());
    int rc = mdb_env_create(&env_);
    if (rc) return Err("mdb_env_create", rc);
    if ((rc = mdb_env_set_mapsize(env_, limits.map_size_bytes))) return Err("mdb_env_set_mapsize", rc);
    if ((rc = mdb_env_open(env_, path.c_str(), MDB_NOTLS, 0644))) return Err("mdb_env_open", rc);
    // Rebuild the counters and the next sequence from what is on disk.
    MDB_txn* txn;
    if ((rc = mdb_txn_begin(env_, nullptr, 0, &txn))) return Err("mdb_txn_begin", rc);
    if ((rc = mdb_dbi_open(txn, nullptr, 0, &dbi_))) {
      mdb_txn_abort(txn);
      return Err("mdb_dbi_open", rc);
    }
    MDB_cursor* cur;
    if ((rc = mdb_cursor_open(txn, dbi_, &cur))) {
      mdb_txn_abort(txn);
      return Err("mdb_cursor_open", rc);
    }
    MDB_val k, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
      std::string owner;
      uint64_t seq;
      if (!ParseKey({static_cast<const char*>(k.mv_data), k.mv_size}, &owner, &seq)) continue;
      ++per_owner_[owner];
      ++total_;
      next_sequence_ = std::max(next_sequence_, seq + 1);
    }
    mdb_cursor_close(cur);
    if ((rc = mdb_txn_commit(txn))) return Err("mdb_txn_commit", rc);
    return Status::OK();
  }

  Status Add(const Hint& hint) {
    if (hint.owner.empty() || hint.owner.size() > 255) return Status::InvalidArgument("bad hint owner");
    std::lock_guard<std::mutex> lock(mu_);  // one writer: LMDB allows one anyway
    if (total_ >= limits_.max_total)
      return Status::NoSpace("hint store holds " + std::to_string(total_) + " hints, the total cap");
    if (per_owner_[hint.owner] >= limits_.max_per_owner)
      return Status::NoSpace("hint store holds " + std::to_string(per_owner_[hint.owner]) + " hints for " +
                             hint.owner + ", the per-owner cap");
    std::string key = HintKey(hint.owner, next_sequence_);
    std::string value = EncodeHint(hint);
    MDB_txn* txn;
    int rc = mdb_txn_begin(env_, nullptr, 0, &txn);
    if (rc) return Err("mdb_txn_begin", rc);
    MDB_val mk = Val(key), mv = Val(value);
    if ((rc = mdb_put(txn, dbi_, &mk, &mv, 0))) {
      mdb_txn_abort(txn);
      return Err("mdb_put", rc);
    }
    if ((rc = mdb_txn_commit(txn))) return Err("mdb_txn_commit", rc);
    ++next_sequence_;
    ++per_owner_[hint.owner];
    ++total_;
    return Status::OK();
  }

  Status Oldest(const std::string& owner, size_t max, std::vector<StoredHint>* out) const {
    out->clear();
    MDB_txn* txn;
    int rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn);
    if (rc) return Err("mdb_txn_begin", rc);
    MDB_cursor* cur;
    if ((rc = mdb_cursor_open(txn, dbi_, &cur))) {
      mdb_txn_abort(txn);
      return Err("mdb_cursor_open", rc);
    }
    std::string start = HintKey(owner, 0);
    MDB_val k = Val(start), v;
    Status s;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0 && out->size() < max;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
      StoredHint h;
      if (!ParseKey({static_cast<const char*>(k.mv_data), k.mv_size}, &h.hint.owner, &h.sequence) ||
          h.hint.owner != owner)
        break;
      if (!DecodeHint({static_cast<const char*>(v.mv_data), v.mv_size}, &h.hint)) {
        s = Status::Corruption("malformed hint for " + owner);
        break;
      }
      out->push_back(std::move(h));
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return s;
  }

  Status Remove(const std::string& owner, uint64_t sequence) {
    std::lock_guard<std::mutex> lock(mu_);
    std::string key = HintKey(owner, sequence);
    MDB_txn* txn;
    int rc = mdb_txn_begin(env_, nullptr, 0, &txn);
    if (rc) return Err("mdb_txn_begin", rc);
    MDB_val mk = Val(key);
    rc = mdb_del(txn, dbi_, &mk, nullptr);
    if (rc == MDB_NOTFOUND) {
      mdb_txn_abort(txn);
      return Status::OK();
    }
    if (rc) {
      mdb_txn_abort(txn);
      return Err("mdb_del", rc);
    }
    if ((rc = mdb_txn_commit(txn))) return Err("mdb_txn_commit", rc);
    if (--per_owner_[owner] == 0) per_owner_.erase(owner);
    --total_;
    return Status::OK();
  }

  uint64_t PendingFor(const std::string& owner) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = per_owner_.find(owner);
    return it == per_owner_.end() ? 0 : it->second;
  }
  uint64_t PendingTotal() const {
    std::lock_guard<std::mutex> lock(mu_);
    return total_;
  }
  std::map<std::string, uint64_t> PendingByOwner() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::map<std::string, uint64_t> out;
    for (const auto& [owner, n] : per_owner_)
      if (n) out[owner] = n;
    return out;
  }

 private:
  HintLimits limits_;
  MDB_env* env_ = nullptr;
  MDB_dbi dbi_ = 0;
  mutable std::mutex mu_;
  std::map<std::string, uint64_t> per_owner_;
  uint64_t total_ = 0;
  uint64_t next_sequence_ = 1;
};

StatusOr<std::unique_ptr<HintStore>> HintStore::Open(const std::string& path, HintLimits limits) {
  auto impl = std::make_unique<Impl>();
  Status s = impl->Open(path, limits);
  if (!s.ok()) return s;
  return std::unique_ptr<HintStore>(new HintStore(std::move(impl)));
}

HintStore::HintStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HintStore::~HintStore() = default;
Status HintStore::Add(const Hint& hint) { return impl_->Add(hint); }
Status HintStore::Oldest(const std::string& owner, size_t max, std::vector<StoredHint>* out) const {
  return impl_->Oldest(owner, max, out);
}
Status HintStore::Remove(const std::string& owner, uint64_t sequence) { return impl_->Remove(owner, sequence); }
uint64_t HintStore::PendingFor(const std::string& owner) const { return impl_->PendingFor(owner); }
uint64_t HintStore::PendingTotal() const { return impl_->PendingTotal(); }
std::map<std::string, uint64_t> HintStore::PendingByOwner() const { return impl_->PendingByOwner(); }

}  // namespace monju
