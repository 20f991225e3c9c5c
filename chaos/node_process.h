// NodeProcess: one monjud of a chaos run, as a child process whose output is
// appended to a log file. Killed (SIGKILL) when destroyed. Not thread-safe:
// the run's nemesis alone drives it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "common/status.h"

namespace monju::chaos {

struct NodeSpec {
  std::string id;        // n1, n2, ...
  std::string host;      // listen address
  uint16_t port = 0;       // clients and admin
  uint16_t peer_port = 0;  // node-to-node (MonjuReplica)
  std::string data_dir;
  std::string log_path;
  std::vector<std::string> args;  // monjud's arguments (argv[1..])
  std::string address() const { return host + ":" + std::to_string(port); }
};

class NodeProcess {
 public:
  NodeProcess(std::string monjud_path, NodeSpec spec);
  ~NodeProcess();
  NodeProcess(const NodeProcess&) = delete;
  NodeProcess& operator=(const NodeProcess&) = delete;

  // Starts the process (it must not be running). IOError when fork/exec fails.
  Status Start();
  // SIGKILL and reap; a no-op when not running.
  void Kill();
  // SIGSTOP / SIGCONT.
  void Pause();
  void Resume();
  bool paused() const { return paused_; }
  // SIGTERM, then SIGKILL after `grace`. Fails when it did not exit cleanly.
  Status Stop(std::chrono::milliseconds grace);
  // Deletes the data directory; the process must not be running.
  Status WipeData();
  // True while the process exists (reaps it once it exited).
  bool Running();
  // How the last process ended ("" while running or never started).
  const std::string& exit_description() const { return exit_description_; }
  const NodeSpec& spec() const { return spec_; }
  pid_t pid() const { return pid_; }

 private:
  void Reaped(int status);

  const std::string monjud_;
  const NodeSpec spec_;
  pid_t pid_ = -1;
  bool paused_ = false;
  std::string exit_description_;
};

}  // namespace monju::chaos
