// Grid search, the one planner: a grid's axes become its trials (each
// trial's run, budget in steps, schedule and label), and finished trials a
// ranking. The coordinator converts a GridSearchJob to a GridPlan
// (server/grid_plan.h) and persists what PlanGrid answers; nothing else
// expands a grid.
//
//   LRTUNE_ASSIGN_OR_RETURN(std::vector<PlannedTrial> trials,
//                           PlanGrid(plan, GridNames{}));
//
// A trial is the base (run, schedule, budget) with one value of every axis
// applied, in axis order; trial i is the mixed-radix number of its value
// indices, the last axis fastest. A schedules value of another kind than
// the schedule so far replaces it; otherwise, like an optimizers value, it
// replaces only the fields it sets. A budget becomes steps by the trial's
// own StepsPerEpoch (core/spec.h: the engine's split, at the trial's batch
// size), so the schedule and the run have the same length.
//
// How bounds [min, max] and a budget of N steps complete a schedule
// (CompleteTrialSchedule; docs/grid.md has the same table with examples):
//
//   kind                               bounds                   from budget
//   one_cycle                          max_lr=max,              total_steps=N
//                                      div_factor=max/min
//   triangular, triangular2, exp_range base_lr=min, max_lr=max  step_size_up
//   cosine                             base_lr=max, eta_min=min t_max=N
//   sgdr                               base_lr=max, eta_min=min t0
//   rex                                base_lr=max, eta_min=min total_steps=N
//   profile                            base_lr=max, eta_min=min t0=N (decay,
//                                                               growth), or
//                                                               step_size_up
//                                                               (cyclic)
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
// the trial has lr bounds: that is an error, not a silent override.
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
#include "core/spec.h"

namespace lrtune {

// A schedule or optimizer as the fields it sets: a kind ("" when it does
// not set one) and field name (core/schedule_params.h for a schedule,
// OptimizerSpec's members for an optimizer) -> text value.
struct AxisValue {
  std::string kind;
  std::map<std::string, std::string> params;
  bool operator==(const AxisValue& o) const {
    return kind == o.kind && params == o.params;
  }
};
// A schedule to complete: its kind is required, and "ramp" and
// "sequential" are refused (a trial trains under one profile); "kind" and
// "mode" are not params (the kind field says it).
using GridSchedule = AxisValue;

// One value of the lr_bounds axis: fixed bounds, or the bounds of the range
// test run first in the same job, times `scale`.
struct GridBounds {
  bool recommended = false;
  double min_lr = 0.0;  // fixed: finite, > 0, <= max_lr
  double max_lr = 0.0;
  double scale = 1.0;  // recommended: finite, > 0

  static GridBounds Fixed(double min_lr, double max_lr) {
    return {false, min_lr, max_lr, 1.0};
  }
  static GridBounds Recommended(double scale = 1.0) {
    return {true, 0.0, 0.0, scale};
  }
};

// One value of the budgets axis: a training length.
struct GridBudget {
  enum class Unit { kEpochs, kSteps };
  Unit unit = Unit::kEpochs;
  int64_t count = 1;  // >= 1

  static GridBudget Epochs(int64_t n) { return {Unit::kEpochs, n}; }
  static GridBudget Steps(int64_t n) { return {Unit::kSteps, n}; }
};

// One axis: a kind and that kind's values (1..kMaxAxisValues, distinct).
struct GridAxis {
  enum class Kind {
    kSchedules,
    kLrBounds,
    kBudgets,
    kSeeds,
    kOptimizers,
    kBatchSizes
  };
  Kind kind = Kind::kSchedules;
  std::string name;  // "" = the kind's: schedule, lr_bounds, budget, ...
  std::vector<AxisValue> schedules;   // kSchedules
  std::vector<GridBounds> lr_bounds;  // kLrBounds
  std::vector<GridBudget> budgets;    // kBudgets
  std::vector<uint64_t> seeds;        // kSeeds
  std::vector<AxisValue> optimizers;  // kOptimizers
  std::vector<int64_t> batch_sizes;   // kBatchSizes

  size_t size() const;
  // The name trials' labels and errors use.
  std::string label_name() const;
};

inline constexpr int kMaxAxes = 8;
inline constexpr int kMaxAxisValues = 64;
// A trial's length in steps: far beyond any real budget, and small enough
// that schedule arithmetic on it cannot overflow.
inline constexpr int64_t kMaxTrialSteps = 1'000'000'000;

struct GridPlan {
  JobSpec run;          // the base run, valid (ValidateJob)
  AxisValue optimizer;  // the base run's optimizer as the fields it sets
  AxisValue schedule;   // the base schedule; its kind may come from an axis
  GridBudget budget;    // the base budget, when has_budget
  bool has_budget = false;
  bool has_range_test = false;  // needed by recommended bounds
  std::vector<GridAxis> axes;   // 1..kMaxAxes
  int64_t max_trials = 64;      // >= 1
};

// How errors name what they point at: `grid` prefixes the axes' paths
// ("axes[1].values[0].epochs"), `train` the base budget's and schedule's,
// `range_test` is the range test's own name, `run` prefixes a trial's run
// fields and `trial` a trial's errors ("trial 0 (schedule=cosine): ...").
struct GridNames {
  std::string grid;
  std::string train = "train.";
  std::string range_test = "range_test";
  std::string run = "run.";
  std::string trial;
};

struct PlannedTrial {
  int64_t index = 0;
  std::vector<int> choice;  // the value index on every axis
  // "<axis>=<value> ...": "schedule=one_cycle(max_lr=0.1)
  // lr_bounds=0.01..0.1 budget=2epochs seed=1".
  std::string label;
  JobSpec run;          // the base with the trial's seed, batch, optimizer
  AxisValue optimizer;  // the trial's optimizer as the fields it sets
  AxisValue schedule;   // the trial's schedule before completion
  int64_t epochs = 0;   // the budget when given in epochs, else 0
  int64_t steps = 0;    // the budget in steps
  // Complete and valid unless needs_bounds; then it was checked with
  // stand-in bounds and waits for the range test (CompleteTrialSchedule).
  ScheduleSpec completed;
  bool needs_bounds = false;
};

// Checks the grid and expands it. InvalidArgument naming the field and the
// rule ("axes[1].values[0].epochs must be >= 1, got 0", "max_trials is 2,
// but the grid has 3 trials ...", "trial 0 (schedule=one_cycle(max_lr=1)
// lr_bounds=0.01..0.1): params.max_lr: the lr_bounds axis sets max_lr ..."),
// each under its prefix in `names`.
absl::StatusOr<std::vector<PlannedTrial>> PlanGrid(const GridPlan& plan,
                                                   const GridNames& names);

// A budget of `steps` as whole cycles of a cyclical schedule whose
// half-cycle is about `half_cycle` steps: cycles = max(1, floor(steps /
// (2 half_cycle))), and step_size_up = ceil(steps / (2 cycles)), so the
// budget ends at a cycle's end; one cycle when half_cycle <= 0. The grid's
// rule with an epoch as the half-cycle; a range test's budget-aware
// schedules with its stepsize.
int64_t CyclicStepSizeUp(int64_t steps, int64_t half_cycle);
// SGDR's first period for a budget: the most periods n with P(n) x
// min_period <= steps, P(n) = 1 + t_mult + ... + t_mult^(n-1) (at least
// one; one when min_period <= 0), then t0 = ceil(steps / P(n)).
int64_t SgdrFirstPeriod(int64_t steps, int64_t min_period, int64_t t_mult);
// 1cycle's div_factor for the bounds [lo, hi]: hi / lo to 12 significant
// digits, so that bounds a decade apart give 10, not 9.999999999999998
// (lo was computed as hi / 10); the starting LR moves by < 1e-11 of itself.
double BoundsRatio(double hi, double lo);

// One trial's schedule: `schedule` with `bounds` (null: the schedule's own
// LRs) over a budget of `budget_steps`, completed by the table above and
// validated over the budget. PlanGrid builds every trial with it, and the
// coordinator fills a waiting trial with it once the range test is done.
// InvalidArgument with the rule and no position ("kind: unknown schedule
// kind 'foo'; ...", "params.max_lr: the lr_bounds axis sets ...", "cosine:
// eta_min must be in [0, base_lr (0.01)], got 0.05"); the caller says which
// trial. Recommended bounds are checked with stand-ins [1e-12, 1e12], and
// the answer then carries those.
absl::StatusOr<ScheduleSpec> CompleteTrialSchedule(const GridSchedule& schedule,
                                                   const GridBounds* bounds,
                                                   int64_t budget_steps,
                                                   int64_t steps_per_epoch);

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
