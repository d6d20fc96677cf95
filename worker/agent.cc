// The worker agent; see agent.h.
#include "worker/agent.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/util/time_util.h"
#include "proto/core_convert.h"
#include "worker/blas_core.h"
#include "worker/dataset_dir.h"
#include "worker/dataset_files.h"
#include "worker/proto_convert.h"

namespace lrtune::worker {
namespace {

using google::protobuf::util::TimeUtil;

constexpr size_t kMaxReasonBytes = 4096;

// The CPU threads this worker uses in all: --threads, or (0) all cores.
int TotalThreads(const AgentOptions& options) {
  return options.threads > 0 ? options.threads : engine::DefaultCpuThreads();
}

void Log(const std::string& line) {
  std::fprintf(stderr, "lrtune-worker: %s\n", line.c_str());
}

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

google::protobuf::Duration ToProto(absl::Duration d) {
  return TimeUtil::MillisecondsToDuration(absl::ToInt64Milliseconds(d));
}

v1::FailureKind FailureKindFor(const absl::Status& status, bool cancelled,
                               bool stopping) {
  if (absl::IsCancelled(status)) {
    if (cancelled) return v1::FAILURE_KIND_CANCELLED;
    if (stopping) return v1::FAILURE_KIND_RELEASED;
  }
  if (absl::IsInvalidArgument(status)) return v1::FAILURE_KIND_PERMANENT;
  return v1::FAILURE_KIND_ERROR;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ParseDevices(const std::string& list) {
  std::vector<std::string> devices;
  for (absl::string_view d : absl::StrSplit(list, ',', absl::SkipEmpty())) {
    std::string name(d);
    bool ok = name == "cpu";
    if (!ok && name.rfind("cuda:", 0) == 0 && name.size() > 5) {
      ok = std::all_of(name.begin() + 5, name.end(),
                       [](char c) { return c >= '0' && c <= '9'; });
    }
    if (!ok) {
      return absl::InvalidArgumentError(
          absl::StrCat("--devices: '", name, "' is not cpu or cuda:<index>"));
    }
    devices.push_back(name);
  }
  if (devices.empty()) {
    return absl::InvalidArgumentError("--devices must name a device");
  }
  return devices;
}

Agent::Agent(AgentOptions options, std::unique_ptr<HubClient> hub)
    : options_(std::move(options)), hub_(std::move(hub)) {
  lrtune::MutexLock lock(&mu_);
  worker_id_ = options_.worker_id;
}

Agent::~Agent() = default;

std::string Agent::worker_id() const {
  lrtune::MutexLock lock(&mu_);
  return worker_id_;
}

int64_t Agent::registrations() const {
  lrtune::MutexLock lock(&mu_);
  return registrations_;
}

bool Agent::SleepOrStop(absl::Duration d) const {
  return stop_.WaitForNotificationWithTimeout(d);
}

void Agent::Shutdown() {
  if (stop_.HasBeenNotified()) return;
  stop_.Notify();
  hub_->CancelWaits();
  lrtune::MutexLock lock(&mu_);
  for (auto& [id, running] : running_) running->cancel.Cancel();
}

absl::Status Agent::RegisterWithRetry() {
  v1::RegisterRequest request;
  request.set_worker_id(worker_id());
  request.set_hostname(options_.hostname);
  v1::Capabilities& caps = *request.mutable_capabilities();
  for (const std::string& d : options_.devices) {
    const engine::DeviceInfo info = engine::DescribeDevice(d);
    v1::Device& device = *caps.add_devices();
    device.set_name(info.name);
    device.set_gpu_name(info.gpu_name);
    device.set_memory_bytes(info.memory_bytes);
    device.set_compute_capability(info.compute_capability);
  }
  caps.set_threads(TotalThreads(options_));
  for (int i = 0; i < options_.slots; ++i) {
    caps.add_slots()->set_device(options_.devices[i % options_.devices.size()]);
  }
  caps.set_torch_version(engine::TorchVersion());
  caps.set_agent_version("0.1.0");
  // The data sets by reference in the data directory, read again at every
  // registration (a set added since shows up after a restart of either
  // side). Only headers are read; the arrays are mapped when a task runs.
  const engine::DatasetListing datasets =
      engine::ListDatasets(engine::DataDirs(options_.data_dir));
  for (const std::string& problem : datasets.problems) Log(problem);
  for (const DatasetDescription& d : datasets.datasets) {
    *caps.add_datasets() = DatasetDescriptionToProto(d);
  }
  Backoff backoff(options_.backoff);
  while (!stop_.HasBeenNotified()) {
    absl::StatusOr<v1::RegisterResponse> r = hub_->Register(request);
    if (r.ok()) {
      lrtune::MutexLock lock(&mu_);
      worker_id_ = r->worker_id();
      ++registrations_;
      const absl::Duration hb = FromProto(r->heartbeat_interval());
      if (hb > absl::ZeroDuration()) heartbeat_interval_ = hb;
      std::vector<std::string> names;
      for (const DatasetDescription& d : datasets.datasets) {
        names.push_back(d.name);
      }
      Log(absl::StrCat(
          "registered as ", worker_id_, " with ", options_.slots,
          " slot(s), heartbeat every ",
          absl::FormatDuration(heartbeat_interval_),
          names.empty() ? "" : "; data sets: ", absl::StrJoin(names, ", ")));
      if (!registered_.HasBeenNotified()) registered_.Notify();
      return absl::OkStatus();
    }
    if (!IsTransient(r.status())) return r.status();
    const absl::Duration delay = backoff.Next();
    Log(absl::StrCat("coordinator unreachable (", r.status().message(),
                     "); retrying in ", absl::FormatDuration(delay)));
    SleepOrStop(delay);
  }
  return absl::CancelledError("shut down before registering");
}

bool Agent::WaitRegistered(absl::Duration timeout) const {
  return registered_.WaitForNotificationWithTimeout(timeout);
}

absl::Status Agent::Reregister(int64_t seen) {
  lrtune::MutexLock lock(&register_mu_);
  if (registrations() != seen) return absl::OkStatus();  // another thread did
  Log(absl::StrCat("the coordinator does not know worker ", worker_id(),
                   " (it restarted?); registering again"));
  return RegisterWithRetry();
}

absl::Status Agent::Run() {
  if (options_.server.empty()) {
    return absl::InvalidArgumentError("--server is required");
  }
  if (options_.slots < 1 || options_.slots > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("--slots must be in [1, 64], got ", options_.slots));
  }
  if (options_.devices.empty()) {
    return absl::InvalidArgumentError("--devices must name a device");
  }
  absl::Status registered = RegisterWithRetry();
  if (absl::IsCancelled(registered)) return absl::OkStatus();
  if (!registered.ok()) return registered;
  std::vector<std::thread> threads;
  threads.emplace_back([this] { HeartbeatLoop(); });
  for (int slot = 0; slot < options_.slots; ++slot) {
    threads.emplace_back([this, slot] { SlotLoop(slot); });
  }
  for (std::thread& t : threads) t.join();
  return absl::OkStatus();
}

void Agent::SlotLoop(int slot) {
  Backoff backoff(options_.backoff);
  while (!stop_.HasBeenNotified()) {
    v1::AcquireTaskRequest request;
    request.set_worker_id(worker_id());
    request.set_slot(slot);
    *request.mutable_wait() = ToProto(options_.acquire_wait);
    const int64_t registration = registrations();
    absl::StatusOr<v1::AcquireTaskResponse> r = hub_->AcquireTask(request);
    if (stop_.HasBeenNotified()) {
      // A task leased during shutdown is released at once.
      if (r.ok() && r->has_task()) {
        v1::FailTaskRequest fail;
        fail.set_task_id(r->task().task_id());
        fail.set_attempt_id(r->task().attempt_id());
        fail.set_kind(v1::FAILURE_KIND_RELEASED);
        fail.set_reason("worker shutting down");
        (void)hub_->FailTask(fail);
      }
      return;
    }
    if (!r.ok()) {
      if (absl::IsNotFound(r.status())) {  // only ever the worker
        if (!Reregister(registration).ok()) SleepOrStop(backoff.Next());
        continue;
      }
      const absl::Duration delay = backoff.Next();
      Log(absl::StrCat("slot ", slot, ": AcquireTask: ", r.status().ToString(),
                       "; retrying in ", absl::FormatDuration(delay)));
      SleepOrStop(delay);
      continue;
    }
    backoff.Reset();
    if (!r->has_task()) {
      absl::Duration retry = FromProto(r->retry_after());
      SleepOrStop(std::clamp(retry, absl::Milliseconds(10), absl::Seconds(5)));
      continue;
    }
    RunTask(slot, r->task());
  }
}

void Agent::HeartbeatLoop() {
  bool resend = false;  // re-registered: renew the leases without waiting
  while (true) {
    absl::Duration interval;
    {
      lrtune::MutexLock lock(&mu_);
      interval = heartbeat_interval_;  // a new Register may change it
    }
    if (!resend && SleepOrStop(interval)) return;
    if (stop_.HasBeenNotified()) return;
    const bool resending = resend;
    resend = false;
    v1::HeartbeatRequest request;
    request.set_worker_id(worker_id());
    std::vector<std::shared_ptr<Running>> tasks;
    {
      lrtune::MutexLock lock(&mu_);
      for (auto& [id, running] : running_) {
        if (running->abandoned) continue;
        tasks.push_back(running);
        v1::TaskStatus& s = *request.add_tasks();
        s.set_task_id(running->task_id);
        s.set_attempt_id(running->attempt_id);
        s.set_step(running->step.load());
      }
    }
    const int64_t registration = registrations();
    absl::StatusOr<v1::HeartbeatResponse> r = hub_->Heartbeat(request);
    if (!r.ok()) {
      if (absl::IsNotFound(r.status())) {  // only ever the worker
        // The leases lapse unless renewed soon: heartbeat again at once.
        // Once only: a coordinator that keeps answering NOT_FOUND after a
        // Register is not hammered.
        resend = Reregister(registration).ok() && !resending;
        continue;
      }
      Log(absl::StrCat("Heartbeat: ", r.status().ToString()));
      continue;
    }
    for (const v1::TaskDirective& d : r->directives()) {
      for (const std::shared_ptr<Running>& t : tasks) {
        if (t->task_id != d.task_id() || t->attempt_id != d.attempt_id()) {
          continue;
        }
        if (d.directive() == v1::DIRECTIVE_CANCEL) {
          Log(absl::StrCat("task ", t->task_id, ": cancel (", d.reason(), ")"));
          t->cancel_directive = true;
          t->cancel.Cancel();
        } else if (d.directive() == v1::DIRECTIVE_ABANDON) {
          Log(absl::StrCat("task ", t->task_id, ": abandon (", d.reason(),
                           ")"));
          t->abandoned = true;
          t->cancel.Cancel();
        }
      }
    }
  }
}

void Agent::FinalFlush(TaskReporter& reporter, Running& running,
                       RecordBuffer& buffer) {
  Backoff backoff(options_.backoff);
  while (!running.abandoned) {
    const int64_t registration = registrations();
    absl::Status s = reporter.Flush();
    if (s.ok()) return;
    // Not registered: register again, then retry after a backoff as for a
    // transient error (so a coordinator that keeps saying so is not
    // flooded).
    if (IsNotRegistered(s)) (void)Reregister(registration);
    if (!IsTransient(s) && !IsNotRegistered(s)) {
      Log(absl::StrCat("task ", running.task_id,
                       ": ReportPoints: ", s.ToString()));
      running.abandoned = true;
      return;
    }
    if (stop_.HasBeenNotified()) return;  // the lease lapses; records replay
    SleepOrStop(backoff.Next());
  }
}

std::string Agent::CheckpointPath(const v1::Task& task) const {
  const std::string& key = task.resume().checkpoint_key();
  if (options_.checkpoint_dir.empty() || key.empty() ||
      key.find('/') != std::string::npos || key == "." || key == "..") {
    return "";
  }
  return (std::filesystem::path(options_.checkpoint_dir) / key).string();
}

void Agent::RunTask(int slot, const v1::Task& task) {
  auto running = std::make_shared<Running>();
  running->task_id = task.task_id();
  running->attempt_id = task.attempt_id();
  {
    lrtune::MutexLock lock(&mu_);
    running_[task.task_id()] = running;
    if (stop_.HasBeenNotified()) running->cancel.Cancel();
  }
  const std::string device = options_.devices[slot % options_.devices.size()];
  Log(absl::StrCat("slot ", slot, " (", device, "): task ", task.task_id(),
                   " attempt ", task.attempt_number(), " of job ",
                   task.job_id()));
  RecordBuffer buffer(
      task.resume().has_last_acked_seq() ? task.resume().last_acked_seq() : -1);
  TaskReporter reporter(hub_.get(), task.task_id(), task.attempt_id(), &buffer,
                        options_.report_batch);

  // The reporter thread sends batches while the engine trains.
  std::thread reporter_thread([&] {
    Backoff backoff(options_.backoff);
    bool closed = false;
    while (!closed && !running->abandoned) {
      closed =
          buffer.WaitForWork(options_.report_batch, options_.report_interval);
      if (closed) break;  // the final flush happens on the slot thread
      const int64_t registration = registrations();
      absl::Status s = reporter.Flush();
      if (reporter.cancel_requested() && !running->cancel_directive) {
        running->cancel_directive = true;
        running->cancel.Cancel();
      }
      if (reporter.pruned() && !running->pruned) {
        running->pruned = true;
        running->cancel.Cancel();  // the run stops at its next step
      }
      if (IsNotRegistered(s)) (void)Reregister(registration);
      if (s.ok()) {
        backoff.Reset();
      } else if (IsTransient(s) || IsNotRegistered(s)) {
        const absl::Duration delay = backoff.Next();
        Log(absl::StrCat("task ", task.task_id(),
                         ": ReportPoints: ", s.message(), "; keeping ",
                         buffer.pending(), " records, retrying in ",
                         absl::FormatDuration(delay)));
        if (buffer.WaitForWork(SIZE_MAX, delay)) break;
      } else {
        Log(absl::StrCat("task ", task.task_id(), ": ", s.ToString(),
                         "; stopping it"));
        running->abandoned = true;
        running->cancel.Cancel();
      }
    }
  });

  absl::Status run_status;
  v1::CompleteTaskRequest complete;
  engine::Callbacks callbacks;
  // The engine numbers a range-test task's seeds from 0; the job's index of
  // the task's first seed is its seed_index. A trial trains one seed: 0.
  const int first_seed =
      task.has_range_test() ? task.range_test().seed_index() : 0;
  callbacks.on_point = [&, first_seed](const engine::StepPoint& p) {
    running->step = p.step + 1;
    v1::TaskRecord r;
    *r.mutable_point() = CurvePointToProto(p, first_seed + p.seed_index);
    buffer.Add(std::move(r));
  };
  callbacks.on_evaluation = [&, first_seed](const engine::Evaluation& e) {
    v1::TaskRecord r;
    *r.mutable_evaluation() = EvaluationToProto(e, first_seed + e.seed_index);
    buffer.Add(std::move(r));
  };
  // What this worker sets on every job it runs: its data directory, the
  // slot's device, and its share of the CPU threads unless the job asks
  // (of all cores when --threads is 0: slots running at once must not each
  // take every core).
  auto localize = [&](engine::JobSpec& job) {
    job.data.data_dir = options_.data_dir;
    job.device.device = device;
    if (job.device.threads == 0) {
      job.device.threads = std::max(1, TotalThreads(options_) / options_.slots);
    }
  };
  if (task.has_range_test()) {
    const v1::RangeTestTask& rt = task.range_test();
    absl::StatusOr<engine::JobSpec> job = RunSpecFromProto(rt.run());
    absl::StatusOr<engine::RangeTestSpec> spec =
        RangeTestSpecFromProto(rt.range_test());
    run_status = !job.ok() ? job.status() : spec.status();
    if (run_status.ok()) {
      localize(*job);
      if (spec->seeds.empty()) spec->seeds = {job->seed};
      absl::StatusOr<engine::RangeTestResult> result =
          engine::RunRangeTest(*job, *spec, callbacks, &running->cancel);
      run_status = result.status();
      if (result.ok()) {
        *complete.mutable_range_test() = RangeTestResultToProto(*result);
      }
    }
  } else if (task.has_trial()) {
    const v1::TrialTask& trial = task.trial();
    absl::StatusOr<engine::JobSpec> job = RunSpecFromProto(trial.run());
    absl::StatusOr<engine::TrainSpec> spec = TrainSpecFromProto(trial.train());
    run_status = !job.ok() ? job.status() : spec.status();
    if (run_status.ok()) {
      localize(*job);
      std::string checkpoint = CheckpointPath(task);
      if (!checkpoint.empty()) {
        // A checkpoint left by an earlier attempt (here, or on a worker
        // sharing the directory) is restored when the coordinator has
        // every record that preceded it; the numbering continues there.
        spec->checkpoint_path = checkpoint;
        spec->max_restored_records = buffer.acked_seq() + 1;
        // Snapshots (snapshot ensembles) go beside the checkpoint.
        if (spec->snapshot_ensemble > 0) {
          spec->snapshot_dir = checkpoint + "-snapshots";
        }
        callbacks.on_restore = [&](int64_t step, int64_t records) {
          absl::Status s = buffer.ResumeAt(records);
          Log(absl::StrCat("task ", task.task_id(), ": resumed at step ", step,
                           ", record ", records, s.ok() ? "" : "; ",
                           s.ok() ? "" : s.ToString()));
        };
        callbacks.on_progress = [&](const std::string& line) {
          if (absl::StartsWith(line, "not restoring") ||
              absl::StartsWith(line, "restored")) {
            Log(absl::StrCat("task ", task.task_id(), ": ", line));
          }
        };
      }
      // A rung of a pruned search: report the evaluation at once and wait
      // for the coordinator's decision (rung_wait at most).
      callbacks.on_rung = [&](const engine::Evaluation& e) {
        const int64_t seq = buffer.last_seq();  // the rung's evaluation
        buffer.RequestFlush();
        if (!buffer.WaitForAck(seq, options_.rung_wait)) {
          Log(absl::StrCat("task ", task.task_id(), ": no decision at step ",
                           e.step, " within ",
                           absl::FormatDuration(options_.rung_wait),
                           "; going on"));
        }
        return !reporter.pruned();
      };
      absl::StatusOr<engine::TrainResult> result =
          engine::RunTraining(*job, *spec, callbacks, &running->cancel);
      run_status = result.status();
      if (result.ok()) {
        *complete.mutable_trial() = TrainResultToProto(*result);
      } else if (running->pruned && absl::IsCancelled(run_status)) {
        // Pruned after the rung (its decision came late): the trial ran
        // to here, and completes as pruned.
        run_status = absl::OkStatus();
        v1::TrialTaskResult& pruned = *complete.mutable_trial();
        pruned.set_steps(running->step);
        pruned.mutable_outcome()->set_pruned_at_step(running->step);
      }
      if (result.ok() && result->pruned_at_step >= 0) {
        Log(absl::StrCat("task ", task.task_id(), ": pruned at step ",
                         result->pruned_at_step));
      }
      if (!checkpoint.empty() &&
          (result.ok() || running->cancel_directive || running->pruned ||
           FailureKindFor(run_status, false, false) ==
               v1::FAILURE_KIND_PERMANENT)) {
        // No attempt will follow. Kept otherwise (the worker stops, gives
        // the task up, or the run failed and will be retried).
        std::error_code ignored;
        std::filesystem::remove(checkpoint, ignored);
        std::filesystem::remove(checkpoint + engine::kPreviousCheckpointSuffix,
                                ignored);
      }
    }
  } else {
    run_status = absl::InvalidArgumentError("task has no spec");
  }

  buffer.Close();
  reporter_thread.join();
  FinalFlush(reporter, *running, buffer);
  Finish(task, *running, buffer, run_status,
         run_status.ok() ? &complete : nullptr);
  lrtune::MutexLock lock(&mu_);
  running_.erase(task.task_id());
}

void Agent::Finish(const v1::Task& task, Running& running, RecordBuffer& buffer,
                   const absl::Status& run_status,
                   const v1::CompleteTaskRequest* complete) {
  if (running.abandoned) {
    Log(absl::StrCat("task ", task.task_id(), ": abandoned"));
    return;
  }
  const bool stopping = stop_.HasBeenNotified();
  Backoff backoff(options_.backoff);
  while (true) {
    const int64_t registration = registrations();
    absl::Status s;
    if (complete != nullptr && buffer.pending() == 0) {
      v1::CompleteTaskRequest request = *complete;
      request.set_task_id(task.task_id());
      request.set_attempt_id(task.attempt_id());
      request.set_final_seq(buffer.last_seq());
      s = hub_->CompleteTask(request).status();
      if (s.ok()) {
        Log(absl::StrCat("task ", task.task_id(), ": completed, ",
                         buffer.last_seq() + 1, " records"));
      }
    } else {
      v1::FailTaskRequest request;
      request.set_task_id(task.task_id());
      request.set_attempt_id(task.attempt_id());
      absl::Status why = run_status;
      if (why.ok()) {
        // Finished, but the records could not all be delivered before
        // shutting down: release the task so another attempt replays it.
        why = absl::CancelledError("worker shutting down");
      }
      request.set_kind(FailureKindFor(why, running.cancel_directive,
                                      stopping || run_status.ok()));
      request.set_code(static_cast<int>(why.code()));
      std::string reason(why.message());
      if (reason.size() > kMaxReasonBytes) reason.resize(kMaxReasonBytes);
      request.set_reason(reason);
      s = hub_->FailTask(request).status();
      if (s.ok()) {
        Log(absl::StrCat("task ", task.task_id(), ": failed (",
                         v1::FailureKind_Name(request.kind()), "): ", reason));
      }
    }
    if (s.ok()) return;
    if (IsNotRegistered(s)) (void)Reregister(registration);
    if (!(IsTransient(s) || IsNotRegistered(s)) || stopping ||
        stop_.HasBeenNotified()) {
      Log(absl::StrCat("task ", task.task_id(), ": ", s.ToString()));
      return;
    }
    SleepOrStop(backoff.Next());
  }
}

}  // namespace lrtune::worker
