// A range test's result from its tasks' results: what CompleteTask does
// for a range-test job's last seed and AdvanceGrid for a grid's seeds.
// Pure functions of protos; thread-safe.
#ifndef LRTUNE_SERVER_RANGE_TEST_RESULTS_H_
#define LRTUNE_SERVER_RANGE_TEST_RESULTS_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "lrtune/v1/jobs.pb.h"
#include "lrtune/v1/worker.pb.h"

namespace lrtune::server {

// The recommendations of the seeds a range-test task ran, in seed order:
// per_seed for a task of packed seeds, else its one recommendation.
std::vector<v1::Recommendation> TaskSeedRecommendations(
    const v1::RangeTestTaskResult& result);

// Aggregates a range test's task results (in seed order) into the job's
// result: every seed's recommendation, their aggregate (AggregateSeeds)
// and its ready-to-use schedules (RecommendSchedules) over `budget_steps`
// (0: four CLR cycles).
absl::StatusOr<v1::RangeTestResult> AggregateRangeTest(
    const std::vector<v1::RangeTestTaskResult>& results,
    int64_t budget_steps = 0);

// A range-test job's budget in steps: range_test.budget_epochs x the run's
// steps per epoch; 0 when none is given or the epoch's length is unknown.
int64_t BudgetSteps(const v1::RangeTestJob& job);

}  // namespace lrtune::server

#endif  // LRTUNE_SERVER_RANGE_TEST_RESULTS_H_
