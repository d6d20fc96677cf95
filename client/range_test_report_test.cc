#include "client/range_test_report.h"

#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lrtune {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

v1::JobEvent Point(int seed, int64_t step, double lr, double loss,
                   double smoothed) {
  v1::JobEvent e;
  v1::PointEvent& p = *e.mutable_point();
  p.mutable_point()->set_seed_index(seed);
  p.mutable_point()->set_step(step);
  p.mutable_point()->set_lr(lr);
  p.mutable_point()->set_loss(loss);
  p.mutable_point()->set_smoothed(smoothed);
  return e;
}

TEST(RangeTestReportTest, CsvIsBySeedThenStepWithNonFiniteLosses) {
  RangeTestReport report(4);
  report.Add(Point(1, 0, 0.1, 2.0, 2.0));
  report.Add(Point(0, 1, 0.2, NAN, 1.5));
  report.Add(Point(0, 0, 0.1, 1.0, 1.0));
  v1::JobEvent other;
  other.mutable_state_changed()->set_state(v1::JOB_STATE_RUNNING);
  report.Add(other);
  EXPECT_EQ(report.points(), 3);
  EXPECT_EQ(report.CurveCsv(),
            "seed,step,lr,loss,smoothed\n"
            "0,0,0.1,1,1\n"
            "0,1,0.2,nan,1.5\n"
            "1,0,0.1,2,2\n");
}

TEST(RangeTestReportTest, JsonOfAFailedJobHasTheFailureAndNoRecommendation) {
  v1::Job job;
  job.set_job_id("j-1");
  job.set_state(v1::JOB_STATE_FAILED);
  job.set_failure("out of memory");
  const std::string json = RangeTestJson(job, 7, 1.5, "cpu");
  EXPECT_EQ(json,
            "{\"job_id\":\"j-1\",\"state\":\"failed\",\"points\":7,"
            "\"wall_seconds\":1.5,\"device\":\"cpu\","
            "\"failure\":\"out of memory\"}");
}

TEST(RangeTestReportTest, JsonOfASucceededJobHasTheContractKeys) {
  v1::Job job;
  job.set_job_id("j-2");
  job.set_state(v1::JOB_STATE_SUCCEEDED);
  v1::Recommendation& rec =
      *job.mutable_range_test_result()->mutable_recommendation();
  rec.set_min_lr(0.01);
  rec.set_max_lr(0.1);
  rec.set_stepsize_iterations(100);
  rec.set_lr_valley(0.003);
  rec.add_warnings()->set_code("never_diverged");
  const std::string json = RangeTestJson(job, 300, 2.0);
  for (const char* key :
       {"\"job_id\":\"j-2\"", "\"points\":300", "\"wall_seconds\":2",
        "\"min_lr\":0.01", "\"max_lr\":0.1", "\"stepsize_iterations\":100",
        "\"stepsize_epochs\":", "\"lr_steepest\":null", "\"lr_valley\":0.003",
        "\"lr_minimum\":null", "\"one_cycle\":{",
        "\"warnings\":[{\"code\":"
        "\"never_diverged\"",
        "\"per_seed\":[]", "\"schedules\":null"}) {
    EXPECT_THAT(json, HasSubstr(key));
  }
  EXPECT_THAT(json, Not(HasSubstr("failure")));
}

// The SVG's smoothed line is the curve each seed's analysis read, as its
// recommendation event carries it (Recommendation.position), whatever
// options that analysis had.
TEST(RangeTestReportTest, SvgDrawsTheCurveTheAnalysisRead) {
  RangeTestReport report(100);
  for (int step = 0; step < 50; ++step) {
    const double lr = std::pow(10.0, -6 + 6.0 * step / 49);
    report.Add(Point(0, step, lr, 2.0 - step / 50.0, 2.0));
  }
  v1::Recommendation rec;
  rec.set_min_lr(1e-3);
  rec.set_max_lr(1e-2);
  const auto smoothed_points = [&]() {
    const std::string svg = report.Svg(rec, "t");
    const size_t at = svg.find("id=\"smoothed-0\"");
    EXPECT_NE(at, std::string::npos);
    const size_t from = svg.find("points=\"", at) + 8;
    const std::string list = svg.substr(from, svg.find('"', from) - from);
    return static_cast<int>(
        std::vector<std::string>(absl::StrSplit(list, ' ', absl::SkipEmpty()))
            .size());
  };
  EXPECT_EQ(smoothed_points(), 50);  // read again: the whole curve
  v1::JobEvent analysis;
  analysis.mutable_recommendation()->set_seed_index(0);
  for (int i = 0; i < 30; ++i) {
    analysis.mutable_recommendation()->mutable_recommendation()->add_position(
        2.0 - i / 50.0);
  }
  report.Add(analysis);
  EXPECT_EQ(smoothed_points(), 30);  // the analysis's, up to its divergence
}

TEST(RangeTestReportTest, PlotMarksTheBoundsAndEverySeed) {
  RangeTestReport report(200);
  for (int seed = 0; seed < 2; ++seed) {
    for (int step = 0; step < 100; ++step) {
      const double lr = std::pow(10.0, -6 + 7.0 * step / 99);
      const double loss = 2.0 - step / 100.0 + seed * 0.3;
      report.Add(Point(seed, step, lr, loss, loss));
    }
  }
  const std::string plot = report.TerminalPlot(1e-3, 1e-1, 40, 10);
  const std::vector<std::string> lines = absl::StrSplit(plot, '\n');
  ASSERT_GE(lines.size(), 13u);
  // Ten plot rows: value column, '|' axis, 40 cells.
  for (int r = 0; r < 10; ++r) EXPECT_EQ(lines[r].size(), 10u + 1u + 40u);
  EXPECT_THAT(plot, HasSubstr("0"));
  EXPECT_THAT(plot, HasSubstr("1"));
  // The bound columns run through an empty row top to bottom.
  const int min_col = 11 + static_cast<int>(std::lround(3.0 / 7 * 39));
  EXPECT_EQ(lines[1][min_col], '|');
  EXPECT_THAT(plot, HasSubstr("lr 1e-06"));
  EXPECT_EQ(RangeTestReport(1).TerminalPlot(0.1, 1), "");
}

}  // namespace
}  // namespace lrtune
