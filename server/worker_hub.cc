// The coordinator's worker hub: registration, leases (AcquireTask,
// Heartbeat) and the fenced writes of a task's attempt (ReportPoints,
// CompleteTask, FailTask). workers_mu_ guards the registered workers; each
// job's lock (job_locks.h) orders its appends and completions. At ~480
// lines it is the one file of the hub's write path.
#include <algorithm>
#include <cassert>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "core/curve_analysis.h"
#include "core/status_macros.h"
#include "proto/core_convert.h"
#include "proto/status_details.h"
#include "server/coordinator.h"
#include "server/range_test_results.h"
#include "server/worker_datasets.h"

namespace lrtune::server {
namespace {

absl::Status StaleAttempt(const TaskRecord& task, uint64_t attempt_id) {
  if (task.state != TaskState::kLeased) {
    return absl::FailedPreconditionError(
        absl::StrCat("stale attempt: task ", task.id, " attempt ", attempt_id,
                     ", task is ", TaskStateName(task.state)));
  }
  return absl::FailedPreconditionError(
      absl::StrCat("stale attempt: task ", task.id, " attempt ", attempt_id,
                   ", current ", task.attempt));
}

}  // namespace

absl::StatusOr<v1::RegisterResponse> Coordinator::Register(
    const v1::RegisterRequest& request) {
  const v1::Capabilities& caps = request.capabilities();
  if (caps.slots_size() == 0) {
    return absl::InvalidArgumentError(
        "capabilities.slots must name at least one slot");
  }
  for (int i = 0; i < caps.slots_size(); ++i) {
    const std::string& device = caps.slots(i).device();
    bool known = false;
    for (const v1::Device& d : caps.devices()) known |= d.name() == device;
    if (!known) {
      return absl::InvalidArgumentError(
          absl::StrCat("capabilities.slots[", i, "].device \"", device,
                       "\" is not one of capabilities.devices"));
    }
  }
  LRTUNE_RETURN_IF_ERROR(CheckWorkerDatasets(caps));
  v1::RegisterResponse response;
  std::string id = request.worker_id();
  if (id.empty()) {
    absl::BitGen gen;
    id = absl::StrFormat("w-%016x", absl::Uniform<uint64_t>(gen));
  }
  {
    lrtune::MutexLock lock(&workers_mu_);
    WorkerInfo& info = workers_[id];
    info.capabilities = caps;
    info.slot_leases.resize(caps.slots_size());
  }
  response.set_worker_id(id);
  SetDuration(options_.lease_ttl, response.mutable_lease_ttl());
  SetDuration(HeartbeatInterval(options_.lease_ttl),
              response.mutable_heartbeat_interval());
  return response;
}

absl::StatusOr<v1::AcquireTaskResponse> Coordinator::AcquireTask(
    const v1::AcquireTaskRequest& request) {
  if (request.worker_id().empty()) {
    return absl::InvalidArgumentError("worker_id is required");
  }
  {
    lrtune::MutexLock lock(&workers_mu_);
    auto it = workers_.find(request.worker_id());
    if (it == workers_.end()) {
      return WorkerNotRegisteredError(request.worker_id());
    }
    const int slots = static_cast<int>(it->second.slot_leases.size());
    if (request.slot() < 0 || request.slot() >= slots) {
      return absl::InvalidArgumentError(absl::StrCat(
          "slot must be in [0, ", slots, "), got ", request.slot()));
    }
    const auto& [task_id, attempt] = it->second.slot_leases[request.slot()];
    if (!task_id.empty()) {
      std::optional<Lease> held = leases_.Get(task_id);
      if (held.has_value() && held->attempt == attempt &&
          held->worker_id == request.worker_id() &&
          held->expires_at > clock_->Now()) {
        return absl::FailedPreconditionError(
            absl::StrCat("slot ", request.slot(), " already holds task ",
                         task_id, " attempt ", attempt));
      }
    }
  }
  // The slot's device decides which tasks it may take.
  SlotOffer offer;
  {
    lrtune::MutexLock lock(&workers_mu_);
    auto it = workers_.find(request.worker_id());
    if (it != workers_.end()) {
      const v1::Capabilities& caps = it->second.capabilities;
      const std::string& device = caps.slots(request.slot()).device();
      offer.device = absl::StartsWith(device, "cuda") ? "cuda" : "cpu";
      offer.slot_device = device;
      for (const v1::Device& d : caps.devices()) {
        if (d.name() == device) offer.memory_bytes = d.memory_bytes();
      }
      // Only a task whose data set by reference this worker has.
      offer.datasets.emplace();
      for (const v1::DatasetDescription& d : caps.datasets()) {
        offer.datasets->push_back(d.name());
      }
    }
  }
  v1::AcquireTaskResponse response;
  LRTUNE_ASSIGN_OR_RETURN(
      std::optional<TaskLease> lease,
      store_->LeaseNextTask(request.worker_id(), options_.lease_ttl, offer));
  if (!lease.has_value()) {
    SetDuration(options_.acquire_retry, response.mutable_retry_after());
    return response;
  }
  {
    lrtune::MutexLock lock(&workers_mu_);
    auto it = workers_.find(request.worker_id());
    if (it != workers_.end()) {
      it->second.slot_leases[request.slot()] = {lease->task_id, lease->attempt};
    }
  }
  leases_
      .Grant(lease->task_id, request.worker_id(), lease->attempt,
             options_.lease_ttl)
      .IgnoreError();  // the store is the authority; the table is a cache
  LRTUNE_ASSIGN_OR_RETURN(TaskRecord task, store_->GetTask(lease->task_id));
  v1::Task* out = response.mutable_task();
  out->set_task_id(lease->task_id);
  out->set_job_id(lease->job_id);
  out->set_attempt_id(static_cast<uint64_t>(lease->attempt));
  out->set_attempt_number(lease->attempt);
  out->set_max_attempts(task.max_attempts);
  SetTimestamp(lease->expires_at, out->mutable_lease_expires_at());
  LRTUNE_ASSIGN_OR_RETURN(JobLayout layout, Layout(lease->job_id));
  if (IsTrial(layout, task)) {
    v1::Trial trial;
    if (!trial.ParseFromString(lease->spec)) {
      return absl::DataLossError(absl::StrCat("task ", lease->task_id,
                                              ": stored trial does not parse"));
    }
    v1::TrialTask* t = out->mutable_trial();
    *t->mutable_run() = trial.run();
    *t->mutable_train() = trial.train();
    t->set_trial_index(trial.trial_index());
    // The same name for every attempt: a worker that sees the file an
    // earlier attempt left resumes from it.
    out->mutable_resume()->set_checkpoint_key(
        absl::StrCat(lease->task_id, ".ckpt"));
    // Announce the start; a lost announcement (crash right here) loses no
    // result, so it is not part of the lease's transaction.
    v1::JobEvent started;
    trial.set_state(v1::TRIAL_STATE_RUNNING);
    *started.mutable_trial_started()->mutable_trial() = std::move(trial);
    AttemptRecord attempt;
    attempt.task_id = task.id;
    attempt.attempt = lease->attempt;
    attempt.worker = request.worker_id();
    attempt.device = task.lease_device;
    attempt.started = task.lease_started_at;
    *started.mutable_trial_started()->mutable_attempt() =
        AttemptToProto(attempt);
    store_
        ->AppendJobEvents(lease->job_id,
                          {{EventType(started), started.SerializeAsString()}})
        .IgnoreError();
  } else if (!out->mutable_range_test()->ParseFromString(lease->spec)) {
    return absl::DataLossError(
        absl::StrCat("task ", lease->task_id, ": stored spec does not parse"));
  }
  if (lease->last_acked_seq >= 0) {
    out->mutable_resume()->set_last_acked_seq(lease->last_acked_seq);
  }
  NotifyJob(lease->job_id);  // queued -> running
  return response;
}

absl::StatusOr<v1::HeartbeatResponse> Coordinator::Heartbeat(
    const v1::HeartbeatRequest& request) {
  {
    lrtune::MutexLock lock(&workers_mu_);
    if (workers_.count(request.worker_id()) == 0) {
      return WorkerNotRegisteredError(request.worker_id());
    }
  }
  v1::HeartbeatResponse response;
  for (const v1::TaskStatus& status : request.tasks()) {
    v1::TaskDirective* d = response.add_directives();
    d->set_task_id(status.task_id());
    d->set_attempt_id(status.attempt_id());
    absl::StatusOr<LeaseRenewal> renewal = store_->RenewLease(
        status.task_id(), static_cast<int>(status.attempt_id()),
        options_.lease_ttl);
    if (!renewal.ok()) {
      if (!absl::IsFailedPrecondition(renewal.status()) &&
          !absl::IsNotFound(renewal.status())) {
        return renewal.status();
      }
      d->set_directive(v1::DIRECTIVE_ABANDON);
      d->set_reason(std::string(renewal.status().message()));
      continue;
    }
    const int attempt = static_cast<int>(status.attempt_id());
    if (!leases_.Renew(status.task_id(), attempt).ok()) {
      leases_
          .Grant(status.task_id(), request.worker_id(), attempt,
                 options_.lease_ttl)
          .IgnoreError();  // rebuilt after a restart
    }
    if (renewal->cancel_requested) {
      d->set_directive(v1::DIRECTIVE_CANCEL);
      d->set_reason("the job was cancelled");
    } else {
      d->set_directive(v1::DIRECTIVE_CONTINUE);
      SetTimestamp(renewal->expires_at, d->mutable_lease_expires_at());
    }
  }
  return response;
}

absl::StatusOr<TaskRecord> Coordinator::FencedTask(const std::string& task_id,
                                                   uint64_t attempt_id) {
  if (task_id.empty()) return absl::InvalidArgumentError("task_id is required");
  LRTUNE_ASSIGN_OR_RETURN(TaskRecord task, store_->GetTask(task_id));
  if (task.state != TaskState::kLeased ||
      static_cast<uint64_t>(task.attempt) != attempt_id) {
    return StaleAttempt(task, attempt_id);
  }
  return task;
}

absl::Status Coordinator::AppendEvents(
    const JobLocks::Held& held, const TaskRecord& task, int attempt,
    const std::vector<v1::JobEvent>& events) {
  assert(held.job_id() == task.job_id);
  std::vector<Event> rows;
  for (const v1::JobEvent& e : events) {
    rows.push_back({EventType(e), e.SerializeAsString()});
  }
  absl::Time stored_at;
  LRTUNE_ASSIGN_OR_RETURN(
      int64_t last,
      store_->AppendTaskEvents(task.id, attempt, task.last_acked_seq + 1, rows,
                               std::nullopt, &stored_at));
  std::vector<v1::JobEvent> published = events;
  const int64_t first = last - static_cast<int64_t>(events.size()) + 1;
  for (size_t i = 0; i < published.size(); ++i) {
    published[i].set_seq(
        static_cast<uint64_t>(first + static_cast<int64_t>(i)));
    published[i].set_job_id(task.job_id);
    SetTimestamp(stored_at, published[i].mutable_time());
  }
  hub_.Publish(task.job_id, published, last);
  return absl::OkStatus();
}

absl::StatusOr<v1::ReportPointsResponse> Coordinator::ReportPoints(
    const v1::ReportPointsRequest& request) {
  const JobLocks::Held held =
      job_locks_.Lock(JobStore::JobOfTask(request.task_id()));
  LRTUNE_ASSIGN_OR_RETURN(TaskRecord task,
                          FencedTask(request.task_id(), request.attempt_id()));
  if (request.records_size() > options_.max_report_records) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "records: ", request.records_size(), " records, over the limit of ",
        options_.max_report_records));
  }
  // A report is as good as a heartbeat for the lease: renewed below, with
  // the new records when there are any (one commit), else on its own.
  auto renew_only = [&]() -> absl::Status {
    LRTUNE_RETURN_IF_ERROR(
        store_->RenewLease(task.id, task.attempt, options_.lease_ttl).status());
    leases_.Renew(task.id, task.attempt).IgnoreError();
    return absl::OkStatus();
  };
  v1::ReportPointsResponse response;
  response.set_directive(task.cancel_requested ? v1::DIRECTIVE_CANCEL
                                               : v1::DIRECTIVE_CONTINUE);
  response.set_acked_seq(task.last_acked_seq);
  if (request.records_size() == 0) {
    LRTUNE_RETURN_IF_ERROR(renew_only());
    LRTUNE_ASSIGN_OR_RETURN(JobLayout layout, Layout(task.job_id));
    LRTUNE_RETURN_IF_ERROR(DecideRungs(held, task, layout, request, response));
    return response;
  }
  const int64_t first = request.records(0).seq();
  if (first < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("records[0].seq must be >= 0, got ", first));
  }
  LRTUNE_ASSIGN_OR_RETURN(JobLayout layout, Layout(task.job_id));
  std::optional<int32_t> trial_index;
  if (IsTrial(layout, task)) trial_index = task.index - layout.range_tasks;
  std::vector<v1::JobEvent> events;
  for (int i = 0; i < request.records_size(); ++i) {
    const v1::TaskRecord& r = request.records(i);
    if (r.seq() != first + i) {
      return absl::InvalidArgumentError(
          absl::StrCat("records[", i, "].seq must be ", first + i,
                       " (consecutive), got ", r.seq()));
    }
    v1::JobEvent e;
    // The worker numbers the seeds (agent.cc): the record is the event's.
    if (r.has_point()) {
      *e.mutable_point()->mutable_point() = r.point();
    } else if (r.has_evaluation()) {
      *e.mutable_evaluation()->mutable_evaluation() = r.evaluation();
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("records[", i, "] must hold a point or an evaluation"));
    }
    if (trial_index.has_value()) {
      (r.has_point() ? e.mutable_point()->mutable_origin()
                     : e.mutable_evaluation()->mutable_origin())
          ->set_trial_index(*trial_index);
    }
    events.push_back(std::move(e));
  }
  const int64_t new_count =
      first + request.records_size() - (task.last_acked_seq + 1);
  if (first > task.last_acked_seq + 1 || new_count <= 0) {
    // A gap (resend from last_acked_seq + 1) or a repeat (already stored:
    // a rung it holds may not have its decision yet, if the coordinator
    // stopped in between).
    LRTUNE_RETURN_IF_ERROR(renew_only());
    if (new_count <= 0) {
      LRTUNE_RETURN_IF_ERROR(
          DecideRungs(held, task, layout, request, response));
    }
    return response;
  }
  std::vector<Event> rows;
  for (const v1::JobEvent& e : events) {
    rows.push_back({EventType(e), e.SerializeAsString()});
  }
  absl::Time now;
  absl::StatusOr<int64_t> appended = store_->AppendTaskEvents(
      task.id, task.attempt, first, rows, options_.lease_ttl, &now);
  if (absl::IsAborted(appended.status())) {
    // The job was stopped: the records are acknowledged and dropped (the
    // job's log ended with its terminal event), so the worker stops without
    // resending them.
    LRTUNE_RETURN_IF_ERROR(renew_only());
    response.set_directive(v1::DIRECTIVE_CANCEL);
    response.set_acked_seq(first + request.records_size() - 1);
    return response;
  }
  LRTUNE_RETURN_IF_ERROR(appended.status());
  const int64_t last = *appended;
  leases_.Renew(task.id, task.attempt).IgnoreError();
  std::vector<v1::JobEvent> published(events.end() - new_count, events.end());
  for (int64_t i = 0; i < new_count; ++i) {
    published[i].set_seq(static_cast<uint64_t>(last - new_count + 1 + i));
    published[i].set_job_id(task.job_id);
    SetTimestamp(now, published[i].mutable_time());
  }
  hub_.Publish(task.job_id, published, last);
  response.set_acked_seq(first + request.records_size() - 1);
  LRTUNE_RETURN_IF_ERROR(DecideRungs(held, task, layout, request, response));
  return response;
}

absl::StatusOr<v1::CompleteTaskResponse> Coordinator::CompleteTask(
    const v1::CompleteTaskRequest& request) {
  std::string job_id;
  {
    if (request.task_id().empty()) {
      return absl::InvalidArgumentError("task_id is required");
    }
    const JobLocks::Held held =
        job_locks_.Lock(JobStore::JobOfTask(request.task_id()));
    LRTUNE_ASSIGN_OR_RETURN(TaskRecord current,
                            store_->GetTask(request.task_id()));
    if (current.state == TaskState::kSucceeded &&
        static_cast<uint64_t>(current.attempt) == request.attempt_id()) {
      return v1::CompleteTaskResponse();  // a repeat of a completed call
    }
    LRTUNE_ASSIGN_OR_RETURN(
        TaskRecord task, FencedTask(request.task_id(), request.attempt_id()));
    job_id = task.job_id;
    if (task.cancel_requested) {
      // The job was stopped while this attempt finished: it ends cancelled,
      // and nothing is added after the job's terminal event.
      LRTUNE_RETURN_IF_ERROR(store_->FailTask(
          task.id, task.attempt, "cancelled: finished after the job stopped",
          FailureKind::kCancelled));
      leases_.Release(task.id, task.attempt).IgnoreError();
      return v1::CompleteTaskResponse();
    }
    if (request.final_seq() > task.last_acked_seq) {
      return absl::FailedPreconditionError(absl::StrCat(
          "final_seq ", request.final_seq(), " is not acknowledged; acked_seq ",
          task.last_acked_seq));
    }
    LRTUNE_ASSIGN_OR_RETURN(JobLayout layout, Layout(job_id));
    if (IsTrial(layout, task)) {
      if (!request.has_trial()) {
        return absl::InvalidArgumentError(
            "result.trial is required for a grid trial task");
      }
      LRTUNE_ASSIGN_OR_RETURN(
          std::vector<v1::JobEvent> events,
          TrialFinishedEvents(layout, task, request.trial()));
      LRTUNE_RETURN_IF_ERROR(AppendEvents(held, task, task.attempt, events));
      LRTUNE_RETURN_IF_ERROR(store_->CompleteTask(
          task.id, task.attempt, request.trial().SerializeAsString()));
      leases_.Release(task.id, task.attempt).IgnoreError();
      LRTUNE_RETURN_IF_ERROR(AdvanceGrid(held));
      NotifyJob(job_id);
      SignalWork();  // a grid's parallel slot is free
      return v1::CompleteTaskResponse();
    }
    if (!request.has_range_test()) {
      return absl::InvalidArgumentError(
          "result.range_test is required for a range-test task");
    }
    LRTUNE_RETURN_IF_ERROR(
        FinishRangeTask(held, task, layout, request.range_test()));
  }
  NotifyJob(job_id);
  SignalWork();  // a job's parallel slot is free
  return v1::CompleteTaskResponse();
}

absl::Status Coordinator::FinishRangeTask(
    const JobLocks::Held& held, const TaskRecord& task, const JobLayout& layout,
    const v1::RangeTestTaskResult& result) {
  assert(held.job_id() == task.job_id);
  const std::string& job_id = task.job_id;
  v1::RangeTestTask spec;
  if (!spec.ParseFromString(task.spec)) {
    return absl::DataLossError(
        absl::StrCat("task ", task.id, ": stored spec does not parse"));
  }
  // One recommendation event per seed the task ran.
  std::vector<v1::JobEvent> events;
  int seed_index = spec.seed_index();
  for (v1::Recommendation& seed : TaskSeedRecommendations(result)) {
    v1::RecommendationEvent& e =
        *events.emplace_back().mutable_recommendation();
    e.set_seed_index(seed_index++);
    *e.mutable_recommendation() = std::move(seed);
  }

  // Is this the job's last seed? Then aggregate before the job succeeds.
  LRTUNE_ASSIGN_OR_RETURN(std::vector<TaskRecord> tasks,
                          store_->ListTasks(job_id));
  // A grid's seeds are the first range_tasks tasks; AdvanceGrid
  // aggregates them.
  std::vector<v1::RangeTestTaskResult> results(tasks.size());
  bool all_done = !layout.grid;
  for (const TaskRecord& t : tasks) {
    if (layout.grid) break;
    if (t.id == task.id) {
      results[t.index] = result;
    } else if (t.state != TaskState::kSucceeded || !t.result.has_value() ||
               !results[t.index].ParseFromString(*t.result)) {
      all_done = false;
    }
  }
  std::optional<v1::RangeTestResult> job_result;
  if (all_done) {
    LRTUNE_ASSIGN_OR_RETURN(job_result,
                            AggregateRangeTest(results, layout.budget_steps));
    v1::JobEvent agg;
    *agg.mutable_recommendation()->mutable_recommendation() =
        job_result->recommendation();
    events.push_back(std::move(agg));
  }
  LRTUNE_RETURN_IF_ERROR(AppendEvents(held, task, task.attempt, events));
  if (job_result.has_value()) {
    LRTUNE_RETURN_IF_ERROR(
        store_->SetJobResult(job_id, job_result->SerializeAsString()));
  }
  LRTUNE_RETURN_IF_ERROR(
      store_->CompleteTask(task.id, task.attempt, result.SerializeAsString()));
  leases_.Release(task.id, task.attempt).IgnoreError();
  if (layout.grid) LRTUNE_RETURN_IF_ERROR(AdvanceGrid(held));
  return absl::OkStatus();
}

absl::StatusOr<v1::FailTaskResponse> Coordinator::FailTask(
    const v1::FailTaskRequest& request) {
  if (request.task_id().empty()) {
    return absl::InvalidArgumentError("task_id is required");
  }
  LRTUNE_ASSIGN_OR_RETURN(TaskRecord current,
                          store_->GetTask(request.task_id()));
  if (current.state != TaskState::kLeased &&
      static_cast<uint64_t>(current.attempt) == request.attempt_id()) {
    // This attempt already ended (a repeated call, or its lease lapsed).
    v1::FailTaskResponse response;
    response.set_will_retry(current.state == TaskState::kQueued);
    return response;
  }
  LRTUNE_ASSIGN_OR_RETURN(TaskRecord task,
                          FencedTask(request.task_id(), request.attempt_id()));
  std::string reason = request.reason().empty() ? "failed" : request.reason();
  FailureKind kind = FailureKind::kError;
  if (request.kind() == v1::FAILURE_KIND_CANCELLED) {
    kind = FailureKind::kCancelled;
    reason = absl::StrCat("cancelled: ", reason);
  } else if (request.kind() == v1::FAILURE_KIND_RELEASED) {
    kind = FailureKind::kReleased;
    reason = absl::StrCat("released: ", reason);
  } else if (request.kind() == v1::FAILURE_KIND_PERMANENT) {
    kind = FailureKind::kPermanent;
  }
  LRTUNE_RETURN_IF_ERROR(store_->FailTask(task.id, task.attempt, reason, kind));
  leases_.Release(task.id, task.attempt).IgnoreError();
  LRTUNE_RETURN_IF_ERROR(AdvanceGrid(job_locks_.Lock(task.job_id)));
  SignalWork();  // requeued, or a parallel slot freed
  NotifyJob(task.job_id);
  v1::FailTaskResponse response;
  LRTUNE_ASSIGN_OR_RETURN(TaskRecord after, store_->GetTask(task.id));
  response.set_will_retry(after.state == TaskState::kQueued);
  return response;
}

}  // namespace lrtune::server
