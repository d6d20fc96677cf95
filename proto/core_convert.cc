#include "proto/core_convert.h"

#include <cmath>
#include <limits>

namespace lrtune {
namespace {

double NanIfUnset(bool has, double v) {
  return has ? v : std::numeric_limits<double>::quiet_NaN();
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
  out.seeds = rec.seeds() > 0 ? rec.seeds() : 1;
  for (const v1::AnalysisWarning& w : rec.warnings()) {
    out.warnings.push_back({w.code(), w.message()});
  }
  out.smoothed.assign(rec.smoothed().begin(), rec.smoothed().end());
  return out;
}

}  // namespace lrtune
