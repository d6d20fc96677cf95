#include "server/grid_plan.h"

#include <functional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/spec_convert.h"

namespace lrtune::server {
namespace {

using ::testing::HasSubstr;

// iris: 150 samples, 30 held out, batch 40: 3 steps per epoch.
v1::GridSearchJob IrisGrid() {
  v1::GridSearchJob g;
  g.mutable_run()->mutable_data()->set_name("iris");
  g.mutable_run()->set_batch_size(40);
  g.mutable_train()->mutable_schedule()->set_kind(v1::SCHEDULE_KIND_COSINE);
  return g;
}

v1::GridAxis* ScheduleAxis(v1::GridSearchJob& g,
                           std::vector<v1::ScheduleKind> kinds) {
  v1::GridAxis* axis = g.mutable_grid()->add_axes();
  for (v1::ScheduleKind k : kinds) {
    axis->mutable_schedules()->add_values()->set_kind(k);
  }
  return axis;
}

void BoundsAxis(v1::GridSearchJob& g, double lo, double hi,
                bool recommended = false) {
  v1::LrBounds* b =
      g.mutable_grid()->add_axes()->mutable_lr_bounds()->add_values();
  if (recommended) {
    b->mutable_recommended()->set_scale(0.5);
  } else {
    b->mutable_explicit_bounds()->set_min_lr(lo);
    b->mutable_explicit_bounds()->set_max_lr(hi);
  }
}

TEST(StepsPerEpoch, FollowsTheEnginesSplits) {
  v1::RunSpec run;
  EXPECT_EQ(StepsPerEpoch(run), 60000 / 128);  // fashion-mnist, batch 128
  run.mutable_data()->set_subset(1000);
  EXPECT_EQ(StepsPerEpoch(run), 7);
  run.mutable_data()->set_name("iris");
  run.mutable_data()->set_subset(0);
  run.set_batch_size(40);
  EXPECT_EQ(StepsPerEpoch(run), 3);  // 150 - floor(150 * 0.2) = 120
  run.mutable_data()->set_name("spirals");
  run.mutable_data()->set_synthetic_samples(100);
  run.mutable_data()->set_validation_fraction(0.5);
  run.set_batch_size(1000);  // capped at the 50 training samples
  EXPECT_EQ(StepsPerEpoch(run), 1);
  run.mutable_data()->set_name("no-such-set");
  EXPECT_EQ(StepsPerEpoch(run), 0);
}

TEST(PlanGrid, ProductInAxisOrderLastFastestWithFilledSchedules) {
  v1::GridSearchJob g = IrisGrid();
  ScheduleAxis(g, {v1::SCHEDULE_KIND_ONE_CYCLE, v1::SCHEDULE_KIND_TRIANGULAR,
                   v1::SCHEDULE_KIND_COSINE});
  BoundsAxis(g, 0.01, 0.1);
  v1::BudgetAxis* budgets = g.mutable_grid()->add_axes()->mutable_budgets();
  budgets->add_values()->set_epochs(2);
  budgets->add_values()->set_steps(5);
  v1::SeedAxis* seeds = g.mutable_grid()->add_axes()->mutable_seeds();
  seeds->add_values(1);
  seeds->add_values(2);

  auto trials = PlanGrid(g, SpecLimits{});
  ASSERT_TRUE(trials.ok()) << trials.status();
  ASSERT_EQ(trials->size(), 12u);
  const v1::Trial& t5 = (*trials)[5].trial;  // 5 = 1*4 + 0*2 + 1
  EXPECT_EQ(t5.trial_index(), 5);
  EXPECT_THAT(t5.choice().value_index(), ::testing::ElementsAre(1, 0, 0, 1));
  EXPECT_EQ(t5.label(), std::string("schedule=triangular lr_bounds=0.01..0.1 "
                                    "budget=2epochs seed=2"));
  EXPECT_EQ(t5.run().seed(), 2u);
  EXPECT_EQ(t5.train().steps(), 6);  // 2 epochs x 3 steps
  EXPECT_EQ(t5.train().schedule().base_lr(), 0.01);
  EXPECT_EQ(t5.train().schedule().max_lr(), 0.1);
  EXPECT_FALSE((*trials)[5].needs_bounds);

  const v1::Trial& oc = (*trials)[2].trial;  // one_cycle, 5 steps, seed 1
  EXPECT_EQ(oc.train().steps(), 5);
  EXPECT_EQ(oc.train().schedule().kind(), v1::SCHEDULE_KIND_ONE_CYCLE);
  EXPECT_EQ(oc.train().schedule().max_lr(), 0.1);
  EXPECT_DOUBLE_EQ(oc.train().schedule().div_factor(), 10.0);
  EXPECT_EQ(oc.train().schedule().total_steps(), 5);

  const v1::Trial& cos = (*trials)[8].trial;  // cosine, 2 epochs
  EXPECT_EQ(cos.train().schedule().base_lr(), 0.1);
  EXPECT_EQ(cos.train().schedule().eta_min(), 0.01);
  EXPECT_EQ(cos.train().schedule().t_max(), 6);
}

TEST(PlanGrid, RecommendedBoundsWaitForTheRangeTest) {
  v1::GridSearchJob g = IrisGrid();
  ScheduleAxis(g, {v1::SCHEDULE_KIND_ONE_CYCLE, v1::SCHEDULE_KIND_SGDR});
  BoundsAxis(g, 0, 0, /*recommended=*/true);
  g.mutable_train()->set_steps(30);
  auto missing = PlanGrid(g, SpecLimits{});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(missing.status().message(),
              HasSubstr("grid.grid.axes[1].values[0].recommended needs "
                        "grid.range_test"));

  g.mutable_range_test()->set_steps(50);
  auto trials = PlanGrid(g, SpecLimits{});
  ASSERT_TRUE(trials.ok()) << trials.status();
  ASSERT_EQ(trials->size(), 2u);
  v1::Trial t = (*trials)[0].trial;
  EXPECT_TRUE((*trials)[0].needs_bounds);
  EXPECT_FALSE(t.train().schedule().has_max_lr());
  EXPECT_EQ(t.label(), "schedule=one_cycle lr_bounds=recommended*0.5");

  v1::Recommendation none;
  absl::Status refused = FillRecommendedBounds(g, none, t);
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.message(), HasSubstr("gave no recommended bounds"));

  v1::Recommendation rec;
  rec.set_min_lr(0.002);
  rec.set_max_lr(0.2);
  ASSERT_TRUE(FillRecommendedBounds(g, rec, t).ok());
  EXPECT_DOUBLE_EQ(t.train().schedule().max_lr(), 0.1);  // scale 0.5
  EXPECT_DOUBLE_EQ(t.train().schedule().div_factor(), 100.0);
  EXPECT_EQ(t.train().schedule().total_steps(), 30);

  v1::Trial sgdr = (*trials)[1].trial;
  ASSERT_TRUE(FillRecommendedBounds(g, rec, sgdr).ok());
  EXPECT_DOUBLE_EQ(sgdr.train().schedule().base_lr(), 0.1);
  EXPECT_DOUBLE_EQ(sgdr.train().schedule().eta_min(), 0.001);
  EXPECT_GE(sgdr.train().schedule().t0(), 1);
}

TEST(PlanGrid, OverridesReplaceOnlyTheFieldsTheySet) {
  v1::GridSearchJob g = IrisGrid();
  g.mutable_run()->mutable_optimizer()->set_momentum(0.9);
  g.mutable_train()->mutable_schedule()->set_base_lr(0.05);
  g.mutable_train()->set_steps(10);
  v1::OptimizerAxis* opt = g.mutable_grid()->add_axes()->mutable_optimizers();
  opt->add_values()->set_weight_decay(1e-4);
  v1::OptimizerSpec* adam = opt->add_values();
  adam->set_kind(v1::OPTIMIZER_KIND_ADAM);
  adam->set_beta2(0.99);
  v1::GridAxis* tmax = g.mutable_grid()->add_axes();
  tmax->set_name("period");
  tmax->mutable_schedules()->add_values()->set_t_max(4);
  auto trials = PlanGrid(g, SpecLimits{});
  ASSERT_TRUE(trials.ok()) << trials.status();
  ASSERT_EQ(trials->size(), 2u);
  const v1::Trial& sgd = (*trials)[0].trial;
  EXPECT_EQ(sgd.run().optimizer().momentum(), 0.9);
  EXPECT_EQ(sgd.run().optimizer().weight_decay(), 1e-4);
  EXPECT_EQ(sgd.train().schedule().t_max(), 4);
  EXPECT_EQ(sgd.train().schedule().base_lr(), 0.05);
  EXPECT_EQ(sgd.label(),
            "optimizer=sgd(weight_decay=0.0001) period=cosine(t_max=4)");
  EXPECT_EQ((*trials)[1].trial.run().optimizer().kind(),
            v1::OPTIMIZER_KIND_ADAM);
}

TEST(PlanGrid, ErrorsNameTheFieldAndTheRule) {
  struct Case {
    std::string want;
    std::function<void(v1::GridSearchJob&)> edit;
    absl::StatusCode code = absl::StatusCode::kInvalidArgument;
  };
  const std::vector<Case> cases = {
      {"grid.grid.axes must hold 1..8 axes, got 0",
       [](v1::GridSearchJob& g) { g.mutable_grid()->clear_axes(); }},
      {"grid.grid.max_trials is 2, but the grid has 3 trials",
       [](v1::GridSearchJob& g) { g.mutable_grid()->set_max_trials(2); }},
      {"grid.grid.max_trials 1000 is above this server's limit of 256",
       [](v1::GridSearchJob& g) { g.mutable_grid()->set_max_trials(1000); },
       absl::StatusCode::kResourceExhausted},
      {"grid.grid.axes[1].values[0].epochs must be >= 1, got 0",
       [](v1::GridSearchJob& g) {
         g.mutable_grid()
             ->add_axes()
             ->mutable_budgets()
             ->add_values()
             ->set_epochs(0);
       }},
      {"grid.grid.axes[0].values[2] repeats values[0]",
       [](v1::GridSearchJob& g) {
         v1::ScheduleSpec* v = g.mutable_grid()
                                   ->mutable_axes(0)
                                   ->mutable_schedules()
                                   ->mutable_values(2);
         v->set_kind(v1::SCHEDULE_KIND_ONE_CYCLE);
         v->set_max_lr(0.1);
       }},
      {"grid: trial 0 (schedule=one_cycle(max_lr=1) lr_bounds=0.01..0.1): "
       "params.max_lr: the lr_bounds axis sets max_lr",
       [](v1::GridSearchJob& g) {
         g.mutable_grid()
             ->mutable_axes(0)
             ->mutable_schedules()
             ->mutable_values(0)
             ->set_max_lr(1);
         BoundsAxis(g, 0.01, 0.1);
       }},
      {"grid.run.batch_size must be >= 1, got 0",
       [](v1::GridSearchJob& g) { g.mutable_run()->set_batch_size(0); }},
      {"grid.grid.objective.metric val_accuracy needs a classification loss",
       [](v1::GridSearchJob& g) {
         g.mutable_run()->set_loss(v1::LOSS_KIND_MSE);
         g.mutable_grid()->mutable_objective()->set_metric(
             v1::OBJECTIVE_METRIC_VAL_ACCURACY);
       }},
      {"has no budget",
       [](v1::GridSearchJob& g) { g.mutable_train()->clear_steps(); }},
  };
  for (const Case& c : cases) {
    v1::GridSearchJob g = IrisGrid();
    g.mutable_train()->set_steps(20);
    ScheduleAxis(g, {v1::SCHEDULE_KIND_ONE_CYCLE, v1::SCHEDULE_KIND_TRIANGULAR,
                     v1::SCHEDULE_KIND_REX});
    g.mutable_grid()
        ->mutable_axes(0)
        ->mutable_schedules()
        ->mutable_values(0)
        ->set_max_lr(0.1);
    g.mutable_grid()
        ->mutable_axes(0)
        ->mutable_schedules()
        ->mutable_values(1)
        ->set_max_lr(0.1);
    c.edit(g);
    auto trials = PlanGrid(g, SpecLimits{});
    EXPECT_EQ(trials.status().code(), c.code)
        << c.want << ": " << trials.status();
    EXPECT_THAT(std::string(trials.status().message()), HasSubstr(c.want));
  }
}

// A pruned grid's trials get their comparison group and rungs: a cosine's
// at fractions of its budget, a triangular's at its next cycle end (iris:
// 3 steps an epoch, so 30 epochs are 90 steps and a cycle is 2 x 3 steps).
TEST(PlanGrid, PrunedGridsGiveTrialsTheirGroupAndRungs) {
  v1::GridSearchJob g = IrisGrid();
  ScheduleAxis(g, {v1::SCHEDULE_KIND_COSINE, v1::SCHEDULE_KIND_TRIANGULAR});
  BoundsAxis(g, 0.01, 0.1);
  g.mutable_grid()->add_axes()->mutable_budgets()->add_values()->set_epochs(30);
  v1::Pruning& pruning = *g.mutable_grid()->mutable_pruning();
  pruning.set_kind(v1::PRUNING_KIND_SUCCESSIVE_HALVING);
  absl::StatusOr<std::vector<PlannedTrial>> trials = PlanGrid(g, {});
  ASSERT_TRUE(trials.ok()) << trials.status();
  ASSERT_EQ(trials->size(), 2u);
  const v1::Trial& cosine = (*trials)[0].trial;
  const v1::Trial& triangular = (*trials)[1].trial;
  EXPECT_EQ(cosine.pruning_group(), "cosine/90");
  EXPECT_THAT(cosine.train().rung_steps(), ::testing::ElementsAre(10, 30));
  EXPECT_EQ(triangular.pruning_group(), "triangular/90");
  // CyclicLR's half-cycle: cycles = floor(90 / 6) = 15 of 6 steps.
  EXPECT_THAT(triangular.train().rung_steps(), ::testing::ElementsAre(12, 30));

  pruning.set_reduction_factor(1.5);
  EXPECT_THAT(std::string(PlanGrid(g, {}).status().message()),
              HasSubstr("grid.grid.pruning.reduction_factor must be in"));
  pruning.clear_reduction_factor();
  pruning.set_kind(v1::PRUNING_KIND_UNSPECIFIED);
  pruning.set_min_fraction(0.1);
  EXPECT_THAT(std::string(PlanGrid(g, {}).status().message()),
              HasSubstr("grid.grid.pruning.kind must be set"));
  g.mutable_grid()->clear_pruning();
  trials = PlanGrid(g, {});
  ASSERT_TRUE(trials.ok()) << trials.status();
  EXPECT_TRUE((*trials)[0].trial.train().rung_steps().empty());
  EXPECT_TRUE((*trials)[0].trial.pruning_group().empty());
}

TEST(PrunedLeaseOrder, FromTheMiddleOfTheLrAxisOutwardGridOrderWithin) {
  v1::GridSearchJob g = IrisGrid();
  g.mutable_range_test()->set_steps(50);
  ScheduleAxis(g, {v1::SCHEDULE_KIND_COSINE, v1::SCHEDULE_KIND_REX});
  v1::GridAxis* bounds = g.mutable_grid()->add_axes();
  for (double scale : {0.25, 0.5, 1.0, 2.0, 4.0}) {
    bounds->mutable_lr_bounds()->add_values()->mutable_recommended()->set_scale(
        scale);
  }
  g.mutable_train()->set_steps(30);
  absl::StatusOr<std::vector<PlannedTrial>> trials = PlanGrid(g, {});
  ASSERT_TRUE(trials.ok()) << trials.status();
  ASSERT_EQ(trials->size(), 10u);
  // Trials 0-4 are cosine x scales 0.25..4, 5-9 rex: scale 1 (2 and 7)
  // first, then 0.5 and 2 (distance 1), then 0.25 and 4.
  EXPECT_THAT(PrunedLeaseOrder(g, *trials),
              ::testing::ElementsAre(2, 7, 1, 3, 6, 8, 0, 4, 5, 9));

  // Explicit bounds: the axis's middle value first (an even count: the two
  // middle ones).
  v1::GridSearchJob f = IrisGrid();
  v1::GridAxis* fixed = f.mutable_grid()->add_axes();
  for (double lr : {0.01, 0.02, 0.04, 0.08}) {
    v1::LrBounds* b = fixed->mutable_lr_bounds()->add_values();
    b->mutable_explicit_bounds()->set_min_lr(lr / 10);
    b->mutable_explicit_bounds()->set_max_lr(lr);
  }
  f.mutable_train()->set_steps(30);
  trials = PlanGrid(f, {});
  ASSERT_TRUE(trials.ok()) << trials.status();
  EXPECT_THAT(PrunedLeaseOrder(f, *trials), ::testing::ElementsAre(1, 2, 0, 3));
}

TEST(RankByObjective, AccuracyHigherLossLowerTiesByIndex) {
  v1::GridSearchJob g = IrisGrid();
  EXPECT_EQ(RankByObjective(g, {{0, 0.5}, {1, 0.9}, {2, 0.9}, {3, 0.1}}),
            (std::vector<int32_t>{1, 2, 0, 3}));
  g.mutable_grid()->mutable_objective()->set_metric(
      v1::OBJECTIVE_METRIC_VAL_LOSS);
  EXPECT_EQ(RankByObjective(g, {{0, 0.5}, {1, 0.9}, {3, 0.1}}),
            (std::vector<int32_t>{3, 0, 1}));
  v1::TrialTaskResult r;
  r.mutable_final_eval()->set_val_loss(0.3);
  r.mutable_best_eval()->set_val_loss(0.2);
  EXPECT_EQ(ObjectiveValue(g, r), 0.3);
  g.mutable_grid()->mutable_objective()->set_use_best(true);
  EXPECT_EQ(ObjectiveValue(g, r), 0.2);
  g.mutable_grid()->mutable_objective()->set_metric(
      v1::OBJECTIVE_METRIC_VAL_ACCURACY);
  EXPECT_EQ(ObjectiveValue(g, r), std::nullopt);  // no accuracy reported
}

// Which range tests' seeds become one packed task (spec_convert.h).
TEST(PacksSeedsTest, SmallModelsAndCudaPackBigCpuMlpsKeepATaskPerSeed) {
  v1::RangeTestJob job;
  job.mutable_range_test()->add_seeds(1);
  job.mutable_range_test()->add_seeds(2);
  job.mutable_run()->mutable_model()->add_hidden(32);  // fashion: 25k
  EXPECT_TRUE(PacksSeeds(job));
  std::vector<std::string> specs = RangeTestTaskSpecs(job);
  ASSERT_EQ(specs.size(), 1u);
  EXPECT_EQ(RangeTestTaskCount(job), 1);
  v1::RangeTestTask task;
  ASSERT_TRUE(task.ParseFromString(specs[0]));
  EXPECT_EQ(task.range_test().seeds_size(), 2);
  EXPECT_EQ(task.run().seed(), 1u);
  EXPECT_EQ(task.seed_index(), 0);

  v1::RangeTestJob big = job;  // 784-256-256-10: 270k parameters
  big.mutable_run()->mutable_model()->clear_hidden();
  EXPECT_FALSE(PacksSeeds(big));
  EXPECT_EQ(RangeTestTaskSpecs(big).size(), 2u);
  EXPECT_EQ(RangeTestTaskCount(big), 2);
  big.mutable_run()->mutable_data()->set_name("digits");  // 64-256-256: 84k
  EXPECT_TRUE(PacksSeeds(big));
  big.mutable_run()->mutable_data()->set_name("fashion-mnist");
  big.mutable_run()->mutable_device()->set_device("cuda:1");
  EXPECT_TRUE(PacksSeeds(big));

  v1::RangeTestJob other = job;
  other.mutable_run()->mutable_model()->set_kind(v1::MODEL_KIND_CNN);
  EXPECT_TRUE(PacksSeeds(other));
  other.mutable_run()->mutable_model()->set_kind(v1::MODEL_KIND_RESNET20);
  EXPECT_FALSE(PacksSeeds(other)) << "batch norm does not pack";
  other = job;
  other.mutable_range_test()->set_eval_every(10);
  EXPECT_FALSE(PacksSeeds(other)) << "evaluation is per model";
  other = job;
  other.mutable_range_test()->set_pack_seeds(false);
  EXPECT_FALSE(PacksSeeds(other));
  other = job;
  other.mutable_range_test()->clear_seeds();
  EXPECT_FALSE(PacksSeeds(other));
  EXPECT_EQ(RangeTestTaskSpecs(other).size(), 1u);
}

}  // namespace
}  // namespace lrtune::server
