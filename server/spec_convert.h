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
#include "core/curve_analysis.h"
#include "lrtune/v1/jobs.pb.h"
#include "lrtune/v1/lrtune.pb.h"
#include "lrtune/v1/worker.pb.h"
#include "server/job_store.h"

namespace lrtune::server {

struct SpecLimits {
  int max_seeds = 64;                          // per range test
  int64_t max_torchscript_bytes = 64ll << 20;  // run.model.torchscript
  int64_t max_inline_floats = 16ll << 20;      // run.data.inline_data
  int64_t max_inline_samples = 1ll << 20;      // run.data.inline_data
  int max_attempts_limit = 10;                 // SubmitJob.max_attempts
  int max_queued_jobs_per_owner = 100;         // SubmitJob: RESOURCE_EXHAUSTED
  int64_t max_trials = 256;                    // grid.max_trials
};

// Checks every field of a range test's run and ramp. `run_path` and
// `range_path` prefix the field names in errors ("run", "range_test").
absl::Status ValidateRunSpec(const v1::RunSpec& run, absl::string_view path,
                             const SpecLimits& limits);
absl::Status ValidateRangeTestSpec(const v1::RangeTestSpec& spec,
                                   absl::string_view path,
                                   const SpecLimits& limits);

// Checks a request: spec set, max_attempts in 1..limit, a range test's
// parts. A grid's parts are checked by PlanGrid (grid_plan.h), which
// expands it.
absl::Status ValidateSubmitJob(const v1::SubmitJobRequest& request,
                               const SpecLimits& limits);

// The seeds a range test runs: its seeds, or {run.seed} when empty.
std::vector<uint64_t> RangeTestSeeds(const v1::RangeTestJob& job);

// Whether a range test's seeds run as one task, packed into one batched
// model by the worker's engine (engine.h, RangeTestSpec::pack_seeds): more
// than one seed, no eval_every, pack_seeds unset or true, and a cnn, or an
// mlp on a cuda device or of at most kCpuMaxPackedMlpParameters (the
// engine packs no bigger model on a CPU, where K packed steps cost what K
// separate ones do, and separate tasks can run on several workers).
inline constexpr int64_t kCpuMaxPackedMlpParameters = 100000;
bool PacksSeeds(const v1::RangeTestJob& job);

// The serialized v1::RangeTestTasks of a range test, in seed order: one
// holding every seed when PacksSeeds, else one per seed.
std::vector<std::string> RangeTestTaskSpecs(const v1::RangeTestJob& job);
// How many tasks RangeTestTaskSpecs makes.
int RangeTestTaskCount(const v1::RangeTestJob& job);

// Store <-> API job states.
v1::JobState JobStateToProto(JobState state);
absl::StatusOr<JobState> JobStateFromProto(v1::JobState state);

// The ready-to-use schedules of an aggregate recommendation (results.proto
// RecommendedSchedules): triangular, one_cycle, sgdr and rex over
// 8 x stepsize_iterations steps. Unset (empty) when min_lr is 0 or the
// stepsize is unknown.
std::optional<v1::RecommendedSchedules> RecommendedSchedulesFor(
    const v1::Recommendation& rec);

// The store's event type of a JobEvent ("point", "recommendation", ...);
// the payload is the serialized JobEvent (without seq, job_id, time).
std::string EventType(const v1::JobEvent& event);

// A stored event as the API's JobEvent. `job` fills the accepted event's
// Job (the store writes only the state name for it). DATA_LOSS when a
// payload does not parse.
absl::StatusOr<v1::JobEvent> StoredEventToProto(const StoredEvent& event,
                                                const v1::Job& job);

// A stored attempt as the API's TaskAttempt (device is not stored: unset).
v1::TaskAttempt AttemptToProto(const AttemptRecord& attempt);

// True for the job's last event (a terminal state change).
bool IsTerminalEvent(const v1::JobEvent& event);

}  // namespace lrtune::server

#endif  // LRTUNE_SERVER_SPEC_CONVERT_H_
