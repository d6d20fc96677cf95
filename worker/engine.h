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

namespace lrtune::engine {

enum class ModelKind { kMlp, kCnn, kResnet20, kTorchScript };
enum class LossKind { kCrossEntropy, kMse };
enum class OptimizerKind { kSgd, kAdam, kAdamW, kRmsProp };

struct ModelSpec {
  ModelKind kind = ModelKind::kMlp;
  // mlp: hidden layer widths (ReLU between); {32} is the tiny MLP. The input
  // size is the product of the data's per-sample shape.
  std::vector<int64_t> hidden = {256, 256};
  // torchscript: the bytes written by torch.jit.save (Python or C++). The
  // module's forward takes a float batch [N, ...sample shape] and returns
  // [N, classes] (cross_entropy) or the targets' shape (mse).
  std::string torchscript;
};

// Data limits for inline tensors given by a client.
inline constexpr int64_t kMaxInlineElements = 16 << 20;  // floats in x
inline constexpr int64_t kMaxInlineSamples = 1 << 20;

struct DataSpec {
  // "fashion-mnist", "digits", "iris", "wine", "breast-cancer", "spirals",
  // "blobs", "linear" (regression) or "inline".
  std::string name = "fashion-mnist";
  // Train on the first `subset` samples of the training split; 0 = all.
  int64_t subset = 0;
  // Validate on the first `validation_subset` samples of the validation
  // split; 0 = all.
  int64_t validation_subset = 0;
  // Share of samples held out for validation where the dataset has no
  // official split (sklearn, synthetic, inline), in [0, 0.9]. The split is a
  // permutation seeded by `split_seed`, so it does not depend on the job seed.
  double validation_fraction = 0.2;
  uint64_t split_seed = 0;
  // spirals, blobs, linear: number of samples (>= 10) and of classes
  // (spirals, blobs: >= 2) or features (blobs, linear: >= 1).
  int64_t synthetic_samples = 1024;
  int64_t synthetic_classes = 3;
  int64_t synthetic_features = 8;
  // Directory holding fashion-mnist/ and sklearn/; empty = $LRTUNE_DATA_DIR,
  // else /usr/local/share/lrtune/datasets (fashion-mnist also
  // /usr/share/datasets/fashion-mnist).
  std::string data_dir;
  // inline: x is float32 of shape x_shape ([N, ...]); y is either int64
  // labels (y_labels, N values, >= 0) or float32 targets (y_targets, N * k
  // values, shape [N] or [N, k] by y_target_width k).
  std::vector<int64_t> x_shape;
  std::vector<float> x;
  std::vector<int64_t> y_labels;
  std::vector<float> y_targets;
  int64_t y_target_width = 1;
};

struct OptimizerSpec {
  OptimizerKind kind = OptimizerKind::kSgd;
  double momentum = 0.0;  // sgd, rmsprop; >= 0 (the schedule may override)
  bool nesterov = false;  // sgd; requires momentum > 0
  double weight_decay = 0.0;
  double beta1 = 0.9;  // adam, adamw (the schedule's momentum overrides)
  double beta2 = 0.999;
  double eps = 1e-8;
  double alpha = 0.99;  // rmsprop smoothing constant
};

struct DeviceOptions {
  std::string device = "cpu";  // "cpu", "cuda", "cuda:<i>" or "auto"
  int threads = 0;             // CPU intra-op threads; 0 = leave as is
  bool cuda_graph = false;     // CUDA only, built-in models only
  bool bf16 = false;           // CUDA only: bf16 autocast of forward + loss
};

// What every job has: model, data, optimizer, loss, batch, seed, device.
struct JobSpec {
  ModelSpec model;
  DataSpec data;
  OptimizerSpec optimizer;
  LossKind loss = LossKind::kCrossEntropy;
  int64_t batch_size = 128;  // >= 1; capped at the training set's size
  uint64_t seed = 0;         // model init and batch order
  DeviceOptions device;
};

struct RangeTestSpec {
  double start_lr = 1e-7;
  double end_lr = 10.0;
  int64_t steps = 100;  // >= 2
  RampShape shape = RampShape::kExp;
  // Smoothing beta and divergence factor are read from here, as is
  // iters_per_epoch (0: filled in from the data).
  AnalysisOptions analysis;
  // One curve per seed; empty = {job.seed}.
  std::vector<uint64_t> seeds;
  // Validation-metric mode (Smith's accuracy vs LR): every `eval_every`
  // steps evaluate the first `eval_samples` validation samples; 0 = off.
  int64_t eval_every = 0;
  int64_t eval_samples = 512;
  // Train the seeds packed into one batched model where that is faster (mlp
  // and cnn, no eval_every, parameters that fit; on the CPU only models of
  // at most 100k parameters: engine.cc's PackSeeds): the curves equal
  // unpacked runs' within float tolerance. False: one model after another.
  bool pack_seeds = true;
};

// A new checkpoint replaces the one before, which stays under this suffix
// (checkpoint_path + ".prev"): a run restores the newest of the two that
// TrainSpec::max_restored_records allows.
inline constexpr char kPreviousCheckpointSuffix[] = ".prev";

struct TrainSpec {
  ScheduleSpec schedule;
  // Budget: exactly one of epochs and steps is > 0.
  int64_t epochs = 0;
  int64_t steps = 0;
  int64_t point_every = 1;  // emit a StepPoint every k steps (>= 1)
  // Evaluate at the end of every epoch (and at the end of the run).
  // Checkpoint file: restored when it exists (the run continues at its
  // step), written at every epoch end, every `checkpoint_every` steps (0 =
  // epoch ends only) and on cancellation. Empty = no checkpoints.
  //
  // A checkpoint saves the whole state of the run, so a resumed run emits
  // exactly the records (points and evaluations, smoothed values included)
  // the uninterrupted run would have emitted from that step on; it also
  // saves how many records came before it (Callbacks::on_restore).
  std::string checkpoint_path;
  int64_t checkpoint_every = 0;
  // Restore only a checkpoint preceded by at most this many records (-1: any
  // checkpoint). A worker sets it to the number of records the coordinator
  // has stored: restoring a later checkpoint would leave a gap in the curve,
  // so the run starts from step 0 instead (and replays what is stored).
  int64_t max_restored_records = -1;
};

struct StepPoint {
  int seed_index = 0;  // range test: index into the seeds; training: 0
  int64_t step = 0;
  double lr = 0.0;
  std::optional<double> momentum;
  double loss = 0.0;       // raw training loss of the batch
  double smoothed = 0.0;   // bias-corrected EMA (range test's beta; 0.98)
  double elapsed_s = 0.0;  // since the start of this curve/run
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
  std::vector<Recommendation> per_seed;
  std::vector<std::vector<CurvePoint>> curves;  // per seed, up to divergence
  std::vector<Evaluation> evaluations;          // validation-metric mode
  int64_t steps_run = 0;                        // all seeds together
  double train_seconds = 0.0;                   // time inside the step loops
  std::string device;                           // resolved, e.g. "cuda:0"
};

struct TrainResult {
  Evaluation final_eval;
  Evaluation best_eval;      // lowest validation loss
  int64_t steps = 0;         // total steps done (including restored ones)
  int64_t resumed_from = 0;  // step restored from the checkpoint, 0 if none
  double train_seconds = 0.0;
  std::string device;
};

// Validates a job (and the run's spec). InvalidArgument names the field and
// the rule, e.g. "batch_size must be >= 1, got 0".
absl::Status ValidateJob(const JobSpec& job);
absl::Status ValidateRangeTest(const RangeTestSpec& spec);
absl::Status ValidateTrain(const TrainSpec& spec);

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

// "mlp", "cnn", "resnet20", "torchscript"; and the parsers (InvalidArgument
// naming the value and the valid names).
const char* ModelKindName(ModelKind kind);
const char* LossKindName(LossKind kind);
const char* OptimizerKindName(OptimizerKind kind);
absl::StatusOr<ModelKind> ParseModelKind(const std::string& name);
absl::StatusOr<LossKind> ParseLossKind(const std::string& name);
absl::StatusOr<OptimizerKind> ParseOptimizerKind(const std::string& name);

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
