// The coordinator's logic behind both services (LrTune for clients,
// WorkerHub for workers), in terms of protos and absl::Status; the gRPC
// layer (grpc_services.h) only authenticates, converts the status and
// streams.
//
//   Coordinator coord(store.get(), SystemClock(), CoordinatorOptions{});
//   coord.StartSweeper();
//   LRTUNE_ASSIGN_OR_RETURN(v1::Job job, coord.SubmitJob("local", request));
//
// A range test is one task per seed; the last seed to finish aggregates.
// A grid is its range test's seeds (when it has one) then one task per
// trial; trials that use the recommended bounds are held until the seeds
// are done (AdvanceGrid), and the grid ends once every trial has, ranked.
//
// A client-driven range test (range_test.driver CLIENT) is one task per
// run that no worker slot takes: a client joins a run (JoinRangeTest),
// reports its steps (ReportLosses), which the coordinator checks against
// the plan, stores as point events and follows with the divergence rule
// (core/client_run.h), and ends the run itself once it is over; the last
// run to end aggregates, as for workers (client_runs.cc).
//
// A job is durable before SubmitJob returns. Worker writes are fenced by
// the task's attempt id (FAILED_PRECONDITION for a stale one). Every stored
// event is published to the EventHub after its commit. Thread-safe.
#ifndef LRTUNE_SERVER_COORDINATOR_H_
#define LRTUNE_SERVER_COORDINATOR_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/client_run.h"
#include "core/pruning.h"
#include "core/sync.h"
#include "lrtune/v1/client_run.pb.h"
#include "lrtune/v1/jobs.pb.h"
#include "lrtune/v1/lrtune.pb.h"
#include "lrtune/v1/worker.pb.h"
#include "server/clock.h"
#include "server/event_codec.h"
#include "server/event_hub.h"
#include "server/grid_plan.h"
#include "server/job_locks.h"
#include "server/job_store.h"
#include "server/lease_table.h"
#include "server/spec_convert.h"
#include "server/work_signal.h"

namespace lrtune::server {

struct CoordinatorOptions {
  absl::Duration lease_ttl = absl::Seconds(10);      // default 10 s
  int max_attempts = 3;                              // default per task
  absl::Duration sweep_interval = absl::Seconds(1);  // lease expiry sweep
  absl::Duration acquire_retry = absl::Seconds(1);   // retry_after hint
  int max_report_records = 4096;                     // records per ReportPoints
  int list_page_size = 50;                           // ListJobs default
  SpecLimits limits;
};

class Coordinator {
 public:
  // `store` and `clock` are not owned and must outlive the coordinator.
  Coordinator(JobStore* store, Clock* clock, CoordinatorOptions options);
  ~Coordinator();  // stops the sweeper
  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;

  // --- LrTune ---
  absl::StatusOr<v1::Job> SubmitJob(const std::string& owner,
                                    const v1::SubmitJobRequest& request);
  // NOT_FOUND for a missing job and for another owner's.
  absl::StatusOr<v1::Job> GetJob(const std::string& owner,
                                 const std::string& job_id);
  absl::StatusOr<v1::ListJobsResponse> ListJobs(
      const std::string& owner, const v1::ListJobsRequest& request);
  // ListJobs over every owner's jobs, for a caller who may see them all
  // (an admin on the dashboard).
  absl::StatusOr<v1::ListJobsResponse> ListAllJobs(
      const v1::ListJobsRequest& request);
  // The owner of `job_id`, for such a caller to act as: NOT_FOUND when
  // there is no such job.
  absl::StatusOr<std::string> JobOwner(const std::string& job_id);
  absl::StatusOr<v1::Job> CancelJob(const std::string& owner,
                                    const v1::CancelJobRequest& request);
  // The job as GetJob, and OUT_OF_RANGE when after_seq > its last_seq.
  absl::StatusOr<v1::Job> CheckWatch(const std::string& owner,
                                     const std::string& job_id,
                                     uint64_t after_seq);
  // Up to `limit` stored events after `after_seq`, as JobEvents.
  absl::StatusOr<std::vector<v1::JobEvent>> ReadEvents(
      const std::string& job_id, int64_t after_seq, int limit);

  // --- Client-driven range tests (client_runs.cc; lrtune.proto) ---
  absl::StatusOr<v1::RangeTestRun> JoinRangeTest(
      const std::string& owner, const v1::JoinRangeTestRequest& request);
  absl::StatusOr<v1::ReportLossesResponse> ReportLosses(
      const std::string& owner, const v1::ReportLossesRequest& request);
  absl::StatusOr<v1::EndRunResponse> EndRun(const std::string& owner,
                                            const v1::EndRunRequest& request);

  // --- WorkerHub ---
  absl::StatusOr<v1::RegisterResponse> Register(
      const v1::RegisterRequest& request);
  absl::StatusOr<v1::AcquireTaskResponse> AcquireTask(
      const v1::AcquireTaskRequest& request);
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(
      const v1::HeartbeatRequest& request);
  absl::StatusOr<v1::ReportPointsResponse> ReportPoints(
      const v1::ReportPointsRequest& request);
  absl::StatusOr<v1::CompleteTaskResponse> CompleteTask(
      const v1::CompleteTaskRequest& request);
  absl::StatusOr<v1::FailTaskResponse> FailTask(
      const v1::FailTaskRequest& request);

  // AcquireTask's long poll: the epoch that moves whenever a task may have
  // become leasable (a job submitted, a task requeued or released, a
  // parallel slot freed), and the calls waiting on it.
  WorkSignal* work_signal() { return &signal_; }

  // Requeues (or fails) tasks whose lease lapsed; what the sweeper runs.
  // Moves on the grids that may need it: every running grid on the first
  // sweep (one left half-advanced by a crash), then only those whose lease
  // expired (a trial may have failed for good) and those a sweep could not
  // advance; completions and failures advance their own grid. So a sweep
  // takes a job's lock only while it moves that grid.
  struct SweepReport {
    int expired_leases = 0;
    int grids_advanced = 0;
  };
  absl::StatusOr<SweepReport> SweepOnce();
  // Starts / stops the thread calling SweepOnce every sweep_interval.
  void StartSweeper();
  void StopSweeper();

  EventHub* hub() { return &hub_; }
  BackgroundRunner* runner() { return &runner_; }

 private:
  // OK, or InvalidArgument "`field` must be at most `max` bytes, got N":
  // the one rule for a request's free text (a cancel's reason, a client
  // run's failure), which the store keeps in its events.
  static absl::Status CheckTextBytes(const char* field,
                                     const std::string& value, size_t max);
  absl::StatusOr<v1::Job> BuildJob(const JobRecord& record);
  absl::StatusOr<JobRecord> OwnedJob(const std::string& owner,
                                     const std::string& job_id);
  // ListJobs of `owner`'s jobs, or of everyone's when nullopt.
  absl::StatusOr<v1::ListJobsResponse> ListJobsOf(
      std::optional<std::string> owner, const v1::ListJobsRequest& request);
  // Tells watchers of `job_id` that its log grew (they read the store).
  void NotifyJob(const std::string& job_id);
  // Appends coordinator events as task events of `task` (its attempt) and
  // publishes them, under the lock of the task's job.
  absl::Status AppendEvents(const JobLocks::Held& held, const TaskRecord& task,
                            int attempt,
                            const std::vector<v1::JobEvent>& events);
  absl::StatusOr<TaskRecord> FencedTask(const std::string& task_id,
                                        uint64_t attempt_id);

  // How a job's tasks are laid out: a grid's first range_tasks tasks are
  // its range test's seeds, the rest its trials (task index - range_tasks
  // = trial index). Immutable per job, so cached.
  struct JobLayout {
    bool grid = false;
    int range_tasks = 0;
    v1::GridSearchJob spec;  // grid only, without inline data and models
    // A range test's budget for its schedules (BudgetSteps); 0: none.
    int64_t budget_steps = 0;
  };
  absl::StatusOr<JobLayout> Layout(const std::string& job_id);
  bool IsTrial(const JobLayout& layout, const TaskRecord& task) const {
    return layout.grid && task.index >= layout.range_tasks;
  }

  // Moves a grid on, idempotently, from what the store holds: releases its
  // held trials (or fails them) once the range test's seeds are done, and
  // ranks and ends the grid once no task is open. Safe to call at any time;
  // the sweeper calls it for every running grid (recovery after a crash).
  absl::Status AdvanceGrid(const JobLocks::Held& held);
  // Trial task completion: the trial_finished and ranking events.
  absl::StatusOr<std::vector<v1::JobEvent>> TrialFinishedEvents(
      const JobLayout& layout, const TaskRecord& task,
      const v1::TrialTaskResult& result);
  absl::Status FillGrid(const JobRecord& record, v1::Job& job);

  // Pruned search (grid_pruning.cc). A pruned grid's rung results so far
  // and how many decisions were taken (the next one's order).
  struct PruningState {
    RungTable table;
    int64_t decisions = 0;
  };
  // The job's state, rebuilt from its trials' stored rungs on first use;
  // null for a grid without pruning. Under the job's lock.
  absl::StatusOr<PruningState*> PruningOf(const JobLocks::Held& held,
                                          const JobLayout& layout);
  // For a trial's report: decides each stored evaluation at one of its
  // rungs that has no decision yet, stores the decisions (the trial's
  // record and rung_decision events, one transaction), and sets
  // response.pruned when the trial has been pruned. Under the job's lock.
  absl::Status DecideRungs(const JobLocks::Held& held, const TaskRecord& task,
                           const JobLayout& layout,
                           const v1::ReportPointsRequest& request,
                           v1::ReportPointsResponse& response);
  // A range-test task's end with `result`: its seeds' recommendation events
  // and, once every seed of a range-test job is done, the aggregate and the
  // job's result; then the task succeeds. A worker's CompleteTask and a
  // client's run (client_runs.cc) both end here.
  absl::Status FinishRangeTask(const JobLocks::Held& held,
                               const TaskRecord& task, const JobLayout& layout,
                               const v1::RangeTestTaskResult& result);

  // A client-driven job, as its runs need it (immutable, cached).
  struct ClientJob {
    std::string owner;
    std::vector<uint64_t> seeds;  // one per run
    RangeTestSpec spec;
    AnalysisOptions analysis;  // CurveAnalysisOptions
  };
  // NOT_FOUND for a missing job or another owner's; INVALID_ARGUMENT for
  // a job that is not client-driven.
  absl::StatusOr<ClientJob> ClientJobOf(const std::string& owner,
                                        const std::string& job_id);
  // The run's state in step with what the store holds for `task`: the
  // cached one, else rebuilt from its stored points. Under the job's lock.
  absl::StatusOr<ClientRun*> RunOf(const JobLocks::Held& held,
                                   const ClientJob& job,
                                   const TaskRecord& task);
  // Stores a client's points as task events and publishes them.
  absl::Status AppendRunPoints(const TaskRecord& task,
                               const std::vector<v1::JobEvent>& events,
                               int64_t first_step);
  // Ends the run `task` from its state: its recommendation, FinishRangeTask.
  absl::Status FinishRun(const JobLocks::Held& held, const TaskRecord& task,
                         const ClientRun& run);
  // The job as it was accepted (the payload of every replay of its
  // "accepted" event), rebuilt from its spec: QUEUED, no attempts, trials
  // as planned.
  absl::StatusOr<v1::Job> AcceptedJob(const JobRecord& record);

  void SignalWork() { signal_.Signal(); }

  // Data sets by reference (worker_datasets.cc): `request` with the data
  // set by reference of each run described as the first registered worker
  // (by id) that has it reports it, whatever description the client sent
  // dropped. INVALID_ARGUMENT naming <path>.data.name ("run", "grid.run")
  // and listing the workers' sets when no registered worker has it.
  absl::StatusOr<v1::SubmitJobRequest> DescribeDatasets(
      v1::SubmitJobRequest request);
  absl::Status DescribeDataset(v1::RunSpec& run, absl::string_view path);

  struct WorkerInfo {
    v1::Capabilities capabilities;
    // Per slot: the task and attempt it was last given ("" when none).
    std::vector<std::pair<std::string, int>> slot_leases;
  };

  JobStore* const store_;
  Clock* const clock_;
  const CoordinatorOptions options_;
  LeaseTable leases_;
  EventHub hub_;
  BackgroundRunner runner_;
  WorkSignal signal_{&runner_};

  // Per job: orders a job's appends and completions, so that its events are
  // published in seq order and its aggregate is computed once (the store
  // serializes every write anyway). Different jobs do not wait on each other.
  JobLocks job_locks_;

  lrtune::Mutex submit_mu_;  // see SubmitJob

  lrtune::Mutex pruning_mu_;  // the map; an entry is its job lock's
  std::map<std::string, PruningState> pruning_ ABSL_GUARDED_BY(pruning_mu_);

  lrtune::Mutex layout_mu_;
  std::map<std::string, JobLayout> layouts_ ABSL_GUARDED_BY(layout_mu_);

  lrtune::Mutex client_mu_;  // the caches; the runs change under job locks
  std::map<std::string, ClientJob> client_jobs_ ABSL_GUARDED_BY(client_mu_);
  std::map<std::string, std::unique_ptr<ClientRun>> client_runs_
      ABSL_GUARDED_BY(client_mu_);

  lrtune::Mutex workers_mu_;
  std::map<std::string, WorkerInfo> workers_ ABSL_GUARDED_BY(workers_mu_);

  lrtune::Mutex sweep_mu_;
  bool sweeping_ ABSL_GUARDED_BY(sweep_mu_) = false;
  std::thread sweeper_;
  // SweepOnce's grids: whether the first sweep listed every running grid,
  // and the ones left to advance.
  lrtune::Mutex sweep_grids_mu_;
  bool swept_all_grids_ ABSL_GUARDED_BY(sweep_grids_mu_) = false;
  std::set<std::string> grids_to_advance_ ABSL_GUARDED_BY(sweep_grids_mu_);
};

}  // namespace lrtune::server

#endif  // LRTUNE_SERVER_COORDINATOR_H_
