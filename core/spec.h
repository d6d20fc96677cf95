// The spec model: what a range test or a training run is, and the one place
// its rules live. Torch-free and protobuf-free.
//
// The engine runs these structs; proto/core_convert.h converts the API's
// messages to them; the coordinator validates a request by converting it and
// running the validators below, the worker runs the same validators, and the
// CLI checks its flags with them. A rule is written once, here, and names
// its field through a FieldNamer (field_names.h), so each caller reads it in
// its own vocabulary:
//
//   JobSpec job;  job.batch_size = 0;
//   ValidateJob(job, PrefixNames("run."));  // "run.batch_size must be >= 1,
//                                           // got 0"
//   ValidateJob(job, CliNames());           // "--batch-size must be ..."
//
// Field paths are the API's (spec.proto), relative to the message: a job's
// fields as in RunSpec ("batch_size", "data.inline_data.x"), a range test's
// as in RangeTestSpec ("end_lr", "analysis.smoothing_beta"), a run's as in
// TrainSpec ("point_every"). Size limits fail RESOURCE_EXHAUSTED, every
// other rule INVALID_ARGUMENT. Every function is pure and thread-safe.
#ifndef LRTUNE_CORE_SPEC_H_
#define LRTUNE_CORE_SPEC_H_

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "core/curve_analysis.h"
#include "core/early_stopping.h"
#include "core/field_names.h"
#include "core/schedule.h"

namespace lrtune {

// --- Limits --------------------------------------------------------------

inline constexpr int kMaxSeeds = 64;               // per range test
inline constexpr int kMaxHiddenLayers = 16;        // model.hidden
inline constexpr int64_t kMaxHiddenWidth = 65536;  // model.hidden[i]
inline constexpr int64_t kMaxTorchScriptBytes = 64ll
                                                << 20;   // model.torchscript
inline constexpr int64_t kMaxInlineValues = 16ll << 20;  // floats in x
inline constexpr int64_t kMaxInlineSamples = 1ll << 20;  // x_shape[0]
inline constexpr int64_t kMaxLabel = 100000;             // y_labels[i]
inline constexpr int kMaxThreads = 256;                  // device.threads
inline constexpr int64_t kMaxRangeTestSteps = 1000000;   // range test steps
inline constexpr int64_t kMaxGradAccumulation = 1024;    // grad_accumulation
// GradScaler's defaults (torch.cuda.amp.GradScaler): the first loss scale
// of an fp16 run, the factors it grows by after kLossScaleGrowthInterval
// updates without an overflow and shrinks by at one.
inline constexpr double kDefaultLossScale = 65536.0;
inline constexpr double kLossScaleGrowth = 2.0;
inline constexpr double kLossScaleBackoff = 0.5;
inline constexpr int64_t kLossScaleGrowthInterval = 2000;
// Updates skipped in a row (non-finite gradients) before a run gives up:
// the scale is then 2^-64 of what it was, and the gradients are NaN, not
// overflowing.
inline constexpr int kMaxSkippedInARow = 64;
inline constexpr int64_t kMaxSnapshotEnsemble = 64;  // snapshot_ensemble
// A client-driven range test's plan (every step's LR) travels whole in one
// message to the client (client_run.h): at most this many steps.
inline constexpr int64_t kMaxClientRangeTestSteps = 100000;
// Seeds are packed into one model on a CPU only up to this many parameters
// per seed: beyond it K packed steps cost what K separate ones do.
inline constexpr int64_t kCpuMaxPackedParameters = 100000;

// --- Names ---------------------------------------------------------------

enum class ModelKind { kMlp, kCnn, kResnet20, kTorchScript };
enum class LossKind { kCrossEntropy, kMse };
enum class OptimizerKind { kSgd, kAdam, kAdamW, kRmsProp };
// The forward pass's and the loss's precision (autocast).
enum class Precision { kFp32, kBf16, kFp16 };

// "mlp", "cnn", "resnet20", "torchscript"; "cross_entropy", "mse"; "sgd",
// "adam", "adamw", "rmsprop". The parsers fail INVALID_ARGUMENT naming the
// field (model.kind, loss, optimizer.kind) and every valid name.
const char* ModelKindName(ModelKind kind);
const char* LossKindName(LossKind kind);
const char* OptimizerKindName(OptimizerKind kind);
const char* RampShapeName(RampShape shape);      // "exp", "linear"
const char* PrecisionName(Precision precision);  // "fp32", "bf16", "fp16"
const char* StopMetricName(StopMetric metric);   // "val_loss", "val_accuracy"
absl::StatusOr<ModelKind> ParseModelKind(absl::string_view name,
                                         const FieldNamer& names);
absl::StatusOr<LossKind> ParseLossKind(absl::string_view name,
                                       const FieldNamer& names);
absl::StatusOr<OptimizerKind> ParseOptimizerKind(absl::string_view name,
                                                 const FieldNamer& names);
absl::StatusOr<RampShape> ParseRampShape(absl::string_view name,
                                         const FieldNamer& names);
absl::StatusOr<Precision> ParsePrecision(absl::string_view name,
                                         const FieldNamer& names);
absl::StatusOr<StopMetric> ParseStopMetric(absl::string_view name,
                                           const FieldNamer& names);
// "mlp|cnn|resnet20|torchscript" and the like, for --help and errors.
std::string ModelKindNames(absl::string_view separator);
std::string LossKindNames(absl::string_view separator);
std::string OptimizerKindNames(absl::string_view separator);

// --- Specs -------------------------------------------------------------

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

// A data set by reference: one a worker reads from its data directory,
// DIR/NAME/manifest.json and .npy arrays (worker/dataset_dir.h reads them;
// docs/engine.md). This is what its manifest and arrays say, and all that
// the coordinator and the CLI know of it: workers report it when they
// register, and the coordinator writes it into every job that names the
// set, so that a job's plan (steps per epoch, packed seeds) does not
// depend on which workers are registered later. ValidateDatasetDescription
// states its rules.
struct DatasetDescription {
  std::string name;                   // IsDatasetName
  std::vector<int64_t> sample_shape;  // per sample: {features} or {C, H, W}
  int64_t train_samples = 0;          // rows of the training arrays
  // Rows of the validation arrays; 0: the set has none, and the training
  // arrays are split by DataSpec::validation_fraction.
  int64_t validation_samples = 0;
  // Classification: labels in [0, classes), classes >= 2, target_width 0.
  // Regression: classes 0, float32 targets of target_width >= 1 each.
  int64_t classes = 0;
  int64_t target_width = 0;
  int64_t bytes = 0;  // of its arrays on disk (for listings); >= 0

  bool operator==(const DatasetDescription& o) const {
    return name == o.name && sample_shape == o.sample_shape &&
           train_samples == o.train_samples &&
           validation_samples == o.validation_samples && classes == o.classes &&
           target_width == o.target_width && bytes == o.bytes;
  }
  bool operator!=(const DatasetDescription& o) const { return !(*this == o); }
};

struct DataSpec {
  // A name in Datasets() (below), "inline" for the tensors x / y, or the
  // name of a data set by reference (IsDatasetName).
  std::string name = "fashion-mnist";
  // A data set by reference: what it holds, when the caller knows (the
  // coordinator fills it in from the workers' registrations; the engine
  // reads it from disk and refuses a set that differs: DatasetDifference).
  // Must be unset for a built-in or inline data set.
  std::optional<DatasetDescription> description;
  // Train on the first `subset` samples of the training split; 0 = all.
  int64_t subset = 0;
  // Validate on the first `validation_subset` samples of the validation
  // split; 0 = all.
  int64_t validation_subset = 0;
  // Held out for validation without an official split (sklearn, synthetic,
  // inline; by reference, no validation arrays), in [0, 0.9]. The split is a
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
  // CPU threads, shared between LibTorch's pool and OpenBLAS's
  // (worker/blas_core.h); 0: OMP_NUM_THREADS, else the usable cores.
  int threads = 0;
  bool cuda_graph = false;  // CUDA only, built-in models only
  // Autocast of forward + loss: fp32 (none), bf16 (CUDA or CPU), fp16
  // (CUDA only, with dynamic loss scaling).
  Precision precision = Precision::kFp32;
  // Dynamic loss scaling (GradScaler's): the first scale, > 0, or 0 = on
  // at kDefaultLossScale for fp16 and off otherwise. The loss is multiplied
  // by the scale before backward and the gradients divided by it after; an
  // update whose gradients are not all finite is skipped (the LR does not
  // advance) and the scale halves; kLossScaleGrowthInterval updates without
  // one double it.
  double loss_scale = 0.0;
  // A coordinator leases the job only to a device with at least this much
  // memory (0: any); the engine does not read it.
  int64_t min_device_memory_bytes = 0;
};

// What every job has: model, data, optimizer, loss, batch, seed, device.
struct JobSpec {
  ModelSpec model;
  DataSpec data;
  OptimizerSpec optimizer;
  LossKind loss = LossKind::kCrossEntropy;
  int64_t batch_size = 128;  // >= 1; capped at the training set's size
  // Gradient accumulation: batches of batch_size per optimizer update, in
  // [1, kMaxGradAccumulation]. Each update averages their gradients (the
  // loss of each is divided by it), so 4 x 32 is one update of 128 samples;
  // steps, schedules and steps per epoch count updates.
  int64_t grad_accumulation = 1;
  uint64_t seed = 0;  // model init and batch order
  DeviceOptions device;
};

enum class RangeMetric { kTrainLoss, kValLoss, kValAccuracy };
// "train_loss", "val_loss", "val_accuracy"; the parser names the field and
// every valid name.
const char* RangeMetricName(RangeMetric metric);
absl::StatusOr<RangeMetric> ParseRangeMetric(absl::string_view name,
                                             const FieldNamer& names);

// Who trains a range test's runs: the service's workers (the engine, on the
// job's model and data), or the client in its own training loop, reporting
// each step's loss while the coordinator hands out the plan and applies the
// divergence rule (core/client_run.h; docs/api.md, "Client-driven range
// tests").
enum class RangeDriver { kWorker, kClient };
// "worker", "client"; the parser names the field and every valid name.
const char* RangeDriverName(RangeDriver driver);
absl::StatusOr<RangeDriver> ParseRangeDriver(absl::string_view name,
                                             const FieldNamer& names);

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
  // The curve the recommendation is read from: the training loss of every
  // step, or (Smith's original test) the validation loss or 1 - accuracy of
  // every evaluation, by the same rules (docs/analysis.md). A validation
  // metric needs eval_every >= 1; accuracy, a cross-entropy loss. The
  // training loss still stops the test at divergence.
  RangeMetric metric = RangeMetric::kTrainLoss;
  // Train the seeds packed into one batched model where that is faster (mlp
  // and cnn, no eval_every, parameters that fit; on the CPU only models of
  // at most kCpuMaxPackedParameters: MayPackSeeds): the curves equal
  // unpacked runs' within float tolerance. False: one model after another.
  bool pack_seeds = true;
  // The training budget the advice is for, in epochs, >= 0: the
  // recommendation's ready-to-use schedules span it (RecommendSchedules)
  // instead of four CLR cycles. 0: none given.
  int64_t budget_epochs = 0;
  // kClient: one client run per seed (the seeds label the runs: seeds,
  // ranks with their data shards), at most kMaxClientRangeTestSteps steps,
  // the training loss as the metric (no eval_every); pack_seeds is not
  // read.
  RangeDriver driver = RangeDriver::kWorker;
};

struct TrainSpec {
  ScheduleSpec schedule;
  // Budget: exactly one of epochs and steps is > 0.
  int64_t epochs = 0;
  int64_t steps = 0;
  int64_t point_every = 1;  // emit a StepPoint every k steps (>= 1)
  // Evaluate at the end of every epoch and of the run, every
  // eval_every_steps updates when > 0, and at the schedule's cycle ends
  // (CycleEnds) when early stopping or snapshots are on.
  int64_t eval_every_steps = 0;
  // Cycle-aware early stopping (core/early_stopping.h): judged at the
  // schedule's cycle ends, or at every evaluation for a schedule without
  // cycles; patience 0 = off.
  EarlyStoppingOptions early_stopping;
  // Snapshot ensembles (Huang et al. 2017, on SGDR): k >= 1 keeps the
  // weights at every cycle end and reports the last snapshot's accuracy
  // and that of the last k snapshots' averaged softmax. Needs a schedule
  // with cycles and a cross-entropy loss. 0 = off; at most
  // kMaxSnapshotEnsemble.
  int64_t snapshot_ensemble = 0;
  // Where the snapshots are written (snapshot-<step>.pt); empty: kept in
  // memory only. Worker configuration, like checkpoint_path.
  std::string snapshot_dir;
  // Pruned search (core/pruning.h): the run evaluates after each of these
  // updates (ascending, in [1, budget)) and asks its caller whether to go
  // on (Callbacks::on_rung). Empty: none.
  std::vector<int64_t> rung_steps;
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

// --- Data sets -----------------------------------------------------------

// A built-in data set. Sizes are the whole set (the engine splits it);
// 0 means "from the DataSpec" (the synthetic sets' samples, classes and
// features).
struct DatasetInfo {
  const char* name;
  const char* summary;       // one line for --help
  int64_t samples;           // 0: synthetic_samples
  int64_t features;          // per sample, flattened; 0: synthetic_features
  int64_t classes;           // 0: synthetic_classes; -1: regression (1 target)
  bool official_split;       // train/test files (fashion-mnist); else a split
  const char* sklearn_file;  // scikit-learn's CSV under sklearn/, or null
};
absl::Span<const DatasetInfo> Datasets();
const DatasetInfo* FindDataset(absl::string_view name);  // null: not built in
// "fashion-mnist, digits, ..., linear" (separator ", ") or with "|".
std::string DatasetNames(absl::string_view separator);

// Data sets by reference (DatasetDescription above; docs/engine.md).
// A name is 1 to kMaxDatasetNameLength characters of [A-Za-z0-9._-]
// starting with a letter or a digit (it names a directory: no '/', never
// "." or ".."), and neither "inline" nor a built-in name, which win.
inline constexpr size_t kMaxDatasetNameLength = 64;
// A data set's training rows (an inline one's x_shape[0]) and per-sample
// dims (inline x_shape has 1 + these).
inline constexpr int64_t kMinDatasetSamples = 10;
inline constexpr int kMaxSampleDims = 4;
// Data sets one worker may report when it registers.
inline constexpr int kMaxDatasetsPerWorker = 1024;
bool IsDatasetName(absl::string_view name);
// Whether `name` is a data set by reference: IsDatasetName, and neither
// built in nor "inline".
bool IsReferencedDataset(absl::string_view name);
// Every rule a description obeys: a valid name, 1..kMaxSampleDims sample
// dims each >= 1, train_samples >= kMinDatasetSamples, validation_samples
// >= 0, classes in {0} or [2, kMaxLabel + 1] with target_width 0 for
// classes and >= 1 for regression, bytes >= 0. `names` names its fields by
// their path in the description ("sample_shape[1]"); INVALID_ARGUMENT.
absl::Status ValidateDatasetDescription(const DatasetDescription& d,
                                        const FieldNamer& names);
// How `have` (the set a worker holds) differs from `planned` (the job's
// description) in what a run depends on: "" when it does not, else each
// field that differs, "train_samples 1000, planned 2000; classes 3,
// planned 10". bytes is not compared.
std::string DatasetDifference(const DatasetDescription& have,
                              const DatasetDescription& planned);

// The training samples a job's data gives after the validation split and
// the subset, and its input and output widths (an MLP's first and last
// layer); nullopt where only the data can tell (inline labels, a data set
// by reference without its description).
std::optional<int64_t> TrainSamples(const DataSpec& data);
std::optional<int64_t> InputWidth(const DataSpec& data);
std::optional<int64_t> OutputWidth(const DataSpec& data);
// Samples per optimizer update: min(batch_size, train samples) x
// grad_accumulation (batch_size x grad_accumulation where the size is
// unknown).
int64_t UpdateSamples(const JobSpec& job);
// Optimizer steps per epoch: train samples / UpdateSamples, 0 where the
// size is unknown.
int64_t StepsPerEpoch(const JobSpec& job);
// Adam and AdamW, whose max_lr scales with the batch
// (AnalysisOptions::adam_family).
bool IsAdamFamily(OptimizerKind kind);
// Whether a run scales its loss (DeviceOptions::loss_scale), and the scale
// it starts at.
bool UsesLossScaling(const DeviceOptions& device);
double InitialLossScale(const DeviceOptions& device);
// The optimizer's momentum as a range test's analysis reads it
// (AnalysisOptions::momentum): SGD's and RMSprop's momentum, Adam's and
// AdamW's beta1.
double OptimizerMomentum(const OptimizerSpec& optimizer);
// The options one curve of a range test is analysed with: the spec's, with
// iters_per_epoch (when 0) from `steps_per_epoch`, the momentum (when
// unset) from the job's optimizer (OptimizerMomentum), adam_family and
// batch_size (when 0: one update's samples) from the job, and planned_steps
// (when 0) the points the test plans (its steps, or its evaluations for a
// validation metric). The engine and the coordinator (a client's run) both
// read their curves with these.
AnalysisOptions CurveAnalysisOptions(const JobSpec& job,
                                     const RangeTestSpec& spec,
                                     int64_t steps_per_epoch);
// An MLP's parameter count (weights and biases), nullopt where a width is
// unknown or the model is not an mlp.
std::optional<int64_t> MlpParameterCount(const JobSpec& job);
// The same from the widths: `in` inputs, the `hidden` layers, `out` outputs.
int64_t MlpParameterCount(int64_t in, const std::vector<int64_t>& hidden,
                          int64_t out);

// Whether a range test's seeds may train packed into one batched model:
// worker-driven, more than one seed, pack_seeds, no eval_every, an mlp or a
// cnn, no loss scaling (one member's overflow would skip every member's
// update). The engine packs them when also the built model fits
// (engine.cc).
bool MayPackSeeds(const JobSpec& job, const RangeTestSpec& spec);
// What a coordinator expects the engine to do, before any model exists:
// MayPackSeeds, and a cnn, or an mlp on CUDA or of at most
// kCpuMaxPackedParameters.
bool ExpectPackedSeeds(const JobSpec& job, const RangeTestSpec& spec);

// --- Validators ----------------------------------------------------------

// Check every rule of a spec. `names` names the fields (field_names.h); the
// overloads without it use the engine's names: a job's fields as paths
// ("batch_size", "data.x"), a range test's under "range_test.", a run's
// under "train.".
absl::Status ValidateJob(const JobSpec& job, const FieldNamer& names);
absl::Status ValidateRangeTest(const RangeTestSpec& spec,
                               const FieldNamer& names);
absl::Status ValidateTrain(const TrainSpec& spec, const FieldNamer& names);
absl::Status ValidateJob(const JobSpec& job);
absl::Status ValidateRangeTest(const RangeTestSpec& spec);
absl::Status ValidateTrain(const TrainSpec& spec);

// The engine's names for a job's fields: paths, with the inline data's
// fields on `data` itself ("data.x", as DataSpec holds them).
FieldNamer EngineJobNames();

}  // namespace lrtune

#endif  // LRTUNE_CORE_SPEC_H_
