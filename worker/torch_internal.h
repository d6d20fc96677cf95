// Engine internals shared by worker/*.cc: the in-memory dataset, the model
// interface and the exception-to-Status edge. Includes LibTorch; never
// include it from a public header.
//
//   LRTUNE_ASSIGN_OR_RETURN(Dataset d, LoadDataset(job.data, device));
//   LRTUNE_ASSIGN_OR_RETURN(auto model, BuildModel(job.model, d, job.loss,
//                                                  seed, device));
#ifndef LRTUNE_WORKER_TORCH_INTERNAL_H_
#define LRTUNE_WORKER_TORCH_INTERNAL_H_

#include <torch/torch.h>

#include <chrono>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/engine.h"

namespace lrtune::engine::internal {

// The message of an exception thrown by LibTorch without its C++ backtrace
// (c10::Error's what() appends one), capped at 400 characters.
std::string ExceptionMessage(const std::exception& e);

// Converts an exception thrown by LibTorch (c10::Error, std::bad_alloc, ...)
// into a Status carrying its message, prefixed by `context`. Out-of-memory
// gives ResourceExhausted, everything else Internal.
absl::Status StatusFromException(const std::exception& e,
                                 const std::string& context);

// A dataset held in memory on the job's device, or mapped from disk (a
// data set by reference on the CPU). x is float32 [N, ...]; y is int64 [N]
// (classification) or float32 [N, k] (regression).
struct Dataset {
  std::string name;
  torch::Tensor train_x, train_y, val_x, val_y;
  // The rows of train_x / val_x that make up each split, int64 on the
  // device; undefined: every row, in order. A data set by reference split
  // by validation_fraction selects its rows so that its mapped arrays are
  // never gathered whole (referenced_data.cc).
  torch::Tensor train_rows, val_rows;
  std::vector<int64_t> sample_shape;  // per-sample shape of x
  int64_t num_classes = 0;            // 0 for regression
  int64_t target_width = 0;           // regression: k
  int64_t train_size() const {
    return train_rows.defined() ? train_rows.size(0) : train_x.size(0);
  }
  int64_t val_size() const {
    return val_rows.defined() ? val_rows.size(0) : val_x.size(0);
  }
  // Writes training samples `idx` (positions in the training split, int64
  // on the device) into `xb` and `yb`.
  void GatherTrain(const torch::Tensor& idx, torch::Tensor& xb,
                   torch::Tensor& yb) const {
    const torch::Tensor rows =
        train_rows.defined() ? train_rows.index_select(0, idx) : idx;
    torch::index_select_out(xb, train_x, 0, rows);
    torch::index_select_out(yb, train_y, 0, rows);
  }
  // Validation samples [start, start + n): views of val_x / val_y, or
  // their rows gathered.
  std::pair<torch::Tensor, torch::Tensor> ValSlice(int64_t start,
                                                   int64_t n) const {
    if (!val_rows.defined()) {
      return {val_x.narrow(0, start, n), val_y.narrow(0, start, n)};
    }
    const torch::Tensor rows = val_rows.narrow(0, start, n);
    return {val_x.index_select(0, rows), val_y.index_select(0, rows)};
  }
};

// Loads (or generates) the dataset of `spec` onto `device`: standardised
// features, deterministic split, subsets applied. `spec` must have passed
// ValidateJob (core/spec.h). Errors: NotFound / DataLoss (files).
absl::StatusOr<Dataset> LoadDataset(const DataSpec& spec,
                                    const torch::Device& device);
// LoadDataset of a data set by reference (core/spec.h IsReferencedDataset):
// its arrays mapped from the data directory (worker/dataset_dir.h), never
// read whole on the CPU; on CUDA copied to the device. Split by its
// validation arrays or by spec.validation_fraction (as the built-in sets
// are), subsets applied; features as stored (not standardised). Errors:
// NotFound (no such set here), DataLoss (a file breaking a rule, a label
// outside [0, classes)), FailedPrecondition (the set differs from
// spec.description, naming what differs).
absl::StatusOr<Dataset> LoadReferencedDataset(const DataSpec& spec,
                                              const torch::Device& device);

// A trainable model: built-in (torch::nn) or TorchScript.
class Model {
 public:
  virtual ~Model() = default;
  virtual torch::Tensor Forward(const torch::Tensor& x) = 0;
  virtual std::vector<torch::Tensor> Parameters() = 0;
  // Parameters and buffers by name, for checkpoints.
  virtual std::vector<std::pair<std::string, torch::Tensor>> State() = 0;
  virtual void SetTraining(bool on) = 0;
  // Whether the forward pass may be captured in a CUDA graph.
  virtual bool graph_capturable() const = 0;
  // How many models train as one (packed_models.cc): 1, or K for a packed
  // model, whose Forward takes the members' batches one after another,
  // [K * B, ...sample], and returns [K, B, out].
  virtual int64_t members() const { return 1; }
};

// Builds the model of `spec` for `data` with weights initialised from
// `seed` (TorchScript modules keep their saved weights), on `device`, and
// checks its output fits `loss` with a forward pass on two samples.
// Errors: InvalidArgument naming the field (incompatible data, a module that
// fails to load, has no parameters or the wrong output shape).
absl::StatusOr<std::unique_ptr<Model>> BuildModel(const ModelSpec& spec,
                                                  const Dataset& data,
                                                  LossKind loss, uint64_t seed,
                                                  const torch::Device& device);

// The loss of `output` against `target` (mean over the batch).
torch::Tensor ComputeLoss(LossKind loss, const torch::Tensor& output,
                          const torch::Tensor& target);

// Packing: the K seeds of a range test as one batched model, each member
// starting from the weights BuildModel(seed_k) gave it and trained on its
// own batches, so that its curve equals the unpacked run's within float
// tolerance. Batched matmul over stacked weights for mlp, grouped
// convolution for cnn. The per-op overhead is paid once per step for all K;
// the arithmetic is K models' (engine.cc's PackSeeds says when it pays).
// Packs `members`, built by BuildModel from `spec` (at least one), into one
// model; their tensors are copied. InvalidArgument if `spec` cannot pack.
absl::StatusOr<std::unique_ptr<Model>> PackModels(
    const ModelSpec& spec, const std::vector<std::unique_ptr<Model>>& members);
// Each member's loss, [K], of a packed output [K, B, out] against targets
// [K * B] (labels) or [K * B, k].
torch::Tensor MemberLosses(LossKind loss, const torch::Tensor& output,
                           const torch::Tensor& target);
int64_t ParameterCount(Model& model);

// --- What range tests and training share (engine.cc) ---------------------

// Seconds since `since`.
double Seconds(std::chrono::steady_clock::time_point since);

// A job's device and data, ready to train.
struct Setup {
  torch::Device device = torch::kCPU;
  Dataset data;
};
// Validates `job`, resolves its device (a CUDA-only option on the CPU is
// InvalidArgument; CUDA asked for and absent FailedPrecondition; sets the
// thread count) and loads its data, reporting it through on_progress.
absl::StatusOr<Setup> Prepare(const JobSpec& job, const Callbacks& callbacks);
std::string DeviceName(const torch::Device& device);  // "cpu", "cuda:0"

// A step run but not yet reported: its loss arrives later (CUDA reads
// losses in chunks).
struct PendingPoint {
  int64_t step;
  double lr;
  std::optional<double> momentum;
  double elapsed;
  int skipped;  // updates loss scaling skipped just before this one
};

// The progress line of an update that loss scaling skipped at `step`.
std::string SkipMessage(int64_t step, double lr, double scale);

// Schedule training (RunTraining without the exception edge): training.cc.
absl::StatusOr<TrainResult> TrainImpl(const JobSpec& job, const TrainSpec& spec,
                                      const Callbacks& callbacks,
                                      const CancellationToken* cancel);

}  // namespace lrtune::engine::internal

#endif  // LRTUNE_WORKER_TORCH_INTERNAL_H_
