#include "service_demux.h"

#include <string_view>

namespace monju {
namespace {

constexpr uint32_t kVersionMask = 0xffff0000u;
constexpr uint32_t kVersion1 = 0x80010000u;  // TBinaryProtocol's strict header
constexpr uint8_t kCall = 1, kOneway = 4;    // T_CALL, T_ONEWAY

uint32_t ReadBigEndian32(const uint8_t* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | uint32_t(p[3]);
}

void WriteBigEndian32(uint8_t* p, uint32_t v) {
  p[0] = uint8_t(v >> 24);
  p[1] = uint8_t(v >> 16);
  p[2] = uint8_t(v >> 8);
  p[3] = uint8_t(v);
}

}  // namespace

ServiceDemux::ServiceDemux() : fallback_(std::make_shared<apache::thrift::TMultiplexedProcessor>()) {}

void ServiceDemux::Register(const std::string& service, std::shared_ptr<apache::thrift::TProcessor> processor) {
  services_[service] = processor;
  fallback_->registerProcessor(service, std::move(processor));
}

void ServiceDemux::RegisterDefault(std::shared_ptr<apache::thrift::TProcessor> processor) {
  default_ = processor;
  fallback_->registerDefault(std::move(processor));
}

apache::thrift::TProcessor& ServiceDemux::Route(uint8_t** frame, uint32_t* size) {
  // Strict header: version and type, the name's length, the name, then the
  // sequence id. Old-style headers take the fallback.
  uint8_t* p = *frame;
  if (*size < 12) return *fallback_;
  const uint32_t word = ReadBigEndian32(p);
  const uint8_t type = uint8_t(word & 0xff);
  if ((word & kVersionMask) != kVersion1 || (type != kCall && type != kOneway)) return *fallback_;
  const uint32_t length = ReadBigEndian32(p + 4);
  if (length == 0 || length > *size - 12) return *fallback_;
  const std::string_view name(reinterpret_cast<const char*>(p + 8), length);
  const size_t colon = name.find(':');
  if (colon == std::string_view::npos) return default_ ? *default_ : *fallback_;
  if (colon == 0 || colon + 1 == name.size() || name.find(':', colon + 1) != std::string_view::npos) return *fallback_;
  auto it = services_.find(name.substr(0, colon));
  if (it == services_.end()) return *fallback_;
  // The method's name already sits where a header starting `cut` bytes on
  // would have it: write that header over the service's name.
  const uint32_t cut = uint32_t(colon + 1);
  WriteBigEndian32(p + cut, word);
  WriteBigEndian32(p + cut + 4, length - cut);
  *frame = p + cut;
  *size -= cut;
  return *it->second;
}

bool ServiceDemux::process(std::shared_ptr<apache::thrift::protocol::TProtocol> in,
                           std::shared_ptr<apache::thrift::protocol::TProtocol> out, void* connection_context) {
  return fallback_->process(std::move(in), std::move(out), connection_context);
}

}  // namespace monju
