#include "raft_group.h"

#include <spdlog/spdlog.h>
#include <uv.h>

extern "C" {
#include <raft/uv.h>
}

#include <condition_variable>
#include <deque>
#include <filesystem>
#include <functional>
#include <mutex>
#include <thread>

#include "raft_glue.h"
#include "common/thread_name.h"

namespace monju {

const char* RaftRoleName(RaftRole role) {
  switch (role) {
    case RaftRole::kVoter: return "voter";
    case RaftRole::kStandby: return "standby";
    case RaftRole::kSpare: return "spare";
  }
  return "?";
}

const char* RaftStateName(RaftInfo::State state) {
  switch (state) {
    case RaftInfo::State::kUnavailable: return "unavailable";
    case RaftInfo::State::kFollower: return "follower";
    case RaftInfo::State::kCandidate: return "candidate";
    case RaftInfo::State::kLeader: return "leader";
  }
  return "?";
}

namespace {

// A result handed from the loop thread to a waiting caller; shared so that
// a caller that gave up does not leave the loop writing into freed memory.
template <typename T>
struct Completion {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  T value{};
  void Set(T v) {
    {
      std::lock_guard<std::mutex> lock(mu);
      value = std::move(v);
      done = true;
    }
    cv.notify_all();
  }
  bool Wait(std::chrono::milliseconds timeout, T* out) {
    std::unique_lock<std::mutex> lock(mu);
    if (!cv.wait_for(lock, timeout, [&] { return done; })) return false;
    *out = value;
    return true;
  }
};

struct ChangeOutcome {
  Status status;
  bool not_leader = false;
};

constexpr auto kInfoPeriodMs = 100;

}  // namespace

class RaftGroup::Impl {
 public:
  Impl(RaftOptions options, RaftFsm* fsm) : options_(std::move(options)) { raft_glue::InitFsm(&glue_, fsm); }

  ~Impl() { Stop(); }

  Status Start() {
    if (options_.id == 0) return Status::InvalidArgument("Raft id must not be 0");
    if (options_.address.empty()) return Status::InvalidArgument("--raft-listen: required");
    std::error_code ec;
    std::filesystem::create_directories(options_.dir, ec);
    if (ec) return Status::IOError("cannot create " + options_.dir + ": " + ec.message());

    if (int rv = uv_loop_init(&loop_); rv != 0) return Status::IOError(std::string("uv_loop_init: ") + uv_strerror(rv));
    loop_open_ = true;
    int rv = raft_uv_tcp_init(&transport_, &loop_);
    if (rv != 0) return Fail(raft_glue::FromRaft(rv, "Raft TCP transport", nullptr), 0);
    rv = raft_uv_init(&io_, &loop_, options_.dir.c_str(), &transport_);
    if (rv != 0) {
      Status s = Status::IOError("Raft log in " + options_.dir + ": " + raft_strerror(rv) + " (" + io_.errmsg + ")");
      return Fail(s, 1);
    }
    raft_uv_set_connect_retry_delay(&io_, options_.connect_retry_ms);
    rv = raft_init(&raft_, &io_, &glue_.fsm, options_.id, options_.address.c_str());
    if (rv != 0) return Fail(raft_glue::FromRaft(rv, "raft_init", nullptr), 2);
    raft_.data = this;
    raft_set_election_timeout(&raft_, options_.election_timeout_ms);
    raft_set_heartbeat_timeout(&raft_, options_.heartbeat_timeout_ms);
    raft_set_snapshot_threshold(&raft_, options_.snapshot_threshold);
    raft_set_snapshot_trailing(&raft_, options_.snapshot_trailing);
    raft_set_pre_vote(&raft_, true);

    if (!options_.bootstrap.empty()) {
      struct raft_configuration conf;
      raft_configuration_init(&conf);
      for (const auto& s : options_.bootstrap) {
        rv = raft_configuration_add(&conf, s.id, s.address.c_str(), raft_glue::RoleCode(s.role));
        if (rv != 0) {
          raft_configuration_close(&conf);
          return Fail(raft_glue::FromRaft(rv, "bootstrap configuration", nullptr), 3);
        }
      }
      rv = raft_bootstrap(&raft_, &conf);
      raft_configuration_close(&conf);
      if (rv == 0) {
        spdlog::info("raft: bootstrapped a new group of {} servers in {}", options_.bootstrap.size(), options_.dir);
      } else if (rv != RAFT_CANTBOOTSTRAP) {  // existing state: a restart
        return Fail(raft_glue::FromRaft(rv, "raft_bootstrap", &raft_), 3);
      }
    }
    rv = raft_start(&raft_);
    if (rv != 0) {
      return Fail(Status::IOError("cannot start Raft on " + options_.address + ": " + raft_strerror(rv) + " (" +
                                  raft_errmsg(&raft_) + ")"),
                  3);
    }
    uv_async_init(&loop_, &wake_, [](uv_async_t* h) { static_cast<Impl*>(h->data)->Drain(); });
    wake_.data = this;
    uv_timer_init(&loop_, &timer_);
    timer_.data = this;
    uv_timer_start(
        &timer_, [](uv_timer_t* h) { static_cast<Impl*>(h->data)->Publish(); }, 0, kInfoPeriodMs);
    Publish();
    running_ = true;
    thread_ = std::thread([this] { uv_run(&loop_, UV_RUN_DEFAULT); });
    NameThread(thread_, "raft-loop");
    spdlog::info("raft: member {:016x} listening on {}, log in {}", options_.id, options_.address, options_.dir);
    return Status::OK();
  }

  void Stop() {
    std::lock_guard<std::mutex> stop_lock(stop_mu_);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      stopping_ = true;
      if (running_) {
        tasks_.push_back([this] {
          closing_ = true;
          raft_close(&raft_, [](struct raft* r) {
            auto* self = static_cast<Impl*>(r->data);
            raft_uv_close(&self->io_);
            raft_uv_tcp_close(&self->transport_);
            uv_close(reinterpret_cast<uv_handle_t*>(&self->timer_), nullptr);
            uv_close(reinterpret_cast<uv_handle_t*>(&self->wake_), nullptr);
          });
        });
        uv_async_send(&wake_);
      }
    }
    if (thread_.joinable()) thread_.join();
    if (loop_open_) {
      uv_loop_close(&loop_);
      loop_open_ = false;
      spdlog::info("raft: stopped");
    }
  }

  Proposal Propose(std::string entry, std::chrono::milliseconds timeout) {
    auto done = std::make_shared<Completion<Proposal>>();
    bool posted = Post([this, done, entry = std::move(entry)] {
      int rv = 0;
      Status s = raft_glue::SubmitApply(
          &raft_, entry,
          [done](Status status, const RaftFsm::Result& result) {
            Proposal p;
            p.status = status;
            p.result = result;
            done->Set(std::move(p));
          },
          &rv);
      if (!s.ok()) {
        Proposal p;
        p.status = s;
        p.not_leader = raft_glue::IsNotLeader(rv);
        done->Set(std::move(p));
      }
    });
    Proposal out;
    if (!posted) {
      out.status = Status::Unavailable("the Raft loop is stopping or overloaded");
      return out;
    }
    if (!done->Wait(timeout, &out))
      out.status = Status::TimedOut("the entry was not applied within " + std::to_string(timeout.count()) +
                                    " ms; outcome unknown");
    return out;
  }

  Status Change(std::function<Status(struct raft*, raft_glue::ChangeDone, int*)> submit,
                std::chrono::milliseconds timeout, bool* not_leader) {
    auto done = std::make_shared<Completion<ChangeOutcome>>();
    bool posted = Post([this, done, submit = std::move(submit)] {
      int rv = 0;
      Status s = submit(&raft_, [done](Status status) { done->Set({status, false}); }, &rv);
      if (!s.ok()) done->Set({s, raft_glue::IsNotLeader(rv)});
    });
    if (!posted) return Status::Unavailable("the Raft loop is stopping or overloaded");
    ChangeOutcome out;
    if (!done->Wait(timeout, &out))
      return Status::TimedOut("the Raft configuration change did not finish within " +
                              std::to_string(timeout.count()) + " ms");
    if (not_leader) *not_leader = out.not_leader;
    return out.status;
  }

  RaftInfo Info() const {
    std::lock_guard<std::mutex> lock(info_mu_);
    return info_;
  }

  const RaftOptions& options() const { return options_; }

 private:
  // Cleans up what Start() set up before failing; `stage` says how far it got.
  Status Fail(Status s, int stage) {
    if (stage >= 3) {
      // raft_init succeeded: closing it needs the loop to run its callbacks.
      raft_close(&raft_, [](struct raft* r) {
        auto* self = static_cast<Impl*>(r->data);
        raft_uv_close(&self->io_);
        raft_uv_tcp_close(&self->transport_);
      });
      uv_run(&loop_, UV_RUN_DEFAULT);
    } else {
      if (stage >= 2) raft_uv_close(&io_);
      if (stage >= 1) raft_uv_tcp_close(&transport_);
      uv_run(&loop_, UV_RUN_DEFAULT);
    }
    uv_loop_close(&loop_);
    loop_open_ = false;
    return s;
  }

  bool Post(std::function<void()> task) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_ || !running_ || tasks_.size() >= options_.max_queued_calls) return false;
      tasks_.push_back(std::move(task));
      uv_async_send(&wake_);  // under the lock: Stop() cannot close the handle meanwhile
    }
    return true;
  }

  // On the loop thread.
  void Drain() {
    std::deque<std::function<void()>> batch;
    {
      std::lock_guard<std::mutex> lock(mu_);
      batch.swap(tasks_);
    }
    for (auto& task : batch) task();
    if (!closing_) Publish();
  }

  // On the loop thread (or in Start before it runs).
  void Publish() {
    if (closing_) return;
    RaftInfo info = raft_glue::InfoOf(&raft_);
    if (info.state != last_state_ || info.leader_id != last_leader_) {
      if (info.state == RaftInfo::State::kLeader)
        spdlog::info("raft: this member is the leader (term {})", info.term);
      else if (info.leader_id != 0)
        spdlog::info("raft: {} (term {}), leader {:016x} at {}", RaftStateName(info.state), info.term,
                     info.leader_id, info.leader_address);
      else
        spdlog::info("raft: {} (term {}), no leader known", RaftStateName(info.state), info.term);
      last_state_ = info.state;
      last_leader_ = info.leader_id;
    }
    std::lock_guard<std::mutex> lock(info_mu_);
    info_ = std::move(info);
  }

  const RaftOptions options_;
  raft_glue::FsmGlue glue_;
  uv_loop_t loop_{};
  bool loop_open_ = false;
  struct raft_uv_transport transport_ {};
  struct raft_io io_ {};
  struct raft raft_ {};
  uv_async_t wake_{};
  uv_timer_t timer_{};
  std::thread thread_;
  bool closing_ = false;  // loop thread only: raft_close was called
  std::mutex stop_mu_;    // serialises Stop()

  std::mutex mu_;  // guards tasks_, stopping_, running_
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  bool running_ = false;

  mutable std::mutex info_mu_;
  RaftInfo info_;
  RaftInfo::State last_state_ = RaftInfo::State::kUnavailable;
  uint64_t last_leader_ = 0;
};

StatusOr<std::unique_ptr<RaftGroup>> RaftGroup::Start(RaftOptions options, RaftFsm* fsm) {
  auto impl = std::make_unique<Impl>(std::move(options), fsm);
  Status s = impl->Start();
  if (!s.ok()) return s;
  return std::unique_ptr<RaftGroup>(new RaftGroup(std::move(impl)));
}

RaftGroup::RaftGroup(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RaftGroup::~RaftGroup() { Stop(); }
void RaftGroup::Stop() { impl_->Stop(); }

RaftGroup::Proposal RaftGroup::Propose(std::string entry, std::chrono::milliseconds timeout) {
  return impl_->Propose(std::move(entry), timeout);
}

Status RaftGroup::AddServer(uint64_t id, const std::string& address, std::chrono::milliseconds timeout,
                            bool* not_leader) {
  return impl_->Change(
      [id, address](struct raft* r, raft_glue::ChangeDone done, int* rv) {
        return raft_glue::SubmitAdd(r, id, address, std::move(done), rv);
      },
      timeout, not_leader);
}

Status RaftGroup::AssignRole(uint64_t id, RaftRole role, std::chrono::milliseconds timeout, bool* not_leader) {
  return impl_->Change(
      [id, role](struct raft* r, raft_glue::ChangeDone done, int* rv) {
        return raft_glue::SubmitAssign(r, id, role, std::move(done), rv);
      },
      timeout, not_leader);
}

Status RaftGroup::RemoveServer(uint64_t id, std::chrono::milliseconds timeout, bool* not_leader) {
  return impl_->Change(
      [id](struct raft* r, raft_glue::ChangeDone done, int* rv) {
        return raft_glue::SubmitRemove(r, id, std::move(done), rv);
      },
      timeout, not_leader);
}

Status RaftGroup::TransferLeadership(std::chrono::milliseconds timeout) {
  return impl_->Change(
      [](struct raft* r, raft_glue::ChangeDone done, int* rv) { return raft_glue::SubmitTransfer(r, std::move(done), rv); },
      timeout, nullptr);
}

RaftInfo RaftGroup::Info() const { return impl_->Info(); }
uint64_t RaftGroup::id() const { return impl_->options().id; }
const std::string& RaftGroup::address() const { return impl_->options().address; }

}  // namespace monju
