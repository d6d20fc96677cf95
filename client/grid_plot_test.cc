// GridPlot and the shared SVG helpers: a curve per trial, the best marked,
// labels escaped, nothing without points.
#include "client/grid_plot.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "client/svg_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lrtune {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

v1::JobEvent Point(int trial, int64_t step, double smoothed) {
  v1::JobEvent e;
  e.mutable_point()->mutable_origin()->set_trial_index(trial);
  e.mutable_point()->mutable_point()->set_step(step);
  e.mutable_point()->mutable_point()->set_smoothed(smoothed);
  return e;
}

v1::JobEvent Eval(int trial, int64_t step, double val_loss) {
  v1::JobEvent e;
  e.mutable_evaluation()->mutable_origin()->set_trial_index(trial);
  e.mutable_evaluation()->mutable_evaluation()->set_step(step);
  e.mutable_evaluation()->mutable_evaluation()->set_val_loss(val_loss);
  return e;
}

int Count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t pos = text.find(what); pos != std::string::npos;
       pos = text.find(what, pos + 1)) {
    ++n;
  }
  return n;
}

TEST(SvgTest, EscapesMarkup) {
  EXPECT_EQ(svg::Escape("a<b & \"c\"'>"),
            "a&lt;b &amp; &quot;c&quot;&apos;&gt;");
  EXPECT_EQ(svg::Escape("tab\tbell\a"), "tab\tbell ");
  EXPECT_STREQ(svg::Colour(0), svg::Colour(10));
}

TEST(GridPlotTest, OnePathPerTrialAndTheBestOnTop) {
  GridPlot plot;
  v1::JobEvent range_point = Point(0, 0, 9);
  range_point.mutable_point()->mutable_origin()->clear_trial_index();
  plot.Add(range_point);  // the range test's: not a trial's
  for (int t = 0; t < 3; ++t) {
    for (int s = 0; s < 10; ++s) plot.Add(Point(t, s, 2.0 - 0.1 * s + t));
    plot.Add(Eval(t, 9, 1.5 + t));
  }
  plot.Add(Point(1, 3, 100));  // a retry replaces the step's point
  EXPECT_EQ(plot.trials(), 3);

  v1::Job job;
  job.set_job_id("j-1");
  for (int t = 0; t < 3; ++t) {
    v1::Trial& trial = *job.add_trials();
    trial.set_trial_index(t);
    trial.set_label(absl::StrCat("schedule=one_cycle seed=", t, " <&>"));
    trial.set_state(v1::TRIAL_STATE_SUCCEEDED);
  }
  job.mutable_trials(2)->set_rank(1);
  job.mutable_trials(0)->set_rank(2);
  job.mutable_trials(1)->set_state(v1::TRIAL_STATE_FAILED);
  job.mutable_grid_result()->add_ranking(2);
  job.mutable_grid_result()->add_ranking(0);

  const std::string svg = plot.Svg(job, "grid & co");
  EXPECT_EQ(Count(svg, "<path id=\"trial-"), 3) << svg;
  EXPECT_EQ(Count(svg, "class=\"trial best\""), 1);
  EXPECT_THAT(svg, HasSubstr("id=\"trial-2\" class=\"trial best\""));
  // The best is drawn last, on top.
  EXPECT_GT(svg.find("id=\"trial-2\""), svg.find("id=\"trial-1\""));
  EXPECT_EQ(Count(svg, "<g id=\"val-"), 3);
  // What every label shares is said once; each trial shows the rest.
  EXPECT_THAT(svg, HasSubstr(">all: schedule=one_cycle &lt;&amp;&gt;<"));
  EXPECT_THAT(svg, HasSubstr("1. trial 2: seed=2 (best)"));
  EXPECT_THAT(svg, HasSubstr("(failed) trial 1"));
  EXPECT_THAT(svg, HasSubstr("grid &amp; co"));
  EXPECT_THAT(svg, Not(HasSubstr("<&>")));
  // The legend lists the ranked trials first.
  EXPECT_LT(svg.find("1. trial 2"), svg.find("2. trial 0"));
  EXPECT_LT(svg.find("2. trial 0"), svg.find("(failed) trial 1"));
}

TEST(GridPlotTest, EmptyWithoutTrialPoints) {
  GridPlot plot;
  plot.Add(Eval(0, 5, 1.0));
  EXPECT_EQ(plot.trials(), 0);
  EXPECT_EQ(plot.Svg(v1::Job(), "t"), "");
}

}  // namespace
}  // namespace lrtune
