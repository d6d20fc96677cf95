// The engine's training options end to end, through its torch-free API:
// gradient accumulation, autocast and loss scaling, cycle-aware early
// stopping and snapshot ensembles, each on real data (Fashion-MNIST, the
// synthetic sets) and each against what it must equal.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "worker/engine.h"

namespace lrtune::engine {
namespace {

JobSpec FashionJob(int64_t subset) {
  JobSpec job;
  job.model.hidden = {64};
  job.data.name = "fashion-mnist";
  job.data.subset = subset;
  job.data.validation_subset = 1000;
  job.batch_size = 128;
  job.seed = 3;
  job.device.threads = 1;
  job.optimizer.momentum = 0.9;
  return job;
}

RangeTestSpec ShortRamp(int64_t steps) {
  RangeTestSpec spec;
  spec.start_lr = 1e-4;
  spec.end_lr = 0.3;  // short of divergence: every run has every point
  spec.steps = steps;
  spec.analysis.smoothing_beta = 0.9;
  return spec;
}

std::vector<StepPoint> Points(const JobSpec& job, const RangeTestSpec& spec,
                              RangeTestResult* result = nullptr) {
  std::vector<StepPoint> points;
  Callbacks cb;
  cb.on_point = [&](const StepPoint& p) { points.push_back(p); };
  absl::StatusOr<RangeTestResult> r = RunRangeTest(job, spec, cb);
  EXPECT_TRUE(r.ok()) << r.status();
  if (result != nullptr && r.ok()) *result = *std::move(r);
  return points;
}

// 4 batches of 32 accumulated into one update see the samples one batch of
// 128 sees, and average their gradients: the same curve, within float
// tolerance (the sums run in another order), with the same LR per update.
TEST(GradAccumulationTest, FourBatchesOf32AreOneBatchOf128) {
  JobSpec big = FashionJob(4096);
  const RangeTestSpec spec = ShortRamp(60);
  const std::vector<StepPoint> a = Points(big, spec);
  JobSpec small = big;
  small.batch_size = 32;
  small.grad_accumulation = 4;
  const std::vector<StepPoint> b = Points(small, spec);
  ASSERT_EQ(a.size(), b.size());
  ASSERT_EQ(a.size(), 60u);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].lr, b[i].lr) << i;
    EXPECT_NEAR(a[i].loss, b[i].loss, 1e-4 * std::abs(a[i].loss)) << i;
  }
  // Not the same as 4 updates of 32: that run takes 4x the steps an epoch.
  JobSpec plain32 = big;
  plain32.batch_size = 32;
  const std::vector<StepPoint> c = Points(plain32, spec);
  double differ = 0;
  for (size_t i = 10; i < c.size(); ++i)
    differ += std::abs(c[i].loss - a[i].loss);
  EXPECT_GT(differ, 0.1);
  EXPECT_EQ(StepsPerEpoch(small), StepsPerEpoch(big));
}

TEST(GradAccumulationTest, AnUpdateLargerThanTheDataIsRefused) {
  JobSpec job = FashionJob(256);
  job.batch_size = 128;
  job.grad_accumulation = 4;
  absl::StatusOr<RangeTestResult> r = RunRangeTest(job, ShortRamp(10), {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("grad_accumulation (4) = 512 samples"),
            std::string::npos)
      << r.status();
}

// A loss scale so large that loss x scale overflows float32: the first
// updates are skipped (and reported on the next point), the LR does not
// advance while they are, and once the scale has halved enough the run is
// the unscaled run (the scale divides out of the gradients again).
TEST(LossScalingTest, SkippedUpdatesAreReportedAndHoldTheLr) {
  JobSpec job = FashionJob(2048);
  const RangeTestSpec spec = ShortRamp(40);
  const std::vector<StepPoint> plain = Points(job, spec);
  // Past float32's largest value (3.4e38): the scaled gradients are inf
  // until the scale has halved twice.
  job.device.loss_scale = 1e39;
  RangeTestResult result;
  const std::vector<StepPoint> scaled = Points(job, spec, &result);
  ASSERT_EQ(scaled.size(), plain.size());
  EXPECT_EQ(scaled[0].skipped_updates, 2);
  EXPECT_EQ(scaled[0].step, 0);
  EXPECT_EQ(scaled[0].lr, spec.start_lr);  // step 0's LR, after the skips
  int64_t skipped = 0;
  for (const StepPoint& p : scaled) skipped += p.skipped_updates;
  EXPECT_EQ(skipped, result.skipped_updates);
  for (size_t i = 0; i < scaled.size(); ++i) {
    EXPECT_EQ(scaled[i].lr, plain[i].lr) << i;
    EXPECT_NEAR(scaled[i].loss, plain[i].loss, 1e-4 * plain[i].loss) << i;
  }
  // Loss scaling never packs seeds: one member's overflow would skip all.
  RangeTestSpec seeds = spec;
  seeds.seeds = {1, 2};
  EXPECT_FALSE(MayPackSeeds(job, seeds));
}

TEST(LossScalingTest, Fp16NeedsCuda) {
  JobSpec job = FashionJob(256);
  job.device.device = "cpu";
  job.device.precision = Precision::kFp16;
  absl::StatusOr<RangeTestResult> r = RunRangeTest(job, ShortRamp(10), {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("device.precision fp16 needs a CUDA"),
            std::string::npos)
      << r.status();
}

// bf16 autocast runs on the CPU too: the same curve to within bf16's
// precision, and not bit for bit (autocast is on).
TEST(AutocastTest, Bf16OnTheCpuFollowsTheFp32Curve) {
  JobSpec job = FashionJob(2048);
  const RangeTestSpec spec = ShortRamp(30);
  const std::vector<StepPoint> fp32 = Points(job, spec);
  job.device.precision = Precision::kBf16;
  const std::vector<StepPoint> bf16 = Points(job, spec);
  ASSERT_EQ(fp32.size(), bf16.size());
  double max_rel = 0;
  for (size_t i = 0; i < fp32.size(); ++i) {
    max_rel =
        std::max(max_rel, std::abs(bf16[i].loss - fp32[i].loss) / fp32[i].loss);
  }
  EXPECT_GT(max_rel, 0.0);
  EXPECT_LT(max_rel, 0.05);
}

// Smith's original test on Fashion-MNIST: accuracy (and validation loss)
// against the LR, evaluated every 5 steps on 1000 held-out images, read by
// the same rules into CLR bounds near the training loss's.
TEST(ValidationMetricTest, GivesBoundsOnFashionMnist) {
  JobSpec job = FashionJob(8192);
  RangeTestSpec spec;
  spec.start_lr = 1e-5;
  spec.end_lr = 10;
  spec.steps = 300;
  spec.eval_every = 5;
  spec.eval_samples = 1000;
  absl::StatusOr<RangeTestResult> loss = RunRangeTest(job, spec, {});
  ASSERT_TRUE(loss.ok()) << loss.status();
  for (RangeMetric metric :
       {RangeMetric::kValAccuracy, RangeMetric::kValLoss}) {
    spec.metric = metric;
    absl::StatusOr<RangeTestResult> r = RunRangeTest(job, spec, {});
    ASSERT_TRUE(r.ok()) << r.status();
    const Recommendation& rec = r->recommendation;
    SCOPED_TRACE(RangeMetricName(metric));
    EXPECT_GT(rec.min_lr, spec.start_lr);
    EXPECT_GE(rec.max_lr / rec.min_lr, 3.0 - 1e-9);
    EXPECT_LE(rec.max_lr / rec.min_lr, 10.0 + 1e-9);
    EXPECT_LE(rec.points_used, 60);  // one point per evaluation
    EXPECT_GE(rec.points_used, 20);
    EXPECT_LT(std::abs(std::log10(rec.max_lr / loss->recommendation.max_lr)),
              0.5);
  }
}

TrainSpec Triangular(int64_t step_size_up, int64_t epochs) {
  TrainSpec spec;
  spec.schedule.kind = ScheduleKind::kTriangular;
  spec.schedule.base_lr = 0.01;
  spec.schedule.max_lr = 0.1;
  spec.schedule.step_size_up = step_size_up;
  spec.epochs = epochs;
  return spec;
}

// 512 training images and a wide MLP overfit within a few cycles: the
// validation loss at the cycles' ends stops falling, early stopping ends
// the run at a cycle end (not an epoch end: cycles of 2 x 5 updates, epochs
// of 4) after `patience` cycles without an improvement, and the run ends
// with the best cycle end's weights, measured again.
TEST(EarlyStoppingTest, EndsATriangularRunAtACycleEndWithTheBestWeights) {
  JobSpec job = FashionJob(512);
  job.model.hidden = {256, 256};
  TrainSpec spec = Triangular(/*step_size_up=*/5, /*epochs=*/60);
  spec.early_stopping.patience = 3;
  std::vector<Evaluation> evals;
  Callbacks cb;
  cb.on_evaluation = [&](const Evaluation& e) { evals.push_back(e); };
  absl::StatusOr<TrainResult> r = RunTraining(job, spec, cb);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->stopped_early);
  EXPECT_LT(r->steps, 60 * 4);
  EXPECT_EQ(r->steps % 10, 0) << "stopped at " << r->steps;
  ASSERT_TRUE(r->early_stopping_best.has_value());
  const Evaluation& best = *r->early_stopping_best;
  EXPECT_EQ(best.step % 10, 0);
  EXPECT_EQ(r->steps - best.step, 3 * 10);  // three cycles without a gain
  // The best of the judged (cycle-end) evaluations.
  for (const Evaluation& e : evals) {
    if (e.step % 10 == 0) {
      EXPECT_GE(e.val_loss, best.val_loss) << e.step;
    }
  }
  // Evaluated at cycle ends that are not epoch ends, as well as at epochs.
  EXPECT_TRUE(std::any_of(evals.begin(), evals.end(), [](const Evaluation& e) {
    return e.step % 10 == 0 && e.step % 4 != 0;
  }));
  // The final model is the best one, measured again.
  EXPECT_TRUE(r->restored_best);
  EXPECT_EQ(r->final_eval.step, best.step);
  EXPECT_NEAR(r->final_eval.val_loss, best.val_loss, 1e-9);
  EXPECT_NEAR(r->final_eval.val_accuracy, best.val_accuracy, 1e-9);
  EXPECT_GT(evals.back().val_loss, best.val_loss);  // where it stopped

  // Without restore_best the run ends with its last weights.
  spec.early_stopping.restore_best = false;
  absl::StatusOr<TrainResult> last = RunTraining(job, spec, {});
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_FALSE(last->restored_best);
  EXPECT_EQ(last->steps, r->steps);
  EXPECT_EQ(last->final_eval.step, r->steps);
}

// A schedule without cycles is judged at every evaluation (epochs here).
TEST(EarlyStoppingTest, WithoutCyclesEveryEvaluationIsJudged) {
  JobSpec job = FashionJob(512);
  job.model.hidden = {256, 256};
  TrainSpec spec;
  spec.schedule.kind = ScheduleKind::kConstant;
  spec.schedule.base_lr = 0.1;
  spec.epochs = 80;
  spec.early_stopping.patience = 2;
  spec.early_stopping.metric = StopMetric::kValAccuracy;
  spec.early_stopping.min_delta = 0.002;
  absl::StatusOr<TrainResult> r = RunTraining(job, spec, {});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->stopped_early);
  EXPECT_EQ(r->steps % 4, 0);
  EXPECT_EQ(r->steps - r->early_stopping_best->step, 2 * 4);
}

// Pruned search: the run evaluates at each rung step (not an epoch end
// here), asks, and ends there when told to.
TEST(RungTest, EvaluatesAtEachRungAndStopsWhenTold) {
  JobSpec job = FashionJob(2048);  // 16 updates an epoch
  TrainSpec spec;
  spec.schedule.kind = ScheduleKind::kCosine;
  spec.schedule.t_max = 48;
  spec.steps = 48;
  spec.rung_steps = {5, 17, 48};  // the last is the budget: never a rung
  std::vector<int64_t> asked;
  std::vector<int64_t> evaluated;
  Callbacks cb;
  cb.on_evaluation = [&](const Evaluation& e) { evaluated.push_back(e.step); };
  cb.on_rung = [&](const Evaluation& e) {
    asked.push_back(e.step);
    return true;
  };
  absl::StatusOr<TrainResult> whole = RunTraining(job, spec, cb);
  ASSERT_TRUE(whole.ok()) << whole.status();
  EXPECT_EQ(asked, (std::vector<int64_t>{5, 17}));
  EXPECT_EQ(evaluated, (std::vector<int64_t>{5, 16, 17, 32, 48}));
  EXPECT_EQ(whole->pruned_at_step, -1);
  EXPECT_EQ(whole->steps, 48);

  asked.clear();
  cb.on_rung = [&](const Evaluation& e) {
    asked.push_back(e.step);
    return e.step < 17;  // pruned at the second rung
  };
  absl::StatusOr<TrainResult> pruned = RunTraining(job, spec, cb);
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  EXPECT_EQ(asked, (std::vector<int64_t>{5, 17}));
  EXPECT_EQ(pruned->pruned_at_step, 17);
  EXPECT_EQ(pruned->steps, 17);
  EXPECT_EQ(pruned->final_eval.step, 17);

  spec.rung_steps = {17, 5};
  EXPECT_NE(RunTraining(job, spec, {})
                .status()
                .message()
                .find("train.rung_steps[1] must be > 17"),
            std::string::npos);
}

TrainSpec Sgdr(int64_t t0, int64_t epochs) {
  TrainSpec spec;
  spec.schedule.kind = ScheduleKind::kSgdr;
  spec.schedule.base_lr = 0.1;
  spec.schedule.t0 = t0;
  spec.epochs = epochs;
  return spec;
}

// SGDR snapshots: one per restart, the last k averaged; the files are
// written where asked.
TEST(SnapshotEnsembleTest, KeepsEveryCycleEndAndAveragesTheLastK) {
  namespace fs = std::filesystem;
  JobSpec job = FashionJob(2048);  // 16 updates an epoch
  TrainSpec spec = Sgdr(/*t0=*/32, /*epochs=*/8);
  spec.snapshot_ensemble = 3;
  spec.snapshot_dir =
      testing::TempDir() + "/snapshots_" + std::to_string(::getpid());
  absl::StatusOr<TrainResult> r = RunTraining(job, spec, {});
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->snapshots.size(), 4u);  // 128 updates, a restart every 32
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(r->snapshots[i].step, 32 * static_cast<int64_t>(i + 1));
    EXPECT_TRUE(fs::exists(r->snapshots[i].path)) << r->snapshots[i].path;
  }
  EXPECT_EQ(r->ensemble_size, 3);
  EXPECT_GT(r->ensemble_eval.val_accuracy, 0.5);
  EXPECT_EQ(r->snapshots.back().eval.val_loss, r->final_eval.val_loss);
  // The ensemble is not any one member: its loss differs from each.
  for (size_t i = 1; i < 4; ++i) {
    EXPECT_NE(r->ensemble_eval.val_loss, r->snapshots[i].eval.val_loss);
  }
  fs::remove_all(spec.snapshot_dir);

  TrainSpec cosine = spec;
  cosine.schedule.kind = ScheduleKind::kCosine;
  cosine.schedule.t_max = 128;
  absl::StatusOr<TrainResult> none = RunTraining(job, cosine, {});
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("snapshot_ensemble needs a schedule"),
            std::string::npos)
      << none.status();
}

// Stopped between cycles and resumed from its checkpoint, a run with early
// stopping and snapshots ends as the uninterrupted one does: the count, the
// best weights and the snapshots travel in the checkpoint.
TEST(EarlyStoppingTest, ResumesExactlyFromACheckpoint) {
  JobSpec job = FashionJob(512);
  job.model.hidden = {256, 256};
  TrainSpec spec = Triangular(/*step_size_up=*/5, /*epochs=*/40);
  spec.early_stopping.patience = 3;
  spec.snapshot_ensemble = 2;
  absl::StatusOr<TrainResult> whole = RunTraining(job, spec, {});
  ASSERT_TRUE(whole.ok()) << whole.status();
  ASSERT_TRUE(whole->stopped_early);

  spec.checkpoint_path =
      testing::TempDir() + "/early_stop_ckpt_" + std::to_string(::getpid());
  std::remove(spec.checkpoint_path.c_str());
  CancellationToken cancel;
  Callbacks cb;
  // Past the first cycles (a best and snapshots exist), before the stop.
  const int64_t cut = whole->early_stopping_best->step + 5;
  cb.on_point = [&](const StepPoint& p) {
    if (p.step == cut) cancel.Cancel();
  };
  absl::StatusOr<TrainResult> first = RunTraining(job, spec, cb, &cancel);
  ASSERT_EQ(first.status().code(), absl::StatusCode::kCancelled);
  absl::StatusOr<TrainResult> resumed = RunTraining(job, spec, {});
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_GT(resumed->resumed_from, 0);
  EXPECT_EQ(resumed->steps, whole->steps);
  EXPECT_EQ(resumed->early_stopping_best->step,
            whole->early_stopping_best->step);
  EXPECT_EQ(resumed->final_eval.val_loss, whole->final_eval.val_loss);
  EXPECT_EQ(resumed->snapshots.size(), whole->snapshots.size());
  EXPECT_EQ(resumed->ensemble_eval.val_loss, whole->ensemble_eval.val_loss);
  std::remove(spec.checkpoint_path.c_str());
  std::remove((spec.checkpoint_path + kPreviousCheckpointSuffix).c_str());
}

}  // namespace
}  // namespace lrtune::engine
