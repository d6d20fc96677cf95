// Reading and writing loss-versus-LR curves as CSV.
//
// Any framework's recorded range test can be analyzed once it is a CSV with
// a header naming the columns `lr` and `loss` (any order; `step` optional;
// other columns ignored):
//
//   LRTUNE_ASSIGN_OR_RETURN(std::vector<CurvePoint> pts, ParseCurveCsv(text));
//
// Thread-compatible, pure functions.
#ifndef LRTUNE_CORE_CURVE_CSV_H_
#define LRTUNE_CORE_CURVE_CSV_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/curve_analysis.h"

namespace lrtune {

// Parses CSV text. Empty lines and lines starting with '#' are skipped;
// "nan", "inf", "-inf" are accepted for loss. Without a `step` column the
// step is the row index. Errors (InvalidArgument) name the line and column:
// "line 7, column 'loss': 'abc' is not a number", "missing column 'lr'",
// "line 3: lr must be finite and > 0, got -1".
absl::StatusOr<std::vector<CurvePoint>> ParseCurveCsv(absl::string_view text);

// Writes `step,lr,loss` with a header, full precision (round-trips exactly).
std::string FormatCurveCsv(const std::vector<CurvePoint>& points);

}  // namespace lrtune

#endif  // LRTUNE_CORE_CURVE_CSV_H_
