#include "net_faults.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>

namespace monju::chaos {

Status RunProgram(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  if (argv.empty()) return Status::InvalidArgument("no program to run");
  std::string cmd;
  for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return Status::IOError(std::string("pipe: ") + strerror(errno));
  std::vector<std::string> storage = argv;
  std::vector<char*> args;
  for (auto& s : storage) args.push_back(s.data());
  args.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(pipefd[0]);
    ::close(pipefd[1]);
    return Status::IOError(std::string("fork: ") + strerror(errno));
  }
  if (pid == 0) {
    ::dup2(pipefd[1], 1);
    ::dup2(pipefd[1], 2);
    ::execvp(args[0], args.data());
    dprintf(2, "cannot run %s: %s\n", args[0], strerror(errno));
    ::_exit(127);
  }
  ::close(pipefd[1]);
  // Output is read until the pipe closes or the deadline passes; a program
  // that hangs (say, on a lock) is killed so the chaos run stays bounded.
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string output;
  bool timed_out = false;
  char buf[4096];
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    struct pollfd pfd = {pipefd[0], POLLIN, 0};
    int ready = ::poll(&pfd, 1, static_cast<int>(std::min<long long>(left, 1000)));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;
    ssize_t n = ::read(pipefd[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    output.append(buf, static_cast<size_t>(n));
  }
  ::close(pipefd[0]);
  int status = 0;
  // It may have closed its output and still run: wait for it up to the deadline too.
  while (!timed_out) {
    pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid || (done < 0 && errno != EINTR)) break;
    if (std::chrono::steady_clock::now() >= deadline) timed_out = true;
    else if (done == 0) ::usleep(10'000);
  }
  if (timed_out) {
    ::kill(pid, SIGKILL);
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return Status::TimedOut("'" + cmd + "' did not finish within " + std::to_string(timeout.count()) +
                            " ms; killed");
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return Status::OK();
  while (!output.empty() && output.back() == '\n') output.pop_back();
  return Status::IOError("'" + cmd + "' failed: " + output);
}

Status EnterPrivateNetwork() {
  if (::geteuid() != 0) return Status::InvalidArgument("a private network namespace needs root");
  if (::unshare(CLONE_NEWNET) != 0) return Status::IOError(std::string("unshare(CLONE_NEWNET): ") + strerror(errno));
  Status s = RunProgram({"ip", "link", "set", "lo", "up"});
  if (!s.ok()) return s;
  return RunProgram({"iptables", "-w", "-L", "OUTPUT", "-n"});
}

namespace {

// Both kinds of fault share the slow-link injection.
class InjectedSlowLinks {
 public:
  InjectedSlowLinks(int nodes, SetInjectedLinks inject) : nodes_(nodes), inject_(std::move(inject)) {}

  Status Slow(int node, std::chrono::milliseconds delay) {
    for (int i = 0; i < nodes_; ++i) {
      std::map<int, InjectedLink> links;
      if (i == node) {
        for (int j = 0; j < nodes_; ++j)
          if (j != node) links[j].delay = delay;
      } else {
        links[node].delay = delay;
      }
      Status s = inject_(i, links);
      if (!s.ok()) return s;
    }
    return Status::OK();
  }

  Status Drop(const std::vector<int>& side, bool one_way) {
    auto in_side = [&](int i) { return std::find(side.begin(), side.end(), i) != side.end(); };
    for (int i = 0; i < nodes_; ++i) {
      std::map<int, InjectedLink> links;
      for (int j = 0; j < nodes_; ++j) {
        if (i == j || in_side(i) == in_side(j)) continue;
        if (in_side(i) || !one_way) links[j].drop = true;
      }
      Status s = inject_(i, links);
      if (!s.ok()) return s;
    }
    return Status::OK();
  }

  // Tries every node even when one fails (a killed node heals at restart).
  Status Heal() {
    Status first;
    for (int i = 0; i < nodes_; ++i) {
      Status s = inject_(i, {});
      if (!s.ok() && first.ok()) first = s;
    }
    return first;
  }

  int nodes() const { return nodes_; }

 private:
  const int nodes_;
  SetInjectedLinks inject_;
};

class PacketFilterFaults final : public NetworkFaults {
 public:
  PacketFilterFaults(std::vector<std::string> addresses, SetInjectedLinks inject)
      : addresses_(std::move(addresses)), slow_(static_cast<int>(addresses_.size()), std::move(inject)) {}

  Status Partition(const std::vector<int>& side, bool one_way) override {
    auto in_side = [&](int i) { return std::find(side.begin(), side.end(), i) != side.end(); };
    for (int a = 0; a < slow_.nodes(); ++a) {
      for (int b = 0; b < slow_.nodes(); ++b) {
        if (a == b || !in_side(a) || in_side(b)) continue;
        Status s = Drop(a, b);
        if (s.ok() && !one_way) s = Drop(b, a);
        if (!s.ok()) return s;
      }
    }
    return Status::OK();
  }
  Status Slow(int node, std::chrono::milliseconds delay) override { return slow_.Slow(node, delay); }
  Status HealAll() override {
    Status s = RunProgram({"iptables", "-w", "-F", "OUTPUT"});
    Status h = slow_.Heal();
    return s.ok() ? h : s;
  }
  std::string partitions_by() const override { return "iptables"; }

 private:
  Status Drop(int from, int to) {
    return RunProgram({"iptables", "-w", "-A", "OUTPUT", "-s", addresses_[from], "-d", addresses_[to], "-j", "DROP"});
  }
  const std::vector<std::string> addresses_;
  InjectedSlowLinks slow_;
};

class InjectedFaults final : public NetworkFaults {
 public:
  InjectedFaults(int nodes, SetInjectedLinks inject) : links_(nodes, std::move(inject)) {}
  Status Partition(const std::vector<int>& side, bool one_way) override { return links_.Drop(side, one_way); }
  Status Slow(int node, std::chrono::milliseconds delay) override { return links_.Slow(node, delay); }
  Status HealAll() override { return links_.Heal(); }
  std::string partitions_by() const override { return "injected"; }

 private:
  InjectedSlowLinks links_;
};

}  // namespace

std::unique_ptr<NetworkFaults> MakePacketFilterFaults(std::vector<std::string> node_addresses,
                                                      SetInjectedLinks inject) {
  return std::make_unique<PacketFilterFaults>(std::move(node_addresses), std::move(inject));
}

std::unique_ptr<NetworkFaults> MakeInjectedFaults(int nodes, SetInjectedLinks inject) {
  return std::make_unique<InjectedFaults>(nodes, std::move(inject));
}

}  // namespace monju::chaos
