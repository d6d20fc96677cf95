// Grid search: expands a grid's axes into trials, and ranks their results.
//
//   LRTUNE_ASSIGN_OR_RETURN(std::vector<Trial> trials, ExpandGrid(spec));
//   LRTUNE_RETURN_IF_ERROR(ResolveRecommendedBounds(trials, rec.min_lr,
//                                                   rec.max_lr));
//
// A grid is the cartesian product of its axes, in this order, outermost
// first: schedules, lr_bounds, budgets, optimizer axes (by field name),
// seeds. Trial i is the mixed-radix number of its axis positions, so the last
// axis (seeds) varies fastest. An empty lr_bounds, seeds or optimizer axis
// counts as one value (the schedule's own LRs, seed 0, no override).
//
// How bounds [min, max] and a budget of N steps become a ScheduleSpec
// (docs/grid.md has the same table with examples):
//
//   kind                               bounds                   from budget
//   one_cycle                          max_lr=max,              total_steps=N
//                                      div_factor=max/min
//   triangular, triangular2, exp_range base_lr=min, max_lr=max  step_size_up
//   cosine                             base_lr=max, eta_min=min t_max=N
//   sgdr                               base_lr=max, eta_min=min t0
//   rex                                base_lr=max, eta_min=min total_steps=N
//   constant, step, multistep,         base_lr=max              total_iters=N
//   exponential, linear, polynomial                             (linear,
//                                                               polynomial)
//
// step_size_up (cyclic kinds): half a cycle per epoch, rounded so that the
// budget holds a whole number of cycles: cycles = max(1, floor(N / (2 E))),
// step_size_up = ceil(N / (2 cycles)), E = steps_per_epoch (one cycle over
// the budget when E is unknown). sgdr's t0 likewise: n periods, the most for
// which P(n) E <= N with P(n) = 1 + t_mult + ... + t_mult^(n-1) (at least
// one; one when E is unknown), and t0 = ceil(N / P(n)). Rounding up ends
// training just before a cycle or period ends, at the low LR. one_cycle and
// rex refuse a given total_steps shorter than the budget.
//
// A schedule's own parameters win over values derived from the budget or
// from the min bound (eta_min, div_factor, step_size_up, t_max, t0,
// total_iters, total_steps), so "eta_min": "0" keeps a cosine's floor at 0.
// The LR fields a bound sets (base_lr, max_lr) may not also be given while
// lr_bounds is non-empty: that is an error, not a silent override.
//
// Thread-compatible; every function is pure.
#ifndef LRTUNE_CORE_GRID_H_
#define LRTUNE_CORE_GRID_H_

#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/schedule.h"

namespace lrtune {

// One value of the schedules axis.
struct GridSchedule {
  // A schedule kind as ParseScheduleKind accepts it; "ramp" and
  // "sequential" are refused (a trial trains under one profile).
  std::string kind;
  // Parameter name (core/schedule_params.h, snake- or kebab-case) -> text
  // value. "kind" and "mode" are refused here: the kind field says it.
  std::map<std::string, std::string> params;
};

// One value of the lr_bounds axis: fixed bounds, or the bounds of the range
// test run first in the same job (resolved by ResolveRecommendedBounds).
struct GridBounds {
  bool recommended = false;
  double min_lr = 0.0;  // fixed: finite, > 0, <= max_lr
  double max_lr = 0.0;

  static GridBounds Fixed(double min_lr, double max_lr) {
    return {false, min_lr, max_lr};
  }
  static GridBounds Recommended() { return {true, 0.0, 0.0}; }
};

// One value of the budgets axis: a training length.
struct GridBudget {
  enum class Unit { kEpochs, kSteps };
  Unit unit = Unit::kEpochs;
  int64_t count = 1;  // >= 1; epochs need GridSpec::steps_per_epoch > 0

  static GridBudget Epochs(int64_t n) { return {Unit::kEpochs, n}; }
  static GridBudget Steps(int64_t n) { return {Unit::kSteps, n}; }
};

inline constexpr int64_t kDefaultMaxTrials = 256;
inline constexpr int64_t kMaxTrialsCap = 4096;

struct GridSpec {
  std::vector<GridSchedule> schedules;  // required, non-empty
  std::vector<GridBounds> lr_bounds;    // empty: the schedules' own LRs
  std::vector<GridBudget> budgets;      // required, non-empty
  // Optimizer field ("momentum", "weight_decay", "beta2", ...) -> values, as
  // text the training engine parses. Every list non-empty; "lr" is refused
  // (the LR comes from the schedule). Names are [a-z0-9_]+ and values carry
  // no whitespace, so labels stay unambiguous.
  std::map<std::string, std::vector<std::string>> optimizer;
  std::vector<int64_t> seeds;  // empty: one trial per point, seed 0
  // Optimizer steps per epoch: converts epoch budgets to steps and sets the
  // cyclic and sgdr periods. 0 = unknown (then budgets must be in steps).
  int64_t steps_per_epoch = 0;
  int64_t max_trials = kDefaultMaxTrials;  // in [1, kMaxTrialsCap]
};

struct Trial {
  int64_t index = 0;  // position in the product, 0-based
  // "<kind> [params] <bound fields> <epochs=E|steps=N> [optimizer] seed=S",
  // e.g. "one_cycle max_lr=0.1 div_factor=10 epochs=3 seed=1"; bounds read
  // "lr=recommended" until resolved.
  std::string label;
  // Validated by Schedule::Create, except while needs_recommended_bounds.
  ScheduleSpec schedule;
  bool needs_recommended_bounds = false;
  std::map<std::string, std::string> optimizer;  // field -> text value
  GridBudget budget;
  int64_t total_steps = 0;  // the budget in optimizer steps
  int64_t seed = 0;

  // Where the trial sits on each axis (-1: that axis is empty), and what
  // ResolveRecommendedBounds needs to rebuild the schedule.
  int64_t schedule_index = 0;
  int64_t bounds_index = -1;
  int64_t budget_index = 0;
  GridSchedule schedule_axis;
  int64_t steps_per_epoch = 0;
};

// Expands `spec` into trials, each schedule built and validated. Returns
// InvalidArgument naming the axis, the position and the rule
// ("schedules[2].kind: unknown schedule kind 'foo'; ...", "budgets[1]: 3
// epochs need steps_per_epoch > 0", "seeds[3]: duplicate of seeds[0] (7)",
// "grid has 5000 trials, more than max_trials 256"). A value repeated on an
// axis is an error (it would run the same trial twice). Trials that wait for
// the recommended bounds are checked with stand-in bounds [1e-12, 1e12], so
// every error that does not depend on the bounds' values is reported here.
absl::StatusOr<std::vector<Trial>> ExpandGrid(const GridSpec& spec);

// One trial's schedule: `schedule` with `bounds` (null: the schedule's own
// LRs) over a budget of `budget_steps`, completed by the table above and
// validated over the budget. ExpandGrid builds every trial with it; the
// server's planner, whose axes are the job's protos, calls it per trial.
// InvalidArgument with the rule and no grid position ("kind: unknown
// schedule kind 'foo'; ...", "params.max_lr: the lr_bounds axis sets ...",
// "cosine: eta_min must be in [0, base_lr (0.01)], got 0.05"); the caller
// says which trial. Recommended bounds are checked with stand-ins [1e-12,
// 1e12], and the answer then carries those.
absl::StatusOr<ScheduleSpec> CompleteTrialSchedule(const GridSchedule& schedule,
                                                   const GridBounds* bounds,
                                                   int64_t budget_steps,
                                                   int64_t steps_per_epoch);

// Gives every trial with needs_recommended_bounds the bounds [min_lr,
// max_lr] (the range test's recommendation), builds and validates its
// schedule and rewrites its label. All or nothing: on error no trial
// changes. InvalidArgument when the bounds are not finite with
// 0 < min_lr <= max_lr (a range test without a recommendation gives 0, 0),
// or a trial's schedule rejects them ("trial 4 (cosine lr=recommended ...):
// cosine: eta_min must be in [0, base_lr (0.01)], got 0.05").
absl::Status ResolveRecommendedBounds(std::vector<Trial>& trials, double min_lr,
                                      double max_lr);

enum class Objective {
  kValAccuracy,  // higher is better
  kValLoss,      // lower is better
};

// "val_accuracy" | "val_loss"; InvalidArgument names the value otherwise.
absl::StatusOr<Objective> ParseObjective(absl::string_view name);
absl::string_view ObjectiveName(Objective objective);

struct TrialResult {
  int64_t trial_index = 0;
  bool succeeded = false;  // false: the trial failed or was cancelled
  double val_accuracy = std::numeric_limits<double>::quiet_NaN();
  double val_loss = std::numeric_limits<double>::quiet_NaN();
};

// Ranks results by `objective`: element i of the answer is the rank of
// results[i], 1 = best, all distinct. Order: succeeded trials with a finite
// objective value, best first; then succeeded trials whose value is NaN or
// infinite; then failed trials. Ties (and both trailing groups) are ordered
// by trial_index, smaller first.
std::vector<int64_t> RankTrials(const std::vector<TrialResult>& results,
                                Objective objective);

}  // namespace lrtune

#endif  // LRTUNE_CORE_GRID_H_
