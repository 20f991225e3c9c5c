#include "node_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <thread>

namespace monju::chaos {

NodeProcess::NodeProcess(std::string monjud_path, NodeSpec spec)
    : monjud_(std::move(monjud_path)), spec_(std::move(spec)) {}

NodeProcess::~NodeProcess() { Kill(); }

Status NodeProcess::Start() {
  if (Running()) return Status::InvalidArgument(spec_.id + " is already running");
  std::vector<std::string> storage = {monjud_};
  storage.insert(storage.end(), spec_.args.begin(), spec_.args.end());
  std::vector<char*> argv;
  for (auto& s : storage) argv.push_back(s.data());
  argv.push_back(nullptr);
  int log = ::open(spec_.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log < 0) return Status::IOError("cannot open " + spec_.log_path + ": " + strerror(errno));
  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(log);
    return Status::IOError(std::string("fork: ") + strerror(errno));
  }
  if (pid == 0) {
    // Dies with the chaos run; a clean signal state; only 0-2 inherited.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(125);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGCHLD}) ::signal(sig, SIG_DFL);
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    ::dup2(log, 1);
    ::dup2(log, 2);
    ::close_range(3, ~0U, 0);
    ::execv(argv[0], argv.data());
    dprintf(2, "execv %s: %s\n", argv[0], strerror(errno));
    ::_exit(127);
  }
  ::close(log);
  pid_ = pid;
  paused_ = false;
  exit_description_.clear();
  return Status::OK();
}

void NodeProcess::Reaped(int status) {
  if (WIFEXITED(status)) {
    exit_description_ = "exited with status " + std::to_string(WEXITSTATUS(status));
  } else if (WIFSIGNALED(status)) {
    exit_description_ = std::string("killed by signal ") + strsignal(WTERMSIG(status));
  }
  pid_ = -1;
  paused_ = false;
}

bool NodeProcess::Running() {
  if (pid_ < 0) return false;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    Reaped(status);
    return false;
  }
  return true;
}

void NodeProcess::Kill() {
  if (pid_ < 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  Reaped(status);
}

void NodeProcess::Pause() {
  if (pid_ < 0 || paused_) return;
  ::kill(pid_, SIGSTOP);
  paused_ = true;
}

void NodeProcess::Resume() {
  if (pid_ < 0 || !paused_) return;
  ::kill(pid_, SIGCONT);
  paused_ = false;
}

Status NodeProcess::Stop(std::chrono::milliseconds grace) {
  if (!Running()) return Status::OK();
  Resume();
  ::kill(pid_, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      Reaped(status);
      if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return Status::OK();
      return Status::IOError(spec_.id + " " + exit_description_ + " on SIGTERM");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  Kill();
  return Status::TimedOut(spec_.id + " did not exit within " + std::to_string(grace.count()) + " ms of SIGTERM");
}

Status NodeProcess::WipeData() {
  if (Running()) return Status::InvalidArgument(spec_.id + " is running; kill it before wiping its data");
  std::error_code ec;
  std::filesystem::remove_all(spec_.data_dir, ec);
  if (ec) return Status::IOError("cannot remove " + spec_.data_dir + ": " + ec.message());
  return Status::OK();
}

}  // namespace monju::chaos
