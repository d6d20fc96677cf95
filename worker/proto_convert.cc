// Engine results -> protos; see proto_convert.h.
#include "worker/proto_convert.h"

#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace lrtune::worker {

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
  p.set_skipped_updates(point.skipped_updates);
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
  v1::TrainingOutcome& o = *p.mutable_outcome();
  o.set_stopped_early(result.stopped_early);
  if (result.early_stopping_best) {
    *o.mutable_early_stopping_best() =
        EvaluationToProto(*result.early_stopping_best, 0);
  }
  o.set_restored_best(result.restored_best);
  for (const engine::SnapshotInfo& s : result.snapshots) {
    v1::Snapshot& ps = *o.add_snapshots();
    ps.set_step(s.step);
    *ps.mutable_eval() = EvaluationToProto(s.eval, 0);
    ps.set_path(s.path);
  }
  if (result.ensemble_size > 0) {
    *o.mutable_ensemble_eval() = EvaluationToProto(result.ensemble_eval, 0);
    o.set_ensemble_size(result.ensemble_size);
  }
  o.set_skipped_updates(result.skipped_updates);
  if (result.pruned_at_step >= 0) o.set_pruned_at_step(result.pruned_at_step);
  return p;
}

}  // namespace lrtune::worker
