// The optimizer loop shared by range tests and schedule training: batches by
// a per-epoch permutation, LR/momentum set before every step, losses read
// without a host sync per step on CUDA, evaluation and checkpoints.
//
//   LRTUNE_ASSIGN_OR_RETURN(auto trainer, Trainer::Create(job, data, *model,
//                                                         {seed}, device));
//   trainer->Step(t, schedule.Lr(t), schedule.Momentum(t));
//   for (double loss : trainer->TakeLosses(/*flush=*/false)) ...
//
// Not thread-safe: one Trainer belongs to one run on one thread.
#ifndef LRTUNE_WORKER_TRAINER_H_
#define LRTUNE_WORKER_TRAINER_H_

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "worker/torch_internal.h"

namespace lrtune::engine::internal {

struct EvalResult {
  double loss = 0.0;
  double accuracy = 0.0;  // NaN for mse
};

class Trainer {
 public:
  // Losses are read from the device every kLossChunk steps on CUDA.
  static constexpr int64_t kLossChunk = 32;

  // Builds the optimizer for `model` (which must outlive the Trainer) and
  // the batch buffers. `seeds` orders the batches, one per member of the
  // model (Model::members(): 1 unless packed); each member sees the batches
  // an unpacked run of its seed would. InvalidArgument for options LibTorch
  // rejects or a seed count that is not the model's.
  static absl::StatusOr<std::unique_ptr<Trainer>> Create(
      const JobSpec& job, const Dataset& data, Model& model,
      std::vector<uint64_t> seeds, const torch::Device& device);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // Runs optimizer update `step` (global index: it selects the epoch's
  // permutation and the batches in it) with `lr` and, when set, `momentum`
  // (beta1 for Adam-style optimizers): job.grad_accumulation batches, their
  // gradients averaged, under the job's precision. With loss scaling
  // (UsesLossScaling) returns false when the gradients were not finite: the
  // update was skipped, its loss is not reported, and the caller runs the
  // same step again (the scale has halved). Otherwise true. Throws
  // c10::Error on LibTorch errors.
  bool Step(int64_t step, double lr, std::optional<double> momentum);

  // Returns the losses of steps run since the last call, in order, K =
  // Model::members() per step (member m of step i at i * K + m). On CPU
  // every step's losses are available at once; on CUDA they arrive in
  // chunks of kLossChunk steps, or all of them when `flush` (one host sync).
  std::vector<double> TakeLosses(bool flush);

  // Loss and accuracy over the first `max_samples` validation samples (0 =
  // all), in eval mode and without gradients. Not for a packed model.
  EvalResult Evaluate(int64_t max_samples);

  int64_t steps_per_epoch() const { return steps_per_epoch_; }  // updates
  // The loss scale the next update uses; 0 without loss scaling.
  double loss_scale() const;
  int64_t batch_size() const { return batch_; }  // per member

  // What a checkpoint holds besides the model and optimizer: the step to
  // continue at and named values of the loop around the trainer (records
  // emitted, smoother state, ...), exact for integers up to 2^53.
  struct CheckpointState {
    int64_t step = 0;
    std::map<std::string, double> values;
    // Tensors of the loop (weights it keeps: the best, snapshots), saved
    // on the CPU and restored on the CPU.
    std::map<std::string, torch::Tensor> tensors;
  };

  // The model's parameters and buffers, copied (Model::State order), and
  // the same written back. LoadWeights: InvalidArgument when they do not
  // fit the model.
  std::vector<torch::Tensor> CopyWeights();
  absl::Status LoadWeights(const std::vector<torch::Tensor>& weights);
  // Writes `weights` to `path` under the model's tensor names (a
  // torch::serialize archive, loadable with torch.load's C++ twin).
  // Internal on I/O errors.
  absl::Status SaveWeights(const std::string& path,
                           const std::vector<torch::Tensor>& weights);
  // The validation loss (NLL) and accuracy of the averaged softmax of
  // `members` (weights as CopyWeights gives them), all validation samples;
  // the model's own weights are back afterwards. One model, cross-entropy.
  EvalResult EvaluateEnsemble(
      const std::vector<const std::vector<torch::Tensor>*>& members);

  // Writes model state, optimizer state, the loss scaler's state and
  // `state` to `path` (atomically:
  // a temporary file of this process renamed over it, so two writers of
  // one path never mix). The checkpoint it replaces becomes
  // path + kPreviousCheckpointSuffix (engine.h). Internal on I/O errors.
  absl::Status SaveCheckpoint(const std::string& path,
                              const CheckpointState& state);
  // Reads only the state of a checkpoint (to decide whether to restore it).
  // DataLoss if it is not a checkpoint.
  static absl::StatusOr<CheckpointState> ReadCheckpointState(
      const std::string& path);
  // Restores a checkpoint written by SaveCheckpoint; returns its state.
  // DataLoss if it does not match this model.
  absl::StatusOr<CheckpointState> RestoreCheckpoint(const std::string& path);

 private:
  struct Impl;
  explicit Trainer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  int64_t steps_per_epoch_ = 0;
  int64_t batch_ = 0;
};

}  // namespace lrtune::engine::internal

#endif  // LRTUNE_WORKER_TRAINER_H_
