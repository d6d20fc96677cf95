#include "server/spec_convert.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/spec.h"
#include "core/status_macros.h"
#include "proto/core_convert.h"

namespace lrtune::server {
absl::Status ValidateRunSpec(const v1::RunSpec& run, absl::string_view path) {
  return RunSpecFromProto(run, PrefixNames(absl::StrCat(path, "."))).status();
}

absl::Status ValidateRangeTestSpec(const v1::RangeTestSpec& spec,
                                   absl::string_view path) {
  return RangeTestSpecFromProto(spec, PrefixNames(absl::StrCat(path, ".")))
      .status();
}

absl::Status ValidateSubmitJob(const v1::SubmitJobRequest& request,
                               const SpecLimits& limits) {
  if (request.has_max_attempts() &&
      (request.max_attempts() < 1 ||
       request.max_attempts() > limits.max_attempts_limit)) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_attempts must be in [1, ", limits.max_attempts_limit,
                     "], got ", request.max_attempts()));
  }
  switch (request.spec_case()) {
    case v1::SubmitJobRequest::kRangeTest: {
      const v1::RunSpec& run = request.range_test().run();
      LRTUNE_RETURN_IF_ERROR(ValidateRunSpec(run, "run"));
      LRTUNE_RETURN_IF_ERROR(ValidateRangeTestSpec(
          request.range_test().range_test(), "range_test"));
      if (IsClientDriven(request.range_test())) {
        // What the workers would train on means nothing here; refusing it
        // keeps a model or a data set from travelling for no use.
        for (const auto& [set, field] :
             {std::pair<bool, const char*>{run.has_model(), "model"},
              {run.has_data(), "data"},
              {run.has_device(), "device"}}) {
          if (set) {
            return absl::InvalidArgumentError(absl::StrCat(
                "run.", field,
                " must be unset for a client-driven range test "
                "(range_test.driver client): the client trains its own "
                "model on its own data"));
          }
        }
      }
      return absl::OkStatus();
    }
    case v1::SubmitJobRequest::kGrid:
      if (request.grid().has_range_test() &&
          request.grid().range_test().driver() == v1::RANGE_DRIVER_CLIENT) {
        return absl::InvalidArgumentError(
            "grid.range_test.driver must be worker: a grid's range test and "
            "trials train on workers");
      }
      return absl::OkStatus();  // PlanGrid (grid_plan.h) checks the rest
    case v1::SubmitJobRequest::SPEC_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError("spec is required: set range_test or grid");
}

namespace {

// The seeds a range test runs: its seeds, or {run.seed} when empty.
std::vector<uint64_t> RangeTestSeeds(const v1::RangeTestJob& job) {
  if (job.range_test().seeds_size() == 0) return {job.run().seed()};
  return {job.range_test().seeds().begin(), job.range_test().seeds().end()};
}

}  // namespace

bool IsClientDriven(const v1::RangeTestJob& job) {
  return job.range_test().driver() == v1::RANGE_DRIVER_CLIENT;
}

bool PacksSeeds(const v1::RangeTestJob& job) {
  absl::StatusOr<JobSpec> run = RunSpecFromProto(job.run());
  absl::StatusOr<RangeTestSpec> spec = RangeTestSpecFromProto(job.range_test());
  return run.ok() && spec.ok() && ExpectPackedSeeds(*run, *spec);
}

int RangeTestTaskCount(const v1::RangeTestJob& job) {
  return PacksSeeds(job) ? 1 : static_cast<int>(RangeTestSeeds(job).size());
}

std::vector<std::string> RangeTestTaskSpecs(const v1::RangeTestJob& job) {
  std::vector<std::string> specs;
  const std::vector<uint64_t> seeds = RangeTestSeeds(job);
  if (PacksSeeds(job)) {
    v1::RangeTestTask task;
    *task.mutable_run() = job.run();
    task.mutable_run()->set_seed(seeds[0]);
    *task.mutable_range_test() = job.range_test();
    task.set_seed_index(0);
    specs.push_back(task.SerializeAsString());
    return specs;
  }
  for (size_t i = 0; i < seeds.size(); ++i) {
    v1::RangeTestTask task;
    *task.mutable_run() = job.run();
    task.mutable_run()->set_seed(seeds[i]);
    *task.mutable_range_test() = job.range_test();
    task.mutable_range_test()->clear_seeds();
    task.mutable_range_test()->add_seeds(seeds[i]);
    task.set_seed_index(static_cast<int>(i));
    specs.push_back(task.SerializeAsString());
  }
  return specs;
}

v1::JobState JobStateToProto(JobState state) {
  switch (state) {
    case JobState::kQueued:
      return v1::JOB_STATE_QUEUED;
    case JobState::kRunning:
      return v1::JOB_STATE_RUNNING;
    case JobState::kSucceeded:
      return v1::JOB_STATE_SUCCEEDED;
    case JobState::kFailed:
      return v1::JOB_STATE_FAILED;
    case JobState::kCancelled:
      return v1::JOB_STATE_CANCELLED;
  }
  return v1::JOB_STATE_UNSPECIFIED;
}

absl::StatusOr<JobState> JobStateFromProto(v1::JobState state) {
  switch (state) {
    case v1::JOB_STATE_QUEUED:
      return JobState::kQueued;
    case v1::JOB_STATE_RUNNING:
      return JobState::kRunning;
    case v1::JOB_STATE_SUCCEEDED:
      return JobState::kSucceeded;
    case v1::JOB_STATE_FAILED:
      return JobState::kFailed;
    case v1::JOB_STATE_CANCELLED:
      return JobState::kCancelled;
    default:
      break;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("states: ", static_cast<int>(state), " is not a job state"));
}

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

v1::TaskAttempt AttemptToProto(const AttemptRecord& a) {
  v1::TaskAttempt out;
  out.set_task_id(a.task_id);
  out.set_attempt_id(static_cast<uint64_t>(a.attempt));
  out.set_attempt_number(a.attempt);
  out.set_worker_id(a.worker);
  out.set_device(a.device);
  if (a.started != absl::UnixEpoch()) {
    SetTimestamp(a.started, out.mutable_start_time());
  }
  switch (a.outcome) {
    case AttemptOutcome::kRunning:
      out.set_outcome(v1::ATTEMPT_OUTCOME_UNSPECIFIED);
      return out;  // no end time
    case AttemptOutcome::kSucceeded:
      out.set_outcome(v1::ATTEMPT_OUTCOME_SUCCEEDED);
      break;
    case AttemptOutcome::kFailed:
      out.set_outcome(v1::ATTEMPT_OUTCOME_FAILED);
      break;
    case AttemptOutcome::kLeaseExpired:
      out.set_outcome(v1::ATTEMPT_OUTCOME_LEASE_EXPIRED);
      break;
    case AttemptOutcome::kReleased:
      out.set_outcome(v1::ATTEMPT_OUTCOME_RELEASED);
      break;
    case AttemptOutcome::kCancelled:
      out.set_outcome(v1::ATTEMPT_OUTCOME_CANCELLED);
      break;
  }
  SetTimestamp(a.ended, out.mutable_end_time());
  out.set_reason(a.reason);
  return out;
}

}  // namespace lrtune::server
