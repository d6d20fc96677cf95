#include "server/dashboard_snippets.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/curve_analysis.h"
#include "core/schedule.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/core_convert.h"

namespace lrtune::server {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// A range test's job whose recommendation is `rec` with its schedules, as
// the coordinator's aggregate has them.
v1::Job RangeTestJob(const Recommendation& rec, v1::OptimizerKind optimizer) {
  v1::Job job;
  job.set_job_id("j-00000000000000ab");
  job.mutable_range_test()->mutable_run()->mutable_optimizer()->set_kind(
      optimizer);
  v1::Recommendation* out =
      job.mutable_range_test_result()->mutable_recommendation();
  *out = RecommendationToProto(rec);
  *out->mutable_schedules() =
      RecommendedSchedulesToProto(*RecommendSchedules(rec));
  return job;
}

Recommendation Typical() {
  Recommendation rec;
  rec.min_lr = 0.00675;
  rec.max_lr = 0.0675;
  rec.stepsize_iterations = 47;
  rec.stepsize_epochs = 4;
  rec.one_cycle.max_lr = 0.0675;
  rec.one_cycle.div_factor = 10;
  rec.one_cycle.final_div_factor = 1e4;
  rec.one_cycle.pct_start = 0.3;
  rec.one_cycle.base_momentum = 0.85;
  rec.one_cycle.max_momentum = 0.95;
  rec.seeds = 1;
  return rec;
}

TEST(DashboardSnippetsTest, HoldTheRecommendationsNumbers) {
  std::optional<TorchSnippets> s =
      SnippetsFor(RangeTestJob(Typical(), v1::OPTIMIZER_KIND_SGD));
  ASSERT_TRUE(s.has_value());
  EXPECT_THAT(s->one_cycle, HasSubstr("torch.optim.lr_scheduler.OneCycleLR("));
  EXPECT_THAT(s->one_cycle, HasSubstr("max_lr=0.0675, total_steps=376"));
  EXPECT_THAT(s->one_cycle, HasSubstr("div_factor=10, final_div_factor=10000"));
  EXPECT_THAT(s->one_cycle, HasSubstr("base_momentum=0.85, max_momentum=0.95"));
  EXPECT_THAT(s->cyclic, HasSubstr("base_lr=0.00675, max_lr=0.0675"));
  EXPECT_THAT(s->cyclic, HasSubstr("step_size_up=47, step_size_down=47"));
  EXPECT_THAT(s->cyclic, Not(HasSubstr("beta1")));
  EXPECT_THAT(s->lrtune_torch, HasSubstr("get(\"j-00000000000000ab\")"));
  EXPECT_THAT(
      s->lrtune_torch,
      HasSubstr("range_test_result.recommendation.schedules.one_cycle"));
  EXPECT_THAT(
      SnippetsFor(RangeTestJob(Typical(), v1::OPTIMIZER_KIND_ADAM))->cyclic,
      HasSubstr("beta1"));
}

TEST(DashboardSnippetsTest, AStepsizeWithoutEpochsIsMarkedAPlaceholder) {
  EXPECT_THAT(
      SnippetsFor(RangeTestJob(Typical(), v1::OPTIMIZER_KIND_SGD))->cyclic,
      Not(HasSubstr("placeholder")));
  Recommendation unknown = Typical();  // a client's test without epochs
  unknown.stepsize_iterations = 4;
  unknown.stepsize_epochs = 0;
  EXPECT_THAT(
      SnippetsFor(RangeTestJob(unknown, v1::OPTIMIZER_KIND_SGD))->cyclic,
      HasSubstr("# step_size_up is a placeholder: the range test did not "
                "know the iterations\n# per epoch"));
}

TEST(DashboardSnippetsTest, NoneWithoutBounds) {
  v1::Job job;
  EXPECT_FALSE(SnippetsFor(job).has_value());  // still running
  Recommendation none;
  none.seeds = 1;
  v1::Job no_bounds;
  *no_bounds.mutable_range_test_result()->mutable_recommendation() =
      RecommendationToProto(none);
  EXPECT_FALSE(SnippetsFor(no_bounds).has_value());
}

TEST(DashboardSnippetsTest, AGridsBoundsAreItsRangeTests) {
  v1::Job range = RangeTestJob(Typical(), v1::OPTIMIZER_KIND_SGD);
  v1::Job grid;
  grid.set_job_id("j-grid");
  grid.mutable_grid();
  *grid.mutable_grid_result()->mutable_bounds() =
      range.range_test_result().recommendation();
  std::optional<TorchSnippets> s = SnippetsFor(grid);
  ASSERT_TRUE(s.has_value());
  EXPECT_THAT(s->lrtune_torch, HasSubstr("grid_result.bounds.schedules"));
}

// The snippets run in PyTorch (Debian's python3-torch) give lrtune's
// schedules step for step: LR and momentum, against core/schedule.h.
TEST(DashboardSnippetsTest, PyTorchRunsThemToLrtunesValues) {
  const char* python = std::getenv("LRTUNE_PYTHON");
  if (python == nullptr ||
      std::system(
          absl::StrCat(python, " -c 'import torch' 2>/dev/null").c_str()) !=
          0) {
    GTEST_SKIP() << "no python3 with torch (LRTUNE_PYTHON)";
  }
  const Recommendation rec = Typical();
  const v1::Job job = RangeTestJob(rec, v1::OPTIMIZER_KIND_SGD);
  std::optional<TorchSnippets> s = SnippetsFor(job);
  ASSERT_TRUE(s.has_value());
  const RecommendedSchedules schedules = *RecommendSchedules(rec);
  const int64_t steps = schedules.total_steps;
  for (const auto& [snippet, spec] :
       {std::pair<std::string, ScheduleSpec>{s->one_cycle, schedules.one_cycle},
        {s->cyclic, schedules.triangular}}) {
    const std::string script = absl::StrCat(
        "import torch\n"
        "model = torch.nn.Linear(1, 1)\n"
        "optimizer = torch.optim.SGD(model.parameters(), lr=0.1, "
        "momentum=0.9)\n",
        snippet, "for _ in range(", steps,
        "):\n"
        "    g = optimizer.param_groups[0]\n"
        "    print(repr(g['lr']), repr(g['momentum']))\n"
        "    optimizer.step()\n"
        "    scheduler.step()\n");
    const std::string path =
        absl::StrCat(::testing::TempDir(), "/snippet_", getpid(), ".py");
    std::ofstream(path) << script;
    FILE* out = popen(absl::StrCat(python, " ", path).c_str(), "r");
    ASSERT_NE(out, nullptr);
    std::string text;
    char buf[4096];
    for (size_t n; (n = fread(buf, 1, sizeof(buf), out)) > 0;) {
      text.append(buf, n);
    }
    ASSERT_EQ(pclose(out), 0) << script;
    std::remove(path.c_str());
    absl::StatusOr<Schedule> schedule = Schedule::Create(spec);
    ASSERT_TRUE(schedule.ok()) << schedule.status();
    std::vector<std::string> lines =
        absl::StrSplit(text, '\n', absl::SkipEmpty());
    ASSERT_EQ(static_cast<int64_t>(lines.size()), steps) << snippet;
    for (int64_t t = 0; t < steps; ++t) {
      std::vector<std::string> fields = absl::StrSplit(lines[t], ' ');
      double lr = 0, momentum = 0;
      ASSERT_TRUE(absl::SimpleAtod(fields[0], &lr));
      ASSERT_TRUE(absl::SimpleAtod(fields[1], &momentum));
      EXPECT_NEAR(lr, schedule->Lr(t), 1e-12 * schedule->Lr(t) + 1e-15)
          << "step " << t << " of\n"
          << snippet;
      ASSERT_TRUE(schedule->Momentum(t).has_value());
      EXPECT_NEAR(momentum, *schedule->Momentum(t), 1e-12)
          << "step " << t << " of\n"
          << snippet;
    }
  }
}

}  // namespace
}  // namespace lrtune::server
