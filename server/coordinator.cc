// The coordinator's job model (a job's view, its layout) and its client
// API, SubmitJob .. ReadEvents, under submit_mu_ and layout_mu_. The worker
// hub (Register .. FailTask, under workers_mu_ and each job's lock) is
// worker_hub.cc, the sweeper sweeper.cc, the grid driver grid_driver.cc,
// the long poll work_signal.cc, a range test's aggregate
// range_test_results.cc, client-driven range tests client_runs.cc.
#include "server/coordinator.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/spec.h"
#include "core/status_macros.h"
#include "proto/core_convert.h"
#include "server/range_test_results.h"
#include "server/worker_datasets.h"

namespace lrtune::server {
namespace {

// Where a task may run: run.device.device "cpu" -> cpu slots; "cuda" or
// "cuda:<i>" -> CUDA slots; "auto" or unset -> any slot. A memory
// requirement needs a CUDA slot reporting that much (CPU slots report none).
// A data set by reference needs a worker that has it.
NewTask Placed(const v1::RunSpec& run, NewTask task) {
  if (run.data().source_case() == v1::DataSpec::kName &&
      IsReferencedDataset(run.data().name())) {
    task.dataset = run.data().name();
  }
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
  if (spec.has_range_test())
    layout.budget_steps = BudgetSteps(spec.range_test());
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
    const std::string& owner, const v1::SubmitJobRequest& submitted) {
  // Stored and planned with its data set by reference described, so that
  // neither depends on the workers registered later.
  LRTUNE_ASSIGN_OR_RETURN(const v1::SubmitJobRequest request,
                          DescribeDatasets(submitted));
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
      // The descriptions are the coordinator's, not the client's: a retry
      // is the same job even if a worker's copy of its set changed since.
      if (!stored.ParseFromString(earlier->spec) ||
          WithoutDatasetDescriptions(stored).SerializeAsString() !=
              WithoutDatasetDescriptions(request).SerializeAsString()) {
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
        tasks.push_back(Placed(grid.run(), {std::move(spec), false}));
      }
    }
    for (const PlannedTrial& t : trials) {
      tasks.push_back(
          Placed(t.trial.run(), {t.trial.SerializeAsString(), t.needs_bounds}));
    }
    JobOptions job_options;
    job_options.max_attempts = max_attempts;
    job_options.request_id = request.request_id();
    job_options.max_parallel =
        grid.grid().has_max_parallel() ? grid.grid().max_parallel() : 0;
    LRTUNE_ASSIGN_OR_RETURN(std::optional<PruningOptions> pruning,
                            server::PruningOf(grid.grid()));
    if (pruning.has_value()) {
      // The range test's seeds first, then the trials from the middle of
      // their LR axis outward (PrunedLeaseOrder).
      const int range_tasks = static_cast<int>(tasks.size() - trials.size());
      for (int i = 0; i < range_tasks; ++i) {
        job_options.lease_order.push_back(i);
      }
      for (int t : PrunedLeaseOrder(grid, trials)) {
        job_options.lease_order.push_back(range_tasks + t);
      }
    }
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
        Placed(request.range_test().run(), {std::move(spec), false}));
    // A client's run: no worker slot offers this device.
    if (IsClientDriven(request.range_test()))
      tasks.back().device = kClientDevice;
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
  return ListJobsOf(owner, request);
}

absl::StatusOr<v1::ListJobsResponse> Coordinator::ListAllJobs(
    const v1::ListJobsRequest& request) {
  return ListJobsOf(std::nullopt, request);
}

absl::StatusOr<std::string> Coordinator::JobOwner(const std::string& job_id) {
  if (job_id.empty()) {
    return absl::InvalidArgumentError("job_id is required");
  }
  LRTUNE_ASSIGN_OR_RETURN(JobRecord record, store_->GetJob(job_id));
  return record.owner;
}

absl::StatusOr<v1::ListJobsResponse> Coordinator::ListJobsOf(
    std::optional<std::string> owner, const v1::ListJobsRequest& request) {
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

absl::Status Coordinator::CheckTextBytes(const char* field,
                                         const std::string& value, size_t max) {
  if (value.size() <= max) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      field, " must be at most ", max, " bytes, got ", value.size()));
}

absl::StatusOr<v1::Job> Coordinator::CancelJob(
    const std::string& owner, const v1::CancelJobRequest& request) {
  if (request.job_id().empty()) {
    return absl::InvalidArgumentError("job_id is required");
  }
  LRTUNE_RETURN_IF_ERROR(CheckTextBytes("reason", request.reason(), 1024));
  LRTUNE_RETURN_IF_ERROR(
      store_->CancelJob(request.job_id(), owner, request.reason()));
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
  std::vector<v1::JobEvent> events;
  events.reserve(stored.size());
  for (const StoredEvent& e : stored) {
    LRTUNE_ASSIGN_OR_RETURN(v1::JobEvent event, StoredEventToProto(e));
    if (event.has_accepted()) {  // the job's row holds what it was
      LRTUNE_ASSIGN_OR_RETURN(JobRecord record, store_->GetJob(job_id));
      LRTUNE_ASSIGN_OR_RETURN(*event.mutable_accepted()->mutable_job(),
                              AcceptedJob(record));
    }
    events.push_back(std::move(event));
  }
  return events;
}

}  // namespace lrtune::server
