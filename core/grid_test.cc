#include "core/grid.h"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace lrtune {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// The schedule CompleteTrialSchedule gives `schedule` with `bounds` over
// `budget` at 100 steps per epoch; fails the test on error.
ScheduleSpec Complete(const GridSchedule& schedule, const GridBounds& bounds,
                      GridBudget budget, int64_t per_epoch = 100) {
  const int64_t steps = budget.unit == GridBudget::Unit::kEpochs
                            ? budget.count * per_epoch
                            : budget.count;
  absl::StatusOr<ScheduleSpec> s =
      CompleteTrialSchedule(schedule, &bounds, steps, per_epoch);
  EXPECT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(!s.ok() || Schedule::Create(*s).ok());
  return s.ok() ? *s : ScheduleSpec{};
}

Schedule MustCreate(const ScheduleSpec& spec) {
  absl::StatusOr<Schedule> s = Schedule::Create(spec);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *std::move(s) : *Schedule::Create(ScheduleSpec{});
}

// iris: 150 samples, 30 held out; batch 40 gives 3 steps per epoch.
GridPlan IrisPlan() {
  GridPlan plan;
  plan.run.data.name = "iris";
  plan.run.batch_size = 40;
  plan.schedule = {"cosine", {}};
  plan.budget = GridBudget::Steps(20);
  plan.has_budget = true;
  return plan;
}

GridAxis Schedules(std::vector<AxisValue> values) {
  GridAxis a;
  a.kind = GridAxis::Kind::kSchedules;
  a.schedules = std::move(values);
  return a;
}

GridAxis Bounds(std::vector<GridBounds> values) {
  GridAxis a;
  a.kind = GridAxis::Kind::kLrBounds;
  a.lr_bounds = std::move(values);
  return a;
}

void ExpectError(const GridPlan& plan, const std::string& fragment) {
  GridNames names;
  names.grid = "grid.";
  names.trial = "grid: ";
  absl::StatusOr<std::vector<PlannedTrial>> trials = PlanGrid(plan, names);
  ASSERT_FALSE(trials.ok()) << "expected an error containing: " << fragment;
  EXPECT_EQ(trials.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(trials.status().message().find(fragment), std::string::npos)
      << trials.status().message();
}

TEST(PlanGridTest, ProductInAxisOrderLastFastestBatchSizesIncluded) {
  GridPlan plan = IrisPlan();
  plan.axes.push_back(Schedules({{"one_cycle", {}}, {"cosine", {}}}));
  plan.axes.push_back(Bounds({GridBounds::Fixed(0.01, 0.1)}));
  GridAxis budgets;
  budgets.kind = GridAxis::Kind::kBudgets;
  budgets.budgets = {GridBudget::Epochs(2), GridBudget::Steps(5)};
  plan.axes.push_back(budgets);
  GridAxis batches;
  batches.kind = GridAxis::Kind::kBatchSizes;
  batches.batch_sizes = {40, 60};
  plan.axes.push_back(batches);
  GridAxis seeds;
  seeds.kind = GridAxis::Kind::kSeeds;
  seeds.seeds = {7, 8};
  plan.axes.push_back(seeds);
  absl::StatusOr<std::vector<PlannedTrial>> trials =
      PlanGrid(plan, GridNames{});
  ASSERT_TRUE(trials.ok()) << trials.status();
  ASSERT_EQ(trials->size(), 2u * 1 * 2 * 2 * 2);
  for (size_t i = 0; i < trials->size(); ++i) {
    const PlannedTrial& t = (*trials)[i];
    EXPECT_EQ(t.index, static_cast<int64_t>(i));
    ASSERT_EQ(t.choice.size(), 5u);
    EXPECT_EQ(t.choice[4], static_cast<int>(i % 2));
    EXPECT_EQ(t.choice[3], static_cast<int>(i / 2 % 2));
    EXPECT_EQ(t.choice[2], static_cast<int>(i / 4 % 2));
    EXPECT_EQ(t.choice[0], static_cast<int>(i / 8));
    EXPECT_EQ(t.run.seed, 7u + i % 2);
    EXPECT_EQ(t.run.batch_size, i / 2 % 2 == 0 ? 40 : 60);
    EXPECT_FALSE(t.needs_bounds);
    EXPECT_TRUE(Schedule::Create(t.completed).ok()) << t.label;
  }
  // Epoch budgets count the trial's own steps per epoch: 120 training
  // samples are 3 batches of 40 but 2 of 60.
  EXPECT_EQ((*trials)[0].steps, 6);
  EXPECT_EQ((*trials)[0].epochs, 2);
  EXPECT_EQ((*trials)[2].steps, 4);
  EXPECT_EQ((*trials)[4].steps, 5);
  EXPECT_EQ((*trials)[4].epochs, 0);
  EXPECT_EQ((*trials)[3].label,
            "schedule=one_cycle lr_bounds=0.01..0.1 budget=2epochs "
            "batch_size=60 seed=8");
  const ScheduleSpec& oc = (*trials)[2].completed;  // one_cycle, 4 steps
  EXPECT_EQ(oc.kind, ScheduleKind::kOneCycle);
  EXPECT_DOUBLE_EQ(oc.max_lr, 0.1);
  EXPECT_DOUBLE_EQ(oc.div_factor, 10.0);
  EXPECT_EQ(oc.total_steps, 4);
  const ScheduleSpec& cos = (*trials)[8].completed;  // cosine, 6 steps
  EXPECT_EQ(cos.kind, ScheduleKind::kCosine);
  EXPECT_DOUBLE_EQ(cos.base_lr, 0.1);
  EXPECT_DOUBLE_EQ(cos.eta_min, 0.01);
  EXPECT_EQ(cos.t_max, 6);
}

TEST(PlanGridTest, OverridesReplaceOnlyTheFieldsTheySet) {
  GridPlan plan = IrisPlan();
  plan.optimizer = {"", {{"momentum", "0.9"}}};
  plan.schedule = {"cosine", {{"base_lr", "0.05"}}};
  GridAxis optimizers;
  optimizers.kind = GridAxis::Kind::kOptimizers;
  optimizers.optimizers = {{"", {{"weight_decay", "0.0001"}}},
                           {"adam", {{"beta2", "0.99"}}}};
  plan.axes.push_back(optimizers);
  GridAxis period = Schedules({{"", {{"t_max", "4"}}}});
  period.name = "period";
  plan.axes.push_back(period);
  absl::StatusOr<std::vector<PlannedTrial>> trials =
      PlanGrid(plan, GridNames{});
  ASSERT_TRUE(trials.ok()) << trials.status();
  ASSERT_EQ(trials->size(), 2u);
  const PlannedTrial& sgd = (*trials)[0];
  EXPECT_EQ(sgd.run.optimizer.kind, OptimizerKind::kSgd);
  EXPECT_DOUBLE_EQ(sgd.run.optimizer.momentum, 0.9);
  EXPECT_DOUBLE_EQ(sgd.run.optimizer.weight_decay, 1e-4);
  EXPECT_EQ(sgd.completed.t_max, 4);
  EXPECT_DOUBLE_EQ(sgd.completed.base_lr, 0.05);
  EXPECT_EQ(sgd.label,
            "optimizer=sgd(weight_decay=0.0001) period=cosine(t_max=4)");
  const PlannedTrial& adam = (*trials)[1];
  EXPECT_EQ(adam.run.optimizer.kind, OptimizerKind::kAdam);
  EXPECT_DOUBLE_EQ(adam.run.optimizer.momentum, 0.9);  // the base's
  EXPECT_DOUBLE_EQ(adam.run.optimizer.beta2, 0.99);
  EXPECT_EQ(adam.optimizer.params.count("weight_decay"), 0u);
  // A value of another kind replaces the schedule, parameters and all.
  plan.axes = {Schedules({{"one_cycle", {{"max_lr", "0.2"}}}})};
  trials = PlanGrid(plan, GridNames{});
  ASSERT_TRUE(trials.ok()) << trials.status();
  EXPECT_EQ((*trials)[0].schedule.params.count("base_lr"), 0u);
  EXPECT_DOUBLE_EQ((*trials)[0].completed.max_lr, 0.2);
  EXPECT_EQ((*trials)[0].completed.total_steps, 20);
}

TEST(PlanGridTest, RecommendedBoundsWaitCheckedWithStandIns) {
  GridPlan plan = IrisPlan();
  plan.axes.push_back(Schedules({{"one_cycle", {}}, {"sgdr", {}}}));
  plan.axes.push_back(Bounds({GridBounds::Recommended(0.5)}));
  ExpectError(plan, "grid.axes[1].values[0].recommended needs range_test");
  plan.has_range_test = true;
  absl::StatusOr<std::vector<PlannedTrial>> trials =
      PlanGrid(plan, GridNames{});
  ASSERT_TRUE(trials.ok()) << trials.status();
  ASSERT_EQ(trials->size(), 2u);
  EXPECT_TRUE((*trials)[0].needs_bounds);
  EXPECT_EQ((*trials)[0].label, "schedule=one_cycle lr_bounds=recommended*0.5");
  EXPECT_EQ((*trials)[0].schedule.kind, "one_cycle");
  // Errors that do not depend on the bounds' values show at planning.
  plan.axes[0] = Schedules({{"exponential", {}}});
  ExpectError(plan,
              "grid: trial 0 (schedule=exponential "
              "lr_bounds=recommended*0.5): exponential: gamma is required");
}

TEST(PlanGridTest, ErrorsNameTheFieldAndTheRule) {
  const GridPlan good = [] {
    GridPlan p = IrisPlan();
    p.axes.push_back(Schedules({{"one_cycle", {}}, {"cosine", {}}}));
    p.axes.push_back(Bounds({GridBounds::Fixed(0.01, 0.1)}));
    return p;
  }();
  GridPlan plan = good;
  plan.axes.clear();
  ExpectError(plan, "grid.axes must hold 1..8 axes, got 0");
  plan = good;
  plan.max_trials = 1;
  ExpectError(plan, "grid.max_trials is 1, but the grid has 2 trials");
  plan.max_trials = 0;
  ExpectError(plan, "grid.max_trials must be >= 1, got 0");

  plan = good;
  plan.axes[0].schedules = {{"cosine", {}}, {"sgdr", {}}, {"foo", {}}};
  ExpectError(plan,
              "grid: trial 2 (schedule=foo lr_bounds=0.01..0.1): kind: "
              "unknown schedule kind 'foo'");
  plan.axes[0].schedules = {{"ramp", {}}};
  ExpectError(plan, "kind: 'ramp' cannot be a trial's schedule");
  plan.axes[0].schedules = {{"fractal", {}}};  // experimental
  ExpectError(plan, "kind: 'fractal' cannot be a trial's schedule");
  plan.axes[0].schedules = {{"cosine", {{"gamma", "fast"}}}};
  ExpectError(plan, "params: gamma: 'fast' is not a number");
  plan.axes[0].schedules = {{"cosine", {{"warp", "9"}}}};
  ExpectError(plan, "params: unknown schedule parameter 'warp'");
  plan.axes[0].schedules = {{"cosine", {{"mode", "triangular"}}}};
  ExpectError(plan, "params.mode: the kind is set by");
  plan.axes[0].schedules = {{"one_cycle", {}}, {"one_cycle", {}}};
  ExpectError(plan, "grid.axes[0].values[1] repeats values[0]");
  plan.axes[0].schedules = {{"triangular", {{"max_lr", "1"}}}};
  ExpectError(plan, "params.max_lr: the lr_bounds axis sets max_lr");
  plan.axes[0].schedules = {{"step", {}}};
  ExpectError(plan, "lr_bounds=0.01..0.1): step_size must be >= 1, got 0");
  plan.axes[0].schedules = {{"one_cycle", {{"total_steps", "5"}}}};
  ExpectError(plan,
              "one_cycle: total_steps (5) is shorter than the budget (20 "
              "steps)");
  plan.axes[0].schedules = {{"exponential", {{"gamma", "10"}}}};
  plan.budget = GridBudget::Steps(400);
  ExpectError(plan, "exponential: the lr is not finite from step 309");

  plan = good;
  plan.axes[1].lr_bounds = {GridBounds::Fixed(0.01, 0.1),
                            GridBounds::Fixed(0.2, 0.1)};
  ExpectError(plan,
              "grid.axes[1].values[1].explicit_bounds must be finite with 0 < "
              "min_lr <= max_lr, got min_lr 0.2, max_lr 0.1");
  plan.axes[1].lr_bounds = {GridBounds::Fixed(kNaN, 0.1)};
  ExpectError(plan, "grid.axes[1].values[0].explicit_bounds must be finite");
  plan.axes[1].lr_bounds = {GridBounds::Fixed(0.01, 0.1),
                            GridBounds::Fixed(0.01, 0.1)};
  ExpectError(plan, "grid.axes[1].values[1] repeats values[0]");
  plan.has_range_test = true;
  plan.axes[1].lr_bounds = {GridBounds::Recommended(0)};
  ExpectError(plan,
              "grid.axes[1].values[0].recommended.scale must be finite and > "
              "0, got 0");
  plan = good;
  plan.axes.push_back(Bounds({GridBounds::Fixed(0.1, 1)}));
  plan.axes.back().name = "other";
  ExpectError(plan, "grid.axes at most one lr_bounds axis");
  plan.axes.back() = Schedules({{"cosine", {}}});
  ExpectError(plan, "grid.axes[2].name \"schedule\" names two axes");

  plan = good;
  GridAxis budgets;
  budgets.kind = GridAxis::Kind::kBudgets;
  budgets.budgets = {GridBudget::Epochs(0)};
  plan.axes.push_back(budgets);
  ExpectError(plan, "grid.axes[2].values[0].epochs must be >= 1, got 0");
  plan.axes.back().budgets = {GridBudget::Epochs(2), GridBudget::Epochs(2)};
  ExpectError(plan, "grid.axes[2].values[1] repeats values[0]");
  plan.axes.back().budgets = {GridBudget::Epochs(1'000'000'000)};
  ExpectError(plan, "budget: 1000000000 epochs are more than 1000000000 steps");
  plan = good;
  plan.has_budget = false;
  ExpectError(plan,
              "has no budget: set train.epochs or steps, or a budgets "
              "axis");

  plan = good;
  GridAxis batches;
  batches.kind = GridAxis::Kind::kBatchSizes;
  batches.batch_sizes = {0};
  plan.axes.push_back(batches);
  ExpectError(plan, "grid.axes[2].values[0] must be >= 1, got 0");
  plan = good;
  GridAxis optimizers;
  optimizers.kind = GridAxis::Kind::kOptimizers;
  optimizers.optimizers = {{"", {{"momentum", "-1"}}}};
  plan.axes.push_back(optimizers);
  ExpectError(plan,
              "grid: trial 0 (schedule=one_cycle lr_bounds=0.01..0.1 "
              "optimizer=sgd(momentum=-1)): run.optimizer.momentum");
  plan.axes.back().optimizers = {{"", {{"warp", "1"}}}};
  ExpectError(plan, "run.optimizer.warp is not an optimizer field");
  plan.axes.back().optimizers = {{"lamb", {}}};
  ExpectError(plan, "lamb");
}

TEST(BoundsRatioTest, ADecadeIsTenAndOtherRatiosKeepTwelveDigits) {
  for (double hi : {0.233, 0.0675, 1e-3, 3.7}) {
    const double lo = hi / 10;  // ClampBoundsRatio's lower end
    EXPECT_EQ(BoundsRatio(hi, lo), 10.0) << hi;
    EXPECT_EQ(BoundsRatio(hi, hi / 3), 3.0) << hi;
  }
  EXPECT_NEAR(BoundsRatio(0.233, 0.0317), 0.233 / 0.0317, 1e-11);
  EXPECT_NE(BoundsRatio(0.233, 0.0317), 7.35);
}

TEST(CompleteTrialScheduleTest, TheRuleWithoutAPosition) {
  const GridBounds bounds = GridBounds::Fixed(0.004, 0.1);
  absl::StatusOr<ScheduleSpec> s = CompleteTrialSchedule(
      {"one_cycle", {{"max_lr", "1"}}}, &bounds, 300, 100);
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
  // No bounds: the schedule's own LRs, periods from the budget.
  s = CompleteTrialSchedule({"cosine", {{"base_lr", "0.05"}}}, nullptr, 10, 0);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_DOUBLE_EQ(s->base_lr, 0.05);
  EXPECT_EQ(s->t_max, 10);
  // Parameter names as the CLI spells them.
  s = CompleteTrialSchedule({"1cycle", {{"Pct-Start", " 0.25 "}}}, &bounds, 500,
                            100);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_DOUBLE_EQ(s->pct_start, 0.25);
  s = CompleteTrialSchedule(
      {"one_cycle", {{"pct-start", "0.2"}, {"pct_start", "0.3"}}}, &bounds, 500,
      100);
  EXPECT_NE(s.status().message().find("params.pct_start: given twice"),
            std::string::npos)
      << s.status();
}

TEST(BoundMappingTest, OneCycle) {
  ScheduleSpec s = Complete({"one_cycle", {}}, GridBounds::Fixed(0.004, 0.1),
                            GridBudget::Epochs(3));
  EXPECT_DOUBLE_EQ(s.max_lr, 0.1);
  EXPECT_DOUBLE_EQ(s.div_factor, 25.0);
  EXPECT_EQ(s.total_steps, 300);
  // A given div_factor wins over max/min.
  s = Complete({"one_cycle", {{"div_factor", "5"}}},
               GridBounds::Fixed(0.004, 0.1), GridBudget::Epochs(3));
  EXPECT_DOUBLE_EQ(s.div_factor, 5.0);
}

TEST(BoundMappingTest, CyclicKindsWholeCyclesOfHalfAnEpochEach) {
  for (const char* kind : {"triangular", "triangular2", "exp_range"}) {
    SCOPED_TRACE(kind);
    auto step_size_up = [&](GridBudget budget) {
      ScheduleSpec s =
          Complete({kind, {}}, GridBounds::Fixed(0.001, 0.1), budget);
      EXPECT_DOUBLE_EQ(s.base_lr, 0.001);
      EXPECT_DOUBLE_EQ(s.max_lr, 0.1);
      return s.step_size_up;
    };
    // steps_per_epoch 100: cycles = max(1, floor(N / 200)).
    EXPECT_EQ(step_size_up(GridBudget::Epochs(1)), 50);    // 1 cycle
    EXPECT_EQ(step_size_up(GridBudget::Epochs(3)), 150);   // 1 cycle
    EXPECT_EQ(step_size_up(GridBudget::Epochs(10)), 100);  // 5 cycles
    EXPECT_EQ(step_size_up(GridBudget::Steps(501)), 126);  // 2, rounded up
  }
  // Unknown steps per epoch: one cycle over the budget.
  EXPECT_EQ(Complete({"triangular", {}}, GridBounds::Fixed(0.001, 0.1),
                     GridBudget::Steps(1001), 0)
                .step_size_up,
            501);
  // A given stepsize wins.
  EXPECT_EQ(Complete({"triangular", {{"step-size-up", "40"}}},
                     GridBounds::Fixed(0.001, 0.1), GridBudget::Steps(1001), 0)
                .step_size_up,
            40);
}

TEST(BoundMappingTest, CosineSgdrRexFloorAtMin) {
  const GridBounds b = GridBounds::Fixed(0.001, 0.1);
  ScheduleSpec s = Complete({"cosine", {}}, b, GridBudget::Epochs(3));
  EXPECT_DOUBLE_EQ(s.base_lr, 0.1);
  EXPECT_DOUBLE_EQ(s.eta_min, 0.001);
  EXPECT_EQ(s.t_max, 300);
  // The user's eta_min (here 0) and t_max win.
  s = Complete({"cosine", {{"eta_min", "0"}, {"t_max", "120"}}}, b,
               GridBudget::Epochs(3));
  EXPECT_DOUBLE_EQ(s.eta_min, 0.0);
  EXPECT_EQ(s.t_max, 120);

  s = Complete({"rex", {}}, b, GridBudget::Steps(777));
  EXPECT_DOUBLE_EQ(s.base_lr, 0.1);
  EXPECT_DOUBLE_EQ(s.eta_min, 0.001);
  EXPECT_EQ(s.total_steps, 777);

  // A profile floors at min too; one decay (or growth) spans the budget,
  // and a cyclic one takes the cyclic kinds' half-cycles (E = 100).
  s = Complete({"profile", {{"profile", "rex"}}}, b, GridBudget::Epochs(3));
  EXPECT_DOUBLE_EQ(s.base_lr, 0.1);
  EXPECT_DOUBLE_EQ(s.eta_min, 0.001);
  EXPECT_EQ(s.t0, 300);
  s = Complete({"profile", {{"profile_mode", "cyclic"}}}, b,
               GridBudget::Epochs(10));
  EXPECT_EQ(s.t0, 100);  // 5 cycles of 2 x 100 steps

  // wsd cools down to 0, as Hägele et al. and transformers do, unless the
  // spec sets eta_min; its length is the budget.
  s = Complete({"wsd", {}}, b, GridBudget::Steps(600));
  EXPECT_DOUBLE_EQ(s.base_lr, 0.1);
  EXPECT_DOUBLE_EQ(s.eta_min, 0.0);
  EXPECT_EQ(s.total_steps, 600);

  // A warm-up comes out of the budget: 50 of 600 steps, the profile 550,
  // the whole trial 600.
  s = Complete({"one_cycle", {{"warmup_steps", "50"}}}, b,
               GridBudget::Steps(600));
  EXPECT_EQ(s.warmup_steps, 50);
  EXPECT_EQ(s.total_steps, 550);
  EXPECT_EQ(MustCreate(s).length(), 600);
  s = Complete({"cosine", {{"warmup_steps", "100"}}}, b,
               GridBudget::Steps(600));
  EXPECT_EQ(s.t_max, 500);
  EXPECT_DOUBLE_EQ(MustCreate(s).Lr(0), 0.1 * 0.1);  // from start_factor 0.1
  EXPECT_DOUBLE_EQ(MustCreate(s).Lr(100), 0.1);      // the cosine's peak
  const GridBounds fixed = b;
  absl::StatusOr<ScheduleSpec> whole = CompleteTrialSchedule(
      {"cosine", {{"warmup_steps", "600"}}}, &fixed, 600, 100);
  ASSERT_FALSE(whole.ok());
  EXPECT_NE(whole.status().message().find(
                "warmup_steps (600) must be in [0, the budget (600 steps))"),
            std::string::npos)
      << whole.status();

  s = Complete({"sgdr", {}}, b, GridBudget::Epochs(10));
  EXPECT_DOUBLE_EQ(s.base_lr, 0.1);
  EXPECT_DOUBLE_EQ(s.eta_min, 0.001);
  EXPECT_EQ(s.t0, 100);  // t_mult 1: one period per epoch
  // t_mult 2 over 10 epochs: 1 + 2 + 4 = 7 periods' worth, ceil(1000 / 7).
  s = Complete({"sgdr", {{"t_mult", "2"}}}, b, GridBudget::Epochs(10));
  EXPECT_EQ(s.t0, 143);
  EXPECT_EQ(Complete({"sgdr", {}}, b, GridBudget::Steps(300), 0).t0, 300);
  EXPECT_EQ(
      Complete({"sgdr", {{"t_0", "30"}}}, b, GridBudget::Steps(300), 0).t0, 30);
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
    ScheduleSpec s = Complete(c.schedule, GridBounds::Fixed(0.001, 0.1),
                              GridBudget::Epochs(3));
    EXPECT_DOUBLE_EQ(s.base_lr, 0.1);
    EXPECT_EQ(s.total_iters, c.total_iters);
  }
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
