// JSON jobs for the standalone engine (`lrtune-engine --job job.json`) and
// JSON-lines renderings of what the engine reports. Torch-free.
//
//   LRTUNE_ASSIGN_OR_RETURN(EngineJob job, ParseJobJson(text, "job.json"));
//   std::cout << PointToJsonLine(point) << "\n";
//
// The format (every key optional but "kind"; defaults are engine.h's):
//   {"kind": "range_test" | "train",
//    "model": {"kind": "mlp", "hidden": [256, 256], "torchscript_path":
//    "m.pt"}, "data": {"name": "fashion-mnist", "subset": 2048, ...DataSpec
//    fields,
//             "samples"/"classes"/"features" for synthetic sets},
//    "optimizer": {"kind": "sgd", "momentum": 0.9, ...}, "loss": "mse",
//    "batch_size": 128, "grad_accumulation": 1, "seed": 0,
//    "device": {"device": "cpu", "threads": 1, "cuda_graph": false,
//               "precision": "fp32" | "bf16" | "fp16", "loss_scale": 0
//               ("bf16": true is precision bf16)},
//    "range_test": {"start_lr": 1e-7, "end_lr": 10, "steps": 100,
//                   "shape": "exp", "smoothing_beta": 0.98,
//                   "divergence_factor": 4, "seeds": [0, 1],
//                   "eval_every": 0, "eval_samples": 512},
//    "train": {"schedule": {"kind": "one_cycle", "max_lr": 0.1, ...},
//              "epochs": 1, "steps": 0, "point_every": 1,
//              "checkpoint_path": "", "checkpoint_every": 0}}
// Schedule keys are core/schedule_params.h's names; "children" holds the
// children of a sequential schedule. Unknown keys are errors. Thread-safe.
#ifndef LRTUNE_WORKER_JOB_JSON_H_
#define LRTUNE_WORKER_JOB_JSON_H_

#include <string>

#include "absl/status/statusor.h"
#include "worker/engine.h"

namespace lrtune::engine {

struct EngineJob {
  enum class Kind { kRangeTest, kTrain };
  Kind kind = Kind::kRangeTest;
  JobSpec job;
  RangeTestSpec range_test;
  TrainSpec train;
};

// Parses a job. `base_dir` resolves a relative torchscript_path. Returns
// InvalidArgument naming the key ("data.subset: expected an integer") for
// malformed input and NotFound for an unreadable torchscript_path.
absl::StatusOr<EngineJob> ParseJobJson(const std::string& text,
                                       const std::string& base_dir = ".");

// One-line JSON renderings ("type" is point, evaluation, progress, result or
// error). Non-finite numbers become null.
std::string PointToJsonLine(const StepPoint& point);
std::string EvaluationToJsonLine(const Evaluation& eval);
std::string ProgressToJsonLine(const std::string& message);
std::string RangeTestResultToJsonLine(const RangeTestResult& result);
std::string TrainResultToJsonLine(const TrainResult& result);
std::string ErrorToJsonLine(const absl::Status& status);

}  // namespace lrtune::engine

#endif  // LRTUNE_WORKER_JOB_JSON_H_
