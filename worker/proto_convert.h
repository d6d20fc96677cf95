// The engine's results (points, evaluations, range-test and training
// results; worker/engine.h) as lrtune.v1 messages.
// Torch-free and gRPC-free (protobuf only). Specs convert with
// proto/core_convert.h, the converter the coordinator and the CLI use too.
//
//   *record.mutable_point() = CurvePointToProto(point, task_seed_index);
//
// Result conversions never fail: NaN suggestions and evaluation metrics
// become unset optional fields, and diverged_at < 0 becomes unset, as
// results.proto documents. All functions are pure and thread-safe.
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

}  // namespace lrtune::worker

#endif  // LRTUNE_WORKER_PROTO_CONVERT_H_
