// The optimizer loop shared by range tests and schedule training: batches by
// a per-epoch permutation, LR/momentum set before every step, losses read
// without a host sync per step on CUDA, evaluation and checkpoints.
//
//   LRTUNE_ASSIGN_OR_RETURN(auto trainer, Trainer::Create(job, data, *model,
//                                                         seed, device));
//   trainer->Step(t, schedule.Lr(t), schedule.Momentum(t));
//   for (double loss : trainer->TakeLosses(/*flush=*/false)) ...
//
// Not thread-safe: one Trainer belongs to one run on one thread.
#ifndef LRTUNE_WORKER_TRAINER_H_
#define LRTUNE_WORKER_TRAINER_H_

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
  // the batch buffers. InvalidArgument for options LibTorch rejects.
  static absl::StatusOr<std::unique_ptr<Trainer>> Create(
      const JobSpec& job, const Dataset& data, Model& model, uint64_t seed,
      const torch::Device& device);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // Runs optimizer step `step` (global index: it selects the epoch's
  // permutation and the batch in it) with `lr` and, when set, `momentum`
  // (beta1 for Adam-style optimizers). Throws c10::Error on LibTorch errors.
  void Step(int64_t step, double lr, std::optional<double> momentum);

  // Returns the losses of steps run since the last call, in order. On CPU
  // every step's loss is available at once; on CUDA they arrive in chunks of
  // kLossChunk, or all of them when `flush` (one host sync).
  std::vector<double> TakeLosses(bool flush);

  // Loss and accuracy over the first `max_samples` validation samples (0 =
  // all), in eval mode and without gradients.
  EvalResult Evaluate(int64_t max_samples);

  int64_t steps_per_epoch() const { return steps_per_epoch_; }
  int64_t batch_size() const { return batch_; }

  // Writes model state, optimizer state and `step` to `path` (atomically:
  // a temporary file renamed over it). Internal on I/O errors.
  absl::Status SaveCheckpoint(const std::string& path, int64_t step);
  // Restores a checkpoint written by SaveCheckpoint; returns its step.
  // DataLoss if it does not match this model.
  absl::StatusOr<int64_t> RestoreCheckpoint(const std::string& path);

 private:
  struct Impl;
  explicit Trainer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  int64_t steps_per_epoch_ = 0;
  int64_t batch_ = 0;
};

}  // namespace lrtune::engine::internal

#endif  // LRTUNE_WORKER_TRAINER_H_
