#include "server/metrics.h"

#include <sys/socket.h>

#include <algorithm>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "httplib.h"

namespace lrtune::server {
namespace {

absl::Time FromProto(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return absl::InfiniteFuture();
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

void AppendMetric(std::string* out, absl::string_view name,
                  absl::string_view type, absl::string_view help,
                  double value) {
  absl::StrAppend(out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type,
                  "\n", name, " ", absl::StrFormat("%.17g", value), "\n");
}

}  // namespace

absl::StatusOr<TaskGauges> CountTasks(JobStore* store) {
  TaskGauges gauges;
  for (absl::string_view kind : {"range_test", "grid"}) {
    for (JobState state : {JobState::kQueued, JobState::kRunning}) {
      absl::StatusOr<std::vector<std::string>> ids =
          store->ListJobIds(kind, state);
      if (!ids.ok()) return ids.status();
      for (const std::string& id : *ids) {
        absl::StatusOr<std::vector<TaskRecord>> tasks = store->ListTasks(id);
        if (!tasks.ok()) continue;  // finished and gone meanwhile
        for (const TaskRecord& task : *tasks) {
          if (task.state == TaskState::kQueued && !task.held) ++gauges.queued;
          if (task.state == TaskState::kLeased) ++gauges.running;
        }
      }
    }
  }
  return gauges;
}

void Metrics::SetTaskGauges(std::function<absl::StatusOr<TaskGauges>()> fn) {
  lrtune::MutexLock lock(&mu_);
  task_gauges_ = std::move(fn);
}

void Metrics::OnAuthFailure(bool permission_denied) {
  (permission_denied ? permission_denied_ : unauthenticated_).fetch_add(1);
}

void Metrics::OnWorkerCall(const std::string& worker_id, absl::Time now) {
  if (worker_id.empty()) return;
  lrtune::MutexLock lock(&mu_);
  workers_[worker_id] = now;
}

void Metrics::OnTaskLeased(const v1::Task& task, absl::Time now) {
  lrtune::MutexLock lock(&mu_);
  ExpireLeasesLocked(now);
  Lease& lease = leases_[task.task_id()];
  lease.attempt_id = task.attempt_id();
  lease.started = now;
  lease.expires = FromProto(task.lease_expires_at());
  // A retried attempt may replay records an earlier one stored; the store
  // ignores those, and so does the count.
  lease.acked_seq =
      task.resume().has_last_acked_seq() ? task.resume().last_acked_seq() : -1;
}

void Metrics::OnPointsReported(const v1::ReportPointsRequest& request,
                               int64_t acked_seq) {
  int64_t fresh = 0;
  {
    lrtune::MutexLock lock(&mu_);
    int64_t counted = -1;
    auto it = leases_.find(request.task_id());
    if (it != leases_.end() && it->second.attempt_id == request.attempt_id()) {
      counted = it->second.acked_seq;
    }
    for (const v1::TaskRecord& record : request.records()) {
      if (record.has_point() && record.seq() > counted &&
          record.seq() <= acked_seq) {
        ++fresh;
      }
    }
    if (it != leases_.end() && it->second.attempt_id == request.attempt_id()) {
      it->second.acked_seq = std::max(counted, acked_seq);
    }
  }
  points_ingested_.fetch_add(fresh);
}

void Metrics::OnHeartbeat(const v1::HeartbeatRequest& request,
                          const v1::HeartbeatResponse& response,
                          absl::Time now) {
  lrtune::MutexLock lock(&mu_);
  workers_[request.worker_id()] = now;
  for (const v1::TaskDirective& d : response.directives()) {
    auto it = leases_.find(d.task_id());
    if (d.directive() == v1::DIRECTIVE_ABANDON) {
      if (it != leases_.end() && it->second.attempt_id == d.attempt_id()) {
        leases_.erase(it);
      }
      continue;
    }
    if (d.directive() != v1::DIRECTIVE_CONTINUE) continue;
    if (it == leases_.end() || it->second.attempt_id != d.attempt_id()) {
      Lease lease;  // leased before this process started
      lease.attempt_id = d.attempt_id();
      it = leases_.insert_or_assign(d.task_id(), lease).first;
    }
    it->second.expires = FromProto(d.lease_expires_at());
  }
}

void Metrics::OnTaskEnded(const std::string& task_id, uint64_t attempt_id,
                          absl::Time now) {
  lrtune::MutexLock lock(&mu_);
  auto it = leases_.find(task_id);
  if (it == leases_.end() || it->second.attempt_id != attempt_id) return;
  if (it->second.started != absl::InfiniteFuture()) {
    ObserveLocked(now - it->second.started);
  }
  leases_.erase(it);
}

void Metrics::ExpireLeasesLocked(absl::Time now) {
  for (auto it = leases_.begin(); it != leases_.end();) {
    if (it->second.expires < now) {
      ++lease_expiries_;
      it = leases_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto it = workers_.begin(); it != workers_.end();) {
    it = now - it->second > kWorkerWindow ? workers_.erase(it) : ++it;
  }
}

void Metrics::ObserveLocked(absl::Duration d) {
  const double seconds = absl::ToDoubleSeconds(d);
  for (size_t i = 0; i < kDurationBuckets.size(); ++i) {
    if (seconds <= kDurationBuckets[i]) ++duration_buckets_[i];
  }
  ++duration_count_;
  duration_sum_ += seconds;
}

std::string Metrics::RenderPrometheus(absl::Time now) {
  std::function<absl::StatusOr<TaskGauges>()> gauges_fn;
  {
    lrtune::MutexLock lock(&mu_);
    gauges_fn = task_gauges_;
  }
  // Read outside mu_: the store may be slow and the edge must not wait.
  std::optional<absl::StatusOr<TaskGauges>> gauges;
  if (gauges_fn) gauges = gauges_fn();

  std::string out;
  AppendMetric(&out, "lrtune_jobs_submitted_total", "counter",
               "Jobs accepted by SubmitJob and RangeTest.",
               jobs_submitted_.load());
  AppendMetric(&out, "lrtune_points_ingested_total", "counter",
               "Curve points stored from workers' ReportPoints (repeats of "
               "a batch not counted).",
               points_ingested_.load());
  absl::StrAppend(&out,
                  "# HELP lrtune_auth_failures_total Calls refused by "
                  "authentication or authorization.\n"
                  "# TYPE lrtune_auth_failures_total counter\n"
                  "lrtune_auth_failures_total{code=\"unauthenticated\"} ",
                  unauthenticated_.load(),
                  "\nlrtune_auth_failures_total{code=\"permission_denied\"} ",
                  permission_denied_.load(), "\n");
  if (gauges.has_value() && gauges->ok()) {
    AppendMetric(&out, "lrtune_queue_depth", "gauge",
                 "Tasks waiting for a worker.", (*gauges)->queued);
    AppendMetric(&out, "lrtune_tasks_running", "gauge",
                 "Tasks leased to a worker.", (*gauges)->running);
  }

  lrtune::MutexLock lock(&mu_);
  ExpireLeasesLocked(now);
  AppendMetric(&out, "lrtune_lease_expiries_total", "counter",
               "Task leases that lapsed without a heartbeat (the task is "
               "requeued or, out of attempts, failed).",
               lease_expiries_);
  AppendMetric(&out, "lrtune_workers", "gauge",
               "Workers that called WorkerHub in the last 75 s.",
               workers_.size());
  absl::StrAppend(&out,
                  "# HELP lrtune_task_duration_seconds From the lease of a "
                  "task attempt to its CompleteTask or FailTask.\n"
                  "# TYPE lrtune_task_duration_seconds histogram\n");
  for (size_t i = 0; i < kDurationBuckets.size(); ++i) {
    absl::StrAppend(&out, "lrtune_task_duration_seconds_bucket{le=\"",
                    kDurationBuckets[i], "\"} ", duration_buckets_[i], "\n");
  }
  absl::StrAppend(&out, "lrtune_task_duration_seconds_bucket{le=\"+Inf\"} ",
                  duration_count_, "\nlrtune_task_duration_seconds_sum ",
                  absl::StrFormat("%.17g", duration_sum_),
                  "\nlrtune_task_duration_seconds_count ", duration_count_,
                  "\n");
  return out;
}

struct MetricsHttpServer::Impl {
  httplib::Server server;
};

MetricsHttpServer::MetricsHttpServer(Metrics* metrics)
    : metrics_(metrics), impl_(std::make_unique<Impl>()) {}

MetricsHttpServer::~MetricsHttpServer() { Stop(); }

absl::Status MetricsHttpServer::Start(const std::string& address, int* port) {
  const size_t colon = address.rfind(':');
  int wanted = 0;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(address.substr(colon + 1), &wanted) || wanted < 0 ||
      wanted > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metrics address must be host:port, got \"", address, "\""));
  }
  std::string host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  impl_->server.Get(
      "/metrics", [this](const httplib::Request&, httplib::Response& response) {
        response.set_content(metrics_->RenderPrometheus(absl::Now()),
                             "text/plain; version=0.0.4; charset=utf-8");
      });
  // httplib's default adds SO_REUSEPORT, which let a second server bind
  // the same port and take half the scrapes; SO_REUSEADDR alone does not.
  impl_->server.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  int bound = wanted;
  if (wanted == 0) {
    bound = impl_->server.bind_to_any_port(host);
  } else if (!impl_->server.bind_to_port(host, wanted)) {
    bound = -1;
  }
  if (bound <= 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen for metrics on ", address));
  }
  if (port != nullptr) *port = bound;
  thread_ = std::thread([this] { impl_->server.listen_after_bind(); });
  // stop() is a no-op until the loop runs; wait so that Stop always works.
  for (int i = 0; i < 200 && !impl_->server.is_running(); ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  return absl::OkStatus();
}

void MetricsHttpServer::Stop() {
  if (!thread_.joinable()) return;
  impl_->server.stop();
  thread_.join();
}

}  // namespace lrtune::server
