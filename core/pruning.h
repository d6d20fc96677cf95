// Pruned search: where a grid's trials are compared (rungs) and which of
// them go on, the asynchronous successive halving of ASHA (Li et al. 2020,
// "A System for Massively Parallel Hyperparameter Tuning"), made
// schedule-aware.
//
//   std::vector<int64_t> rungs = RungSteps(schedule, budget_steps, options);
//   // the worker evaluates at each and asks the coordinator:
//   RungTable table(options.reduction_factor);
//   bool go_on = table.Decide("one_cycle/702", 0, trial, val_accuracy,
//                             /*higher_is_better=*/true);
//
// The rules (docs/grid.md, "Pruned search"):
//  - A trial of budget N steps has rungs at N / eta^k for k = K..1 (K
//    rungs below the top; the first at min_fraction x N), rounded to a
//    step, none before min_steps. A cyclical schedule is compared where a
//    cycle ends, with its LR
//    at the low point: each rung moves to the first cycle end at or after
//    it (CycleEnds, core/early_stopping.h); one that would reach N is
//    dropped.
//  - Trials are compared only with trials of the same budget and schedule
//    kind (PruningGroup): at a fraction of its budget a schedule's loss
//    says how far its LR has come down, which differs between kinds (a
//    step decay has decayed at N/3, 1cycle is at its peak), so across kinds
//    a rung would prune the schedules that anneal late, which often win at
//    the end. Within a kind and a budget the LR curves have the same shape
//    and the rung compares what the grid varies: the LR scale, the seed,
//    the optimizer.
//  - Asynchronous: a trial reaching a rung goes on when its metric is among
//    the best max(1, floor(n / eta)) of the n results that rung holds so far
//    (its own included, ties to the earlier arrival); nothing waits for a
//    rung to fill. The first results always go on, as in ASHA.
// Pure and thread-compatible.
#ifndef LRTUNE_CORE_PRUNING_H_
#define LRTUNE_CORE_PRUNING_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "core/field_names.h"
#include "core/schedule.h"

namespace lrtune {

struct PruningOptions {
  // eta: a rung keeps the best 1/eta of what reaches it, in [2, 10].
  double reduction_factor = 3.0;
  // The first rung as a share of the budget, in (0, 1): with eta 3 and
  // 1/9, rungs at N/9 and N/3 (K = 2).
  double min_fraction = 1.0 / 9.0;
  // No rung before this many steps, >= 1: a metric after a handful of
  // updates ranks the initialisation and the warm-up, not the settings (a
  // 1cycle of 11 steps is still warming up at its N/9 = step 1). A budget
  // too short for any rung runs its trials to the end.
  int64_t min_steps = 10;
};

// reduction_factor in [2, 10], min_fraction in (0, 1) and at most 1/eta
// (at least one rung), min_steps >= 1, naming the fields by `names`.
absl::Status ValidatePruning(const PruningOptions& options,
                             const FieldNamer& names);

// The rungs of a trial of `total` steps under `schedule`, ascending, each
// in [min_steps, total). Empty when none fits.
std::vector<int64_t> RungSteps(const Schedule& schedule, int64_t total,
                               const PruningOptions& options);

// The comparison group of a trial: its budget in steps and its schedule's
// kind ("one_cycle/702").
std::string PruningGroup(const Schedule& schedule, int64_t total);

// The results recorded at each (group, rung), in arrival order, and the
// decisions they give. Restored by replaying Record() with the stored
// decisions, in their order.
class RungTable {
 public:
  explicit RungTable(double reduction_factor) : eta_(reduction_factor) {}

  // Decides for `trial` reaching rung `rung` of `group` with `value`, and
  // records the result: true = go on, false = prune. A trial already
  // recorded there gets its recorded decision again (a resent report).
  bool Decide(const std::string& group, int rung, int trial, double value,
              bool higher_is_better);
  // Records a decision taken earlier (a restart replaying stored events).
  void Record(const std::string& group, int rung, int trial, double value,
              bool promoted);
  // The decision recorded for `trial` at that rung, if any.
  const bool* Find(const std::string& group, int rung, int trial) const;

 private:
  struct Result {
    int trial;
    double value;
    bool promoted;
  };
  double eta_;
  std::map<std::pair<std::string, int>, std::vector<Result>> rungs_;
};

}  // namespace lrtune

#endif  // LRTUNE_CORE_PRUNING_H_
