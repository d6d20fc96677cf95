// Curve CSV parsing and the analysis of what it parses. Beyond "no crash,
// no sanitizer report": a parsed curve written back and parsed again gives
// the same points (FormatCurveCsv claims an exact round trip), and the
// analysis either refuses the curve or returns bounds with min <= max.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "core/curve_analysis.h"
#include "core/curve_csv.h"

namespace {

bool Same(double a, double b) {
  return a == b || (std::isnan(a) && std::isnan(b));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > (1 << 16)) return 0;  // a long curve only costs time
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto points = lrtune::ParseCurveCsv(text);
  if (!points.ok()) return 0;
  auto again = lrtune::ParseCurveCsv(lrtune::FormatCurveCsv(*points));
  if (!again.ok() || again->size() != points->size()) std::abort();
  for (size_t i = 0; i < points->size(); ++i) {
    const lrtune::CurvePoint& a = (*points)[i];
    const lrtune::CurvePoint& b = (*again)[i];
    if (a.step != b.step || !Same(a.lr, b.lr) || !Same(a.loss, b.loss)) {
      std::abort();
    }
  }
  auto rec = lrtune::AnalyzeCurve(*points, lrtune::AnalysisOptions{});
  if (rec.ok() && rec->min_lr > rec->max_lr) std::abort();
  return 0;
}
