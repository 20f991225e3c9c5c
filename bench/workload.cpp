#include "workload.h"

#include <cmath>
#include <cstdio>
#include <sstream>

namespace monju::bench {
namespace {

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Uniform double in [0, 1) from 53 random bits.
double Unit(Rng& rng) { return double(rng() >> 11) * (1.0 / 9007199254740992.0); }

double Zeta(uint64_t n, double theta) {
  double sum = 0;
  for (uint64_t i = 1; i <= n; ++i) sum += 1.0 / std::pow(double(i), theta);
  return sum;
}

std::string Percent(double share) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g%%", std::round(share * 1000.0) / 10.0);
  return buf;
}

}  // namespace

uint64_t ThreadSeed(uint64_t seed, uint64_t index) { return SplitMix64(SplitMix64(seed) ^ (index + 1)); }

const char* OpName(OpType op) {
  switch (op) {
    case OpType::kRead:
      return "read";
    case OpType::kUpdate:
      return "update";
    case OpType::kQuery:
      return "query";
    case OpType::kInsert:
      return "insert";
  }
  return "?";
}

std::string OpMix::ToString() const {
  const double total = read + update + query;
  std::string out;
  auto add = [&](const char* name, double w) {
    if (w <= 0) return;
    if (!out.empty()) out += " ";
    out += std::string(name) + " " + Percent(w / total);
  };
  add("read", read);
  add("update", update);
  add("query", query);
  return out;
}

StatusOr<OpMix> WorkloadMix(std::string_view name) {
  if (name == "a") return OpMix{0.5, 0.5, 0};
  if (name == "b") return OpMix{0.95, 0.05, 0};
  if (name == "c") return OpMix{1, 0, 0};
  if (name == "write") return OpMix{0, 1, 0};
  if (name == "query") return OpMix{0, 0, 1};
  return Status::InvalidArgument("--workload: expected a, b, c, write or query, got '" + std::string(name) + "'");
}

StatusOr<OpMix> ParseMix(std::string_view text) {
  std::stringstream ss{std::string(text)};
  double w[3];
  char sep1 = 0, sep2 = 0;
  if (!(ss >> w[0] >> sep1 >> w[1] >> sep2 >> w[2]) || sep1 != ':' || sep2 != ':' || !ss.eof() ||
      w[0] < 0 || w[1] < 0 || w[2] < 0 || w[0] + w[1] + w[2] <= 0)
    return Status::InvalidArgument("--mix: expected READ:UPDATE:QUERY weights such as 90:10:0, got '" +
                                   std::string(text) + "'");
  return OpMix{w[0], w[1], w[2]};
}

OpChooser::OpChooser(const OpMix& mix) {
  const double total = mix.read + mix.update + mix.query;
  read_cut_ = mix.read / total;
  update_cut_ = (mix.read + mix.update) / total;
}

OpType OpChooser::Next(Rng& rng) const {
  const double u = Unit(rng);
  if (u < read_cut_) return OpType::kRead;
  if (u < update_cut_) return OpType::kUpdate;
  return OpType::kQuery;
}

UniformChooser::UniformChooser(uint64_t records) : records_(records) {}

uint64_t UniformChooser::Next(Rng& rng) const { return std::uniform_int_distribution<uint64_t>(0, records_ - 1)(rng); }

std::string UniformChooser::Describe() const { return "uniform"; }

ZipfianRanks::ZipfianRanks(uint64_t records, double theta)
    : n_(records), theta_(theta), alpha_(1.0 / (1.0 - theta)), zetan_(Zeta(records, theta)) {
  const double zeta2 = Zeta(2, theta);
  eta_ = (1.0 - std::pow(2.0 / double(n_), 1.0 - theta)) / (1.0 - zeta2 / zetan_);
  half_pow_theta_ = 1.0 + std::pow(0.5, theta);
}

uint64_t ZipfianRanks::Next(Rng& rng) const {
  const double u = Unit(rng);
  const double uz = u * zetan_;
  if (uz < 1.0) return 0;
  if (n_ > 1 && uz < half_pow_theta_) return 1;
  const auto rank = static_cast<uint64_t>(double(n_) * std::pow(eta_ * u - eta_ + 1.0, alpha_));
  return rank < n_ ? rank : n_ - 1;
}

ZipfianChooser::ZipfianChooser(uint64_t records, double theta) : ranks_(records, theta) {}

uint64_t ZipfianChooser::RecordOfRank(uint64_t rank) const { return SplitMix64(rank) % ranks_.records(); }

uint64_t ZipfianChooser::Next(Rng& rng) const { return RecordOfRank(ranks_.Next(rng)); }

std::string ZipfianChooser::Describe() const {
  char buf[48];
  std::snprintf(buf, sizeof buf, "zipfian(theta %g)", ranks_.theta());
  return buf;
}

StatusOr<std::unique_ptr<KeyChooser>> MakeKeyChooser(std::string_view distribution, uint64_t records,
                                                    double theta) {
  if (records == 0) return Status::InvalidArgument("--records: must be at least 1");
  if (distribution == "uniform") return std::unique_ptr<KeyChooser>(new UniformChooser(records));
  if (distribution == "zipfian") {
    if (!(theta > 0 && theta < 1)) return Status::InvalidArgument("--zipf-theta: must be in (0, 1)");
    return std::unique_ptr<KeyChooser>(new ZipfianChooser(records, theta));
  }
  return Status::InvalidArgument("--distribution: expected zipfian or uniform, got '" + std::string(distribution) +
                                 "'");
}

KeyLayout::KeyLayout(uint64_t records, uint32_t rows_per_pk) : records_(records), rows_(rows_per_pk ? rows_per_pk : 1) {}

std::string KeyLayout::Pk(uint64_t record) const {
  char buf[32];
  std::snprintf(buf, sizeof buf, "user%012llu", static_cast<unsigned long long>(record / rows_));
  return buf;
}

ItemName KeyLayout::Name(uint64_t record) const {
  char buf[24];
  std::snprintf(buf, sizeof buf, "row%05u", static_cast<unsigned>(record % rows_));
  return {Pk(record), buf};
}

ValueMaker::ValueMaker(size_t size, uint64_t seed) : size_(size) {
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  Rng rng(seed);
  pool_.resize(size * 2 + 4096);
  for (char& c : pool_) c = kAlphabet[rng() % (sizeof kAlphabet - 1)];
}

std::string_view ValueMaker::Next(Rng& rng) {
  const size_t offset = rng() % (pool_.size() - size_ + 1);
  return std::string_view(pool_).substr(offset, size_);
}

}  // namespace monju::bench
