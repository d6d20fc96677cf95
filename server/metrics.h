// The coordinator's Prometheus metrics: counters the RPC edge moves on every
// call (grpc_services.cc), gauges read from the store at scrape time, and
// the HTTP endpoint that serves them in the text exposition format 0.0.4.
//
//   Metrics metrics;                       // the edge calls its On* methods
//   MetricsHttpServer http(&metrics);
//   LRTUNE_RETURN_IF_ERROR(http.Start("127.0.0.1:9090"));  // GET /metrics
//
// What the edge sees is what the counters count: a task's duration runs
// from the AcquireTask that leased it to its CompleteTask / FailTask; a
// lease expiry is a lease this process handed out or renewed whose expiry
// time passed without a renewal, completion or failure (the sweeper
// requeues the task within one sweep interval of it). After a restart,
// counters start at 0 (Prometheus' rate() handles resets). Thread-safe.
#ifndef LRTUNE_SERVER_METRICS_H_
#define LRTUNE_SERVER_METRICS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/sync.h"
#include "lrtune/v1/worker.pb.h"
#include "server/job_store.h"

namespace lrtune::server {

// Tasks by state across the jobs that are not finished.
struct TaskGauges {
  int64_t queued = 0;   // waiting for a worker (held grid trials excluded)
  int64_t running = 0;  // leased
};

// Counts queued and leased tasks of every queued or running job in `store`
// (read-only; one ListTasks per unfinished job).
absl::StatusOr<TaskGauges> CountTasks(JobStore* store);

class Metrics {
 public:
  // Upper bounds (seconds) of the task duration histogram's buckets.
  static constexpr std::array<double, 9> kDurationBuckets = {
      1, 5, 15, 30, 60, 300, 900, 3600, 14400};
  // A worker counts in lrtune_workers while its last WorkerHub call is at
  // most this old (an idle worker long-polls AcquireTask every <= 30 s).
  static constexpr absl::Duration kWorkerWindow = absl::Seconds(75);

  Metrics() = default;
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Where lrtune_queue_depth and lrtune_tasks_running come from; unset (or
  // failing): those gauges are left out of the page.
  void SetTaskGauges(std::function<absl::StatusOr<TaskGauges>()> fn);

  // --- called by the RPC edge, each after the coordinator answered OK ---
  void OnJobSubmitted() { jobs_submitted_.fetch_add(1); }
  void OnAuthFailure(bool permission_denied);
  void OnWorkerCall(const std::string& worker_id, absl::Time now);
  void OnTaskLeased(const v1::Task& task, absl::Time now);
  // `request`'s records up to `acked_seq` that were new count as ingested.
  void OnPointsReported(const v1::ReportPointsRequest& request,
                        int64_t acked_seq);
  void OnHeartbeat(const v1::HeartbeatRequest& request,
                   const v1::HeartbeatResponse& response, absl::Time now);
  // The attempt ended (CompleteTask, FailTask): observes its duration.
  void OnTaskEnded(const std::string& task_id, uint64_t attempt_id,
                   absl::Time now);

  // The page served at /metrics; also moves lapsed leases into
  // lrtune_lease_expiries_total.
  std::string RenderPrometheus(absl::Time now);

  // For tests.
  int64_t points_ingested() const { return points_ingested_.load(); }

 private:
  struct Lease {
    uint64_t attempt_id = 0;
    absl::Time started = absl::InfiniteFuture();  // unknown after a restart
    absl::Time expires = absl::InfiniteFuture();
    int64_t acked_seq = -1;  // highest record seq counted
  };

  void ExpireLeasesLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ObserveLocked(absl::Duration d) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  std::atomic<int64_t> jobs_submitted_{0};
  std::atomic<int64_t> points_ingested_{0};
  std::atomic<int64_t> unauthenticated_{0};
  std::atomic<int64_t> permission_denied_{0};

  lrtune::Mutex mu_;
  std::function<absl::StatusOr<TaskGauges>()> task_gauges_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, absl::Time> workers_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Lease> leases_ ABSL_GUARDED_BY(mu_);  // by task id
  int64_t lease_expiries_ ABSL_GUARDED_BY(mu_) = 0;
  std::array<int64_t, kDurationBuckets.size()> duration_buckets_
      ABSL_GUARDED_BY(mu_) = {};
  int64_t duration_count_ ABSL_GUARDED_BY(mu_) = 0;
  double duration_sum_ ABSL_GUARDED_BY(mu_) = 0;
};

// GET /metrics over plain HTTP (cpp-httplib) on its own thread. Other paths
// answer 404.
class MetricsHttpServer {
 public:
  explicit MetricsHttpServer(Metrics* metrics);  // not owned
  ~MetricsHttpServer();                          // Stop()
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  // Binds `host:port` ("[::1]:9090" for IPv6) and starts serving.
  // INVALID_ARGUMENT for a malformed address, UNAVAILABLE when it cannot
  // bind. Returns the bound port through `port` when not null.
  absl::Status Start(const std::string& address, int* port = nullptr);
  void Stop();

 private:
  struct Impl;
  Metrics* const metrics_;
  std::unique_ptr<Impl> impl_;
  std::thread thread_;
};

}  // namespace lrtune::server

#endif  // LRTUNE_SERVER_METRICS_H_
