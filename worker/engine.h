// The training engine: LR range tests and schedule training with LibTorch.
//
// This header is torch-free: the worker agent, the embedded mode, the
// `lrtune-engine` binary and the benchmarks describe a job with the plain
// structs below and receive points and evaluations through callbacks. Only
// worker/*.cc include LibTorch.
//
//   engine::JobSpec job;  job.data.name = "fashion-mnist";  job.data.subset =
//   2048; auto result = engine::RunRangeTest(job, engine::RangeTestSpec{},
//   callbacks);
//
// Errors are values: invalid specs give InvalidArgument naming the field and
// the rule; missing data files NotFound; LibTorch errors (c10::Error) their
// message (out-of-memory: ResourceExhausted); a cancelled run Cancelled; a
// training run whose loss turns NaN/Inf FailedPrecondition.
//
// Thread-safety: RunRangeTest and RunTraining may run concurrently on
// different jobs, but the CPU thread count (torch::set_num_threads) is
// process-global: the last job to start sets it. Callbacks are invoked on the
// calling thread, in step order, and must not block for long.
#ifndef LRTUNE_WORKER_ENGINE_H_
#define LRTUNE_WORKER_ENGINE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/curve_analysis.h"
#include "core/schedule.h"
#include "core/spec.h"

namespace lrtune::engine {

// The specs (JobSpec, RangeTestSpec, TrainSpec and their parts), their
// validators and the kind names are core's spec model (core/spec.h): the
// engine runs them as they are, and checks them with the same rules the
// coordinator and the CLI apply.
using ::lrtune::DataSpec;
using ::lrtune::DeviceOptions;
using ::lrtune::JobSpec;
using ::lrtune::LossKind;
using ::lrtune::ModelKind;
using ::lrtune::ModelSpec;
using ::lrtune::OptimizerKind;
using ::lrtune::OptimizerSpec;
using ::lrtune::Precision;
using ::lrtune::RangeTestSpec;
using ::lrtune::StopMetric;
using ::lrtune::TrainSpec;

// A new checkpoint replaces the one before, which stays under this suffix
// (checkpoint_path + ".prev"): a run restores the newest of the two that
// TrainSpec::max_restored_records allows.
inline constexpr char kPreviousCheckpointSuffix[] = ".prev";

struct StepPoint {
  int seed_index = 0;  // range test: index into the seeds; training: 0
  int64_t step = 0;
  double lr = 0.0;
  std::optional<double> momentum;
  double loss = 0.0;       // raw training loss of the batch
  double smoothed = 0.0;   // bias-corrected EMA (range test's beta; 0.98)
  double elapsed_s = 0.0;  // since the start of this curve/run
  // Updates skipped just before this one: loss scaling found non-finite
  // gradients, and the same batch ran again at this LR.
  int skipped_updates = 0;
};

struct Evaluation {
  int seed_index = 0;
  int64_t step = 0;   // optimizer steps done when evaluated
  int64_t epoch = 0;  // completed epochs (training); 0 in a range test
  double lr = 0.0;    // lr of the last step
  double train_loss = std::numeric_limits<double>::quiet_NaN();  // mean since
                                                                 // last eval
  double val_loss = 0.0;
  double val_accuracy = std::numeric_limits<double>::quiet_NaN();  // NaN: mse
};

struct Callbacks {
  std::function<void(const StepPoint&)> on_point;
  std::function<void(const Evaluation&)> on_evaluation;
  // Free-form progress lines ("loaded fashion-mnist: 60000 x [1, 28, 28]").
  std::function<void(const std::string&)> on_progress;
  // Pruned search: a training run reached one of TrainSpec::rung_steps and
  // evaluated there (on_evaluation has had that evaluation); return false
  // to end the run now (TrainResult::pruned_at_step). Unset: go on.
  std::function<bool(const Evaluation&)> on_rung;
  // Training restored a checkpoint: it continues at `step`, and `records`
  // points and evaluations came before it (the next record is number
  // `records`, counting from 0). Called before any record.
  std::function<void(int64_t step, int64_t records)> on_restore;
};

// Cooperative cancellation, checked before every step. Thread-safe.
class CancellationToken {
 public:
  void Cancel() { cancelled_.store(true, std::memory_order_relaxed); }
  bool cancelled() const { return cancelled_.load(std::memory_order_relaxed); }

 private:
  std::atomic<bool> cancelled_{false};
};

struct RangeTestResult {
  Recommendation recommendation;  // AggregateSeeds over the seeds
  int64_t skipped_updates = 0;    // updates loss scaling skipped
  std::vector<Recommendation> per_seed;
  std::vector<std::vector<CurvePoint>> curves;  // per seed, up to divergence
  std::vector<Evaluation> evaluations;          // validation-metric mode
  int64_t steps_run = 0;                        // all seeds together
  double train_seconds = 0.0;                   // time inside the step loops
  std::string device;                           // resolved, e.g. "cuda:0"
};

// One snapshot of a snapshot ensemble (TrainSpec::snapshot_ensemble).
struct SnapshotInfo {
  int64_t step = 0;  // updates done: a cycle end
  Evaluation eval;   // of these weights alone
  std::string path;  // written to, or empty (kept in memory)
};

struct TrainResult {
  Evaluation final_eval;     // of the weights the run ends with
  Evaluation best_eval;      // lowest validation loss
  int64_t steps = 0;         // total steps done (including restored ones)
  int64_t resumed_from = 0;  // step restored from the checkpoint, 0 if none
  double train_seconds = 0.0;
  std::string device;
  // Early stopping: it ended the run before the budget (steps says when);
  // the judged evaluation it kept, and whether the run ends with its
  // weights (final_eval is then theirs, measured again).
  bool stopped_early = false;
  std::optional<Evaluation> early_stopping_best;
  bool restored_best = false;
  // Snapshot ensembles: every snapshot, oldest first, and the averaged
  // softmax of the last ensemble_size of them.
  std::vector<SnapshotInfo> snapshots;
  Evaluation ensemble_eval;
  int ensemble_size = 0;
  int64_t skipped_updates = 0;  // updates loss scaling skipped
  // Its caller ended it at this rung (Callbacks::on_rung); -1: it was not.
  int64_t pruned_at_step = -1;
};

// Runs an LR range test per seed: a fresh model, the ramp from start_lr to
// end_lr, one StepPoint per step, stop at divergence (the first non-finite
// loss or smoothed > factor x best). On CUDA losses are read in chunks of 32
// steps, so up to 31 extra steps may run after the divergence point; their
// points are dropped. `cancel` may be null.
absl::StatusOr<RangeTestResult> RunRangeTest(
    const JobSpec& job, const RangeTestSpec& spec, const Callbacks& callbacks,
    const CancellationToken* cancel = nullptr);

// Trains one model under `spec.schedule` for the budget. A non-finite loss
// fails the run (FailedPrecondition naming the step and lr).
absl::StatusOr<TrainResult> RunTraining(
    const JobSpec& job, const TrainSpec& spec, const Callbacks& callbacks,
    const CancellationToken* cancel = nullptr);

// Keeps freed tensor memory in the process (glibc: mmap threshold 256 MiB,
// trim threshold 1 GiB) so the per-step allocations of autograd reuse heap
// pages instead of mmap/munmap and page faults every step (+25% steps/s on
// the tiny MLP). Process-global: call once from main, before training; a
// no-op where the C library is not glibc.
void TuneAllocatorForTraining();

// The LibTorch version the engine was built with, e.g. "1.13.0 (cpu)".
std::string TorchVersion();

// What a worker tells the coordinator about one of its devices.
struct DeviceInfo {
  std::string name;                // "cpu" or "cuda:<i>", as asked
  std::string gpu_name;            // CUDA: e.g. "NVIDIA H200"; else empty
  int64_t memory_bytes = 0;        // CUDA: total device memory; else 0
  std::string compute_capability;  // CUDA: e.g. "9.0"; else empty
};

// Describes `device` ("cpu" or "cuda:<i>"). A CUDA build fills the GPU
// fields for a cuda:<i> that names a visible GPU; otherwise (a CPU build,
// "cpu", an index out of range, a CUDA error) only `name` is set. Never
// throws; thread-safe.
DeviceInfo DescribeDevice(const std::string& device);

}  // namespace lrtune::engine

#endif  // LRTUNE_WORKER_ENGINE_H_
