// The coordinator's client API (SubmitJob .. ReadEvents), its worker hub
// (Register .. FailTask) and the sweeper; the grid driver is grid_driver.cc,
// the long poll work_signal.cc, a range test's aggregate
// range_test_results.cc. At ~900 lines it is over the house's ~600: the
// client API and the worker hub share the job store's write path under one
// ingest lock (append_mu_), and parting them into files with a lock each is
// the next step of issue 14.
#include "server/coordinator.h"

#include <algorithm>
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
#include "server/range_test_results.h"

namespace lrtune::server {
namespace {

void SetTimestamp(absl::Time t, google::protobuf::Timestamp* out) {
  const int64_t micros = absl::ToUnixMicros(t);
  out->set_seconds(micros / 1000000);
  out->set_nanos(static_cast<int32_t>(micros % 1000000) * 1000);
}

void SetDuration(absl::Duration d, google::protobuf::Duration* out) {
  const int64_t micros = absl::ToInt64Microseconds(d);
  out->set_seconds(micros / 1000000);
  out->set_nanos(static_cast<int32_t>(micros % 1000000) * 1000);
}

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

// Where a task may run: run.device.device "cpu" -> cpu slots; "cuda" or
// "cuda:<i>" -> CUDA slots; "auto" or unset -> any slot. A memory
// requirement needs a CUDA slot reporting that much (CPU slots report none).
NewTask OnDevice(const v1::RunSpec& run, NewTask task) {
  const std::string& device = run.device().device();
  if (device == "cpu") {
    task.device = "cpu";
  } else if (absl::StartsWith(device, "cuda")) {
    task.device = "cuda";
  }
  if (run.device().min_device_memory_bytes() > 0) {
    task.device = "cuda";
    task.min_memory = run.device().min_device_memory_bytes();
  }
  return task;
}

}  // namespace

Coordinator::Coordinator(JobStore* store, Clock* clock,
                         CoordinatorOptions options)
    : store_(store),
      clock_(clock),
      options_(std::move(options)),
      leases_(clock) {}

Coordinator::~Coordinator() {
  signal_.Stop();
  StopSweeper();
}

absl::StatusOr<v1::Job> Coordinator::BuildJob(const JobRecord& record) {
  v1::SubmitJobRequest spec;
  if (!spec.ParseFromString(record.spec)) {
    return absl::DataLossError(
        absl::StrCat("job ", record.id, ": stored spec does not parse"));
  }
  v1::Job job;
  job.set_job_id(record.id);
  job.set_owner(record.owner);
  job.set_state(JobStateToProto(record.state));
  if (spec.has_range_test()) *job.mutable_range_test() = spec.range_test();
  if (spec.has_grid()) *job.mutable_grid() = spec.grid();
  job.set_request_id(spec.request_id());
  SetTimestamp(record.created, job.mutable_create_time());
  if (IsTerminal(record.state))
    SetTimestamp(record.updated, job.mutable_end_time());
  LRTUNE_ASSIGN_OR_RETURN(std::vector<TaskRecord> tasks,
                          store_->ListTasks(record.id));
  job.set_tasks_total(static_cast<int>(tasks.size()));
  int done = 0;
  for (const TaskRecord& t : tasks) {
    if (t.state == TaskState::kSucceeded) ++done;
  }
  job.set_tasks_done(done);
  job.set_failure(record.error);
  job.set_last_seq(static_cast<uint64_t>(record.last_seq));
  if (record.result.has_value() && spec.has_range_test() &&
      !job.mutable_range_test_result()->ParseFromString(*record.result)) {
    return absl::DataLossError(
        absl::StrCat("job ", record.id, ": stored result does not parse"));
  }
  LRTUNE_ASSIGN_OR_RETURN(std::vector<AttemptRecord> attempts,
                          store_->ListAttempts(record.id));
  for (const AttemptRecord& a : attempts) {
    *job.add_attempts() = AttemptToProto(a);
  }
  if (!attempts.empty()) {
    *job.mutable_start_time() = job.attempts(0).start_time();
  }
  if (spec.has_grid()) LRTUNE_RETURN_IF_ERROR(FillGrid(record, job));
  return job;
}

absl::StatusOr<v1::Job> Coordinator::AcceptedJob(const JobRecord& record) {
  LRTUNE_ASSIGN_OR_RETURN(v1::Job job, BuildJob(record));
  // What the job was when it was accepted: none of what happened since.
  job.set_state(v1::JOB_STATE_QUEUED);
  job.clear_start_time();
  job.clear_end_time();
  job.set_tasks_done(0);
  job.clear_attempts();
  job.clear_failure();
  job.clear_result();
  job.set_last_seq(1);
  if (job.has_grid()) {
    // Trials as planned: held ones without their bounds yet.
    LRTUNE_ASSIGN_OR_RETURN(std::vector<PlannedTrial> planned,
                            PlanGrid(job.grid(), options_.limits));
    job.clear_trials();
    for (PlannedTrial& t : planned) *job.add_trials() = std::move(t.trial);
  }
  return job;
}

absl::StatusOr<Coordinator::JobLayout> Coordinator::Layout(
    const std::string& job_id) {
  {
    lrtune::MutexLock lock(&layout_mu_);
    auto it = layouts_.find(job_id);
    if (it != layouts_.end()) return it->second;
  }
  LRTUNE_ASSIGN_OR_RETURN(JobRecord record, store_->GetJob(job_id));
  v1::SubmitJobRequest spec;
  if (!spec.ParseFromString(record.spec)) {
    return absl::DataLossError(
        absl::StrCat("job ", record.id, ": stored spec does not parse"));
  }
  JobLayout layout;
  if (spec.has_grid()) {
    layout.grid = true;
    layout.spec = spec.grid();
    if (layout.spec.has_range_test()) {
      v1::RangeTestJob range;
      *range.mutable_run() = layout.spec.run();
      *range.mutable_range_test() = layout.spec.range_test();
      layout.range_tasks = RangeTestTaskCount(range);
    }
    // Big client payloads are not needed to rank or label trials.
    layout.spec.mutable_run()->mutable_data()->clear_inline_data();
    layout.spec.mutable_run()->mutable_model()->clear_torchscript();
  }
  lrtune::MutexLock lock(&layout_mu_);
  layouts_.emplace(job_id, layout);
  return layout;
}

absl::StatusOr<JobRecord> Coordinator::OwnedJob(const std::string& owner,
                                                const std::string& job_id) {
  if (job_id.empty()) {
    return absl::InvalidArgumentError("job_id is required");
  }
  absl::StatusOr<JobRecord> record = store_->GetJob(job_id);
  if (!record.ok() || record->owner != owner) {
    if (record.ok() || absl::IsNotFound(record.status())) {
      return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
    }
    return record.status();
  }
  return record;
}

void Coordinator::NotifyJob(const std::string& job_id) {
  absl::StatusOr<JobRecord> record = store_->GetJob(job_id);
  if (record.ok()) hub_.Publish(job_id, {}, record->last_seq);
}

absl::StatusOr<v1::Job> Coordinator::SubmitJob(
    const std::string& owner, const v1::SubmitJobRequest& request) {
  LRTUNE_RETURN_IF_ERROR(ValidateSubmitJob(request, options_.limits));
  const int max_attempts = request.has_max_attempts() ? request.max_attempts()
                                                      : options_.max_attempts;
  // One submission at a time, so that the request_id check and the queued
  // count below cannot race another submission.
  lrtune::MutexLock lock(&submit_mu_);
  // Two indexed lookups, whatever the owner's history.
  if (!request.request_id().empty()) {
    LRTUNE_ASSIGN_OR_RETURN(
        std::optional<JobRecord> earlier,
        store_->FindByRequestId(owner, request.request_id()));
    if (earlier.has_value()) {
      v1::SubmitJobRequest stored;
      if (!stored.ParseFromString(earlier->spec) ||
          stored.SerializeAsString() != request.SerializeAsString()) {
        return absl::AlreadyExistsError(absl::StrCat(
            "request_id \"", request.request_id(),
            "\" was used for a different job (", earlier->id, ")"));
      }
      return BuildJob(*earlier);  // a retry of an accepted submission
    }
  }
  LRTUNE_ASSIGN_OR_RETURN(const int64_t queued,
                          store_->CountJobs(owner, JobState::kQueued));
  if (queued >= options_.limits.max_queued_jobs_per_owner) {
    return absl::ResourceExhaustedError(
        absl::StrCat(owner, " has ", queued, " queued jobs, the limit is ",
                     options_.limits.max_queued_jobs_per_owner));
  }
  if (request.has_grid()) {
    const v1::GridSearchJob& grid = request.grid();
    LRTUNE_ASSIGN_OR_RETURN(std::vector<PlannedTrial> trials,
                            PlanGrid(grid, options_.limits));
    std::vector<NewTask> tasks;
    if (grid.has_range_test()) {
      v1::RangeTestJob range;
      *range.mutable_run() = grid.run();
      *range.mutable_range_test() = grid.range_test();
      for (std::string& spec : RangeTestTaskSpecs(range)) {
        tasks.push_back(OnDevice(grid.run(), {std::move(spec), false}));
      }
    }
    for (const PlannedTrial& t : trials) {
      tasks.push_back(OnDevice(t.trial.run(),
                               {t.trial.SerializeAsString(), t.needs_bounds}));
    }
    JobOptions job_options;
    job_options.max_attempts = max_attempts;
    job_options.request_id = request.request_id();
    job_options.max_parallel =
        grid.grid().has_max_parallel() ? grid.grid().max_parallel() : 0;
    LRTUNE_ASSIGN_OR_RETURN(
        JobRecord record,
        store_->CreateJob(owner, "grid", request.SerializeAsString(), tasks,
                          job_options));
    SignalWork();
    return BuildJob(record);
  }
  std::vector<NewTask> tasks;
  for (std::string& spec : RangeTestTaskSpecs(request.range_test())) {
    tasks.push_back(
        OnDevice(request.range_test().run(), {std::move(spec), false}));
  }
  JobOptions job_options;
  job_options.max_attempts = max_attempts;
  job_options.request_id = request.request_id();
  LRTUNE_ASSIGN_OR_RETURN(
      JobRecord record,
      store_->CreateJob(owner, "range_test", request.SerializeAsString(), tasks,
                        job_options));
  SignalWork();
  return BuildJob(record);
}

absl::StatusOr<v1::Job> Coordinator::GetJob(const std::string& owner,
                                            const std::string& job_id) {
  LRTUNE_ASSIGN_OR_RETURN(JobRecord record, OwnedJob(owner, job_id));
  return BuildJob(record);
}

absl::StatusOr<v1::ListJobsResponse> Coordinator::ListJobs(
    const std::string& owner, const v1::ListJobsRequest& request) {
  if (request.page_size() < 0 || request.page_size() > 1000) {
    return absl::InvalidArgumentError(absl::StrCat(
        "page_size must be in [0, 1000], got ", request.page_size()));
  }
  std::vector<JobState> wanted;
  for (int s : request.states()) {
    if (s == v1::JOB_STATE_UNSPECIFIED) continue;
    LRTUNE_ASSIGN_OR_RETURN(JobState state,
                            JobStateFromProto(static_cast<v1::JobState>(s)));
    wanted.push_back(state);
  }
  std::optional<JobState> filter;
  if (wanted.size() == 1) filter = wanted[0];
  const int page_size =
      request.page_size() == 0 ? options_.list_page_size : request.page_size();
  LRTUNE_ASSIGN_OR_RETURN(
      JobPage page,
      store_->ListJobs(owner, filter, page_size, request.page_token()));
  v1::ListJobsResponse response;
  for (const JobRecord& record : page.jobs) {
    // Several states: the store filters by one, so the page is filtered
    // here (it may then hold fewer than page_size jobs).
    if (wanted.size() > 1 &&
        std::find(wanted.begin(), wanted.end(), record.state) == wanted.end()) {
      continue;
    }
    LRTUNE_ASSIGN_OR_RETURN(*response.add_jobs(), BuildJob(record));
  }
  response.set_next_page_token(page.next_page_token);
  return response;
}

absl::StatusOr<v1::Job> Coordinator::CancelJob(
    const std::string& owner, const v1::CancelJobRequest& request) {
  if (request.job_id().empty()) {
    return absl::InvalidArgumentError("job_id is required");
  }
  LRTUNE_RETURN_IF_ERROR(store_->CancelJob(request.job_id(), owner));
  absl::StatusOr<std::vector<CancelTarget>> targets = store_->TasksToCancel();
  if (targets.ok()) {
    for (const CancelTarget& t : *targets)
      leases_.MarkCancel(t.task_id).IgnoreError();
  }
  NotifyJob(request.job_id());
  return GetJob(owner, request.job_id());
}

absl::StatusOr<v1::Job> Coordinator::CheckWatch(const std::string& owner,
                                                const std::string& job_id,
                                                uint64_t after_seq) {
  LRTUNE_ASSIGN_OR_RETURN(v1::Job job, GetJob(owner, job_id));
  if (after_seq > job.last_seq()) {
    return absl::OutOfRangeError(
        absl::StrCat("after_seq (", after_seq,
                     ") is beyond the job's last_seq (", job.last_seq(), ")"));
  }
  return job;
}

absl::StatusOr<std::vector<v1::JobEvent>> Coordinator::ReadEvents(
    const std::string& job_id, int64_t after_seq, int limit) {
  LRTUNE_ASSIGN_OR_RETURN(std::vector<StoredEvent> stored,
                          store_->ReadEvents(job_id, after_seq, limit));
  v1::Job job;
  if (!stored.empty() && stored.front().type == kAcceptedEventType) {
    LRTUNE_ASSIGN_OR_RETURN(JobRecord record, store_->GetJob(job_id));
    LRTUNE_ASSIGN_OR_RETURN(job, AcceptedJob(record));
  }
  std::vector<v1::JobEvent> events;
  events.reserve(stored.size());
  for (const StoredEvent& e : stored) {
    LRTUNE_ASSIGN_OR_RETURN(v1::JobEvent event, StoredEventToProto(e, job));
    events.push_back(std::move(event));
  }
  return events;
}

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
    const TaskRecord& task, int attempt,
    const std::vector<v1::JobEvent>& events) {
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
  lrtune::MutexLock lock(&append_mu_);
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
    if (r.has_point()) {
      e.mutable_point()->mutable_origin()->set_seed_index(
          r.point().seed_index());
      *e.mutable_point()->mutable_point() = r.point();
    } else if (r.has_evaluation()) {
      e.mutable_evaluation()->mutable_origin()->set_seed_index(
          r.evaluation().seed_index());
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
    // A gap (resend from last_acked_seq + 1) or a repeat (already stored).
    LRTUNE_RETURN_IF_ERROR(renew_only());
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
  return response;
}

absl::StatusOr<v1::CompleteTaskResponse> Coordinator::CompleteTask(
    const v1::CompleteTaskRequest& request) {
  std::string job_id;
  {
    lrtune::MutexLock lock(&append_mu_);
    if (request.task_id().empty()) {
      return absl::InvalidArgumentError("task_id is required");
    }
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
      LRTUNE_RETURN_IF_ERROR(AppendEvents(task, task.attempt, events));
      LRTUNE_RETURN_IF_ERROR(store_->CompleteTask(
          task.id, task.attempt, request.trial().SerializeAsString()));
      leases_.Release(task.id, task.attempt).IgnoreError();
      LRTUNE_RETURN_IF_ERROR(AdvanceGrid(job_id));
      NotifyJob(job_id);
      SignalWork();  // a grid's parallel slot is free
      return v1::CompleteTaskResponse();
    }
    if (!request.has_range_test()) {
      return absl::InvalidArgumentError(
          "result.range_test is required for a range-test task");
    }
    v1::RangeTestTask spec;
    if (!spec.ParseFromString(task.spec)) {
      return absl::DataLossError(
          absl::StrCat("task ", task.id, ": stored spec does not parse"));
    }
    // One recommendation event per seed the task ran.
    std::vector<v1::JobEvent> events;
    int seed_index = spec.seed_index();
    for (v1::Recommendation& seed :
         TaskSeedRecommendations(request.range_test())) {
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
        results[t.index] = request.range_test();
      } else if (t.state != TaskState::kSucceeded || !t.result.has_value() ||
                 !results[t.index].ParseFromString(*t.result)) {
        all_done = false;
      }
    }
    std::optional<v1::RangeTestResult> job_result;
    if (all_done) {
      LRTUNE_ASSIGN_OR_RETURN(job_result, AggregateRangeTest(results));
      v1::JobEvent agg;
      *agg.mutable_recommendation()->mutable_recommendation() =
          job_result->recommendation();
      events.push_back(std::move(agg));
    }
    LRTUNE_RETURN_IF_ERROR(AppendEvents(task, task.attempt, events));
    if (job_result.has_value()) {
      LRTUNE_RETURN_IF_ERROR(
          store_->SetJobResult(job_id, job_result->SerializeAsString()));
    }
    LRTUNE_RETURN_IF_ERROR(store_->CompleteTask(
        task.id, task.attempt, request.range_test().SerializeAsString()));
    leases_.Release(task.id, task.attempt).IgnoreError();
    if (layout.grid) LRTUNE_RETURN_IF_ERROR(AdvanceGrid(job_id));
  }
  NotifyJob(job_id);
  SignalWork();  // a job's parallel slot is free
  return v1::CompleteTaskResponse();
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
  {
    lrtune::MutexLock lock(&append_mu_);
    LRTUNE_RETURN_IF_ERROR(AdvanceGrid(task.job_id));
  }
  SignalWork();  // requeued, or a parallel slot freed
  NotifyJob(task.job_id);
  v1::FailTaskResponse response;
  LRTUNE_ASSIGN_OR_RETURN(TaskRecord after, store_->GetTask(task.id));
  response.set_will_retry(after.state == TaskState::kQueued);
  return response;
}

absl::StatusOr<Coordinator::SweepReport> Coordinator::SweepOnce() {
  SweepReport report;
  const absl::Time now = clock_->Now();
  LRTUNE_ASSIGN_OR_RETURN(std::vector<ExpiredLease> expired,
                          store_->ExpireLeases(now));
  leases_.Expired(now);
  report.expired_leases = static_cast<int>(expired.size());
  for (const ExpiredLease& e : expired) NotifyJob(e.job_id);
  if (!expired.empty()) SignalWork();
  signal_.ExpireWaiters(absl::Now());  // long polls whose time is up

  std::set<std::string> grids;
  {
    lrtune::MutexLock lock(&sweep_grids_mu_);
    if (!swept_all_grids_) {
      LRTUNE_ASSIGN_OR_RETURN(std::vector<std::string> running,
                              store_->ListJobIds("grid", JobState::kRunning));
      grids_to_advance_.insert(running.begin(), running.end());
      swept_all_grids_ = true;
    }
    // AdvanceGrid passes over a job that is not a grid.
    for (const ExpiredLease& e : expired) grids_to_advance_.insert(e.job_id);
    grids.swap(grids_to_advance_);
  }
  if (grids.empty()) return report;
  absl::Status failed;
  {
    lrtune::MutexLock lock(&append_mu_);
    for (const std::string& id : grids) {
      absl::Status s = AdvanceGrid(id);
      if (s.ok()) {
        ++report.grids_advanced;
        continue;
      }
      failed.Update(s);
      lrtune::MutexLock retry(&sweep_grids_mu_);
      grids_to_advance_.insert(id);  // the next sweep tries again
    }
  }
  if (!failed.ok()) return failed;
  return report;
}

void Coordinator::StartSweeper() {
  lrtune::MutexLock lock(&sweep_mu_);
  if (sweeping_) return;
  sweeping_ = true;
  sweeper_ = std::thread([this] {
    lrtune::MutexLock lock(&sweep_mu_);
    while (sweeping_) {
      sweep_mu_.Unlock();
      SweepOnce().status().IgnoreError();  // retried next interval
      sweep_mu_.Lock();
      sweep_mu_.AwaitWithTimeout(
          lrtune::Condition(
              +[](bool* running) { return !*running; }, &sweeping_),
          options_.sweep_interval);
    }
  });
}

void Coordinator::StopSweeper() {
  {
    lrtune::MutexLock lock(&sweep_mu_);
    if (!sweeping_) return;
    sweeping_ = false;
  }
  sweeper_.join();
}

}  // namespace lrtune::server
