// Renderings of a range-test Recommendation: one JSON object and a short
// human summary. One place, so that `lrtune analyze`, `lrtune-engine` and
// later the service print the same keys.
//
//   std::cout << RecommendationToJson(rec) << "\n";
//   std::cout << FormatRecommendation(rec);
//
// Pure functions; thread-compatible.
#ifndef LRTUNE_CORE_RECOMMENDATION_FORMAT_H_
#define LRTUNE_CORE_RECOMMENDATION_FORMAT_H_

#include <string>

#include "absl/strings/string_view.h"
#include "core/curve_analysis.h"

namespace lrtune {

// A compact JSON object with the keys min_lr, max_lr, stepsize_iterations,
// stepsize_epochs, lr_valley, lr_slide, lr_minimum, lr_steep (fastai's),
// lr_steepest, lr_lowest (lrtune's zero-lag positions),
// one_cycle{max_lr, div_factor, final_div_factor, pct_start, base_momentum,
// max_momentum}, diverged_at, points_used, seeds, spread_decades, max_lr_low,
// max_lr_high and warnings[{code, message}]. Numbers round-trip exactly; a
// non-finite value (a suggestion the curve does not give) is null.
std::string RecommendationToJson(const Recommendation& rec);

// A few lines, one fact each, indented by two spaces.
std::string FormatRecommendation(const Recommendation& rec);

// A JSON number that round-trips (shortest of %.15g..%.17g), or "null".
std::string JsonNumber(double v);
// A JSON string literal with the quotes and escapes.
std::string JsonString(absl::string_view s);

}  // namespace lrtune

#endif  // LRTUNE_CORE_RECOMMENDATION_FORMAT_H_
