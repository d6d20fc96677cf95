#include "server/grpc_services.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <deque>
#include <optional>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/sync.h"
#include "proto/status_details.h"

namespace lrtune::server {
namespace {

std::atomic<bool> rpc_logging{false};

// One line on stderr: "<UTC time> <what>", when SetRpcLogging(true).
// Never given a token.
void Log(absl::string_view what) {
  if (!rpc_logging.load(std::memory_order_relaxed)) return;
  const std::string line =
      absl::StrCat(absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(),
                                    absl::UTCTimeZone()),
                   " lrtune-server: ", what, "\n");
  std::fputs(line.c_str(), stderr);
}

// Authenticates the caller and checks that its role may use a service
// meant for `needed`; counts and logs refusals (the peer, not the token).
absl::StatusOr<Principal> AuthorizeCall(
    Authenticator* auth, Metrics* metrics,
    const grpc::CallbackServerContext& context, Role needed) {
  absl::StatusOr<Principal> principal = auth->Authenticate(context);
  absl::Status status = principal.status();
  if (status.ok()) status = CheckRole(*principal, needed);
  if (status.ok()) return principal;
  if (metrics != nullptr) {
    metrics->OnAuthFailure(status.code() ==
                           absl::StatusCode::kPermissionDenied);
  }
  Log(absl::StrCat("refused a ", RoleName(needed), " call from ",
                   context.peer(), ": ", status.message()));
  return status;
}

// Finishes a unary call with `result`, moving its value into `response`.
template <typename T>
grpc::ServerUnaryReactor* Reply(grpc::CallbackServerContext* context,
                                absl::StatusOr<T> result, T* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (result.ok()) *response = *std::move(result);
  reactor->Finish(ToGrpcStatus(result.status()));
  return reactor;
}

// A stream that ends at once with an error.
class FailedWriter final : public grpc::ServerWriteReactor<v1::JobEvent> {
 public:
  explicit FailedWriter(const absl::Status& status) {
    Finish(ToGrpcStatus(status));
  }
  void OnDone() override { delete this; }
};

// Streams a job's events after `after_seq` until its terminal event. Live
// events arrive from the EventHub into a queue of at most kWatchQueueLimit;
// anything that does not fit, or arrives out of order, is read back from
// the store on the coordinator's background runner. Deletes itself once
// gRPC is done with it and no store read holds it.
class WatchReactor final : public grpc::ServerWriteReactor<v1::JobEvent>,
                           public EventSink {
 public:
  WatchReactor(Coordinator* coordinator, std::string job_id, int64_t after_seq,
               bool skip_points)
      : coordinator_(coordinator),
        job_id_(std::move(job_id)),
        skip_points_(skip_points),
        enqueued_(after_seq) {}

  void Start() {
    coordinator_->hub()->Subscribe(job_id_, this);
    lrtune::MutexLock lock(&mu_);
    more_in_store_ = true;
    ScheduleReadLocked();
  }

  void OnEvents(const std::vector<v1::JobEvent>& events,
                int64_t last_seq) override {
    Action action;
    {
      lrtune::MutexLock lock(&mu_);
      if (finished_) return;
      latest_ = std::max(latest_, last_seq);
      for (const v1::JobEvent& e : events) {
        const int64_t seq = static_cast<int64_t>(e.seq());
        if (seq <= enqueued_) continue;
        if (read_pending_ || seq != enqueued_ + 1 ||
            static_cast<int>(queue_.size()) >= kWatchQueueLimit) {
          break;  // the store has it; read it back from there
        }
        PushLocked(e);
      }
      if (latest_ > enqueued_) ScheduleReadLocked();
      action = NextActionLocked();
    }
    Run(action);
  }

  void OnWriteDone(bool ok) override {
    Action action;
    {
      lrtune::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok) {
        FinishLocked(
            grpc::Status(grpc::StatusCode::CANCELLED, "the watcher went away"));
      } else if (latest_ > enqueued_ || more_in_store_) {
        ScheduleReadLocked();
      }
      action = NextActionLocked();
    }
    Run(action);
  }

  void OnCancel() override {
    Action action;
    {
      lrtune::MutexLock lock(&mu_);
      FinishLocked(
          grpc::Status(grpc::StatusCode::CANCELLED, "the watcher went away"));
      action = NextActionLocked();
    }
    Run(action);
  }

  // Unsubscribing takes the hub's lock, which Publish holds while it calls
  // into this reactor (and so into gRPC); doing it on the runner keeps
  // gRPC's thread from ever waiting on the hub.
  void OnDone() override {
    coordinator_->runner()->Post([this] {
      coordinator_->hub()->Unsubscribe(job_id_, this);
      Unref();
    });
  }

 private:
  struct Action {
    const v1::JobEvent* write = nullptr;
    std::optional<grpc::Status> finish;
  };

  void PushLocked(const v1::JobEvent& e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    enqueued_ = static_cast<int64_t>(e.seq());
    if (IsTerminalEvent(e)) terminal_seen_ = true;
    if (skip_points_ && e.has_point()) return;
    queue_.push_back(e);
  }

  // Ends the stream once no write is outstanding.
  void FinishLocked(grpc::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_ || pending_finish_.has_value()) return;
    pending_finish_ = std::move(status);
  }

  Action NextActionLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Action action;
    if (finished_ || writing_) return action;
    if (pending_finish_.has_value()) {
      finished_ = true;
      action.finish = *pending_finish_;
      return action;
    }
    if (!queue_.empty()) {
      current_ = std::move(queue_.front());
      queue_.pop_front();
      writing_ = true;
      action.write = &current_;
      return action;
    }
    if (terminal_seen_) {
      finished_ = true;
      action.finish = grpc::Status::OK;
    }
    return action;
  }

  // Called without mu_: gRPC may run reactions inline.
  void Run(const Action& action) {
    if (action.write != nullptr) StartWrite(action.write);
    if (action.finish.has_value()) Finish(*action.finish);
  }

  void ScheduleReadLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    // Reading into a nearly full queue would mean many tiny reads; wait
    // until the writes have drained half of it.
    if (read_pending_ || finished_ || terminal_seen_ ||
        static_cast<int>(queue_.size()) > kWatchQueueLimit / 2) {
      return;
    }
    read_pending_ = true;
    ++refs_;
    coordinator_->runner()->Post([this] {
      ReadFromStore();
      Unref();
    });
  }

  void ReadFromStore() {
    int64_t from;
    int room;
    {
      lrtune::MutexLock lock(&mu_);
      from = enqueued_;
      room = kWatchQueueLimit - static_cast<int>(queue_.size());
    }
    absl::StatusOr<std::vector<v1::JobEvent>> events =
        coordinator_->ReadEvents(job_id_, from, std::max(room, 1));
    Action action;
    {
      lrtune::MutexLock lock(&mu_);
      read_pending_ = false;
      if (!events.ok()) {
        FinishLocked(ToGrpcStatus(events.status()));
      } else {
        more_in_store_ = static_cast<int>(events->size()) >= room;
        for (const v1::JobEvent& e : *events) {
          if (static_cast<int64_t>(e.seq()) == enqueued_ + 1) PushLocked(e);
        }
        if (latest_ > enqueued_ || more_in_store_) ScheduleReadLocked();
      }
      action = NextActionLocked();
    }
    Run(action);
  }

  void Unref() {
    bool last;
    {
      lrtune::MutexLock lock(&mu_);
      last = --refs_ == 0;
    }
    if (last) delete this;
  }

  Coordinator* const coordinator_;
  const std::string job_id_;
  const bool skip_points_;

  lrtune::Mutex mu_;
  int refs_ ABSL_GUARDED_BY(mu_) = 1;        // gRPC's, dropped in OnDone
  int64_t enqueued_ ABSL_GUARDED_BY(mu_);    // highest seq taken in
  int64_t latest_ ABSL_GUARDED_BY(mu_) = 0;  // highest seq known stored
  bool more_in_store_ ABSL_GUARDED_BY(mu_) = false;
  bool read_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool terminal_seen_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<grpc::Status> pending_finish_ ABSL_GUARDED_BY(mu_);
  std::deque<v1::JobEvent> queue_ ABSL_GUARDED_BY(mu_);
  v1::JobEvent current_;  // the event being written; owned by the writer
};

grpc::ServerWriteReactor<v1::JobEvent>* StartWatch(Coordinator* coordinator,
                                                   std::string job_id,
                                                   int64_t after_seq,
                                                   bool skip_points) {
  auto* reactor =
      new WatchReactor(coordinator, std::move(job_id), after_seq, skip_points);
  reactor->Start();
  return reactor;
}

// AcquireTask with its long poll: tries at once, and while no task is
// leasable waits (without holding a thread) until the coordinator signals
// work, the wait runs out, or the call is cancelled, then tries again.
// Deletes itself when gRPC is done with it; the coordinator calls Try at
// most once per registration and only before Finish.
class AcquireReactor final : public grpc::ServerUnaryReactor {
 public:
  static constexpr absl::Duration kMaxWait = absl::Seconds(30);

  AcquireReactor(Coordinator* coordinator,
                 const v1::AcquireTaskRequest* request,
                 v1::AcquireTaskResponse* response, Metrics* metrics)
      : coordinator_(coordinator),
        request_(request),
        response_(response),
        metrics_(metrics) {}

  void Start() {
    const absl::Duration wait = absl::Seconds(request_->wait().seconds()) +
                                absl::Nanoseconds(request_->wait().nanos());
    if (wait < absl::ZeroDuration() || wait > kMaxWait) {
      Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("wait must be in [0s, 30s], got ",
                                       absl::FormatDuration(wait))));
      return;
    }
    long_poll_ = wait > absl::ZeroDuration();
    deadline_ = absl::Now() + wait;
    Try();
  }

  void OnCancel() override {
    {
      lrtune::MutexLock lock(&mu_);
      cancelled_ = true;
    }
    coordinator_->work_signal()->WakeAll();  // so that this call finishes now
  }

  void OnDone() override { delete this; }

 private:
  void Try() {
    bool cancelled;
    {
      lrtune::MutexLock lock(&mu_);
      cancelled = cancelled_;
    }
    // Never Finish under mu_: OnDone may delete this reactor at once.
    if (cancelled) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled"));
      return;
    }
    const uint64_t epoch = coordinator_->work_signal()->Epoch();
    absl::StatusOr<v1::AcquireTaskResponse> result =
        coordinator_->AcquireTask(*request_);
    if (!result.ok()) {
      Finish(ToGrpcStatus(result.status()));
      return;
    }
    if (result->has_task() || !long_poll_ || absl::Now() >= deadline_ ||
        coordinator_->work_signal()->stopped()) {
      *response_ = *std::move(result);
      // A long poll that ran out may ask again at once.
      if (long_poll_ && !response_->has_task()) response_->clear_retry_after();
      if (response_->has_task()) {
        const v1::Task& task = response_->task();
        if (metrics_ != nullptr) metrics_->OnTaskLeased(task, absl::Now());
        Log(absl::StrCat("task ", task.task_id(), " of job ", task.job_id(),
                         " attempt ", task.attempt_id(), " leased to worker ",
                         request_->worker_id()));
      }
      Finish(grpc::Status::OK);
      return;
    }
    coordinator_->work_signal()->WhenWorkMayExist(epoch, deadline_,
                                                  [this] { Try(); });
  }

  Coordinator* const coordinator_;
  const v1::AcquireTaskRequest* const request_;
  v1::AcquireTaskResponse* const response_;
  Metrics* const metrics_;  // may be null
  bool long_poll_ = false;
  absl::Time deadline_;
  lrtune::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

void SetRpcLogging(bool on) { rpc_logging.store(on); }

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()), StatusDetailsOf(status));
}

absl::StatusOr<std::string> LrTuneService::Authorize(
    const grpc::CallbackServerContext& context) {
  absl::StatusOr<Principal> principal =
      AuthorizeCall(auth_, metrics_, context, Role::kClient);
  if (!principal.ok()) return principal.status();
  return std::move(principal->name);
}

absl::Status WorkerHubService::Authorize(
    const grpc::CallbackServerContext& context) {
  if (auth_ == nullptr) return absl::OkStatus();
  return AuthorizeCall(auth_, metrics_, context, Role::kWorker).status();
}

grpc::ServerWriteReactor<v1::JobEvent>* LrTuneService::RangeTest(
    grpc::CallbackServerContext* context, const v1::RangeTestRequest* request) {
  absl::StatusOr<std::string> owner = Authorize(*context);
  if (!owner.ok()) return new FailedWriter(owner.status());
  v1::SubmitJobRequest submit;
  *submit.mutable_range_test()->mutable_run() = request->run();
  *submit.mutable_range_test()->mutable_range_test() = request->range_test();
  submit.set_request_id(request->request_id());
  if (request->has_max_attempts()) {
    submit.set_max_attempts(request->max_attempts());
  }
  absl::StatusOr<v1::Job> job = coordinator_->SubmitJob(*owner, submit);
  if (!job.ok()) return new FailedWriter(job.status());
  if (metrics_ != nullptr) metrics_->OnJobSubmitted();
  Log(absl::StrCat("job ", job->job_id(), " (range test) submitted by ",
                   *owner));
  return StartWatch(coordinator_, job->job_id(), 0, request->skip_points());
}

grpc::ServerUnaryReactor* LrTuneService::SubmitJob(
    grpc::CallbackServerContext* context, const v1::SubmitJobRequest* request,
    v1::Job* response) {
  absl::StatusOr<std::string> owner = Authorize(*context);
  if (!owner.ok()) return Reply<v1::Job>(context, owner.status(), response);
  absl::StatusOr<v1::Job> job = coordinator_->SubmitJob(*owner, *request);
  if (job.ok()) {
    if (metrics_ != nullptr) metrics_->OnJobSubmitted();
    Log(absl::StrCat("job ", job->job_id(), " submitted by ", *owner));
  }
  return Reply(context, std::move(job), response);
}

grpc::ServerWriteReactor<v1::JobEvent>* LrTuneService::WatchJob(
    grpc::CallbackServerContext* context, const v1::WatchJobRequest* request) {
  absl::StatusOr<std::string> owner = Authorize(*context);
  if (!owner.ok()) return new FailedWriter(owner.status());
  absl::StatusOr<v1::Job> job =
      coordinator_->CheckWatch(*owner, request->job_id(), request->after_seq());
  if (!job.ok()) return new FailedWriter(job.status());
  return StartWatch(coordinator_, request->job_id(),
                    static_cast<int64_t>(request->after_seq()),
                    request->skip_points());
}

grpc::ServerUnaryReactor* LrTuneService::GetJob(
    grpc::CallbackServerContext* context, const v1::GetJobRequest* request,
    v1::Job* response) {
  absl::StatusOr<std::string> owner = Authorize(*context);
  if (!owner.ok()) return Reply<v1::Job>(context, owner.status(), response);
  return Reply(context, coordinator_->GetJob(*owner, request->job_id()),
               response);
}

grpc::ServerUnaryReactor* LrTuneService::ListJobs(
    grpc::CallbackServerContext* context, const v1::ListJobsRequest* request,
    v1::ListJobsResponse* response) {
  absl::StatusOr<std::string> owner = Authorize(*context);
  if (!owner.ok()) {
    return Reply<v1::ListJobsResponse>(context, owner.status(), response);
  }
  return Reply(context, coordinator_->ListJobs(*owner, *request), response);
}

grpc::ServerUnaryReactor* LrTuneService::CancelJob(
    grpc::CallbackServerContext* context, const v1::CancelJobRequest* request,
    v1::Job* response) {
  absl::StatusOr<std::string> owner = Authorize(*context);
  if (!owner.ok()) return Reply<v1::Job>(context, owner.status(), response);
  absl::StatusOr<v1::Job> job = coordinator_->CancelJob(*owner, *request);
  if (job.ok()) {
    Log(absl::StrCat("job ", job->job_id(), " cancelled by ", *owner));
  }
  return Reply(context, std::move(job), response);
}

grpc::ServerUnaryReactor* LrTuneService::JoinRangeTest(
    grpc::CallbackServerContext* context,
    const v1::JoinRangeTestRequest* request, v1::RangeTestRun* response) {
  absl::StatusOr<std::string> owner = Authorize(*context);
  if (!owner.ok()) {
    return Reply<v1::RangeTestRun>(context, owner.status(), response);
  }
  absl::StatusOr<v1::RangeTestRun> run =
      coordinator_->JoinRangeTest(*owner, *request);
  if (run.ok()) {
    Log(absl::StrCat("run ", run->run_id(), " attempt ", run->attempt_id(),
                     " joined by client ", request->client_id()));
  }
  return Reply(context, std::move(run), response);
}

grpc::ServerUnaryReactor* LrTuneService::ReportLosses(
    grpc::CallbackServerContext* context,
    const v1::ReportLossesRequest* request,
    v1::ReportLossesResponse* response) {
  absl::StatusOr<std::string> owner = Authorize(*context);
  if (!owner.ok()) {
    return Reply<v1::ReportLossesResponse>(context, owner.status(), response);
  }
  return Reply(context, coordinator_->ReportLosses(*owner, *request), response);
}

grpc::ServerUnaryReactor* LrTuneService::EndRun(
    grpc::CallbackServerContext* context, const v1::EndRunRequest* request,
    v1::EndRunResponse* response) {
  absl::StatusOr<std::string> owner = Authorize(*context);
  if (!owner.ok()) {
    return Reply<v1::EndRunResponse>(context, owner.status(), response);
  }
  absl::StatusOr<v1::EndRunResponse> ended =
      coordinator_->EndRun(*owner, *request);
  if (ended.ok()) {
    Log(absl::StrCat("run ", request->run_id(),
                     " ended: ", ended->end_reason()));
  }
  return Reply(context, std::move(ended), response);
}

grpc::ServerUnaryReactor* WorkerHubService::Register(
    grpc::CallbackServerContext* context, const v1::RegisterRequest* request,
    v1::RegisterResponse* response) {
  absl::Status allowed = Authorize(*context);
  if (!allowed.ok()) {
    return Reply<v1::RegisterResponse>(context, allowed, response);
  }
  absl::StatusOr<v1::RegisterResponse> result =
      coordinator_->Register(*request);
  if (result.ok()) {
    if (metrics_ != nullptr) {
      metrics_->OnWorkerCall(result->worker_id(), absl::Now());
    }
    Log(absl::StrCat("worker ", result->worker_id(), " registered from ",
                     context->peer()));
  }
  return Reply(context, std::move(result), response);
}

grpc::ServerUnaryReactor* WorkerHubService::AcquireTask(
    grpc::CallbackServerContext* context, const v1::AcquireTaskRequest* request,
    v1::AcquireTaskResponse* response) {
  absl::Status allowed = Authorize(*context);
  if (!allowed.ok()) {
    return Reply<v1::AcquireTaskResponse>(context, allowed, response);
  }
  if (metrics_ != nullptr) {
    metrics_->OnWorkerCall(request->worker_id(), absl::Now());
  }
  auto* reactor = new AcquireReactor(coordinator_, request, response, metrics_);
  reactor->Start();
  return reactor;
}

grpc::ServerUnaryReactor* WorkerHubService::Heartbeat(
    grpc::CallbackServerContext* context, const v1::HeartbeatRequest* request,
    v1::HeartbeatResponse* response) {
  absl::Status allowed = Authorize(*context);
  if (!allowed.ok()) {
    return Reply<v1::HeartbeatResponse>(context, allowed, response);
  }
  absl::StatusOr<v1::HeartbeatResponse> result =
      coordinator_->Heartbeat(*request);
  if (result.ok() && metrics_ != nullptr) {
    metrics_->OnHeartbeat(*request, *result, absl::Now());
  }
  return Reply(context, std::move(result), response);
}

grpc::ServerUnaryReactor* WorkerHubService::ReportPoints(
    grpc::CallbackServerContext* context,
    const v1::ReportPointsRequest* request,
    v1::ReportPointsResponse* response) {
  absl::Status allowed = Authorize(*context);
  if (!allowed.ok()) {
    return Reply<v1::ReportPointsResponse>(context, allowed, response);
  }
  absl::StatusOr<v1::ReportPointsResponse> result =
      coordinator_->ReportPoints(*request);
  if (result.ok() && metrics_ != nullptr) {
    metrics_->OnPointsReported(*request, result->acked_seq());
  }
  return Reply(context, std::move(result), response);
}

grpc::ServerUnaryReactor* WorkerHubService::CompleteTask(
    grpc::CallbackServerContext* context,
    const v1::CompleteTaskRequest* request,
    v1::CompleteTaskResponse* response) {
  absl::Status allowed = Authorize(*context);
  if (!allowed.ok()) {
    return Reply<v1::CompleteTaskResponse>(context, allowed, response);
  }
  absl::StatusOr<v1::CompleteTaskResponse> result =
      coordinator_->CompleteTask(*request);
  if (result.ok()) {
    if (metrics_ != nullptr) {
      metrics_->OnTaskEnded(request->task_id(), request->attempt_id(),
                            absl::Now());
    }
    Log(absl::StrCat("task ", request->task_id(), " attempt ",
                     request->attempt_id(), " completed"));
  }
  return Reply(context, std::move(result), response);
}

grpc::ServerUnaryReactor* WorkerHubService::FailTask(
    grpc::CallbackServerContext* context, const v1::FailTaskRequest* request,
    v1::FailTaskResponse* response) {
  absl::Status allowed = Authorize(*context);
  if (!allowed.ok()) {
    return Reply<v1::FailTaskResponse>(context, allowed, response);
  }
  absl::StatusOr<v1::FailTaskResponse> result =
      coordinator_->FailTask(*request);
  if (result.ok()) {
    if (metrics_ != nullptr) {
      metrics_->OnTaskEnded(request->task_id(), request->attempt_id(),
                            absl::Now());
    }
    Log(absl::StrCat("task ", request->task_id(), " attempt ",
                     request->attempt_id(), " failed (",
                     v1::FailureKind_Name(request->kind()), ")"));
  }
  return Reply(context, std::move(result), response);
}

}  // namespace lrtune::server
