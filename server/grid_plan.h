// Grid search planning: a GridSearchJob (jobs.proto) becomes its trials,
// each with the run and training it executes, and finished trials become a
// ranking.
//
//   LRTUNE_ASSIGN_OR_RETURN(std::vector<PlannedTrial> trials,
//                           PlanGrid(request.grid(), limits));
//   ...once the range test ran:
//   LRTUNE_RETURN_IF_ERROR(FillRecommendedBounds(grid, rec, trial));
//
// The planning is core's (core/grid.h PlanGrid: the product of the axes,
// overrides, budgets into steps, schedules completed, labels); this side
// converts the job's protos to core's GridPlan, writes each planned trial
// as a v1::Trial (train.steps = the budget) and persists nothing itself.
//
// Errors are INVALID_ARGUMENT naming the field and the rule
// ("grid.grid.axes[1].values[0].epochs must be >= 1, got 0",
// "grid.grid.max_trials is 2, but the grid has 3 trials ...");
// RESOURCE_EXHAUSTED when
// max_trials is above the server's limit. Pure functions.
#ifndef LRTUNE_SERVER_GRID_PLAN_H_
#define LRTUNE_SERVER_GRID_PLAN_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/pruning.h"
#include "lrtune/v1/jobs.pb.h"
#include "lrtune/v1/results.pb.h"
#include "server/spec_convert.h"

namespace lrtune::server {

struct PlannedTrial {
  // trial_index, choice, label, run, train (train.steps = the budget). The
  // schedule is complete unless needs_bounds.
  v1::Trial trial;
  // Its lr_bounds value is "recommended": train.schedule still lacks the
  // LR fields until FillRecommendedBounds.
  bool needs_bounds = false;
};

// Checks every field of the grid job and expands it.
absl::StatusOr<std::vector<PlannedTrial>> PlanGrid(
    const v1::GridSearchJob& grid, const SpecLimits& limits);

// The order a pruned search's trials are leased in, as positions in
// `trials`: from the middle of the lr_bounds axis outward (a recommended
// value by |log2 scale|, so the range test's own bounds come first; fixed
// bounds by their distance from the axis's middle), the grid's order within
// a distance. ASHA promotes a rung's first arrivals whatever they are; led
// by the likely best, the later ones have a bar to clear (docs/grid.md).
std::vector<int> PrunedLeaseOrder(const v1::GridSearchJob& grid,
                                  const std::vector<PlannedTrial>& trials);

// Completes a waiting trial's schedule with the range test's recommended
// bounds (times the value's scale) and rewrites nothing else. INVALID_
// ARGUMENT when there is no recommendation (min_lr 0) or the trial's
// schedule rejects the bounds, naming the trial.
absl::Status FillRecommendedBounds(const v1::GridSearchJob& grid,
                                   const v1::Recommendation& recommendation,
                                   v1::Trial& trial);

// The grid's pruned search (grid.grid.pruning), nullopt when it has none;
// INVALID_ARGUMENT naming the field for an unknown kind or options out of
// core's range (core/pruning.h ValidatePruning). PlanGrid gives every trial
// of a pruned grid its comparison group and rung steps from these.
absl::StatusOr<std::optional<PruningOptions>> PruningOf(
    const v1::GridSpec& spec);

// Whether a pruned search stopped `trial` at one of its rungs.
bool IsPruned(const v1::Trial& trial);

// Optimizer steps per epoch of `run` (core/spec.h's StepsPerEpoch: floor(
// train samples / batch), as the engine splits the data), or 0 when unknown
// or `run` is invalid.
int64_t StepsPerEpoch(const v1::RunSpec& run);

// The metric a grid ranks by (unset: val_accuracy, or val_loss for mse).
v1::ObjectiveMetric EffectiveMetric(const v1::GridSearchJob& grid);

// The objective's value of a succeeded trial; nullopt when its evaluation
// lacks the metric.
std::optional<double> ObjectiveValue(const v1::GridSearchJob& grid,
                                     const v1::TrialTaskResult& result);

// Trial indices from best to worst among `values` (index, objective value),
// ties by index (core RankTrials).
std::vector<int32_t> RankByObjective(
    const v1::GridSearchJob& grid,
    const std::vector<std::pair<int32_t, double>>& values);

}  // namespace lrtune::server

#endif  // LRTUNE_SERVER_GRID_PLAN_H_
