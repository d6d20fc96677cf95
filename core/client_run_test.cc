#include "core/client_run.h"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/schedule.h"
#include "gtest/gtest.h"

namespace lrtune {
namespace {

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// A U-shaped loss: flat at 2.3, drops around lr 1e-4, blows up past 1e-1.
double UCurve(double lr) {
  const double x = std::log10(lr);
  return 2.3 - 2.0 / (1.0 + std::exp(-(x + 4.0) * 2.5)) +
         0.02 * std::exp((x + 2.0) * 4.0);
}

RangeTestSpec ClientSpec(int64_t steps = 100) {
  RangeTestSpec spec;
  spec.driver = RangeDriver::kClient;
  spec.steps = steps;
  return spec;
}

ClientRun MakeRun(const RangeTestSpec& spec) {
  AnalysisOptions options = spec.analysis;
  options.momentum = 0.9;
  absl::StatusOr<ClientRun> run =
      ClientRun::Create(spec, options, PrefixNames("range_test."));
  EXPECT_TRUE(run.ok()) << run.status();
  return *std::move(run);
}

TEST(ClientRunTest, ThePlanIsTheWorkersRamp) {
  const RangeTestSpec spec = ClientSpec(50);
  const ClientRun run = MakeRun(spec);
  absl::StatusOr<Schedule> ramp = Schedule::Create(
      ScheduleSpec::Ramp(spec.start_lr, spec.end_lr, spec.steps, spec.shape));
  ASSERT_TRUE(ramp.ok());
  ASSERT_EQ(run.steps(), 50);
  for (int64_t k = 0; k < 50; ++k) {
    EXPECT_EQ(run.lrs()[static_cast<size_t>(k)], ramp->Lr(k)) << k;
  }
  EXPECT_DOUBLE_EQ(run.lrs().front(), 1e-7);
  EXPECT_DOUBLE_EQ(run.lrs().back(), 10.0);
}

TEST(ClientRunTest, StopsWhereTheMonitorDivergesAndAnalysesLikeAWorker) {
  const RangeTestSpec spec = ClientSpec(100);
  ClientRun run = MakeRun(spec);
  DivergenceMonitor monitor(0.98, 4.0);
  std::vector<CurvePoint> curve;
  int64_t expected_stop = -1;
  while (!run.ended()) {
    const int64_t k = run.next_step();
    const double loss = UCurve(run.lrs()[static_cast<size_t>(k)]);
    const ClientStep step{k, loss, 0, 0.01 * static_cast<double>(k)};
    ASSERT_TRUE(run.Check(step, PrefixNames("steps[0].")).ok());
    const ClientRun::Point p = run.Add(step);
    EXPECT_EQ(p.step, k);
    EXPECT_EQ(p.lr, run.lrs()[static_cast<size_t>(k)]);
    const bool diverged = monitor.Add(loss);
    EXPECT_EQ(p.smoothed, monitor.smoothed());
    curve.push_back({k, p.lr, loss});
    if (diverged && expected_stop < 0) expected_stop = k;
  }
  ASSERT_TRUE(run.diverged_at().has_value());
  EXPECT_EQ(*run.diverged_at(), expected_stop);
  EXPECT_LT(*run.diverged_at(), 99);
  EXPECT_TRUE(Contains(run.EndReason(), "diverged at step"));

  AnalysisOptions options = spec.analysis;
  options.momentum = 0.9;
  absl::StatusOr<Recommendation> direct = AnalyzeCurve(curve, options);
  absl::StatusOr<Recommendation> from_run = run.Analyze();
  ASSERT_TRUE(direct.ok() && from_run.ok());
  EXPECT_EQ(from_run->min_lr, direct->min_lr);
  EXPECT_EQ(from_run->max_lr, direct->max_lr);
  EXPECT_EQ(from_run->diverged_at, direct->diverged_at);
  EXPECT_GT(from_run->max_lr, 0.0);
}

TEST(ClientRunTest, ANonFiniteLossEndsTheRunAtThatStep) {
  ClientRun run = MakeRun(ClientSpec(30));
  for (int64_t k = 0; k < 5; ++k) run.Add({k, 2.0, 0, 0.0});
  EXPECT_FALSE(run.ended());
  run.Add({5, std::numeric_limits<double>::quiet_NaN(), 0, 0.0});
  EXPECT_TRUE(run.ended());
  EXPECT_EQ(run.diverged_at(), 5);
  EXPECT_TRUE(Contains(run.EndReason(), "loss nan")) << run.EndReason();
}

TEST(ClientRunTest, ThePlansLastStepEndsTheRun) {
  ClientRun run = MakeRun(ClientSpec(3));
  for (int64_t k = 0; k < 3; ++k) run.Add({k, 2.0, 0, 0.0});
  EXPECT_TRUE(run.ended());
  EXPECT_FALSE(run.diverged_at().has_value());
  EXPECT_EQ(run.EndReason(), "the plan's 3 steps are done");
}

TEST(ClientRunTest, ReplayingTheSameStepsGivesTheSameRun) {
  ClientRun a = MakeRun(ClientSpec(100));
  ClientRun b = MakeRun(ClientSpec(100));
  std::vector<ClientStep> steps;
  for (int64_t k = 0; k < 60; ++k) {
    steps.push_back({k, UCurve(a.lrs()[static_cast<size_t>(k)]), k % 3, 0.5});
  }
  for (const ClientStep& s : steps) a.Add(s);
  for (const ClientStep& s : steps) b.Add(s);
  EXPECT_EQ(a.next_step(), b.next_step());
  const ClientRun::Point pa = a.Add({60, 1.0, 0, 0.0});
  const ClientRun::Point pb = b.Add({60, 1.0, 0, 0.0});
  EXPECT_EQ(pa.smoothed, pb.smoothed);
}

TEST(ClientRunTest, CheckNamesTheFieldAndTheRule) {
  const ClientRun run = MakeRun(ClientSpec(10));
  const FieldNamer names = PrefixNames("steps[2].");
  absl::Status out_of_plan = run.Check({10, 1.0, 0, 0.0}, names);
  EXPECT_EQ(out_of_plan.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(std::string(out_of_plan.message()),
                       "steps[2].step must be in [0, 10) (the plan's steps), "
                       "got 10"))
      << out_of_plan;
  EXPECT_FALSE(run.Check({-1, 1.0, 0, 0.0}, names).ok());
  absl::Status nan_time =
      run.Check({0, 1.0, 0, std::numeric_limits<double>::quiet_NaN()}, names);
  EXPECT_TRUE(Contains(std::string(nan_time.message()),
                       "steps[2].elapsed_s must be a finite number >= 0"))
      << nan_time;
  EXPECT_TRUE(
      Contains(std::string(run.Check({0, 1.0, -1, 0.0}, names).message()),
               "steps[2].skipped_updates must be >= 0, got -1"));
  // A diverged loss is data, not an error.
  EXPECT_TRUE(
      run.Check({0, std::numeric_limits<double>::infinity(), 0, 0.0}, names)
          .ok());
}

TEST(ClientRunTest, AnalyzeWithoutStepsIsAnError) {
  const ClientRun run = MakeRun(ClientSpec(10));
  EXPECT_EQ(run.Analyze().status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ClientRunTest, TheSpecRulesOfAClientDrivenTest) {
  const FieldNamer names = PrefixNames("range_test.");
  RangeTestSpec spec = ClientSpec(kMaxClientRangeTestSteps + 1);
  absl::Status too_long = ValidateRangeTest(spec, names);
  EXPECT_TRUE(Contains(std::string(too_long.message()),
                       "range_test.steps must be in [2, 100000] for a "
                       "client-driven test"))
      << too_long;
  spec = ClientSpec();
  spec.metric = RangeMetric::kValLoss;
  spec.eval_every = 5;
  EXPECT_TRUE(Contains(
      std::string(ValidateRangeTest(spec, names).message()),
      "range_test.metric must be train_loss for a client-driven test"));
  spec = ClientSpec();
  spec.eval_every = 5;
  EXPECT_TRUE(
      Contains(std::string(ValidateRangeTest(spec, names).message()),
               "range_test.eval_every must be 0 for a client-driven test"));
  // A worker's test may be longer.
  spec = ClientSpec(kMaxClientRangeTestSteps + 1);
  spec.driver = RangeDriver::kWorker;
  EXPECT_TRUE(ValidateRangeTest(spec, names).ok());
  // A client's seeds never pack.
  JobSpec job;
  spec = ClientSpec();
  spec.seeds = {1, 2, 3};
  EXPECT_FALSE(MayPackSeeds(job, spec));
  // A worker's run is not a client's.
  spec.driver = RangeDriver::kWorker;
  EXPECT_FALSE(ClientRun::Create(spec, spec.analysis, names).ok());
}

TEST(ClientRunTest, DriverNamesRoundTrip) {
  for (RangeDriver d : {RangeDriver::kWorker, RangeDriver::kClient}) {
    absl::StatusOr<RangeDriver> parsed =
        ParseRangeDriver(RangeDriverName(d), PrefixNames(""));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, d);
  }
  absl::StatusOr<RangeDriver> bad =
      ParseRangeDriver("human", PrefixNames("range_test."));
  EXPECT_TRUE(Contains(std::string(bad.status().message()),
                       "range_test.driver must be one of worker, client"));
}

TEST(ClientRunTest, CurveAnalysisOptionsFillTheRunsDefaults) {
  JobSpec job;
  job.optimizer.kind = OptimizerKind::kAdam;
  job.optimizer.beta1 = 0.8;
  RangeTestSpec spec;
  AnalysisOptions o = CurveAnalysisOptions(job, spec, 469);
  EXPECT_EQ(o.iters_per_epoch, 469);
  EXPECT_EQ(o.momentum, 0.8);
  spec.analysis.iters_per_epoch = 10;
  spec.analysis.momentum = 0.0;
  o = CurveAnalysisOptions(job, spec, 469);
  EXPECT_EQ(o.iters_per_epoch, 10);
  EXPECT_EQ(o.momentum, 0.0);
  // Adam's batch scale reads one update's samples: 64 x 4 accumulated.
  EXPECT_TRUE(o.adam_family);
  job.batch_size = 64;
  job.grad_accumulation = 4;
  EXPECT_EQ(CurveAnalysisOptions(job, spec, 469).batch_size, 256);
  job.optimizer.kind = OptimizerKind::kSgd;
  EXPECT_FALSE(CurveAnalysisOptions(job, spec, 469).adam_family);
}

}  // namespace
}  // namespace lrtune
