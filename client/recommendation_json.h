// JSON and text renderings of a range-test Recommendation, shared by
// `lrtune analyze` and `lrtune range-test`.
//
//   std::cout << RecommendationToJson(rec).dump(2) << "\n";
//   PrintRecommendation(rec, std::cout);
//
// Non-finite values (a suggestion a curve does not give) become JSON null.
#ifndef LRTUNE_CLIENT_RECOMMENDATION_JSON_H_
#define LRTUNE_CLIENT_RECOMMENDATION_JSON_H_

#include <ostream>

#include "core/range_test.h"
#include "nlohmann/json.hpp"

namespace lrtune {

// Keys: min_lr, max_lr, stepsize_iterations, stepsize_epochs, lr_steepest,
// lr_valley, lr_minimum, lr_slide, one_cycle{...}, diverged_at, points_used,
// seeds, spread_decades, warnings[{code, message}].
nlohmann::json RecommendationToJson(const Recommendation& rec);

// A short human summary, one fact per line.
void PrintRecommendation(const Recommendation& rec, std::ostream& out);

}  // namespace lrtune

#endif  // LRTUNE_CLIENT_RECOMMENDATION_JSON_H_
