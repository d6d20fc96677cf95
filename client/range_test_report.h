// What `lrtune range-test` makes of a job's events: the curve it collects,
// the progress line it draws on a terminal, and the final JSON object or
// human summary.
//
//   RangeTestReport report(/*total_steps=*/300 * 3);
//   client->RangeTest(request, [&](const v1::JobEvent& e) {
//     report.Add(e);  if (tty) report.DrawProgress(std::cerr);
//   });
//   std::cout << RangeTestJson(job, report, wall_seconds) << "\n";
//
// Pure formatting over value types; thread-compatible.
#ifndef LRTUNE_CLIENT_RANGE_TEST_REPORT_H_
#define LRTUNE_CLIENT_RANGE_TEST_REPORT_H_

#include <cstdint>
#include <map>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "lrtune/v1/jobs.pb.h"

namespace lrtune {

class RangeTestReport {
 public:
  // `total_steps`: steps over all seeds (for the progress line's share and
  // ETA; curves that diverge end early).
  explicit RangeTestReport(int64_t total_steps) : total_steps_(total_steps) {}

  // Takes one event of the job's stream (points, and each seed's own
  // recommendation for the curve it was read from; the rest is ignored).
  void Add(const v1::JobEvent& event, absl::Time now = absl::Now());

  int64_t points() const { return points_; }

  // One line, redrawn in place ("\r" + clear): seed, step, lr, loss, share
  // done and ETA. At most every 100 ms unless `force`.
  void DrawProgress(std::ostream& err, absl::Time now = absl::Now(),
                    bool force = false);
  // Erases the progress line, if one was drawn.
  void ClearProgress(std::ostream& err);

  // The curve as CSV with a header: seed,step,lr,loss,smoothed, one row per
  // point ordered by seed then step; full precision, "nan"/"inf" for
  // non-finite losses (`lrtune analyze --csv` reads a one-seed file).
  std::string CurveCsv() const;

  // The smoothed loss against log10(lr) as text, `width` x `height`
  // characters of plot (each seed its digit, '*' where seeds overlap),
  // with the bounds min_lr and max_lr marked by '|' columns and an axis
  // below; the y range runs from the lowest smoothed loss to 1.25 x the
  // starting one (a diverged tail is cut off at the top). Empty without
  // points.
  std::string TerminalPlot(double min_lr, double max_lr, int width = 64,
                           int height = 14) const;

  // The curve as an SVG document (range_test_svg.cc): loss against lr on a
  // log axis, per seed the raw loss faint (polyline id "raw-<seed>") and
  // the smoothed loss ("smoothed-<seed>": the curve the seed's analysis
  // read, its Recommendation.position, or else PositionCurve with default
  // options), the [min_lr, max_lr] band
  // labelled (group "bounds"), each suggestion a labelled dashed line
  // ("lr-steepest", "lr-valley", "lr-minimum", "lr-slide", "lr-steep"), axes
  // with a tick per decade and a legend. Empty without points.
  std::string Svg(const v1::Recommendation& rec,
                  const std::string& title) const;

 private:
  const int64_t total_steps_;
  int64_t points_ = 0;
  // (seed, step) -> point
  std::map<std::pair<int32_t, int64_t>, v1::CurvePoint> curve_;
  // seed -> the curve its analysis read (Recommendation.position)
  std::map<int32_t, std::vector<double>> positions_;
  v1::CurvePoint last_;
  absl::Time first_point_ = absl::InfinitePast();
  absl::Time last_draw_ = absl::InfinitePast();
  bool drawn_ = false;
};

// The --json contract: one object with job_id, state, points,
// wall_seconds, device, steps_run, train_seconds, recommendation (core's
// RecommendationToJson keys: min_lr, max_lr, stepsize_iterations,
// stepsize_epochs, lr_valley, lr_slide, lr_minimum, lr_steep, lr_steepest,
// lr_lowest, one_cycle,
// warnings, ...), per_seed (the same, one per seed) and schedules (the
// proto's RecommendedSchedules as protobuf JSON). A job that did not
// succeed has state and failure, and no recommendation. `device` is the
// attempts' device, else `device_hint` (the coordinator may not record it).
std::string RangeTestJson(const v1::Job& job, int64_t points,
                          double wall_seconds,
                          const std::string& device_hint = "");

// A few lines for a person: the job, its size and time, then
// FormatRecommendation's lines. A job that did not succeed: its state and
// failure.
std::string RangeTestSummary(const v1::Job& job, int64_t points,
                             double wall_seconds,
                             const std::string& device_hint = "");

}  // namespace lrtune

#endif  // LRTUNE_CLIENT_RANGE_TEST_REPORT_H_
