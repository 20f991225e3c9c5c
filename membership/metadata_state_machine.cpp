#include "metadata_state_machine.h"

#include <spdlog/spdlog.h>

#include "metadata_commands.h"

namespace monju {

ApplyOutcome MetadataStateMachine::Apply(std::string_view bytes) {
  ApplyOutcome out;
  ClusterMetadata changed;
  Listener listener;
  {
    std::lock_guard<std::mutex> lock(mu_);
    out.epoch = metadata_.epoch;
    auto command = DecodeCommand(bytes);
    if (!command.ok()) {
      out.status = command.status();
      std::string head;
      for (size_t i = 0; i < std::min<size_t>(bytes.size(), 16); ++i) head += fmt::format("{:02x}", uint8_t(bytes[i]));
      spdlog::error("membership: skipping a log entry of {} bytes ({}...) that does not decode: {}", bytes.size(), head,
                    out.status.ToString());
      return out;
    }
    ClusterMetadata next;
    out.status = ApplyCommand(metadata_, command.value(), &next);
    if (!out.status.ok()) {
      spdlog::info("membership: {} refused: {}", DescribeCommand(command.value()), out.status.message());
      return out;
    }
    metadata_ = std::move(next);
    out.epoch = metadata_.epoch;
    spdlog::info("membership: {} applied; now {}", DescribeCommand(command.value()), metadata_.Summary());
    changed = metadata_;
    listener = listener_;
  }
  if (listener) listener(changed);
  return out;
}

std::string MetadataStateMachine::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return EncodeMetadata(metadata_);
}

Status MetadataStateMachine::Restore(std::string_view snapshot) {
  auto md = DecodeMetadata(snapshot);
  if (!md.ok()) return md.status();
  Listener listener;
  {
    std::lock_guard<std::mutex> lock(mu_);
    metadata_ = md.value();
    listener = listener_;
  }
  spdlog::info("membership: restored a snapshot: {}", md.value().Summary());
  if (listener) listener(md.value());
  return Status::OK();
}

ClusterMetadata MetadataStateMachine::Current() const {
  std::lock_guard<std::mutex> lock(mu_);
  return metadata_;
}

uint64_t MetadataStateMachine::epoch() const {
  std::lock_guard<std::mutex> lock(mu_);
  return metadata_.epoch;
}

void MetadataStateMachine::SetListener(Listener listener) {
  std::lock_guard<std::mutex> lock(mu_);
  listener_ = std::move(listener);
}

}  // namespace monju
