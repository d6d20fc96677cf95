// The coordinator's side of client-driven range tests (client_run.proto):
// a client joins a run, reports its steps, and ends it; the coordinator
// checks every step against the plan, stores it as the same point event a
// worker's point is, applies the divergence rule online (core/client_run.h)
// and ends the run itself once it is over, through the worker's path
// (FinishRangeTask), so the job's events, result and aggregate are a worker
// test's. A run's state is cached under client_mu_ and changed under its
// job's lock; after a restart it is rebuilt from the stored points.
#include <algorithm>
#include <cassert>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "proto/core_convert.h"
#include "server/coordinator.h"

namespace lrtune::server {
namespace {

constexpr size_t kMaxClientIdBytes = 128;
constexpr size_t kMaxFailureBytes = 4096;

absl::Status CheckClientId(const std::string& id) {
  bool printable = !id.empty() && id.size() <= kMaxClientIdBytes;
  for (char c : id) printable &= c >= 0x21 && c <= 0x7e;
  if (printable) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("client_id must be 1..", kMaxClientIdBytes,
                   " printable ASCII characters without spaces, got \"",
                   id.substr(0, 64), id.size() > 64 ? "...\"" : "\""));
}

absl::Status StaleRun(const TaskRecord& task, uint64_t attempt_id) {
  return absl::FailedPreconditionError(
      absl::StrCat("stale attempt: run ", task.index, " of job ", task.job_id,
                   " attempt ", attempt_id, ", current ", task.attempt,
                   task.state == TaskState::kQueued ? ", its lease lapsed" : "",
                   ": join again with the same client_id"));
}

// Why a job that is no longer running stops its runs.
std::string StoppedJobReason(const JobRecord& job) {
  return absl::StrCat("the job is ", JobStateName(job.state),
                      job.error.empty() ? "" : ": ", job.error);
}

}  // namespace

absl::StatusOr<Coordinator::ClientJob> Coordinator::ClientJobOf(
    const std::string& owner, const std::string& job_id) {
  {
    lrtune::MutexLock lock(&client_mu_);
    auto it = client_jobs_.find(job_id);
    if (it != client_jobs_.end()) {
      if (it->second.owner != owner) {
        return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
      }
      return it->second;
    }
  }
  LRTUNE_ASSIGN_OR_RETURN(JobRecord record, OwnedJob(owner, job_id));
  v1::SubmitJobRequest spec;
  if (!spec.ParseFromString(record.spec)) {
    return absl::DataLossError(
        absl::StrCat("job ", job_id, ": stored spec does not parse"));
  }
  if (!spec.has_range_test() || !IsClientDriven(spec.range_test())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "job ", job_id,
        " is not a client-driven range test (range_test.driver client): "
        "its runs train on workers"));
  }
  ClientJob job;
  job.owner = record.owner;
  LRTUNE_ASSIGN_OR_RETURN(JobSpec run,
                          RunSpecFromProto(spec.range_test().run()));
  LRTUNE_ASSIGN_OR_RETURN(
      job.spec, RangeTestSpecFromProto(spec.range_test().range_test()));
  job.seeds = job.spec.seeds;
  if (job.seeds.empty()) job.seeds.push_back(run.seed);
  // The client states its iterations per epoch; unknown stays 0.
  job.analysis = CurveAnalysisOptions(run, job.spec, 0);
  lrtune::MutexLock lock(&client_mu_);
  client_jobs_.emplace(job_id, job);
  return job;
}

absl::StatusOr<ClientRun*> Coordinator::RunOf(const JobLocks::Held& held,
                                              const ClientJob& job,
                                              const TaskRecord& task) {
  assert(held.job_id() == task.job_id);
  const int64_t stored = task.last_acked_seq + 1;
  {
    lrtune::MutexLock lock(&client_mu_);
    auto it = client_runs_.find(task.id);
    if (it != client_runs_.end() && it->second->next_step() == stored) {
      return it->second.get();
    }
  }
  // Not cached (a restart) or behind the store: replay the stored points.
  LRTUNE_ASSIGN_OR_RETURN(
      ClientRun run,
      ClientRun::Create(job.spec, job.analysis, PrefixNames("range_test.")));
  int64_t after = 0;
  while (run.next_step() < stored && !run.ended()) {
    LRTUNE_ASSIGN_OR_RETURN(std::vector<StoredEvent> events,
                            store_->ReadEvents(task.job_id, after, 4096));
    if (events.empty()) break;
    for (const StoredEvent& e : events) {
      after = e.seq;
      if (e.task_id != task.id || e.type != "point") continue;
      LRTUNE_ASSIGN_OR_RETURN(v1::JobEvent event, StoredEventToProto(e));
      const v1::CurvePoint& p = event.point().point();
      if (p.step() != run.next_step() || run.ended()) continue;
      run.Add({p.step(), p.loss(), p.skipped_updates(), p.elapsed_s()});
    }
  }
  if (run.next_step() != stored && !run.ended()) {
    return absl::DataLossError(absl::StrCat("run ", task.id, ": ", stored,
                                            " steps acknowledged but ",
                                            run.next_step(), " points stored"));
  }
  auto owned = std::make_unique<ClientRun>(std::move(run));
  ClientRun* out = owned.get();
  lrtune::MutexLock lock(&client_mu_);
  client_runs_[task.id] = std::move(owned);
  return out;
}

absl::Status Coordinator::AppendRunPoints(
    const TaskRecord& task, const std::vector<v1::JobEvent>& events,
    int64_t first_step) {
  std::vector<Event> rows;
  rows.reserve(events.size());
  for (const v1::JobEvent& e : events) {
    rows.push_back({EventType(e), e.SerializeAsString()});
  }
  absl::Time now;
  LRTUNE_ASSIGN_OR_RETURN(
      const int64_t last,
      store_->AppendTaskEvents(task.id, task.attempt, first_step, rows,
                               options_.lease_ttl, &now));
  std::vector<v1::JobEvent> published = events;
  const int64_t n = static_cast<int64_t>(published.size());
  for (int64_t i = 0; i < n; ++i) {
    published[i].set_seq(static_cast<uint64_t>(last - n + 1 + i));
    published[i].set_job_id(task.job_id);
    SetTimestamp(now, published[i].mutable_time());
  }
  hub_.Publish(task.job_id, published, last);
  return absl::OkStatus();
}

absl::Status Coordinator::FinishRun(const JobLocks::Held& held,
                                    const TaskRecord& task,
                                    const ClientRun& run) {
  LRTUNE_ASSIGN_OR_RETURN(Recommendation rec, run.Analyze());
  v1::RangeTestTaskResult result;
  *result.mutable_recommendation() = RecommendationToProto(rec);
  result.set_steps_run(run.next_step());
  result.set_train_seconds(run.elapsed_s());
  result.set_device(kClientDevice);
  LRTUNE_ASSIGN_OR_RETURN(JobLayout layout, Layout(task.job_id));
  LRTUNE_RETURN_IF_ERROR(FinishRangeTask(held, task, layout, result));
  lrtune::MutexLock lock(&client_mu_);
  client_runs_.erase(task.id);
  return absl::OkStatus();
}

absl::StatusOr<v1::RangeTestRun> Coordinator::JoinRangeTest(
    const std::string& owner, const v1::JoinRangeTestRequest& request) {
  if (request.job_id().empty()) {
    return absl::InvalidArgumentError("job_id is required");
  }
  LRTUNE_RETURN_IF_ERROR(CheckClientId(request.client_id()));
  LRTUNE_ASSIGN_OR_RETURN(ClientJob job, ClientJobOf(owner, request.job_id()));
  const int runs = static_cast<int>(job.seeds.size());
  std::optional<int> index;
  if (request.has_run_index()) {
    if (request.run_index() < 0 || request.run_index() >= runs) {
      return absl::InvalidArgumentError(absl::StrCat(
          "run_index must be in [0, ", runs,
          ") (one run per range_test.seeds), got ", request.run_index()));
    }
    index = request.run_index();
  }
  const JobLocks::Held held = job_locks_.Lock(request.job_id());
  LRTUNE_ASSIGN_OR_RETURN(
      JobStore::ClientLease lease,
      store_->LeaseClientTask(request.job_id(), index, request.client_id(),
                              options_.lease_ttl));
  LRTUNE_ASSIGN_OR_RETURN(TaskRecord task,
                          store_->GetTask(lease.lease.task_id));
  v1::RangeTestRun out;
  out.set_job_id(request.job_id());
  out.set_run_id(task.id);
  out.set_attempt_id(static_cast<uint64_t>(task.attempt));
  out.set_run_index(task.index);
  out.set_seed(job.seeds[static_cast<size_t>(task.index)]);
  out.set_acked_step(task.last_acked_seq);
  SetDuration(options_.lease_ttl, out.mutable_lease_ttl());
  SetDuration(options_.lease_ttl / 4, out.mutable_report_interval());
  out.set_max_steps_per_report(options_.max_report_records);
  v1::RangeTestPlan& plan = *out.mutable_plan();
  plan.set_start_lr(job.spec.start_lr);
  plan.set_end_lr(job.spec.end_lr);
  plan.set_shape(RampToProto(job.spec.shape));
  plan.set_smoothing_beta(job.analysis.smoothing_beta);
  plan.set_divergence_factor(job.analysis.divergence_factor);
  if (lease.state != TaskState::kLeased) {
    out.set_ended(true);
    out.set_end_reason(
        lease.state == TaskState::kSucceeded
            ? "the run has ended"
            : absl::StrCat("the run is ", TaskStateName(lease.state)));
    return out;
  }
  LRTUNE_ASSIGN_OR_RETURN(ClientRun * run, RunOf(held, job, task));
  plan.mutable_lrs()->Add(run->lrs().begin(), run->lrs().end());
  NotifyJob(request.job_id());  // queued -> running
  return out;
}

absl::StatusOr<v1::ReportLossesResponse> Coordinator::ReportLosses(
    const std::string& owner, const v1::ReportLossesRequest& request) {
  if (request.run_id().empty()) {
    return absl::InvalidArgumentError("run_id is required");
  }
  const std::string job_id = JobStore::JobOfTask(request.run_id());
  if (job_id.empty()) {
    return absl::NotFoundError(
        absl::StrCat("run ", request.run_id(), " not found"));
  }
  LRTUNE_ASSIGN_OR_RETURN(ClientJob job, ClientJobOf(owner, job_id));
  if (request.steps_size() > options_.max_report_records) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "steps: ", request.steps_size(), " steps, over the limit of ",
        options_.max_report_records));
  }
  const JobLocks::Held held = job_locks_.Lock(job_id);
  LRTUNE_ASSIGN_OR_RETURN(TaskRecord task, store_->GetTask(request.run_id()));
  // Queued again: the lease lapsed (the sweeper requeued it).
  if (static_cast<uint64_t>(task.attempt) != request.attempt_id() ||
      task.state == TaskState::kQueued) {
    return StaleRun(task, request.attempt_id());
  }
  v1::ReportLossesResponse response;
  const int64_t n = request.steps_size();
  const int64_t last_sent = n > 0 ? request.steps(n - 1).step() : -1;
  // Over, or being stopped: what the client sent is acknowledged and
  // dropped, and it stops.
  auto stop = [&](std::string reason) {
    response.set_directive(v1::RUN_DIRECTIVE_STOP);
    response.set_stop_reason(std::move(reason));
    response.set_acked_step(std::max(task.last_acked_seq, last_sent));
    return response;
  };
  if (task.state != TaskState::kLeased || task.cancel_requested) {
    LRTUNE_ASSIGN_OR_RETURN(JobRecord record, store_->GetJob(job_id));
    if (task.state == TaskState::kLeased) {
      // The job was cancelled or failed while this run trained: its attempt
      // ends here, as a worker's does when it hears CANCEL.
      LRTUNE_RETURN_IF_ERROR(store_->FailTask(task.id, task.attempt,
                                              "cancelled: the job stopped",
                                              FailureKind::kCancelled));
      NotifyJob(job_id);
      return stop(StoppedJobReason(record));
    }
    if (task.state == TaskState::kSucceeded) {
      return stop("the run has ended");
    }
    return stop(IsTerminal(record.state)
                    ? StoppedJobReason(record)
                    : absl::StrCat("the run is ", TaskStateName(task.state)));
  }
  LRTUNE_ASSIGN_OR_RETURN(ClientRun * run, RunOf(held, job, task));
  if (run->ended()) {  // stored to its end, but not ended: end it now
    const std::string reason = run->EndReason();
    LRTUNE_RETURN_IF_ERROR(FinishRun(held, task, *run));
    NotifyJob(job_id);
    return stop(reason);
  }
  // Every step is checked before any is stored.
  for (int64_t i = 0; i < n; ++i) {
    const v1::ClientStep& s = request.steps(static_cast<int>(i));
    const FieldNamer names = PrefixNames(absl::StrCat("steps[", i, "]."));
    if (i > 0 && s.step() != request.steps(0).step() + i) {
      return absl::InvalidArgumentError(absl::StrCat(
          "steps[", i, "].step must be ", request.steps(0).step() + i,
          " (consecutive), got ", s.step()));
    }
    LRTUNE_RETURN_IF_ERROR(run->Check(
        {s.step(), s.loss(), s.skipped_updates(), s.elapsed_s()}, names));
  }
  response.set_directive(v1::RUN_DIRECTIVE_CONTINUE);
  response.set_acked_step(task.last_acked_seq);
  const int64_t first = n > 0 ? request.steps(0).step() : 0;
  const int64_t next = task.last_acked_seq + 1;
  if (n == 0 || first > next || last_sent < next) {
    // Nothing new (a renewal, a repeat) or a gap (resend from acked + 1).
    absl::StatusOr<LeaseRenewal> renewed =
        store_->RenewLease(task.id, task.attempt, options_.lease_ttl);
    if (!renewed.ok()) {
      if (absl::IsFailedPrecondition(renewed.status())) {
        return StaleRun(task, request.attempt_id());
      }
      return renewed.status();
    }
    return response;
  }
  std::vector<v1::JobEvent> events;
  for (int64_t i = next - first; i < n && !run->ended(); ++i) {
    const v1::ClientStep& s = request.steps(static_cast<int>(i));
    const ClientRun::Point p =
        run->Add({s.step(), s.loss(), s.skipped_updates(), s.elapsed_s()});
    v1::CurvePoint& point =
        *events.emplace_back().mutable_point()->mutable_point();
    point.set_seed_index(task.index);
    point.set_step(p.step);
    point.set_lr(p.lr);
    point.set_loss(p.loss);
    point.set_smoothed(p.smoothed);
    point.set_elapsed_s(p.elapsed_s);
    point.set_skipped_updates(p.skipped_updates);
  }
  absl::Status appended = AppendRunPoints(task, events, next);
  if (!appended.ok()) {
    {
      // The cached state ran ahead of the store: rebuild it next time.
      lrtune::MutexLock lock(&client_mu_);
      client_runs_.erase(task.id);
    }
    if (absl::IsAborted(appended)) {  // the job stopped meanwhile
      LRTUNE_ASSIGN_OR_RETURN(JobRecord record, store_->GetJob(job_id));
      return stop(StoppedJobReason(record));
    }
    if (absl::IsFailedPrecondition(appended)) {
      return StaleRun(task, request.attempt_id());
    }
    return appended;
  }
  task.last_acked_seq = next + static_cast<int64_t>(events.size()) - 1;
  response.set_acked_step(last_sent);
  if (run->ended()) {
    const std::string reason = run->EndReason();
    LRTUNE_RETURN_IF_ERROR(FinishRun(held, task, *run));
    NotifyJob(job_id);
    return stop(reason);
  }
  return response;
}

absl::StatusOr<v1::EndRunResponse> Coordinator::EndRun(
    const std::string& owner, const v1::EndRunRequest& request) {
  if (request.run_id().empty()) {
    return absl::InvalidArgumentError("run_id is required");
  }
  LRTUNE_RETURN_IF_ERROR(
      CheckTextBytes("failure", request.failure(), kMaxFailureBytes));
  const std::string job_id = JobStore::JobOfTask(request.run_id());
  if (job_id.empty()) {
    return absl::NotFoundError(
        absl::StrCat("run ", request.run_id(), " not found"));
  }
  LRTUNE_ASSIGN_OR_RETURN(ClientJob job, ClientJobOf(owner, job_id));
  v1::EndRunResponse response;
  {
    const JobLocks::Held held = job_locks_.Lock(job_id);
    LRTUNE_ASSIGN_OR_RETURN(TaskRecord task, store_->GetTask(request.run_id()));
    if (static_cast<uint64_t>(task.attempt) != request.attempt_id() ||
        task.state == TaskState::kQueued) {
      return StaleRun(task, request.attempt_id());
    }
    if (task.state == TaskState::kSucceeded) {  // a repeat, or it had ended
      v1::RangeTestTaskResult result;
      if (task.result.has_value() && result.ParseFromString(*task.result)) {
        *response.mutable_recommendation() = result.recommendation();
      }
      response.set_end_reason("the run has ended");
      return response;
    }
    if (task.state != TaskState::kLeased || task.cancel_requested) {
      LRTUNE_ASSIGN_OR_RETURN(JobRecord record, store_->GetJob(job_id));
      if (task.state == TaskState::kLeased) {
        LRTUNE_RETURN_IF_ERROR(store_->FailTask(task.id, task.attempt,
                                                "cancelled: the job stopped",
                                                FailureKind::kCancelled));
      }
      response.set_end_reason(
          IsTerminal(record.state)
              ? StoppedJobReason(record)
              : absl::StrCat("the run is ", TaskStateName(task.state)));
    } else if (!request.failure().empty()) {
      LRTUNE_RETURN_IF_ERROR(store_->FailTask(
          task.id, task.attempt, absl::StrCat("client: ", request.failure()),
          FailureKind::kPermanent));
      response.set_end_reason(
          absl::StrCat("the run failed: ", request.failure()));
      lrtune::MutexLock lock(&client_mu_);
      client_runs_.erase(task.id);
    } else {
      if (request.final_step() > task.last_acked_seq) {
        return absl::FailedPreconditionError(
            absl::StrCat("final_step ", request.final_step(),
                         " is not acknowledged; acked_step ",
                         task.last_acked_seq, ": report the steps first"));
      }
      LRTUNE_ASSIGN_OR_RETURN(ClientRun * run, RunOf(held, job, task));
      if (run->next_step() == 0) {
        const std::string reason =
            "the client ended the run before its first step";
        LRTUNE_RETURN_IF_ERROR(store_->FailTask(
            task.id, task.attempt, absl::StrCat("client: ", reason),
            FailureKind::kPermanent));
        response.set_end_reason(reason);
      } else {
        const std::string reason =
            absl::StrCat("the client ended the run after step ",
                         run->next_step() - 1, " of ", run->steps());
        LRTUNE_ASSIGN_OR_RETURN(Recommendation rec, run->Analyze());
        LRTUNE_RETURN_IF_ERROR(FinishRun(held, task, *run));
        *response.mutable_recommendation() = RecommendationToProto(rec);
        response.set_end_reason(reason);
      }
    }
  }
  NotifyJob(job_id);
  return response;
}

}  // namespace lrtune::server
