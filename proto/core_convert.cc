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

// Proto ScheduleKind n (1..15) is core's enumerator n - 1, in the same order.
constexpr int kScheduleKinds = 15;

absl::Status ScheduleFromProtoRec(const v1::ScheduleSpec& p,
                                  const std::string& path, int depth,
                                  ScheduleSpec& s) {
  if (depth > 4) return Invalid(path, "nesting depth must be <= 4");
  if (p.kind() == v1::SCHEDULE_KIND_UNSPECIFIED) {
    return Invalid(path + ".kind", "must be set");
  }
  if (p.kind() < 1 || p.kind() > kScheduleKinds) {
    return Invalid(path + ".kind", absl::StrCat("unknown value ", p.kind()));
  }
  s = ScheduleSpec{};
  s.kind = static_cast<ScheduleKind>(p.kind() - 1);
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
  LRTUNE_ASSIGN_OR_RETURN(s.ramp, RampFromProto(p.ramp(), path + ".ramp"));
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
  if (!std::isnan(rec.lr_steepest)) out.set_lr_steepest(rec.lr_steepest);
  if (!std::isnan(rec.lr_valley)) out.set_lr_valley(rec.lr_valley);
  if (!std::isnan(rec.lr_minimum)) out.set_lr_minimum(rec.lr_minimum);
  if (!std::isnan(rec.lr_slide)) out.set_lr_slide(rec.lr_slide);
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
  return out;
}

Recommendation RecommendationFromProto(const v1::Recommendation& rec) {
  Recommendation out;
  out.min_lr = rec.min_lr();
  out.max_lr = rec.max_lr();
  out.stepsize_iterations = rec.stepsize_iterations();
  out.stepsize_epochs = rec.stepsize_epochs();
  out.lr_steepest = NanIfUnset(rec.has_lr_steepest(), rec.lr_steepest());
  out.lr_valley = NanIfUnset(rec.has_lr_valley(), rec.lr_valley());
  out.lr_minimum = NanIfUnset(rec.has_lr_minimum(), rec.lr_minimum());
  out.lr_slide = NanIfUnset(rec.has_lr_slide(), rec.lr_slide());
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
  return out;
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

v1::RampShape RampToProto(RampShape s) {
  return s == RampShape::kLinear ? v1::RAMP_SHAPE_LINEAR : v1::RAMP_SHAPE_EXP;
}

absl::StatusOr<ScheduleSpec> ScheduleSpecFromProto(const v1::ScheduleSpec& spec,
                                                   absl::string_view path) {
  ScheduleSpec s;
  LRTUNE_RETURN_IF_ERROR(ScheduleFromProtoRec(spec, std::string(path), 1, s));
  absl::Status valid = Schedule::Create(s).status();
  if (!valid.ok()) {
    return absl::Status(valid.code(), absl::StrCat(path, ".", valid.message()));
  }
  return s;
}

v1::ScheduleSpec ScheduleSpecToProto(const ScheduleSpec& s) {
  v1::ScheduleSpec p;
  p.set_kind(static_cast<v1::ScheduleKind>(static_cast<int>(s.kind) + 1));
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
  p.set_ramp(RampToProto(s.ramp));
  p.set_sample_every(s.sample_every);
  for (const ScheduleSpec& c : s.children) {
    *p.add_children() = ScheduleSpecToProto(c);
  }
  for (int64_t b : s.boundaries) p.add_boundaries(b);
  return p;
}

}  // namespace lrtune
