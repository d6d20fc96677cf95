#include "proto/core_convert.h"

#include <cmath>
#include <limits>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace lrtune {
namespace {

absl::Status Invalid(absl::string_view path, absl::string_view rule) {
  return absl::InvalidArgumentError(absl::StrCat(path, " ", rule));
}

double NanIfUnset(bool has, double v) {
  return has ? v : std::numeric_limits<double>::quiet_NaN();
}

// Proto ScheduleKind n (1..18) is core's enumerator n - 1, in the same order.
constexpr int kScheduleKinds = 18;
static_assert(v1::ScheduleKind_MAX == kScheduleKinds &&
                  static_cast<int>(ScheduleKind::kProfile) + 1 ==
                      kScheduleKinds,
              "proto and core schedule kinds must stay in the same order");
// So are the profile's shapes and modes (0 is unset: the first one).
static_assert(v1::ProfileShape_MAX == static_cast<int>(ProfileShape::kRex) + 1,
              "proto and core profile shapes must stay in the same order");
static_assert(v1::Precision_MAX == static_cast<int>(Precision::kFp16) + 1,
              "proto and core precisions must stay in the same order");
static_assert(v1::ProfileMode_MAX == static_cast<int>(ProfileMode::kCyclic) + 1,
              "proto and core profile modes must stay in the same order");

absl::StatusOr<ProfileShape> ProfileShapeFromProto(v1::ProfileShape shape,
                                                   const std::string& path) {
  if (shape < 0 || shape > v1::ProfileShape_MAX) {
    return Invalid(path, absl::StrCat("unknown value ", shape));
  }
  return static_cast<ProfileShape>(shape == 0 ? 0 : shape - 1);
}

v1::ProfileShape ProfileShapeToProto(ProfileShape shape) {
  return static_cast<v1::ProfileShape>(static_cast<int>(shape) + 1);
}

absl::Status ScheduleFromProtoRec(const v1::ScheduleSpec& p,
                                  const std::string& path, int depth,
                                  ScheduleSpec& s) {
  if (depth > 4) return Invalid(path, "nesting depth must be <= 4");
  if (p.kind() == v1::SCHEDULE_KIND_UNSPECIFIED) {
    return Invalid(path + ".kind", "must be set");
  }
  s = ScheduleSpec{};
  LRTUNE_ASSIGN_OR_RETURN(s.kind,
                          ScheduleKindFromProto(p.kind(), path + ".kind"));
  if (p.has_base_lr()) s.base_lr = p.base_lr();
  if (p.has_max_lr()) s.max_lr = p.max_lr();
  if (p.has_total_steps()) s.total_steps = p.total_steps();
  if (p.has_gamma()) s.gamma = p.gamma();
  s.step_size = p.step_size();
  s.milestones.assign(p.milestones().begin(), p.milestones().end());
  if (p.has_start_factor()) s.start_factor = p.start_factor();
  if (p.has_end_factor()) s.end_factor = p.end_factor();
  if (p.has_total_iters()) s.total_iters = p.total_iters();
  if (p.has_power()) s.power = p.power();
  if (p.has_eta_min()) s.eta_min = p.eta_min();
  if (p.has_t_max()) {
    s.t_max = p.t_max();
  } else if (s.kind == ScheduleKind::kCosine) {
    s.t_max = s.total_steps;
  }
  s.t0 = p.t0();
  if (p.has_t_mult()) s.t_mult = p.t_mult();
  if (p.has_step_size_up()) s.step_size_up = p.step_size_up();
  if (p.has_step_size_down()) s.step_size_down = p.step_size_down();
  if (p.has_cycle_momentum()) s.cycle_momentum = p.cycle_momentum();
  if (p.has_base_momentum()) s.base_momentum = p.base_momentum();
  if (p.has_max_momentum()) s.max_momentum = p.max_momentum();
  if (p.has_pct_start()) s.pct_start = p.pct_start();
  switch (p.anneal()) {
    case v1::ANNEAL_UNSPECIFIED:
    case v1::ANNEAL_COS:
      s.anneal = Anneal::kCos;
      break;
    case v1::ANNEAL_LINEAR:
      s.anneal = Anneal::kLinear;
      break;
    default:
      return Invalid(path + ".anneal",
                     absl::StrCat("unknown value ", p.anneal()));
  }
  if (p.has_div_factor()) s.div_factor = p.div_factor();
  if (p.has_final_div_factor()) s.final_div_factor = p.final_div_factor();
  if (p.has_three_phase()) s.three_phase = p.three_phase();
  if (p.has_rex_beta()) s.rex_beta = p.rex_beta();
  if (p.has_cooldown_steps()) s.cooldown_steps = p.cooldown_steps();
  if (p.has_cooldown_fraction()) s.cooldown_fraction = p.cooldown_fraction();
  if (p.has_fractal_period()) s.fractal_period = p.fractal_period();
  if (p.has_fractal_kappa()) s.fractal_kappa = p.fractal_kappa();
  if (p.has_warmup_steps()) s.warmup_steps = p.warmup_steps();
  if (p.has_warmup_start_factor()) {
    s.warmup_start_factor = p.warmup_start_factor();
  }
  switch (p.cooldown()) {
    case v1::COOLDOWN_SHAPE_UNSPECIFIED:
    case v1::COOLDOWN_SHAPE_ONE_MINUS_SQRT:
      s.cooldown = Cooldown::kOneMinusSqrt;
      break;
    case v1::COOLDOWN_SHAPE_LINEAR:
      s.cooldown = Cooldown::kLinear;
      break;
    case v1::COOLDOWN_SHAPE_COSINE:
      s.cooldown = Cooldown::kCosine;
      break;
    default:
      return Invalid(path + ".cooldown",
                     absl::StrCat("unknown value ", p.cooldown()));
  }
  LRTUNE_ASSIGN_OR_RETURN(s.ramp, RampFromProto(p.ramp(), path + ".ramp"));
  LRTUNE_ASSIGN_OR_RETURN(
      s.profile, ProfileShapeFromProto(p.profile(), path + ".profile"));
  LRTUNE_ASSIGN_OR_RETURN(
      s.warmup_shape,
      ProfileShapeFromProto(p.warmup_shape(), path + ".warmup_shape"));
  if (p.profile_mode() < 0 || p.profile_mode() > v1::ProfileMode_MAX) {
    return Invalid(path + ".profile_mode",
                   absl::StrCat("unknown value ", p.profile_mode()));
  }
  s.profile_mode = static_cast<ProfileMode>(
      p.profile_mode() == 0 ? 0 : p.profile_mode() - 1);
  if (p.has_sample_every()) s.sample_every = p.sample_every();
  if (p.children_size() > 16) {
    return Invalid(
        path + ".children",
        absl::StrCat("must hold 1..16 schedules, got ", p.children_size()));
  }
  s.children.resize(p.children_size());
  for (int i = 0; i < p.children_size(); ++i) {
    LRTUNE_RETURN_IF_ERROR(ScheduleFromProtoRec(
        p.children(i), absl::StrCat(path, ".children[", i, "]"), depth + 1,
        s.children[i]));
  }
  s.boundaries.assign(p.boundaries().begin(), p.boundaries().end());
  return absl::OkStatus();
}

}  // namespace

v1::Recommendation RecommendationToProto(const Recommendation& rec) {
  v1::Recommendation out;
  out.set_min_lr(rec.min_lr);
  out.set_max_lr(rec.max_lr);
  out.set_stepsize_iterations(rec.stepsize_iterations);
  out.set_stepsize_epochs(rec.stepsize_epochs);
  if (!std::isnan(rec.lr_valley)) out.set_lr_valley(rec.lr_valley);
  if (!std::isnan(rec.lr_slide)) out.set_lr_slide(rec.lr_slide);
  if (!std::isnan(rec.lr_minimum)) out.set_lr_minimum(rec.lr_minimum);
  if (!std::isnan(rec.lr_steep)) out.set_lr_steep(rec.lr_steep);
  if (!std::isnan(rec.lr_steepest)) out.set_lr_steepest(rec.lr_steepest);
  if (!std::isnan(rec.lr_lowest)) out.set_lr_lowest(rec.lr_lowest);
  v1::OneCycleSettings& oc = *out.mutable_one_cycle();
  oc.set_max_lr(rec.one_cycle.max_lr);
  oc.set_div_factor(rec.one_cycle.div_factor);
  oc.set_final_div_factor(rec.one_cycle.final_div_factor);
  oc.set_pct_start(rec.one_cycle.pct_start);
  oc.set_base_momentum(rec.one_cycle.base_momentum);
  oc.set_max_momentum(rec.one_cycle.max_momentum);
  if (rec.diverged_at >= 0) out.set_diverged_at(rec.diverged_at);
  out.set_points_used(rec.points_used);
  out.set_spread_decades(rec.spread_decades);
  out.set_max_lr_low(rec.max_lr_low);
  out.set_max_lr_high(rec.max_lr_high);
  out.set_seeds(rec.seeds);
  for (const AnalysisWarning& w : rec.warnings) {
    v1::AnalysisWarning& pw = *out.add_warnings();
    pw.set_code(w.code);
    pw.set_message(w.message);
  }
  out.mutable_smoothed()->Add(rec.smoothed.begin(), rec.smoothed.end());
  out.mutable_position()->Add(rec.position.begin(), rec.position.end());
  return out;
}

Recommendation RecommendationFromProto(const v1::Recommendation& rec) {
  Recommendation out;
  out.min_lr = rec.min_lr();
  out.max_lr = rec.max_lr();
  out.stepsize_iterations = rec.stepsize_iterations();
  out.stepsize_epochs = rec.stepsize_epochs();
  out.lr_valley = NanIfUnset(rec.has_lr_valley(), rec.lr_valley());
  out.lr_slide = NanIfUnset(rec.has_lr_slide(), rec.lr_slide());
  out.lr_minimum = NanIfUnset(rec.has_lr_minimum(), rec.lr_minimum());
  out.lr_steep = NanIfUnset(rec.has_lr_steep(), rec.lr_steep());
  out.lr_steepest = NanIfUnset(rec.has_lr_steepest(), rec.lr_steepest());
  out.lr_lowest = NanIfUnset(rec.has_lr_lowest(), rec.lr_lowest());
  if (rec.has_one_cycle()) {
    const v1::OneCycleSettings& oc = rec.one_cycle();
    out.one_cycle.max_lr = oc.max_lr();
    out.one_cycle.div_factor = oc.div_factor();
    out.one_cycle.final_div_factor = oc.final_div_factor();
    out.one_cycle.pct_start = oc.pct_start();
    out.one_cycle.base_momentum = oc.base_momentum();
    out.one_cycle.max_momentum = oc.max_momentum();
  }
  out.diverged_at = rec.has_diverged_at() ? rec.diverged_at() : -1;
  out.points_used = rec.points_used();
  out.spread_decades = rec.spread_decades();
  out.max_lr_low = rec.max_lr_low();
  out.max_lr_high = rec.max_lr_high();
  out.seeds = rec.seeds() > 0 ? rec.seeds() : 1;
  for (const v1::AnalysisWarning& w : rec.warnings()) {
    out.warnings.push_back({w.code(), w.message()});
  }
  out.smoothed.assign(rec.smoothed().begin(), rec.smoothed().end());
  out.position.assign(rec.position().begin(), rec.position().end());
  return out;
}

absl::StatusOr<ScheduleKind> ScheduleKindFromProto(v1::ScheduleKind kind,
                                                   const std::string& path) {
  if (kind < 1 || kind > kScheduleKinds) {
    return Invalid(path, absl::StrCat("unknown value ", kind));
  }
  return static_cast<ScheduleKind>(kind - 1);
}

v1::ScheduleKind ScheduleKindToProto(ScheduleKind kind) {
  return static_cast<v1::ScheduleKind>(static_cast<int>(kind) + 1);
}

absl::StatusOr<RampShape> RampFromProto(v1::RampShape s,
                                        absl::string_view path) {
  switch (s) {
    case v1::RAMP_SHAPE_UNSPECIFIED:
    case v1::RAMP_SHAPE_EXP:
      return RampShape::kExp;
    case v1::RAMP_SHAPE_LINEAR:
      return RampShape::kLinear;
    default:
      return Invalid(path, absl::StrCat("unknown value ", s));
  }
}

v1::RangeMetric RangeMetricToProto(RangeMetric metric) {
  switch (metric) {
    case RangeMetric::kTrainLoss:
      return v1::RANGE_METRIC_TRAIN_LOSS;
    case RangeMetric::kValLoss:
      return v1::RANGE_METRIC_VAL_LOSS;
    case RangeMetric::kValAccuracy:
      return v1::RANGE_METRIC_VAL_ACCURACY;
  }
  return v1::RANGE_METRIC_TRAIN_LOSS;
}

v1::Precision PrecisionToProto(Precision precision) {
  return static_cast<v1::Precision>(static_cast<int>(precision) + 1);
}

v1::RampShape RampToProto(RampShape s) {
  return s == RampShape::kLinear ? v1::RAMP_SHAPE_LINEAR : v1::RAMP_SHAPE_EXP;
}

absl::StatusOr<ScheduleSpec> ScheduleSpecFromProto(const v1::ScheduleSpec& spec,
                                                   absl::string_view path) {
  ScheduleSpec s;
  LRTUNE_RETURN_IF_ERROR(ScheduleFromProtoRec(spec, std::string(path), 1, s));
  LRTUNE_RETURN_IF_ERROR(
      Schedule::Create(s, PrefixNames(absl::StrCat(path, "."))).status());
  return s;
}

v1::ScheduleSpec ScheduleSpecToProto(const ScheduleSpec& s) {
  v1::ScheduleSpec p;
  p.set_kind(ScheduleKindToProto(s.kind));
  p.set_base_lr(s.base_lr);
  if (!std::isnan(s.max_lr)) p.set_max_lr(s.max_lr);
  p.set_total_steps(s.total_steps);
  if (!std::isnan(s.gamma)) p.set_gamma(s.gamma);
  p.set_step_size(s.step_size);
  for (int64_t m : s.milestones) p.add_milestones(m);
  p.set_start_factor(s.start_factor);
  p.set_end_factor(s.end_factor);
  p.set_total_iters(s.total_iters);
  p.set_power(s.power);
  p.set_eta_min(s.eta_min);
  p.set_t_max(s.t_max);
  p.set_t0(s.t0);
  p.set_t_mult(s.t_mult);
  p.set_step_size_up(s.step_size_up);
  p.set_step_size_down(s.step_size_down);
  p.set_cycle_momentum(s.cycle_momentum);
  if (!std::isnan(s.base_momentum)) p.set_base_momentum(s.base_momentum);
  if (!std::isnan(s.max_momentum)) p.set_max_momentum(s.max_momentum);
  p.set_pct_start(s.pct_start);
  p.set_anneal(s.anneal == Anneal::kLinear ? v1::ANNEAL_LINEAR
                                           : v1::ANNEAL_COS);
  p.set_div_factor(s.div_factor);
  p.set_final_div_factor(s.final_div_factor);
  p.set_three_phase(s.three_phase);
  p.set_rex_beta(s.rex_beta);
  p.set_cooldown_steps(s.cooldown_steps);
  p.set_cooldown_fraction(s.cooldown_fraction);
  p.set_fractal_period(s.fractal_period);
  p.set_fractal_kappa(s.fractal_kappa);
  p.set_warmup_steps(s.warmup_steps);
  p.set_warmup_start_factor(s.warmup_start_factor);
  p.set_cooldown(s.cooldown == Cooldown::kLinear ? v1::COOLDOWN_SHAPE_LINEAR
                 : s.cooldown == Cooldown::kCosine
                     ? v1::COOLDOWN_SHAPE_COSINE
                     : v1::COOLDOWN_SHAPE_ONE_MINUS_SQRT);
  p.set_ramp(RampToProto(s.ramp));
  p.set_profile(ProfileShapeToProto(s.profile));
  p.set_profile_mode(
      static_cast<v1::ProfileMode>(static_cast<int>(s.profile_mode) + 1));
  p.set_warmup_shape(ProfileShapeToProto(s.warmup_shape));
  p.set_sample_every(s.sample_every);
  for (const ScheduleSpec& c : s.children) {
    *p.add_children() = ScheduleSpecToProto(c);
  }
  for (int64_t b : s.boundaries) p.add_boundaries(b);
  return p;
}

// --- Specs -------------------------------------------------------------

namespace {

// Enum values a newer client may send that this build does not know.
template <typename E>
absl::Status UnknownEnum(const FieldNamer& names, absl::string_view path,
                         E value) {
  return FieldError(
      names, path,
      absl::StrCat("is not a known value: ", static_cast<int>(value)));
}

absl::StatusOr<ModelKind> ModelKindFromProto(v1::ModelKind k,
                                             const FieldNamer& names) {
  switch (k) {
    case v1::MODEL_KIND_UNSPECIFIED:
    case v1::MODEL_KIND_MLP:
      return ModelKind::kMlp;
    case v1::MODEL_KIND_CNN:
      return ModelKind::kCnn;
    case v1::MODEL_KIND_RESNET20:
      return ModelKind::kResnet20;
    case v1::MODEL_KIND_TORCHSCRIPT:
      return ModelKind::kTorchScript;
    default:
      return UnknownEnum(names, "model.kind", k);
  }
}

absl::StatusOr<OptimizerKind> OptimizerKindFromProto(v1::OptimizerKind k,
                                                     const FieldNamer& names) {
  switch (k) {
    case v1::OPTIMIZER_KIND_UNSPECIFIED:
    case v1::OPTIMIZER_KIND_SGD:
      return OptimizerKind::kSgd;
    case v1::OPTIMIZER_KIND_ADAM:
      return OptimizerKind::kAdam;
    case v1::OPTIMIZER_KIND_ADAMW:
      return OptimizerKind::kAdamW;
    case v1::OPTIMIZER_KIND_RMSPROP:
      return OptimizerKind::kRmsProp;
    default:
      return UnknownEnum(names, "optimizer.kind", k);
  }
}

void DataFromProto(const v1::DataSpec& d, DataSpec& out) {
  if (d.has_inline_data()) {
    const v1::InlineData& in = d.inline_data();
    out.name = "inline";
    out.x_shape.assign(in.x_shape().begin(), in.x_shape().end());
    out.x.assign(in.x().begin(), in.x().end());
    out.y_labels.assign(in.y_labels().begin(), in.y_labels().end());
    out.y_targets.assign(in.y_targets().begin(), in.y_targets().end());
    if (in.has_y_target_width()) out.y_target_width = in.y_target_width();
  } else if (d.source_case() == v1::DataSpec::kName) {
    out.name = d.name();
  }
  out.subset = d.subset();
  out.validation_subset = d.validation_subset();
  if (d.has_validation_fraction()) {
    out.validation_fraction = d.validation_fraction();
  }
  out.split_seed = d.split_seed();
  if (d.has_description()) {
    // Checked with the rest of the data by ValidateJob.
    const v1::DatasetDescription& p = d.description();
    DatasetDescription& desc = out.description.emplace();
    desc.name = p.name();
    desc.sample_shape.assign(p.sample_shape().begin(), p.sample_shape().end());
    desc.train_samples = p.train_samples();
    desc.validation_samples = p.validation_samples();
    desc.classes = p.classes();
    desc.target_width = p.target_width();
    desc.bytes = p.bytes();
  }
  if (d.has_synthetic_samples()) out.synthetic_samples = d.synthetic_samples();
  if (d.has_synthetic_classes()) out.synthetic_classes = d.synthetic_classes();
  if (d.has_synthetic_features()) {
    out.synthetic_features = d.synthetic_features();
  }
}

}  // namespace

absl::StatusOr<DatasetDescription> DatasetDescriptionFromProto(
    const v1::DatasetDescription& d, const FieldNamer& names) {
  v1::DataSpec data;
  *data.mutable_description() = d;
  DataSpec out;
  DataFromProto(data, out);
  LRTUNE_RETURN_IF_ERROR(ValidateDatasetDescription(*out.description, names));
  return *std::move(out.description);
}

v1::DatasetDescription DatasetDescriptionToProto(const DatasetDescription& d) {
  v1::DatasetDescription p;
  p.set_name(d.name);
  for (int64_t v : d.sample_shape) p.add_sample_shape(v);
  p.set_train_samples(d.train_samples);
  p.set_validation_samples(d.validation_samples);
  p.set_classes(d.classes);
  p.set_target_width(d.target_width);
  p.set_bytes(d.bytes);
  return p;
}

v1::ModelKind ModelKindToProto(ModelKind k) {
  switch (k) {
    case ModelKind::kMlp:
      return v1::MODEL_KIND_MLP;
    case ModelKind::kCnn:
      return v1::MODEL_KIND_CNN;
    case ModelKind::kResnet20:
      return v1::MODEL_KIND_RESNET20;
    case ModelKind::kTorchScript:
      return v1::MODEL_KIND_TORCHSCRIPT;
  }
  return v1::MODEL_KIND_UNSPECIFIED;
}

v1::OptimizerKind OptimizerKindToProto(OptimizerKind k) {
  switch (k) {
    case OptimizerKind::kSgd:
      return v1::OPTIMIZER_KIND_SGD;
    case OptimizerKind::kAdam:
      return v1::OPTIMIZER_KIND_ADAM;
    case OptimizerKind::kAdamW:
      return v1::OPTIMIZER_KIND_ADAMW;
    case OptimizerKind::kRmsProp:
      return v1::OPTIMIZER_KIND_RMSPROP;
  }
  return v1::OPTIMIZER_KIND_UNSPECIFIED;
}

absl::StatusOr<JobSpec> RunSpecFromProto(const v1::RunSpec& run,
                                         const FieldNamer& names) {
  JobSpec job;
  const v1::ModelSpec& m = run.model();
  LRTUNE_ASSIGN_OR_RETURN(job.model.kind, ModelKindFromProto(m.kind(), names));
  if (m.hidden_size() > 0)
    job.model.hidden.assign(m.hidden().begin(), m.hidden().end());
  job.model.torchscript = m.torchscript();
  DataFromProto(run.data(), job.data);
  const v1::OptimizerSpec& o = run.optimizer();
  LRTUNE_ASSIGN_OR_RETURN(job.optimizer.kind,
                          OptimizerKindFromProto(o.kind(), names));
  if (o.has_momentum()) job.optimizer.momentum = o.momentum();
  if (o.has_nesterov()) job.optimizer.nesterov = o.nesterov();
  if (o.has_weight_decay()) job.optimizer.weight_decay = o.weight_decay();
  if (o.has_beta1()) job.optimizer.beta1 = o.beta1();
  if (o.has_beta2()) job.optimizer.beta2 = o.beta2();
  if (o.has_eps()) job.optimizer.eps = o.eps();
  if (o.has_alpha()) job.optimizer.alpha = o.alpha();
  switch (run.loss()) {
    case v1::LOSS_KIND_UNSPECIFIED:
    case v1::LOSS_KIND_CROSS_ENTROPY:
      job.loss = LossKind::kCrossEntropy;
      break;
    case v1::LOSS_KIND_MSE:
      job.loss = LossKind::kMse;
      break;
    default:
      return UnknownEnum(names, "loss", run.loss());
  }
  if (run.has_batch_size()) job.batch_size = run.batch_size();
  job.seed = run.seed();
  const v1::DeviceOptions& d = run.device();
  job.device.device = d.device().empty() ? "auto" : d.device();
  job.device.threads = d.threads();
  job.device.cuda_graph = d.cuda_graph();
  switch (d.precision()) {
    case v1::PRECISION_UNSPECIFIED:
      job.device.precision = d.bf16() ? Precision::kBf16 : Precision::kFp32;
      break;
    case v1::PRECISION_FP32:
      job.device.precision = Precision::kFp32;
      break;
    case v1::PRECISION_BF16:
      job.device.precision = Precision::kBf16;
      break;
    case v1::PRECISION_FP16:
      job.device.precision = Precision::kFp16;
      break;
    default:
      return UnknownEnum(names, "device.precision", d.precision());
  }
  if (d.bf16() && job.device.precision != Precision::kBf16) {
    return FieldError(
        names, "device.bf16",
        absl::StrCat("(deprecated) is true but ", names("device.precision"),
                     " is ", PrecisionName(job.device.precision)));
  }
  if (d.has_loss_scale()) job.device.loss_scale = d.loss_scale();
  if (run.has_grad_accumulation()) {
    job.grad_accumulation = run.grad_accumulation();
  }
  job.device.min_device_memory_bytes = d.min_device_memory_bytes();
  LRTUNE_RETURN_IF_ERROR(ValidateJob(job, names));
  return job;
}

absl::StatusOr<JobSpec> RunSpecFromProto(const v1::RunSpec& run) {
  return RunSpecFromProto(run, PrefixNames("run."));
}

absl::StatusOr<RangeTestSpec> RangeTestSpecFromProto(const v1::RangeTestSpec& p,
                                                     const FieldNamer& names) {
  RangeTestSpec s;
  if (p.has_start_lr()) s.start_lr = p.start_lr();
  if (p.has_end_lr()) s.end_lr = p.end_lr();
  if (p.has_steps()) s.steps = p.steps();
  LRTUNE_ASSIGN_OR_RETURN(s.shape, RampFromProto(p.shape(), names("shape")));
  const v1::AnalysisOptions& a = p.analysis();
  if (a.has_smoothing_beta()) s.analysis.smoothing_beta = a.smoothing_beta();
  if (a.has_divergence_factor()) {
    s.analysis.divergence_factor = a.divergence_factor();
  }
  if (a.has_skip_head_fraction()) {
    s.analysis.skip_head_fraction = a.skip_head_fraction();
  }
  if (a.has_iters_per_epoch()) s.analysis.iters_per_epoch = a.iters_per_epoch();
  if (a.has_stepsize_k()) s.analysis.stepsize_k = a.stepsize_k();
  if (a.has_momentum()) s.analysis.momentum = a.momentum();
  s.seeds.assign(p.seeds().begin(), p.seeds().end());
  s.eval_every = p.eval_every();
  if (p.has_eval_samples()) s.eval_samples = p.eval_samples();
  if (p.has_pack_seeds()) s.pack_seeds = p.pack_seeds();
  s.budget_epochs = p.budget_epochs();
  switch (p.metric()) {
    case v1::RANGE_METRIC_UNSPECIFIED:
    case v1::RANGE_METRIC_TRAIN_LOSS:
      s.metric = RangeMetric::kTrainLoss;
      break;
    case v1::RANGE_METRIC_VAL_LOSS:
      s.metric = RangeMetric::kValLoss;
      break;
    case v1::RANGE_METRIC_VAL_ACCURACY:
      s.metric = RangeMetric::kValAccuracy;
      break;
    default:
      return UnknownEnum(names, "metric", p.metric());
  }
  switch (p.driver()) {
    case v1::RANGE_DRIVER_UNSPECIFIED:
    case v1::RANGE_DRIVER_WORKER:
      s.driver = RangeDriver::kWorker;
      break;
    case v1::RANGE_DRIVER_CLIENT:
      s.driver = RangeDriver::kClient;
      break;
    default:
      return UnknownEnum(names, "driver", p.driver());
  }
  LRTUNE_RETURN_IF_ERROR(ValidateRangeTest(s, names));
  return s;
}

absl::StatusOr<RangeTestSpec> RangeTestSpecFromProto(
    const v1::RangeTestSpec& spec) {
  return RangeTestSpecFromProto(spec, PrefixNames("range_test."));
}

absl::StatusOr<TrainSpec> TrainSpecFromProto(const v1::TrainSpec& p,
                                             const FieldNamer& names) {
  TrainSpec s;
  LRTUNE_ASSIGN_OR_RETURN(
      s.schedule, ScheduleSpecFromProto(p.schedule(), names("schedule")));
  // The budget is a oneof: a set value of 0 is an error of its own field
  // (core sees "no budget" otherwise).
  switch (p.budget_case()) {
    case v1::TrainSpec::kEpochs:
      if (p.epochs() < 1) {
        return FieldError(names, "epochs",
                          absl::StrCat("must be >= 1, got ", p.epochs()));
      }
      s.epochs = p.epochs();
      break;
    case v1::TrainSpec::kSteps:
      if (p.steps() < 1) {
        return FieldError(names, "steps",
                          absl::StrCat("must be >= 1, got ", p.steps()));
      }
      s.steps = p.steps();
      break;
    default:
      break;
  }
  if (p.has_point_every()) s.point_every = p.point_every();
  s.eval_every_steps = p.eval_every_steps();
  s.checkpoint_every = p.checkpoint_every();
  const v1::EarlyStopping& stop = p.early_stopping();
  s.early_stopping.patience = stop.patience();
  s.early_stopping.min_delta = stop.min_delta();
  if (stop.has_restore_best()) {
    s.early_stopping.restore_best = stop.restore_best();
  }
  switch (stop.metric()) {
    case v1::RANGE_METRIC_UNSPECIFIED:
    case v1::RANGE_METRIC_VAL_LOSS:
      s.early_stopping.metric = StopMetric::kValLoss;
      break;
    case v1::RANGE_METRIC_VAL_ACCURACY:
      s.early_stopping.metric = StopMetric::kValAccuracy;
      break;
    case v1::RANGE_METRIC_TRAIN_LOSS:
      return FieldError(names, "early_stopping.metric",
                        "must be val_loss or val_accuracy (the training "
                        "loss of a cycle's end says nothing of held-out "
                        "data), got train_loss");
    default:
      return UnknownEnum(names, "early_stopping.metric", stop.metric());
  }
  s.snapshot_ensemble = p.snapshot_ensemble();
  s.rung_steps.assign(p.rung_steps().begin(), p.rung_steps().end());
  LRTUNE_RETURN_IF_ERROR(ValidateTrain(s, names));
  return s;
}

absl::StatusOr<TrainSpec> TrainSpecFromProto(const v1::TrainSpec& spec) {
  return TrainSpecFromProto(spec, PrefixNames("train."));
}

v1::RunSpec RunSpecToProto(const JobSpec& job) {
  v1::RunSpec p;
  v1::ModelSpec& m = *p.mutable_model();
  m.set_kind(ModelKindToProto(job.model.kind));
  for (int64_t w : job.model.hidden) m.add_hidden(w);
  m.set_torchscript(job.model.torchscript);
  const DataSpec& d = job.data;
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
  if (d.description.has_value()) {
    *pd.mutable_description() = DatasetDescriptionToProto(*d.description);
  }
  const OptimizerSpec& o = job.optimizer;
  v1::OptimizerSpec& po = *p.mutable_optimizer();
  po.set_kind(OptimizerKindToProto(o.kind));
  po.set_momentum(o.momentum);
  po.set_nesterov(o.nesterov);
  po.set_weight_decay(o.weight_decay);
  po.set_beta1(o.beta1);
  po.set_beta2(o.beta2);
  po.set_eps(o.eps);
  po.set_alpha(o.alpha);
  p.set_loss(job.loss == LossKind::kMse ? v1::LOSS_KIND_MSE
                                        : v1::LOSS_KIND_CROSS_ENTROPY);
  p.set_batch_size(job.batch_size);
  p.set_seed(job.seed);
  v1::DeviceOptions& pdev = *p.mutable_device();
  pdev.set_device(job.device.device);
  pdev.set_threads(job.device.threads);
  pdev.set_cuda_graph(job.device.cuda_graph);
  pdev.set_precision(PrecisionToProto(job.device.precision));
  if (job.device.loss_scale > 0) pdev.set_loss_scale(job.device.loss_scale);
  if (job.grad_accumulation != 1) {
    p.set_grad_accumulation(job.grad_accumulation);
  }
  pdev.set_min_device_memory_bytes(job.device.min_device_memory_bytes);
  return p;
}

v1::RangeTestSpec RangeTestSpecToProto(const RangeTestSpec& s) {
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
  if (s.analysis.momentum.has_value()) a.set_momentum(*s.analysis.momentum);
  for (uint64_t seed : s.seeds) p.add_seeds(seed);
  p.set_eval_every(s.eval_every);
  p.set_eval_samples(s.eval_samples);
  p.set_metric(RangeMetricToProto(s.metric));
  p.set_pack_seeds(s.pack_seeds);
  if (s.budget_epochs > 0) p.set_budget_epochs(s.budget_epochs);
  // Unset means the workers: a worker's test converts as it always did.
  if (s.driver == RangeDriver::kClient) p.set_driver(v1::RANGE_DRIVER_CLIENT);
  return p;
}

v1::TrainSpec TrainSpecToProto(const TrainSpec& s) {
  v1::TrainSpec p;
  *p.mutable_schedule() = ScheduleSpecToProto(s.schedule);
  if (s.epochs > 0) {
    p.set_epochs(s.epochs);
  } else {
    p.set_steps(s.steps);
  }
  p.set_point_every(s.point_every);
  p.set_checkpoint_every(s.checkpoint_every);
  p.set_eval_every_steps(s.eval_every_steps);
  v1::EarlyStopping& stop = *p.mutable_early_stopping();
  stop.set_patience(s.early_stopping.patience);
  stop.set_min_delta(s.early_stopping.min_delta);
  stop.set_metric(s.early_stopping.metric == StopMetric::kValAccuracy
                      ? v1::RANGE_METRIC_VAL_ACCURACY
                      : v1::RANGE_METRIC_VAL_LOSS);
  stop.set_restore_best(s.early_stopping.restore_best);
  p.set_snapshot_ensemble(s.snapshot_ensemble);
  for (int64_t step : s.rung_steps) p.add_rung_steps(step);
  return p;
}

v1::RecommendedSchedules RecommendedSchedulesToProto(
    const RecommendedSchedules& s) {
  v1::RecommendedSchedules p;
  p.set_total_steps(s.total_steps);
  *p.mutable_triangular() = ScheduleSpecToProto(s.triangular);
  *p.mutable_one_cycle() = ScheduleSpecToProto(s.one_cycle);
  *p.mutable_sgdr() = ScheduleSpecToProto(s.sgdr);
  *p.mutable_rex() = ScheduleSpecToProto(s.rex);
  return p;
}

}  // namespace lrtune
