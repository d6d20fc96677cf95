// Validation of job specs and the names of the engine's enums. Torch-free.
#include <cmath>

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "worker/engine.h"

namespace lrtune::engine {
namespace {

absl::Status Positive(const char* field, double v) {
  if (!(v > 0.0) || !std::isfinite(v)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " must be finite and > 0, got ", v));
  }
  return absl::OkStatus();
}

absl::Status InRange(const char* field, double v, double lo, double hi) {
  if (!(v >= lo && v <= hi)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " must be in [", lo, ", ", hi, "], got ", v));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateJob(const JobSpec& job) {
  if (job.batch_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch_size must be >= 1, got ", job.batch_size));
  }
  const OptimizerSpec& o = job.optimizer;
  LRTUNE_RETURN_IF_ERROR(InRange("optimizer.momentum", o.momentum, 0.0, 1.0));
  LRTUNE_RETURN_IF_ERROR(
      InRange("optimizer.weight_decay", o.weight_decay, 0.0, 1.0));
  LRTUNE_RETURN_IF_ERROR(InRange("optimizer.beta1", o.beta1, 0.0, 0.999999));
  LRTUNE_RETURN_IF_ERROR(InRange("optimizer.beta2", o.beta2, 0.0, 0.999999));
  LRTUNE_RETURN_IF_ERROR(InRange("optimizer.alpha", o.alpha, 0.0, 0.999999));
  LRTUNE_RETURN_IF_ERROR(Positive("optimizer.eps", o.eps));
  if (o.nesterov && (o.kind != OptimizerKind::kSgd || o.momentum <= 0.0)) {
    return absl::InvalidArgumentError(
        "optimizer.nesterov requires optimizer sgd with momentum > 0");
  }
  if (job.device.threads < 0 || job.device.threads > 1024) {
    return absl::InvalidArgumentError(absl::StrCat(
        "device.threads must be in [0, 1024], got ", job.device.threads));
  }
  if (job.device.cuda_graph && job.model.kind == ModelKind::kTorchScript) {
    return absl::InvalidArgumentError(
        "device.cuda_graph is only supported for built-in models");
  }
  return absl::OkStatus();
}

absl::Status ValidateRangeTest(const RangeTestSpec& s) {
  LRTUNE_RETURN_IF_ERROR(Positive("range_test.start_lr", s.start_lr));
  LRTUNE_RETURN_IF_ERROR(Positive("range_test.end_lr", s.end_lr));
  if (s.end_lr <= s.start_lr) {
    return absl::InvalidArgumentError(
        absl::StrCat("range_test.end_lr (", s.end_lr, ") must be > start_lr (",
                     s.start_lr, ")"));
  }
  if (s.steps < 2 || s.steps > 1000000) {
    return absl::InvalidArgumentError(absl::StrCat(
        "range_test.steps must be in [2, 1000000], got ", s.steps));
  }
  if (s.seeds.size() > 64) {
    return absl::InvalidArgumentError("range_test.seeds: at most 64 seeds");
  }
  if (s.eval_every < 0 || s.eval_samples < 0) {
    return absl::InvalidArgumentError(
        "range_test.eval_every and eval_samples must be >= 0");
  }
  return absl::OkStatus();
}

absl::Status ValidateTrain(const TrainSpec& s) {
  if ((s.epochs > 0) == (s.steps > 0) || s.epochs < 0 || s.steps < 0) {
    return absl::InvalidArgumentError(
        "train: exactly one of epochs and steps must be > 0");
  }
  if (s.point_every < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("train.point_every must be >= 1, got ", s.point_every));
  }
  if (s.checkpoint_every < 0) {
    return absl::InvalidArgumentError("train.checkpoint_every must be >= 0");
  }
  if (s.max_restored_records < -1) {
    return absl::InvalidArgumentError(
        absl::StrCat("train.max_restored_records must be >= -1, got ",
                     s.max_restored_records));
  }
  return absl::OkStatus();
}

const char* ModelKindName(ModelKind kind) {
  switch (kind) {
    case ModelKind::kMlp:
      return "mlp";
    case ModelKind::kCnn:
      return "cnn";
    case ModelKind::kResnet20:
      return "resnet20";
    case ModelKind::kTorchScript:
      return "torchscript";
  }
  return "?";
}

const char* LossKindName(LossKind kind) {
  return kind == LossKind::kCrossEntropy ? "cross_entropy" : "mse";
}

const char* OptimizerKindName(OptimizerKind kind) {
  switch (kind) {
    case OptimizerKind::kSgd:
      return "sgd";
    case OptimizerKind::kAdam:
      return "adam";
    case OptimizerKind::kAdamW:
      return "adamw";
    case OptimizerKind::kRmsProp:
      return "rmsprop";
  }
  return "?";
}

absl::StatusOr<ModelKind> ParseModelKind(const std::string& name) {
  for (ModelKind k : {ModelKind::kMlp, ModelKind::kCnn, ModelKind::kResnet20,
                      ModelKind::kTorchScript}) {
    if (name == ModelKindName(k)) return k;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "model.kind must be mlp, cnn, resnet20 or torchscript, got \"", name,
      "\""));
}

absl::StatusOr<LossKind> ParseLossKind(const std::string& name) {
  if (name == "cross_entropy") return LossKind::kCrossEntropy;
  if (name == "mse") return LossKind::kMse;
  return absl::InvalidArgumentError(
      absl::StrCat("loss must be cross_entropy or mse, got \"", name, "\""));
}

absl::StatusOr<OptimizerKind> ParseOptimizerKind(const std::string& name) {
  for (OptimizerKind k : {OptimizerKind::kSgd, OptimizerKind::kAdam,
                          OptimizerKind::kAdamW, OptimizerKind::kRmsProp}) {
    if (name == OptimizerKindName(k)) return k;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("optimizer.kind must be sgd, adam, adamw or rmsprop, got \"",
                   name, "\""));
}

void TuneAllocatorForTraining() {
#ifdef __GLIBC__
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}

}  // namespace lrtune::engine
