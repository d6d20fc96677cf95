// The coordinator's logic behind both services (LrTune for clients,
// WorkerHub for workers), in terms of protos and absl::Status; the gRPC
// layer (grpc_services.h) only authenticates, converts the status and
// streams.
//
//   Coordinator coord(store.get(), SystemClock(), CoordinatorOptions{});
//   coord.StartSweeper();
//   LRTUNE_ASSIGN_OR_RETURN(v1::Job job, coord.SubmitJob("local", request));
//
// A job is durable before SubmitJob returns. Worker writes are fenced by
// the task's attempt id (FAILED_PRECONDITION for a stale one). Every stored
// event is published to the EventHub after its commit. Thread-safe.
#ifndef LRTUNE_SERVER_COORDINATOR_H_
#define LRTUNE_SERVER_COORDINATOR_H_

#include <cstdint>
#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "lrtune/v1/jobs.pb.h"
#include "lrtune/v1/lrtune.pb.h"
#include "lrtune/v1/worker.pb.h"
#include "server/clock.h"
#include "server/event_hub.h"
#include "server/job_store.h"
#include "server/lease_table.h"
#include "server/spec_convert.h"

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
  absl::StatusOr<v1::Job> CancelJob(const std::string& owner,
                                    const v1::CancelJobRequest& request);
  // The job as GetJob, and OUT_OF_RANGE when after_seq > its last_seq.
  absl::StatusOr<v1::Job> CheckWatch(const std::string& owner,
                                     const std::string& job_id,
                                     uint64_t after_seq);
  // Up to `limit` stored events after `after_seq`, as JobEvents.
  absl::StatusOr<std::vector<v1::JobEvent>> ReadEvents(
      const std::string& job_id, int64_t after_seq, int limit);

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

  // Requeues (or fails) tasks whose lease lapsed; what the sweeper runs.
  absl::Status SweepOnce();
  // Starts / stops the thread calling SweepOnce every sweep_interval.
  void StartSweeper();
  void StopSweeper();

  EventHub* hub() { return &hub_; }
  BackgroundRunner* runner() { return &runner_; }

 private:
  absl::StatusOr<v1::Job> BuildJob(const JobRecord& record);
  absl::StatusOr<JobRecord> OwnedJob(const std::string& owner,
                                     const std::string& job_id);
  // Tells watchers of `job_id` that its log grew (they read the store).
  void NotifyJob(const std::string& job_id);
  // Appends coordinator events as task events of `task` (its attempt) and
  // publishes them. Requires append_mu_.
  absl::Status AppendEvents(const TaskRecord& task, int attempt,
                            const std::vector<v1::JobEvent>& events)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(append_mu_);
  absl::StatusOr<TaskRecord> FencedTask(const std::string& task_id,
                                        uint64_t attempt_id);

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

  // Serializes appends and completions, so that the seqs of published
  // events are known and a job's aggregate is computed once. The store
  // serializes every write anyway.
  absl::Mutex append_mu_;

  absl::Mutex submit_mu_;  // see SubmitJob

  absl::Mutex workers_mu_;
  std::map<std::string, WorkerInfo> workers_ ABSL_GUARDED_BY(workers_mu_);

  absl::Mutex sweep_mu_;
  bool sweeping_ ABSL_GUARDED_BY(sweep_mu_) = false;
  std::thread sweeper_;
};

}  // namespace lrtune::server

#endif  // LRTUNE_SERVER_COORDINATOR_H_
