#include "core/grid.h"

#include <cmath>
#include <limits>

#include "gtest/gtest.h"

namespace lrtune {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

GridSpec OneAxis(GridSchedule schedule, GridBounds bounds, GridBudget budget) {
  GridSpec spec;
  spec.schedules = {std::move(schedule)};
  spec.lr_bounds = {bounds};
  spec.budgets = {budget};
  spec.steps_per_epoch = 100;
  return spec;
}

// The one trial of a one-point grid; fails the test on error.
Trial Only(const GridSpec& spec) {
  absl::StatusOr<std::vector<Trial>> trials = ExpandGrid(spec);
  EXPECT_TRUE(trials.ok()) << trials.status();
  if (!trials.ok() || trials->size() != 1) return Trial{};
  return trials->front();
}

void ExpectError(const GridSpec& spec, const std::string& fragment) {
  absl::StatusOr<std::vector<Trial>> trials = ExpandGrid(spec);
  ASSERT_FALSE(trials.ok()) << "expected an error containing: " << fragment;
  EXPECT_EQ(trials.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(trials.status().message().find(fragment), std::string::npos)
      << trials.status().message();
}

TEST(ExpandGridTest, ProductSizeAndOrderSeedsInnermost) {
  GridSpec spec;
  spec.schedules = {{"one_cycle", {}}, {"cosine", {}}};
  spec.lr_bounds = {GridBounds::Fixed(0.01, 0.1), GridBounds::Fixed(0.1, 1)};
  spec.budgets = {GridBudget::Epochs(1), GridBudget::Steps(50)};
  spec.optimizer = {{"weight_decay", {"0", "5e-4"}}, {"momentum", {"0.9"}}};
  spec.seeds = {7, 8, 9};
  spec.steps_per_epoch = 20;
  absl::StatusOr<std::vector<Trial>> trials = ExpandGrid(spec);
  ASSERT_TRUE(trials.ok()) << trials.status();
  ASSERT_EQ(trials->size(), 2u * 2 * 2 * 1 * 2 * 3);
  for (size_t i = 0; i < trials->size(); ++i) {
    const Trial& t = (*trials)[i];
    EXPECT_EQ(t.index, static_cast<int64_t>(i));
    // Radices, outermost first: schedules 2, bounds 2, budgets 2, momentum 1,
    // weight_decay 2 (optimizer fields in name order), seeds 3.
    EXPECT_EQ(t.seed, spec.seeds[i % 3]);
    EXPECT_EQ(t.optimizer.at("weight_decay"),
              spec.optimizer["weight_decay"][(i / 3) % 2]);
    EXPECT_EQ(t.optimizer.at("momentum"), "0.9");
    EXPECT_EQ(t.budget_index, static_cast<int64_t>((i / 6) % 2));
    EXPECT_EQ(t.bounds_index, static_cast<int64_t>((i / 12) % 2));
    EXPECT_EQ(t.schedule_index, static_cast<int64_t>(i / 24));
    EXPECT_EQ(t.total_steps, t.budget_index == 0 ? 20 : 50);
    EXPECT_FALSE(t.needs_recommended_bounds);
    EXPECT_TRUE(Schedule::Create(t.schedule).ok()) << t.label;
  }
  EXPECT_EQ((*trials)[0].schedule.kind, ScheduleKind::kOneCycle);
  EXPECT_EQ((*trials)[24].schedule.kind, ScheduleKind::kCosine);
}

TEST(ExpandGridTest, EmptyOptionalAxesCountOnce) {
  GridSpec spec;
  spec.schedules = {{"cosine", {{"base_lr", "0.05"}}}};
  spec.budgets = {GridBudget::Steps(10)};
  absl::StatusOr<std::vector<Trial>> trials = ExpandGrid(spec);
  ASSERT_TRUE(trials.ok()) << trials.status();
  ASSERT_EQ(trials->size(), 1u);
  const Trial& t = trials->front();
  EXPECT_EQ(t.seed, 0);
  EXPECT_EQ(t.bounds_index, -1);
  EXPECT_TRUE(t.optimizer.empty());
  EXPECT_DOUBLE_EQ(t.schedule.base_lr, 0.05);
  EXPECT_EQ(t.schedule.t_max, 10);
  EXPECT_EQ(t.label, "cosine base_lr=0.05 steps=10 seed=0");
}

TEST(ExpandGridTest, Labels) {
  GridSpec spec = OneAxis({"one_cycle", {}}, GridBounds::Fixed(0.01, 0.1),
                          GridBudget::Epochs(3));
  spec.seeds = {1};
  EXPECT_EQ(Only(spec).label,
            "one_cycle max_lr=0.1 div_factor=10 epochs=3 seed=1");

  spec = OneAxis({"1cycle", {{"Pct-Start", " 0.25 "}}},
                 GridBounds::Fixed(0.01, 0.1), GridBudget::Steps(500));
  spec.optimizer = {{"momentum", {"0.9"}}};
  EXPECT_EQ(Only(spec).label,
            "one_cycle pct_start=0.25 max_lr=0.1 div_factor=10 steps=500 "
            "momentum=0.9 seed=0");

  spec = OneAxis({"triangular2", {}}, GridBounds::Fixed(0.001, 0.1),
                 GridBudget::Epochs(2));
  EXPECT_EQ(Only(spec).label,
            "triangular2 base_lr=0.001 max_lr=0.1 epochs=2 seed=0");

  spec = OneAxis({"rex", {{"eta_min", "0"}}}, GridBounds::Fixed(0.001, 0.1),
                 GridBudget::Epochs(1));
  EXPECT_EQ(Only(spec).label, "rex eta_min=0 base_lr=0.1 epochs=1 seed=0");
}

TEST(BoundMappingTest, OneCycle) {
  Trial t = Only(OneAxis({"one_cycle", {}}, GridBounds::Fixed(0.004, 0.1),
                         GridBudget::Epochs(3)));
  EXPECT_DOUBLE_EQ(t.schedule.max_lr, 0.1);
  EXPECT_DOUBLE_EQ(t.schedule.div_factor, 25.0);
  EXPECT_EQ(t.schedule.total_steps, 300);
  // A given div_factor wins over max/min.
  t = Only(OneAxis({"one_cycle", {{"div_factor", "5"}}},
                   GridBounds::Fixed(0.004, 0.1), GridBudget::Epochs(3)));
  EXPECT_DOUBLE_EQ(t.schedule.div_factor, 5.0);
}

TEST(CompleteTrialScheduleTest, OneTrialByTheSameRulesWithoutAPosition) {
  const GridBounds bounds = GridBounds::Fixed(0.004, 0.1);
  absl::StatusOr<ScheduleSpec> s =
      CompleteTrialSchedule({"one_cycle", {}}, &bounds, 300, 100);
  ASSERT_TRUE(s.ok()) << s.status();
  const Trial t =
      Only(OneAxis({"one_cycle", {}}, bounds, GridBudget::Epochs(3)));
  EXPECT_DOUBLE_EQ(s->max_lr, t.schedule.max_lr);
  EXPECT_DOUBLE_EQ(s->div_factor, t.schedule.div_factor);
  EXPECT_EQ(s->total_steps, t.schedule.total_steps);
  // The rule, with no grid position: the caller names the trial.
  s = CompleteTrialSchedule({"one_cycle", {{"max_lr", "1"}}}, &bounds, 300,
                            100);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().message().rfind("params.max_lr: the lr_bounds axis "
                                       "sets max_lr",
                                       0),
            0u)
      << s.status();
  const GridBounds low = GridBounds::Fixed(0.001, 0.01);
  s = CompleteTrialSchedule({"cosine", {{"eta_min", "0.05"}}}, &low, 100, 0);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().message().rfind("cosine: eta_min must be in", 0), 0u)
      << s.status();
  EXPECT_FALSE(CompleteTrialSchedule({"cosine", {}}, nullptr, 0, 0).ok());
}

TEST(BoundMappingTest, CyclicKindsWholeCyclesOfHalfAnEpochEach) {
  for (const char* kind : {"triangular", "triangular2", "exp_range"}) {
    SCOPED_TRACE(kind);
    auto step_size_up = [&](GridBudget budget) {
      Trial t =
          Only(OneAxis({kind, {}}, GridBounds::Fixed(0.001, 0.1), budget));
      EXPECT_DOUBLE_EQ(t.schedule.base_lr, 0.001);
      EXPECT_DOUBLE_EQ(t.schedule.max_lr, 0.1);
      return t.schedule.step_size_up;
    };
    // steps_per_epoch 100: cycles = max(1, floor(N / 200)).
    EXPECT_EQ(step_size_up(GridBudget::Epochs(1)), 50);    // 1 cycle
    EXPECT_EQ(step_size_up(GridBudget::Epochs(3)), 150);   // 1 cycle
    EXPECT_EQ(step_size_up(GridBudget::Epochs(10)), 100);  // 5 cycles
    EXPECT_EQ(step_size_up(GridBudget::Steps(501)), 126);  // 2, rounded up
  }
  // Unknown steps per epoch: one cycle over the budget.
  GridSpec spec = OneAxis({"triangular", {}}, GridBounds::Fixed(0.001, 0.1),
                          GridBudget::Steps(1001));
  spec.steps_per_epoch = 0;
  EXPECT_EQ(Only(spec).schedule.step_size_up, 501);
  // A given stepsize wins.
  spec.schedules[0].params = {{"step-size-up", "40"}};
  EXPECT_EQ(Only(spec).schedule.step_size_up, 40);
}

TEST(BoundMappingTest, CosineSgdrRexFloorAtMin) {
  Trial t = Only(OneAxis({"cosine", {}}, GridBounds::Fixed(0.001, 0.1),
                         GridBudget::Epochs(3)));
  EXPECT_DOUBLE_EQ(t.schedule.base_lr, 0.1);
  EXPECT_DOUBLE_EQ(t.schedule.eta_min, 0.001);
  EXPECT_EQ(t.schedule.t_max, 300);
  // The user's eta_min (here 0) and t_max win.
  t = Only(OneAxis({"cosine", {{"eta_min", "0"}, {"t_max", "120"}}},
                   GridBounds::Fixed(0.001, 0.1), GridBudget::Epochs(3)));
  EXPECT_DOUBLE_EQ(t.schedule.eta_min, 0.0);
  EXPECT_EQ(t.schedule.t_max, 120);

  t = Only(OneAxis({"rex", {}}, GridBounds::Fixed(0.001, 0.1),
                   GridBudget::Steps(777)));
  EXPECT_DOUBLE_EQ(t.schedule.base_lr, 0.1);
  EXPECT_DOUBLE_EQ(t.schedule.eta_min, 0.001);
  EXPECT_EQ(t.schedule.total_steps, 777);

  t = Only(OneAxis({"sgdr", {}}, GridBounds::Fixed(0.001, 0.1),
                   GridBudget::Epochs(10)));
  EXPECT_DOUBLE_EQ(t.schedule.base_lr, 0.1);
  EXPECT_DOUBLE_EQ(t.schedule.eta_min, 0.001);
  EXPECT_EQ(t.schedule.t0, 100);  // t_mult 1: one period per epoch
  // t_mult 2 over 10 epochs: 1 + 2 + 4 = 7 periods' worth, ceil(1000 / 7).
  t = Only(OneAxis({"sgdr", {{"t_mult", "2"}}}, GridBounds::Fixed(0.001, 0.1),
                   GridBudget::Epochs(10)));
  EXPECT_EQ(t.schedule.t0, 143);
  GridSpec spec = OneAxis({"sgdr", {}}, GridBounds::Fixed(0.001, 0.1),
                          GridBudget::Steps(300));
  spec.steps_per_epoch = 0;
  EXPECT_EQ(Only(spec).schedule.t0, 300);
  spec.schedules[0].params = {{"t_0", "30"}};
  EXPECT_EQ(Only(spec).schedule.t0, 30);
}

TEST(BoundMappingTest, DecayingKindsStartAtMax) {
  struct Case {
    GridSchedule schedule;
    int64_t total_iters;
  };
  const Case cases[] = {
      {{"constant", {}}, 5},
      {{"step", {{"step_size", "30"}}}, 5},
      {{"multistep", {{"milestones", "100,200"}}}, 5},
      {{"exponential", {{"gamma", "0.99"}}}, 5},
      {{"linear", {{"start_factor", "1"}, {"end_factor", "0"}}}, 300},
      {{"polynomial", {}}, 300},
      {{"polynomial", {{"total_iters", "50"}}}, 50},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.schedule.kind);
    Trial t = Only(OneAxis(c.schedule, GridBounds::Fixed(0.001, 0.1),
                           GridBudget::Epochs(3)));
    EXPECT_DOUBLE_EQ(t.schedule.base_lr, 0.1);
    EXPECT_EQ(t.schedule.total_iters, c.total_iters);
  }
}

TEST(ExpandGridTest, TrialLimit) {
  GridSpec spec;
  spec.schedules = {{"one_cycle", {}}};
  spec.lr_bounds = {GridBounds::Fixed(0.01, 0.1)};
  spec.budgets = {GridBudget::Steps(100)};
  for (int64_t s = 0; s < 300; ++s) spec.seeds.push_back(s);
  ExpectError(spec, "grid has 300 trials, more than max_trials 256");
  spec.max_trials = 300;
  absl::StatusOr<std::vector<Trial>> trials = ExpandGrid(spec);
  ASSERT_TRUE(trials.ok()) << trials.status();
  EXPECT_EQ(trials->size(), 300u);
  spec.max_trials = 4097;
  ExpectError(spec, "max_trials must be in [1, 4096], got 4097");
  spec.max_trials = 0;
  ExpectError(spec, "max_trials must be in [1, 4096], got 0");
}

TEST(ExpandGridTest, BadAxisValuesNameTheAxisAndIndex) {
  const GridSpec good = OneAxis({"one_cycle", {}}, GridBounds::Fixed(0.01, 0.1),
                                GridBudget::Epochs(1));
  GridSpec spec = good;
  spec.schedules = {{"cosine", {}}, {"sgdr", {}}, {"foo", {}}};
  ExpectError(spec, "schedules[2].kind: unknown schedule kind 'foo'");
  spec.schedules = {{"ramp", {}}};
  ExpectError(spec, "schedules[0].kind: 'ramp' cannot be a trial's schedule");
  spec.schedules = {{"cosine", {{"gamma", "fast"}}}};
  ExpectError(spec, "schedules[0].params: gamma: 'fast' is not a number");
  spec.schedules = {{"cosine", {{"warp", "9"}}}};
  ExpectError(spec, "schedules[0].params: unknown schedule parameter 'warp'");
  spec.schedules = {{"cosine", {{"mode", "triangular"}}}};
  ExpectError(spec, "schedules[0].params.mode: the kind is set by");
  spec.schedules = {
      {"one_cycle", {{"pct-start", "0.2"}, {"pct_start", "0.3"}}}};
  ExpectError(spec, "schedules[0].params.pct_start: given twice");
  spec.schedules = {{"one_cycle", {}}, {"onecycle", {}}};
  ExpectError(spec, "schedules[1]: duplicate of schedules[0]");
  spec.schedules = {{"triangular", {{"max_lr", "1"}}}};
  ExpectError(spec, "schedules[0].params.max_lr: the lr_bounds axis sets");
  spec.schedules = {{"step", {}}};
  ExpectError(spec,
              "schedules[0], lr_bounds[0], budgets[0]: step_size must be >= 1, "
              "got 0");
  spec.schedules = {{"one_cycle", {{"total_steps", "50"}}}};
  ExpectError(spec,
              "one_cycle: total_steps (50) is shorter than the budget (100 "
              "steps)");
  spec.schedules = {};
  ExpectError(spec, "schedules: at least one is needed");

  spec = good;
  spec.lr_bounds = {GridBounds::Fixed(0.01, 0.1), GridBounds::Fixed(0.2, 0.1)};
  ExpectError(spec, "lr_bounds[1]: min_lr (0.2) must be <= max_lr (0.1)");
  spec.lr_bounds = {GridBounds::Fixed(kNaN, 0.1)};
  ExpectError(spec, "lr_bounds[0]: min_lr and max_lr must be finite and > 0");
  spec.lr_bounds = {GridBounds::Recommended(), GridBounds::Recommended()};
  ExpectError(spec, "lr_bounds[1]: duplicate of lr_bounds[0]");

  spec = good;
  spec.budgets = {GridBudget::Steps(0)};
  ExpectError(spec, "budgets[0]: must be >= 1, got 0");
  spec.budgets = {GridBudget::Epochs(2), GridBudget::Steps(200)};
  ExpectError(spec, "budgets[1]: same length as budgets[0] (200 steps)");
  spec.steps_per_epoch = 0;
  spec.budgets = {GridBudget::Steps(5), GridBudget::Epochs(3)};
  ExpectError(spec, "budgets[1]: 3 epochs need steps_per_epoch > 0");
  spec.budgets = {};
  ExpectError(spec, "budgets: at least one is needed");

  spec = good;
  spec.seeds = {7, -1};
  ExpectError(spec, "seeds[1]: must be >= 0, got -1");
  spec.seeds = {7, 8, 9, 7};
  ExpectError(spec, "seeds[3]: duplicate of seeds[0] (7)");

  spec = good;
  spec.optimizer = {{"lr", {"0.1"}}};
  ExpectError(spec, "optimizer.lr: the LR comes from the schedule");
  spec.optimizer = {{"momentum", {}}};
  ExpectError(spec, "optimizer.momentum: needs at least one value");
  spec.optimizer = {{"momentum", {"0.9", "0 .95"}}};
  ExpectError(spec, "optimizer.momentum[1]: '0 .95' must be non-empty");
  spec.optimizer = {{"momentum", {"0.9", "0.9"}}};
  ExpectError(spec,
              "optimizer.momentum[1]: duplicate of optimizer.momentum[0]");
  spec.optimizer = {{"Beta 2", {"0.99"}}};
  ExpectError(spec, "optimizer: field name 'Beta 2' must match [a-z0-9_]+");
}

TEST(RecommendedBoundsTest, ResolvedLaterAllOrNothing) {
  GridSpec spec;
  spec.schedules = {{"one_cycle", {}}, {"cosine", {{"eta_min", "0.005"}}}};
  spec.lr_bounds = {GridBounds::Recommended(), GridBounds::Fixed(0.01, 0.1)};
  spec.budgets = {GridBudget::Epochs(1)};
  spec.steps_per_epoch = 100;
  absl::StatusOr<std::vector<Trial>> expanded = ExpandGrid(spec);
  ASSERT_TRUE(expanded.ok()) << expanded.status();
  std::vector<Trial> trials = *expanded;
  ASSERT_EQ(trials.size(), 4u);
  EXPECT_TRUE(trials[0].needs_recommended_bounds);
  EXPECT_FALSE(trials[1].needs_recommended_bounds);
  EXPECT_TRUE(trials[2].needs_recommended_bounds);
  EXPECT_EQ(trials[0].label, "one_cycle lr=recommended epochs=1 seed=0");
  EXPECT_EQ(trials[2].label,
            "cosine eta_min=0.005 lr=recommended epochs=1 seed=0");

  // No recommendation (0, 0): refused, nothing changes.
  absl::Status st = ResolveRecommendedBounds(trials, 0, 0);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("0 < min_lr <= max_lr"), std::string::npos);
  // max 0.004 is below the cosine's given eta_min: trial 2 fails, and trial
  // 0, which alone would resolve, is left as it was.
  st = ResolveRecommendedBounds(trials, 0.001, 0.004);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("trial 2 (cosine eta_min=0.005 lr=recommended"),
            std::string::npos)
      << st;
  EXPECT_TRUE(trials[0].needs_recommended_bounds);
  EXPECT_EQ(trials[0].label, "one_cycle lr=recommended epochs=1 seed=0");

  ASSERT_TRUE(ResolveRecommendedBounds(trials, 0.002, 0.2).ok());
  EXPECT_FALSE(trials[0].needs_recommended_bounds);
  EXPECT_DOUBLE_EQ(trials[0].schedule.max_lr, 0.2);
  EXPECT_DOUBLE_EQ(trials[0].schedule.div_factor, 100.0);
  EXPECT_EQ(trials[0].label,
            "one_cycle max_lr=0.2 div_factor=100 epochs=1 seed=0");
  EXPECT_DOUBLE_EQ(trials[2].schedule.base_lr, 0.2);
  EXPECT_DOUBLE_EQ(trials[2].schedule.eta_min, 0.005);
  EXPECT_TRUE(Schedule::Create(trials[2].schedule).ok());
  // The fixed-bounds trials are untouched.
  EXPECT_DOUBLE_EQ(trials[1].schedule.max_lr, 0.1);
  EXPECT_EQ(trials[3].label,
            "cosine eta_min=0.005 base_lr=0.1 epochs=1 seed=0");
}

TEST(RecommendedBoundsTest, BoundIndependentErrorsSurfaceAtExpansion) {
  GridSpec spec = OneAxis({"exponential", {}}, GridBounds::Recommended(),
                          GridBudget::Epochs(1));
  ExpectError(spec,
              "schedules[0], lr_bounds[0] (recommended), budgets[0]: "
              "exponential: gamma is required");
}

TEST(RankTrialsTest, AccuracyHigherIsBetterNanAndFailedLastTiesByIndex) {
  const std::vector<TrialResult> results = {
      {4, true, 0.80, 0.5},  {1, true, kNaN, 0.4}, {2, false, 0.99, 0.1},
      {3, true, 0.90, 0.7},  {0, true, 0.80, 0.6}, {5, false, kNaN, kNaN},
      {6, true, 0.95, kNaN},
  };
  EXPECT_EQ(RankTrials(results, Objective::kValAccuracy),
            (std::vector<int64_t>{4, 5, 6, 2, 3, 7, 1}));
  // Loss: lower is better; trial 6 has no loss, so it goes after the finite
  // ones; failed trials (2, 5) last, by index.
  EXPECT_EQ(RankTrials(results, Objective::kValLoss),
            (std::vector<int64_t>{2, 1, 6, 4, 3, 7, 5}));
}

TEST(RankTrialsTest, InfiniteLossRanksWithNanAndEmptyInput) {
  const double inf = std::numeric_limits<double>::infinity();
  const std::vector<TrialResult> results = {
      {0, true, kNaN, inf}, {1, true, kNaN, 2.0}, {2, true, kNaN, -inf}};
  EXPECT_EQ(RankTrials(results, Objective::kValLoss),
            (std::vector<int64_t>{2, 1, 3}));
  EXPECT_TRUE(RankTrials({}, Objective::kValLoss).empty());
}

TEST(RankTrialsTest, ParseObjective) {
  EXPECT_EQ(*ParseObjective("val_accuracy"), Objective::kValAccuracy);
  EXPECT_EQ(*ParseObjective("VAL_LOSS"), Objective::kValLoss);
  EXPECT_EQ(ObjectiveName(Objective::kValLoss), "val_loss");
  absl::StatusOr<Objective> bad = ParseObjective("accuracy");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("'accuracy' is not one of"),
            std::string::npos);
}

}  // namespace
}  // namespace lrtune
