// Where a training run judges itself, and when it stops: cycle-aware early
// stopping.
//
// A cyclical schedule's loss is high at the top of a cycle and low at its
// end, so comparing evaluations taken anywhere misjudges it. The ends of
// the schedule's cycles (CycleEnds: where the LR is back at its low) are
// where a run is judged, and patience counts cycles:
//
//   std::vector<int64_t> ends = CycleEnds(schedule, total_steps);
//   EarlyStopping stop(spec.early_stopping);
//   EarlyStopping::Verdict v = stop.Observe(done, eval.val_loss);
//   if (v.improved) keep a copy of the weights;
//   if (v.stop) end the run and restore that copy;
//
// A schedule without cycles (cosine, step, ...) is judged at every
// evaluation instead (docs/schedules.md, "Training: evaluation, early
// stopping, snapshots"). Pure and thread-compatible.
#ifndef LRTUNE_CORE_EARLY_STOPPING_H_
#define LRTUNE_CORE_EARLY_STOPPING_H_

#include <cstdint>
#include <vector>

#include "core/schedule.h"

namespace lrtune {

// The step counts (updates done, 1-based) in (0, total] at which a cycle of
// `schedule` ends with its LR at the low point, ascending: every cycle of
// triangular, triangular2 and exp_range (multiples of step_size_up +
// step_size_down); every period of sgdr and of a decaying or cyclic
// profile; the end of one_cycle, rex and wsd (one cycle, when it fits in
// total). A sequential's children contribute theirs, shifted to where they
// start (a warm-up has none). Empty for the kinds without cycles (constant,
// step, multistep, exponential, linear, polynomial, cosine, fractal, ramp,
// a growing profile). O(number of cycles up to total).
std::vector<int64_t> CycleEnds(const Schedule& schedule, int64_t total);

// What early stopping compares: the validation loss (lower is better) or
// accuracy (higher is better).
enum class StopMetric { kValLoss, kValAccuracy };

// A TrainSpec's early stopping (ValidateTrain in core/spec.h checks it).
struct EarlyStoppingOptions {
  // Stop after this many judged evaluations in a row without an
  // improvement, >= 0; 0 turns early stopping off.
  int64_t patience = 0;
  // An improvement beats the best so far by more than this, >= 0 (in the
  // metric's units: loss, or accuracy in [0, 1]).
  double min_delta = 0.0;
  StopMetric metric = StopMetric::kValLoss;
  // At the end (stopped or not), load the weights of the best judged
  // evaluation.
  bool restore_best = true;
};

// Counts judged evaluations since the best one.
class EarlyStopping {
 public:
  explicit EarlyStopping(const EarlyStoppingOptions& options)
      : options_(options) {}

  struct Verdict {
    bool improved = false;  // the new best: keep these weights
    bool stop = false;      // patience is spent
  };
  // One judged evaluation's metric after `step` updates. A NaN never
  // improves. With patience 0, improvements are still tracked (for
  // restore_best) and stop is never set.
  Verdict Observe(int64_t step, double value);

  bool has_best() const { return state_.best_step >= 0; }
  int64_t best_step() const { return state_.best_step; }
  double best_value() const { return state_.best; }

  // What a checkpoint saves to continue the count exactly.
  struct State {
    double best = 0.0;
    int64_t best_step = -1;  // -1: nothing judged yet
    int64_t since_best = 0;  // judged evaluations since the best
  };
  State state() const { return state_; }
  void Restore(const State& state) { state_ = state; }

 private:
  EarlyStoppingOptions options_;
  State state_;
};

}  // namespace lrtune

#endif  // LRTUNE_CORE_EARLY_STOPPING_H_
