// Conversions between the lrtune.v1 API messages and the engine's plain
// structs, in both directions. Torch-free and gRPC-free (protobuf only), so
// the coordinator can reuse the result conversions.
//
//   LRTUNE_ASSIGN_OR_RETURN(engine::JobSpec job, RunSpecFromProto(task.run()));
//   *record.mutable_point() = CurvePointToProto(point, task_seed_index);
//
// Spec conversions (proto -> engine) apply the defaults documented on every
// `optional` field, check the ranges the protos state and run the engine's
// validators; errors are InvalidArgument naming the proto field path and the
// rule ("run.batch_size must be >= 1, got 0", "train.schedule.t0 must be >=
// 1, got 0"). Result conversions (engine -> proto) never fail: NaN
// suggestions and evaluation metrics become unset optional fields, and
// diverged_at < 0 becomes unset, as results.proto documents.
//
// All functions are pure and thread-safe.
#ifndef LRTUNE_WORKER_PROTO_CONVERT_H_
#define LRTUNE_WORKER_PROTO_CONVERT_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/curve_analysis.h"
#include "core/schedule.h"
#include "lrtune/v1/results.pb.h"
#include "lrtune/v1/schedule.pb.h"
#include "lrtune/v1/spec.pb.h"
#include "lrtune/v1/worker.pb.h"
#include "proto/core_convert.h"
#include "worker/engine.h"

namespace lrtune::worker {

// --- Specs: proto -> engine (validated) -------------------------------------

// A RunSpec; field paths start with "run.". data_dir stays empty (the
// worker's configuration). min_device_memory_bytes is the coordinator's
// business and is not carried.
absl::StatusOr<engine::JobSpec> RunSpecFromProto(const v1::RunSpec& run);

// A RangeTestSpec; paths start with "range_test.".
absl::StatusOr<engine::RangeTestSpec> RangeTestSpecFromProto(
    const v1::RangeTestSpec& spec);

// A TrainSpec; paths start with "train.". checkpoint_path stays empty (the
// worker chooses it).
absl::StatusOr<engine::TrainSpec> TrainSpecFromProto(const v1::TrainSpec& spec);

// Schedules convert with proto/core_convert.h (ScheduleSpecFromProto).

// --- Specs: engine -> proto (every value set explicitly) --------------------
// Inverse of the above for values the engine accepts: X -> proto -> X is the
// identity.

v1::RunSpec RunSpecToProto(const engine::JobSpec& job);
v1::RangeTestSpec RangeTestSpecToProto(const engine::RangeTestSpec& spec);
v1::TrainSpec TrainSpecToProto(const engine::TrainSpec& spec);

// --- Results: engine -> proto ------------------------------------------------

// `seed_index` replaces the engine's (which counts within the task) with the
// index in the job's seeds.
v1::CurvePoint CurvePointToProto(const engine::StepPoint& point,
                                 int seed_index);
v1::Evaluation EvaluationToProto(const engine::Evaluation& eval,
                                 int seed_index);
v1::RangeTestTaskResult RangeTestResultToProto(
    const engine::RangeTestResult& result);
v1::TrialTaskResult TrainResultToProto(const engine::TrainResult& result);

// --- Results: proto -> engine ------------------------------------------------
// Unset optionals become NaN. Recommendations convert with
// proto/core_convert.h, shared with the coordinator.
engine::Evaluation EvaluationFromProto(const v1::Evaluation& eval);

}  // namespace lrtune::worker

#endif  // LRTUNE_WORKER_PROTO_CONVERT_H_
