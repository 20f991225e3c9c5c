// monjud: a Monju node. See `monjud --help`.
#include <absl/synchronization/mutex.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <thrift/TOutput.h>

#include <cstdio>
#include <cstdlib>

#include "config/node_config.h"
#include "cpu_scheduling.h"
#include "descriptor_budget.h"
#include "node.h"

int main(int argc, char** argv) {
  // Debian builds Abseil in debug mode, where every absl::Mutex::Lock() also
  // records lock order in one global graph behind one spin lock (a cost on
  // every request, and a point all threads meet). The tests keep that
  // deadlock check; the node turns it off before any mutex is used.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  monju::ParsedArgs args = monju::ParseNodeArgs(argc, argv);
  if (args.action == monju::ParsedArgs::Action::kHelp) {
    std::printf("%s\n", args.text.c_str());
    return 0;
  }
  if (args.action == monju::ParsedArgs::Action::kError) {
    std::fprintf(stderr, "monjud: %s\n", args.text.c_str());
    return 2;
  }
  const monju::NodeConfig& config = args.config;
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e [" + config.id + "] %^%l%$ %v");
  spdlog::set_level(spdlog::level::from_str(config.log_level));
  // Thrift's own messages go to the same log, at debug (they are chatty).
  apache::thrift::GlobalOutput.setOutputFunction([](const char* msg) { spdlog::debug("thrift: {}", msg); });

  // Signals are taken synchronously by this thread; every thread started
  // after this inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // Before any thread starts, so every descriptor the node opens counts
  // against the raised limit (the servers size their caps from it).
  auto limit = monju::RaiseDescriptorLimit();
  if (!limit.ok()) {
    spdlog::warn("open-file limit: {}", limit.status().message());
  } else if (limit->soft != limit->before) {
    spdlog::info("open-file limit raised from {} to {}", limit->before, limit->soft);
  } else {
    spdlog::info("open-file limit {}", limit->soft);
  }

  // Before any thread starts: they all inherit it. "normal" leaves the
  // policy monjud was started with (an operator's `chrt` wrapper holds).
  if (config.batch_scheduling) {
    if (auto s = monju::ApplyCpuScheduling(monju::CpuScheduling::kBatch); !s.ok()) {
      spdlog::warn("cpu scheduling: {} (the threads keep the policy they started with)", s.message());
    } else {
      spdlog::info("cpu scheduling: batch");
    }
  } else {
    spdlog::info("cpu scheduling: normal (left as started: {})", monju::KernelPolicyName(monju::SchedulingPolicyOf(0)));
  }

  auto node = monju::Node::Start(config);
  if (!node.ok()) {
    std::fprintf(stderr, "monjud: %s\n", node.status().message().c_str());
    return 1;
  }
  int received = 0;
  sigwait(&signals, &received);
  spdlog::info("signal {}: stopping", received);
  node.value()->Stop();
  return 0;
}
