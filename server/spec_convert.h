// Conversions between the API's protos (lrtune/v1) and what the job store
// keeps (opaque blobs, core/ structs), and the one place where a submitted
// job's fields are validated.
//
//   LRTUNE_RETURN_IF_ERROR(ValidateSubmitJob(request, SpecLimits{}));
//   LRTUNE_ASSIGN_OR_RETURN(auto tasks,
//   RangeTestTaskSpecs(request.range_test()));
//
// Validation errors are INVALID_ARGUMENT naming the field path and the rule
// ("range_test.end_lr (0.5) must be > start_lr (1)"); size limits are
// RESOURCE_EXHAUSTED naming the field. Every function is pure and
// thread-compatible; nothing here includes gRPC.
#ifndef LRTUNE_SERVER_SPEC_CONVERT_H_
#define LRTUNE_SERVER_SPEC_CONVERT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/timestamp.pb.h"
#include "lrtune/v1/jobs.pb.h"
#include "lrtune/v1/lrtune.pb.h"
#include "lrtune/v1/worker.pb.h"
#include "server/job_store.h"

namespace lrtune::server {

// The service's own limits; a spec's (seeds, inline data, torchscript
// bytes) are core/spec.h's, the same for every caller.
struct SpecLimits {
  int max_attempts_limit = 10;          // SubmitJob.max_attempts
  int max_queued_jobs_per_owner = 100;  // SubmitJob: RESOURCE_EXHAUSTED
  int64_t max_trials = 256;             // grid.max_trials
};

// Checks a run's or a range test's every field: converts it to the spec
// model (proto/core_convert.h) and runs the validators the worker's engine
// runs (core/spec.h). `path` names the message in errors ("run",
// "grid.range_test").
absl::Status ValidateRunSpec(const v1::RunSpec& run, absl::string_view path);
absl::Status ValidateRangeTestSpec(const v1::RangeTestSpec& spec,
                                   absl::string_view path);

// Checks a request: spec set, max_attempts in 1..limit, a range test's
// parts (a client-driven one's run holds no model, data or device: the
// client trains its own). A grid's parts are checked by PlanGrid
// (grid_plan.h), which expands it; its range test runs on workers.
absl::Status ValidateSubmitJob(const v1::SubmitJobRequest& request,
                               const SpecLimits& limits);

// A client-driven range test (range_test.driver CLIENT): its runs are
// tasks on kClientDevice, which no worker slot offers (a client joins
// them: Coordinator::JoinRangeTest).
bool IsClientDriven(const v1::RangeTestJob& job);
inline constexpr char kClientDevice[] = "client";

// Whether a range test's seeds run as one task, packed into one batched
// model by the worker's engine: core/spec.h's ExpectPackedSeeds (a bigger
// model keeps one task per seed, which several workers run at once).
bool PacksSeeds(const v1::RangeTestJob& job);

// The serialized v1::RangeTestTasks of a range test, in seed order: one
// holding every seed when PacksSeeds, else one per seed.
std::vector<std::string> RangeTestTaskSpecs(const v1::RangeTestJob& job);
// How many tasks RangeTestTaskSpecs makes.
int RangeTestTaskCount(const v1::RangeTestJob& job);

// Store <-> API job states.
v1::JobState JobStateToProto(JobState state);
absl::StatusOr<JobState> JobStateFromProto(v1::JobState state);

// absl time as the protobuf well-known types, to the microsecond (the
// store's resolution).
void SetTimestamp(absl::Time t, google::protobuf::Timestamp* out);
void SetDuration(absl::Duration d, google::protobuf::Duration* out);

// A stored attempt as the API's TaskAttempt.
v1::TaskAttempt AttemptToProto(const AttemptRecord& attempt);

}  // namespace lrtune::server

#endif  // LRTUNE_SERVER_SPEC_CONVERT_H_
