// Proto <-> engine conversions; see proto_convert.h.
#include "worker/proto_convert.h"

#include <cmath>
#include <cstdint>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace lrtune::worker {
namespace {

absl::Status Invalid(absl::string_view path, absl::string_view rule) {
  return absl::InvalidArgumentError(absl::StrCat(path, " ", rule));
}

// Prefixes an engine or core validation message with the proto path.
absl::Status Prefixed(absl::string_view prefix, const absl::Status& status) {
  if (status.ok()) return status;
  return absl::Status(status.code(), absl::StrCat(prefix, status.message()));
}

absl::Status AtLeast(absl::string_view path, int64_t v, int64_t lo) {
  if (v < lo)
    return Invalid(path, absl::StrCat("must be >= ", lo, ", got ", v));
  return absl::OkStatus();
}

absl::Status InHalfOpen(absl::string_view path, double v, double lo,
                        double hi) {
  if (!(v >= lo && v < hi)) {
    return Invalid(path,
                   absl::StrCat("must be in [", lo, ", ", hi, "), got ", v));
  }
  return absl::OkStatus();
}

double NanIfUnset(bool has, double v) {
  return has ? v : std::numeric_limits<double>::quiet_NaN();
}

absl::StatusOr<engine::ModelKind> ModelKindFromProto(v1::ModelKind k) {
  switch (k) {
    case v1::MODEL_KIND_UNSPECIFIED:
    case v1::MODEL_KIND_MLP:
      return engine::ModelKind::kMlp;
    case v1::MODEL_KIND_CNN:
      return engine::ModelKind::kCnn;
    case v1::MODEL_KIND_RESNET20:
      return engine::ModelKind::kResnet20;
    case v1::MODEL_KIND_TORCHSCRIPT:
      return engine::ModelKind::kTorchScript;
    default:
      return Invalid("run.model.kind", absl::StrCat("unknown value ", k));
  }
}

v1::ModelKind ModelKindToProto(engine::ModelKind k) {
  switch (k) {
    case engine::ModelKind::kMlp:
      return v1::MODEL_KIND_MLP;
    case engine::ModelKind::kCnn:
      return v1::MODEL_KIND_CNN;
    case engine::ModelKind::kResnet20:
      return v1::MODEL_KIND_RESNET20;
    case engine::ModelKind::kTorchScript:
      return v1::MODEL_KIND_TORCHSCRIPT;
  }
  return v1::MODEL_KIND_UNSPECIFIED;
}

absl::StatusOr<engine::OptimizerKind> OptimizerKindFromProto(
    v1::OptimizerKind k) {
  switch (k) {
    case v1::OPTIMIZER_KIND_UNSPECIFIED:
    case v1::OPTIMIZER_KIND_SGD:
      return engine::OptimizerKind::kSgd;
    case v1::OPTIMIZER_KIND_ADAM:
      return engine::OptimizerKind::kAdam;
    case v1::OPTIMIZER_KIND_ADAMW:
      return engine::OptimizerKind::kAdamW;
    case v1::OPTIMIZER_KIND_RMSPROP:
      return engine::OptimizerKind::kRmsProp;
    default:
      return Invalid("run.optimizer.kind", absl::StrCat("unknown value ", k));
  }
}

v1::OptimizerKind OptimizerKindToProto(engine::OptimizerKind k) {
  switch (k) {
    case engine::OptimizerKind::kSgd:
      return v1::OPTIMIZER_KIND_SGD;
    case engine::OptimizerKind::kAdam:
      return v1::OPTIMIZER_KIND_ADAM;
    case engine::OptimizerKind::kAdamW:
      return v1::OPTIMIZER_KIND_ADAMW;
    case engine::OptimizerKind::kRmsProp:
      return v1::OPTIMIZER_KIND_RMSPROP;
  }
  return v1::OPTIMIZER_KIND_UNSPECIFIED;
}

absl::Status DataFromProto(const v1::DataSpec& d, engine::DataSpec& out) {
  if (d.has_inline_data()) {
    const v1::InlineData& in = d.inline_data();
    const std::string p = "run.data.inline_data";
    out.name = "inline";
    if (in.x_shape_size() < 2 || in.x_shape_size() > 5) {
      return Invalid(p + ".x_shape", absl::StrCat("must have 2..5 dims, got ",
                                                  in.x_shape_size()));
    }
    int64_t elements = 1;
    for (int i = 0; i < in.x_shape_size(); ++i) {
      LRTUNE_RETURN_IF_ERROR(
          AtLeast(absl::StrCat(p, ".x_shape[", i, "]"), in.x_shape(i), 1));
      if (elements > engine::kMaxInlineElements) break;
      elements *= in.x_shape(i);
    }
    const int64_t n = in.x_shape(0);
    LRTUNE_RETURN_IF_ERROR(AtLeast(p + ".x_shape[0]", n, 10));
    if (n > engine::kMaxInlineSamples ||
        elements > engine::kMaxInlineElements) {
      return absl::ResourceExhaustedError(absl::StrCat(
          p, " exceeds the engine's limits (", engine::kMaxInlineSamples,
          " samples, ", engine::kMaxInlineElements, " values)"));
    }
    if (in.x_size() != elements) {
      return Invalid(p + ".x",
                     absl::StrCat("must hold product(x_shape) = ", elements,
                                  " values, got ", in.x_size()));
    }
    if ((in.y_labels_size() > 0) == (in.y_targets_size() > 0)) {
      return Invalid(p, "must set exactly one of y_labels and y_targets");
    }
    const int64_t width = in.has_y_target_width() ? in.y_target_width() : 1;
    LRTUNE_RETURN_IF_ERROR(AtLeast(p + ".y_target_width", width, 1));
    if (in.y_labels_size() > 0) {
      if (in.y_labels_size() != n) {
        return Invalid(
            p + ".y_labels",
            absl::StrCat("must hold ", n, " labels, got ", in.y_labels_size()));
      }
      for (int i = 0; i < in.y_labels_size(); ++i) {
        LRTUNE_RETURN_IF_ERROR(
            AtLeast(absl::StrCat(p, ".y_labels[", i, "]"), in.y_labels(i), 0));
      }
    } else if (in.y_targets_size() != n * width) {
      return Invalid(p + ".y_targets",
                     absl::StrCat("must hold ", n * width, " values, got ",
                                  in.y_targets_size()));
    }
    out.x_shape.assign(in.x_shape().begin(), in.x_shape().end());
    out.x.assign(in.x().begin(), in.x().end());
    out.y_labels.assign(in.y_labels().begin(), in.y_labels().end());
    out.y_targets.assign(in.y_targets().begin(), in.y_targets().end());
    out.y_target_width = width;
  } else if (d.source_case() == v1::DataSpec::kName) {
    if (d.name().empty()) return Invalid("run.data.name", "must not be empty");
    out.name = d.name();
  } else {
    out.name = "fashion-mnist";
  }
  LRTUNE_RETURN_IF_ERROR(AtLeast("run.data.subset", d.subset(), 0));
  out.subset = d.subset();
  LRTUNE_RETURN_IF_ERROR(
      AtLeast("run.data.validation_subset", d.validation_subset(), 0));
  out.validation_subset = d.validation_subset();
  if (d.has_validation_fraction()) {
    const double f = d.validation_fraction();
    if (!(f >= 0.0 && f <= 0.9)) {
      return Invalid("run.data.validation_fraction",
                     absl::StrCat("must be in [0, 0.9], got ", f));
    }
    out.validation_fraction = f;
  }
  out.split_seed = d.split_seed();
  if (d.has_synthetic_samples()) {
    LRTUNE_RETURN_IF_ERROR(
        AtLeast("run.data.synthetic_samples", d.synthetic_samples(), 10));
    out.synthetic_samples = d.synthetic_samples();
  }
  if (d.has_synthetic_classes()) {
    LRTUNE_RETURN_IF_ERROR(
        AtLeast("run.data.synthetic_classes", d.synthetic_classes(), 2));
    out.synthetic_classes = d.synthetic_classes();
  }
  if (d.has_synthetic_features()) {
    LRTUNE_RETURN_IF_ERROR(
        AtLeast("run.data.synthetic_features", d.synthetic_features(), 1));
    out.synthetic_features = d.synthetic_features();
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<engine::JobSpec> RunSpecFromProto(const v1::RunSpec& run) {
  engine::JobSpec job;
  const v1::ModelSpec& m = run.model();
  LRTUNE_ASSIGN_OR_RETURN(job.model.kind, ModelKindFromProto(m.kind()));
  if (m.hidden_size() > 16) {
    return Invalid(
        "run.model.hidden",
        absl::StrCat("must have at most 16 layers, got ", m.hidden_size()));
  }
  if (m.hidden_size() > 0) {
    job.model.hidden.clear();
    for (int i = 0; i < m.hidden_size(); ++i) {
      const int64_t w = m.hidden(i);
      if (w < 1 || w > 65536) {
        return Invalid(absl::StrCat("run.model.hidden[", i, "]"),
                       absl::StrCat("must be in [1, 65536], got ", w));
      }
      job.model.hidden.push_back(w);
    }
  }
  const bool script = job.model.kind == engine::ModelKind::kTorchScript;
  if (script && m.torchscript().empty()) {
    return Invalid("run.model.torchscript", "is required for torchscript");
  }
  if (!script && !m.torchscript().empty()) {
    return Invalid("run.model.torchscript",
                   "must be empty unless model.kind is torchscript");
  }
  job.model.torchscript = m.torchscript();
  LRTUNE_RETURN_IF_ERROR(DataFromProto(run.data(), job.data));

  const v1::OptimizerSpec& o = run.optimizer();
  LRTUNE_ASSIGN_OR_RETURN(job.optimizer.kind, OptimizerKindFromProto(o.kind()));
  if (o.has_momentum()) job.optimizer.momentum = o.momentum();
  if (o.has_nesterov()) job.optimizer.nesterov = o.nesterov();
  if (o.has_weight_decay()) job.optimizer.weight_decay = o.weight_decay();
  if (o.has_beta1()) job.optimizer.beta1 = o.beta1();
  if (o.has_beta2()) job.optimizer.beta2 = o.beta2();
  if (o.has_eps()) job.optimizer.eps = o.eps();
  if (o.has_alpha()) job.optimizer.alpha = o.alpha();
  LRTUNE_RETURN_IF_ERROR(
      InHalfOpen("run.optimizer.beta1", job.optimizer.beta1, 0.0, 1.0));
  LRTUNE_RETURN_IF_ERROR(
      InHalfOpen("run.optimizer.beta2", job.optimizer.beta2, 0.0, 1.0));
  LRTUNE_RETURN_IF_ERROR(
      InHalfOpen("run.optimizer.alpha", job.optimizer.alpha, 0.0, 1.0));

  switch (run.loss()) {
    case v1::LOSS_KIND_UNSPECIFIED:
    case v1::LOSS_KIND_CROSS_ENTROPY:
      job.loss = engine::LossKind::kCrossEntropy;
      break;
    case v1::LOSS_KIND_MSE:
      job.loss = engine::LossKind::kMse;
      break;
    default:
      return Invalid("run.loss", absl::StrCat("unknown value ", run.loss()));
  }
  if (run.has_batch_size()) job.batch_size = run.batch_size();
  job.seed = run.seed();
  const v1::DeviceOptions& d = run.device();
  job.device.device = d.device().empty() ? "auto" : d.device();
  if (d.threads() < 0 || d.threads() > 256) {
    return Invalid("run.device.threads",
                   absl::StrCat("must be in [0, 256], got ", d.threads()));
  }
  job.device.threads = d.threads();
  job.device.cuda_graph = d.cuda_graph();
  job.device.bf16 = d.bf16();
  LRTUNE_RETURN_IF_ERROR(Prefixed("run.", engine::ValidateJob(job)));
  return job;
}

absl::StatusOr<engine::RangeTestSpec> RangeTestSpecFromProto(
    const v1::RangeTestSpec& p) {
  engine::RangeTestSpec s;
  if (p.has_start_lr()) s.start_lr = p.start_lr();
  if (p.has_end_lr()) s.end_lr = p.end_lr();
  if (p.has_steps()) s.steps = p.steps();
  LRTUNE_ASSIGN_OR_RETURN(s.shape,
                          RampFromProto(p.shape(), "range_test.shape"));
  const v1::AnalysisOptions& a = p.analysis();
  if (a.has_smoothing_beta()) s.analysis.smoothing_beta = a.smoothing_beta();
  LRTUNE_RETURN_IF_ERROR(InHalfOpen("range_test.analysis.smoothing_beta",
                                    s.analysis.smoothing_beta, 0.0, 1.0));
  if (a.has_divergence_factor()) {
    s.analysis.divergence_factor = a.divergence_factor();
  }
  if (!(s.analysis.divergence_factor > 1.0) ||
      !std::isfinite(s.analysis.divergence_factor)) {
    return Invalid("range_test.analysis.divergence_factor",
                   absl::StrCat("must be finite and > 1, got ",
                                s.analysis.divergence_factor));
  }
  if (a.has_skip_head_fraction()) {
    s.analysis.skip_head_fraction = a.skip_head_fraction();
  }
  LRTUNE_RETURN_IF_ERROR(InHalfOpen("range_test.analysis.skip_head_fraction",
                                    s.analysis.skip_head_fraction, 0.0, 0.5));
  if (a.has_iters_per_epoch()) s.analysis.iters_per_epoch = a.iters_per_epoch();
  LRTUNE_RETURN_IF_ERROR(AtLeast("range_test.analysis.iters_per_epoch",
                                 s.analysis.iters_per_epoch, 0));
  if (a.has_stepsize_k()) s.analysis.stepsize_k = a.stepsize_k();
  if (s.analysis.stepsize_k < 2 || s.analysis.stepsize_k > 10) {
    return Invalid(
        "range_test.analysis.stepsize_k",
        absl::StrCat("must be in [2, 10], got ", s.analysis.stepsize_k));
  }
  std::set<uint64_t> distinct(p.seeds().begin(), p.seeds().end());
  if (static_cast<int>(distinct.size()) != p.seeds_size()) {
    return Invalid("range_test.seeds", "must be distinct");
  }
  s.seeds.assign(p.seeds().begin(), p.seeds().end());
  LRTUNE_RETURN_IF_ERROR(AtLeast("range_test.eval_every", p.eval_every(), 0));
  s.eval_every = p.eval_every();
  if (p.has_eval_samples()) {
    LRTUNE_RETURN_IF_ERROR(
        AtLeast("range_test.eval_samples", p.eval_samples(), 1));
    s.eval_samples = p.eval_samples();
  }
  if (p.has_pack_seeds()) s.pack_seeds = p.pack_seeds();
  LRTUNE_RETURN_IF_ERROR(engine::ValidateRangeTest(s));
  return s;
}

absl::StatusOr<engine::TrainSpec> TrainSpecFromProto(const v1::TrainSpec& p) {
  engine::TrainSpec s;
  LRTUNE_ASSIGN_OR_RETURN(
      s.schedule, ScheduleSpecFromProto(p.schedule(), "train.schedule"));
  switch (p.budget_case()) {
    case v1::TrainSpec::kEpochs:
      LRTUNE_RETURN_IF_ERROR(AtLeast("train.epochs", p.epochs(), 1));
      s.epochs = p.epochs();
      break;
    case v1::TrainSpec::kSteps:
      LRTUNE_RETURN_IF_ERROR(AtLeast("train.steps", p.steps(), 1));
      s.steps = p.steps();
      break;
    default:
      return Invalid("train.budget", "must be set (epochs or steps)");
  }
  if (p.has_point_every()) {
    LRTUNE_RETURN_IF_ERROR(AtLeast("train.point_every", p.point_every(), 1));
    s.point_every = p.point_every();
  }
  if (p.eval_every_steps() != 0) {
    return Invalid("train.eval_every_steps",
                   absl::StrCat("must be 0 (other cadences are reserved), got ",
                                p.eval_every_steps()));
  }
  LRTUNE_RETURN_IF_ERROR(
      AtLeast("train.checkpoint_every", p.checkpoint_every(), 0));
  s.checkpoint_every = p.checkpoint_every();
  LRTUNE_RETURN_IF_ERROR(engine::ValidateTrain(s));
  return s;
}

v1::RunSpec RunSpecToProto(const engine::JobSpec& job) {
  v1::RunSpec p;
  v1::ModelSpec& m = *p.mutable_model();
  m.set_kind(ModelKindToProto(job.model.kind));
  for (int64_t w : job.model.hidden) m.add_hidden(w);
  m.set_torchscript(job.model.torchscript);
  const engine::DataSpec& d = job.data;
  v1::DataSpec& pd = *p.mutable_data();
  if (d.name == "inline") {
    v1::InlineData& in = *pd.mutable_inline_data();
    for (int64_t v : d.x_shape) in.add_x_shape(v);
    in.mutable_x()->Add(d.x.begin(), d.x.end());
    in.mutable_y_labels()->Add(d.y_labels.begin(), d.y_labels.end());
    in.mutable_y_targets()->Add(d.y_targets.begin(), d.y_targets.end());
    in.set_y_target_width(d.y_target_width);
  } else {
    pd.set_name(d.name);
  }
  pd.set_subset(d.subset);
  pd.set_validation_subset(d.validation_subset);
  pd.set_validation_fraction(d.validation_fraction);
  pd.set_split_seed(d.split_seed);
  pd.set_synthetic_samples(d.synthetic_samples);
  pd.set_synthetic_classes(d.synthetic_classes);
  pd.set_synthetic_features(d.synthetic_features);
  const engine::OptimizerSpec& o = job.optimizer;
  v1::OptimizerSpec& po = *p.mutable_optimizer();
  po.set_kind(OptimizerKindToProto(o.kind));
  po.set_momentum(o.momentum);
  po.set_nesterov(o.nesterov);
  po.set_weight_decay(o.weight_decay);
  po.set_beta1(o.beta1);
  po.set_beta2(o.beta2);
  po.set_eps(o.eps);
  po.set_alpha(o.alpha);
  p.set_loss(job.loss == engine::LossKind::kMse ? v1::LOSS_KIND_MSE
                                                : v1::LOSS_KIND_CROSS_ENTROPY);
  p.set_batch_size(job.batch_size);
  p.set_seed(job.seed);
  v1::DeviceOptions& pdev = *p.mutable_device();
  pdev.set_device(job.device.device);
  pdev.set_threads(job.device.threads);
  pdev.set_cuda_graph(job.device.cuda_graph);
  pdev.set_bf16(job.device.bf16);
  return p;
}

v1::RangeTestSpec RangeTestSpecToProto(const engine::RangeTestSpec& s) {
  v1::RangeTestSpec p;
  p.set_start_lr(s.start_lr);
  p.set_end_lr(s.end_lr);
  p.set_steps(s.steps);
  p.set_shape(RampToProto(s.shape));
  v1::AnalysisOptions& a = *p.mutable_analysis();
  a.set_smoothing_beta(s.analysis.smoothing_beta);
  a.set_divergence_factor(s.analysis.divergence_factor);
  a.set_skip_head_fraction(s.analysis.skip_head_fraction);
  a.set_iters_per_epoch(s.analysis.iters_per_epoch);
  a.set_stepsize_k(s.analysis.stepsize_k);
  for (uint64_t seed : s.seeds) p.add_seeds(seed);
  p.set_eval_every(s.eval_every);
  p.set_eval_samples(s.eval_samples);
  p.set_pack_seeds(s.pack_seeds);
  return p;
}

v1::TrainSpec TrainSpecToProto(const engine::TrainSpec& s) {
  v1::TrainSpec p;
  *p.mutable_schedule() = ScheduleSpecToProto(s.schedule);
  if (s.epochs > 0) {
    p.set_epochs(s.epochs);
  } else {
    p.set_steps(s.steps);
  }
  p.set_point_every(s.point_every);
  p.set_checkpoint_every(s.checkpoint_every);
  return p;
}

v1::CurvePoint CurvePointToProto(const engine::StepPoint& point,
                                 int seed_index) {
  v1::CurvePoint p;
  p.set_seed_index(seed_index);
  p.set_step(point.step);
  p.set_lr(point.lr);
  if (point.momentum.has_value()) p.set_momentum(*point.momentum);
  p.set_loss(point.loss);
  p.set_smoothed(point.smoothed);
  p.set_elapsed_s(point.elapsed_s);
  return p;
}

v1::Evaluation EvaluationToProto(const engine::Evaluation& e, int seed_index) {
  v1::Evaluation p;
  p.set_seed_index(seed_index);
  p.set_step(e.step);
  p.set_epoch(e.epoch);
  p.set_lr(e.lr);
  if (!std::isnan(e.train_loss)) p.set_train_loss(e.train_loss);
  p.set_val_loss(e.val_loss);
  if (!std::isnan(e.val_accuracy)) p.set_val_accuracy(e.val_accuracy);
  return p;
}

engine::Evaluation EvaluationFromProto(const v1::Evaluation& p) {
  engine::Evaluation e;
  e.seed_index = p.seed_index();
  e.step = p.step();
  e.epoch = p.epoch();
  e.lr = p.lr();
  e.train_loss = NanIfUnset(p.has_train_loss(), p.train_loss());
  e.val_loss = p.val_loss();
  e.val_accuracy = NanIfUnset(p.has_val_accuracy(), p.val_accuracy());
  return e;
}

v1::RangeTestTaskResult RangeTestResultToProto(
    const engine::RangeTestResult& result) {
  v1::RangeTestTaskResult p;
  // The first seed's curve's recommendation, and every seed's when the task
  // ran several (packed).
  *p.mutable_recommendation() = RecommendationToProto(
      result.per_seed.empty() ? result.recommendation : result.per_seed[0]);
  if (result.per_seed.size() > 1) {
    for (const Recommendation& r : result.per_seed) {
      *p.add_per_seed() = RecommendationToProto(r);
    }
  }
  p.set_steps_run(result.steps_run);
  p.set_train_seconds(result.train_seconds);
  p.set_device(result.device);
  return p;
}

v1::TrialTaskResult TrainResultToProto(const engine::TrainResult& result) {
  v1::TrialTaskResult p;
  *p.mutable_final_eval() = EvaluationToProto(result.final_eval, 0);
  *p.mutable_best_eval() = EvaluationToProto(result.best_eval, 0);
  p.set_steps(result.steps);
  p.set_resumed_from(result.resumed_from);
  p.set_train_seconds(result.train_seconds);
  p.set_device(result.device);
  return p;
}

}  // namespace lrtune::worker
