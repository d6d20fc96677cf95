#include "server/range_test_results.h"

#include <optional>

#include "core/curve_analysis.h"
#include "core/status_macros.h"
#include "proto/core_convert.h"
#include "server/grid_plan.h"

namespace lrtune::server {

std::vector<v1::Recommendation> TaskSeedRecommendations(
    const v1::RangeTestTaskResult& r) {
  if (r.per_seed_size() == 0) return {r.recommendation()};
  return {r.per_seed().begin(), r.per_seed().end()};
}

int64_t BudgetSteps(const v1::RangeTestJob& job) {
  return job.range_test().budget_epochs() * StepsPerEpoch(job.run());
}

absl::StatusOr<v1::RangeTestResult> AggregateRangeTest(
    const std::vector<v1::RangeTestTaskResult>& results, int64_t budget_steps) {
  v1::RangeTestResult out;
  std::vector<Recommendation> per_seed;
  for (const v1::RangeTestTaskResult& r : results) {
    for (const v1::Recommendation& seed : TaskSeedRecommendations(r)) {
      per_seed.push_back(RecommendationFromProto(seed));
      *out.add_per_seed() = seed;
    }
    out.set_steps_run(out.steps_run() + r.steps_run());
    out.set_train_seconds(out.train_seconds() + r.train_seconds());
  }
  LRTUNE_ASSIGN_OR_RETURN(Recommendation aggregate, AggregateSeeds(per_seed));
  *out.mutable_recommendation() = RecommendationToProto(aggregate);
  if (std::optional<RecommendedSchedules> schedules =
          RecommendSchedules(aggregate, budget_steps)) {
    *out.mutable_recommendation()->mutable_schedules() =
        RecommendedSchedulesToProto(*schedules);
  }
  return out;
}

}  // namespace lrtune::server
