#include "worker/proto_convert.h"

#include <cmath>
#include <limits>
#include <string>

#include "gtest/gtest.h"

namespace lrtune::worker {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

void ExpectInvalid(const absl::Status& status, const std::string& field) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_NE(std::string(status.message()).find(field), std::string::npos)
      << "message '" << status.message() << "' does not name " << field;
}

TEST(RunSpecFromProto, EmptyGivesEngineDefaults) {
  auto job = RunSpecFromProto(v1::RunSpec{});
  ASSERT_TRUE(job.ok()) << job.status();
  engine::JobSpec def;
  EXPECT_EQ(job->model.kind, engine::ModelKind::kMlp);
  EXPECT_EQ(job->model.hidden, def.model.hidden);
  EXPECT_EQ(job->data.name, "fashion-mnist");
  EXPECT_EQ(job->data.validation_fraction, def.data.validation_fraction);
  EXPECT_EQ(job->data.synthetic_samples, def.data.synthetic_samples);
  EXPECT_EQ(job->optimizer.kind, engine::OptimizerKind::kSgd);
  EXPECT_EQ(job->optimizer.beta2, def.optimizer.beta2);
  EXPECT_EQ(job->optimizer.eps, def.optimizer.eps);
  EXPECT_EQ(job->loss, engine::LossKind::kCrossEntropy);
  EXPECT_EQ(job->batch_size, 128);
  EXPECT_EQ(job->device.device, "auto");
}

TEST(RunSpecRoundTrip, EveryField) {
  engine::JobSpec job;
  job.model.kind = engine::ModelKind::kCnn;
  job.model.hidden = {7, 9};
  job.data.name = "spirals";
  job.data.subset = 100;
  job.data.validation_subset = 50;
  job.data.validation_fraction = 0.3;
  job.data.split_seed = 5;
  job.data.synthetic_samples = 300;
  job.data.synthetic_classes = 4;
  job.data.synthetic_features = 3;
  job.optimizer.kind = engine::OptimizerKind::kAdamW;
  job.optimizer.momentum = 0.5;
  job.optimizer.weight_decay = 0.01;
  job.optimizer.beta1 = 0.8;
  job.optimizer.beta2 = 0.99;
  job.optimizer.eps = 1e-6;
  job.optimizer.alpha = 0.9;
  job.loss = engine::LossKind::kMse;
  job.batch_size = 32;
  job.seed = 42;
  job.device.device = "cpu";
  job.device.threads = 2;
  job.device.precision = Precision::kBf16;
  job.grad_accumulation = 4;
  job.device.loss_scale = 1024;
  auto back = RunSpecFromProto(RunSpecToProto(job));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->model.kind, job.model.kind);
  EXPECT_EQ(back->model.hidden, job.model.hidden);
  EXPECT_EQ(back->data.name, "spirals");
  EXPECT_EQ(back->data.subset, 100);
  EXPECT_EQ(back->data.validation_subset, 50);
  EXPECT_EQ(back->data.validation_fraction, 0.3);
  EXPECT_EQ(back->data.split_seed, 5u);
  EXPECT_EQ(back->data.synthetic_samples, 300);
  EXPECT_EQ(back->data.synthetic_classes, 4);
  EXPECT_EQ(back->data.synthetic_features, 3);
  EXPECT_EQ(back->optimizer.kind, engine::OptimizerKind::kAdamW);
  EXPECT_EQ(back->optimizer.momentum, 0.5);
  EXPECT_EQ(back->optimizer.weight_decay, 0.01);
  EXPECT_EQ(back->optimizer.beta1, 0.8);
  EXPECT_EQ(back->optimizer.beta2, 0.99);
  EXPECT_EQ(back->optimizer.eps, 1e-6);
  EXPECT_EQ(back->optimizer.alpha, 0.9);
  EXPECT_EQ(back->loss, engine::LossKind::kMse);
  EXPECT_EQ(back->batch_size, 32);
  EXPECT_EQ(back->seed, 42u);
  EXPECT_EQ(back->device.device, "cpu");
  EXPECT_EQ(back->device.threads, 2);
  EXPECT_EQ(back->device.precision, Precision::kBf16);
  EXPECT_EQ(back->grad_accumulation, 4);
  EXPECT_EQ(back->device.loss_scale, 1024);
  EXPECT_FALSE(back->device.cuda_graph);
}

TEST(RunSpecRoundTrip, InlineData) {
  engine::JobSpec job;
  job.data.name = "inline";
  job.data.x_shape = {10, 2};
  job.data.x.assign(20, 0.5f);
  job.data.y_labels = {0, 1, 0, 1, 0, 1, 0, 1, 0, 2};
  auto back = RunSpecFromProto(RunSpecToProto(job));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->data.name, "inline");
  EXPECT_EQ(back->data.x_shape, job.data.x_shape);
  EXPECT_EQ(back->data.x, job.data.x);
  EXPECT_EQ(back->data.y_labels, job.data.y_labels);
  EXPECT_EQ(back->data.y_target_width, 1);
}

TEST(RunSpecRoundTrip, DataSetByReference) {
  engine::JobSpec job;
  job.data.name = "mine";
  DatasetDescription& d = job.data.description.emplace();
  d.name = "mine";
  d.sample_shape = {3, 32, 32};
  d.train_samples = 50000;
  d.validation_samples = 10000;
  d.classes = 10;
  d.bytes = 737280128;
  auto back = RunSpecFromProto(RunSpecToProto(job));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->data.name, "mine");
  ASSERT_TRUE(back->data.description.has_value());
  EXPECT_EQ(*back->data.description, d);
  // The description obeys core's rules, named by their request path.
  v1::RunSpec run = RunSpecToProto(job);
  run.mutable_data()->mutable_description()->set_classes(1);
  EXPECT_NE(RunSpecFromProto(run).status().message().find(
                "run.data.description.classes must be 0 (regression) or in"),
            std::string::npos);
  absl::StatusOr<DatasetDescription> alone = DatasetDescriptionFromProto(
      RunSpecToProto(job).data().description(), PrefixNames("d."));
  ASSERT_TRUE(alone.ok()) << alone.status();
  EXPECT_EQ(*alone, d);
}

TEST(RunSpecFromProto, BadValuesNameTheField) {
  v1::RunSpec run;
  run.set_batch_size(0);
  ExpectInvalid(RunSpecFromProto(run).status(), "run.batch_size");

  run = v1::RunSpec{};
  run.mutable_model()->add_hidden(0);
  ExpectInvalid(RunSpecFromProto(run).status(), "run.model.hidden[0]");

  run = v1::RunSpec{};
  run.mutable_model()->set_kind(v1::MODEL_KIND_TORCHSCRIPT);
  ExpectInvalid(RunSpecFromProto(run).status(), "run.model.torchscript");

  run = v1::RunSpec{};
  run.mutable_data()->set_validation_fraction(0.95);
  ExpectInvalid(RunSpecFromProto(run).status(), "run.data.validation_fraction");

  run = v1::RunSpec{};
  run.mutable_data()->set_synthetic_samples(3);
  ExpectInvalid(RunSpecFromProto(run).status(), "run.data.synthetic_samples");

  run = v1::RunSpec{};
  run.mutable_optimizer()->set_beta1(1.0);
  ExpectInvalid(RunSpecFromProto(run).status(), "run.optimizer.beta1");

  run = v1::RunSpec{};
  run.mutable_optimizer()->set_nesterov(true);
  ExpectInvalid(RunSpecFromProto(run).status(), "run.optimizer.nesterov");

  run = v1::RunSpec{};
  run.mutable_device()->set_threads(300);
  ExpectInvalid(RunSpecFromProto(run).status(), "run.device.threads");

  run = v1::RunSpec{};
  run.mutable_data()->mutable_inline_data()->add_x_shape(10);
  ExpectInvalid(RunSpecFromProto(run).status(), "run.data.inline_data.x_shape");

  run = v1::RunSpec{};
  v1::InlineData& in = *run.mutable_data()->mutable_inline_data();
  in.add_x_shape(10);
  in.add_x_shape(1);
  for (int i = 0; i < 9; ++i) in.add_x(1.0f);
  ExpectInvalid(RunSpecFromProto(run).status(), "run.data.inline_data.x");
}

TEST(RangeTestSpecRoundTrip, EveryField) {
  engine::RangeTestSpec s;
  s.start_lr = 1e-5;
  s.end_lr = 3.0;
  s.steps = 60;
  s.shape = RampShape::kLinear;
  s.analysis.smoothing_beta = 0.9;
  s.analysis.divergence_factor = 5.0;
  s.analysis.skip_head_fraction = 0.2;
  s.analysis.iters_per_epoch = 17;
  s.analysis.stepsize_k = 6;
  s.seeds = {3, 1};
  s.eval_every = 10;
  s.eval_samples = 64;
  auto back = RangeTestSpecFromProto(RangeTestSpecToProto(s));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->start_lr, 1e-5);
  EXPECT_EQ(back->end_lr, 3.0);
  EXPECT_EQ(back->steps, 60);
  EXPECT_EQ(back->shape, RampShape::kLinear);
  EXPECT_EQ(back->analysis.smoothing_beta, 0.9);
  EXPECT_EQ(back->analysis.divergence_factor, 5.0);
  EXPECT_EQ(back->analysis.skip_head_fraction, 0.2);
  EXPECT_EQ(back->analysis.iters_per_epoch, 17);
  EXPECT_EQ(back->analysis.stepsize_k, 6);
  EXPECT_EQ(back->seeds, s.seeds);
  EXPECT_EQ(back->eval_every, 10);
  EXPECT_EQ(back->eval_samples, 64);
}

TEST(RangeTestSpecFromProto, DefaultsAndBadValues) {
  auto s = RangeTestSpecFromProto(v1::RangeTestSpec{});
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->start_lr, 1e-7);
  EXPECT_EQ(s->end_lr, 10.0);
  EXPECT_EQ(s->steps, 100);
  EXPECT_EQ(s->analysis.stepsize_k, 4);

  v1::RangeTestSpec p;
  p.set_steps(1);
  ExpectInvalid(RangeTestSpecFromProto(p).status(), "range_test.steps");
  p = v1::RangeTestSpec{};
  p.set_end_lr(1e-8);
  ExpectInvalid(RangeTestSpecFromProto(p).status(), "range_test.end_lr");
  p = v1::RangeTestSpec{};
  p.add_seeds(1);
  p.add_seeds(1);
  ExpectInvalid(RangeTestSpecFromProto(p).status(), "range_test.seeds");
  p = v1::RangeTestSpec{};
  p.mutable_analysis()->set_stepsize_k(11);
  ExpectInvalid(RangeTestSpecFromProto(p).status(),
                "range_test.analysis.stepsize_k");
  p = v1::RangeTestSpec{};
  p.mutable_analysis()->set_divergence_factor(1.0);
  ExpectInvalid(RangeTestSpecFromProto(p).status(),
                "range_test.analysis.divergence_factor");
  p = v1::RangeTestSpec{};
  p.set_eval_samples(0);
  ExpectInvalid(RangeTestSpecFromProto(p).status(), "range_test.eval_samples");
}

TEST(ScheduleSpecRoundTrip, EveryFieldAndChildren) {
  ScheduleSpec warm;
  warm.kind = ScheduleKind::kLinear;
  warm.base_lr = 0.2;
  warm.start_factor = 0.1;
  warm.end_factor = 0.9;
  warm.total_iters = 7;
  warm.sample_every = 2;
  ScheduleSpec main = ScheduleSpec::OneCycle(0.5, 100);
  main.pct_start = 0.25;
  main.anneal = Anneal::kLinear;
  main.div_factor = 10;
  main.final_div_factor = 100;
  main.three_phase = true;
  main.base_momentum = 0.8;
  main.max_momentum = 0.9;
  ScheduleSpec seq;
  seq.kind = ScheduleKind::kSequential;
  seq.children = {warm, main};
  seq.boundaries = {7};
  auto back = ScheduleSpecFromProto(ScheduleSpecToProto(seq), "schedule");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->kind, ScheduleKind::kSequential);
  EXPECT_EQ(back->boundaries, seq.boundaries);
  ASSERT_EQ(back->children.size(), 2u);
  const ScheduleSpec& w = back->children[0];
  EXPECT_EQ(w.kind, ScheduleKind::kLinear);
  EXPECT_EQ(w.base_lr, 0.2);
  EXPECT_EQ(w.start_factor, 0.1);
  EXPECT_EQ(w.end_factor, 0.9);
  EXPECT_EQ(w.total_iters, 7);
  EXPECT_EQ(w.sample_every, 2);
  EXPECT_TRUE(std::isnan(w.max_lr));
  const ScheduleSpec& m = back->children[1];
  EXPECT_EQ(m.kind, ScheduleKind::kOneCycle);
  EXPECT_EQ(m.max_lr, 0.5);
  EXPECT_EQ(m.total_steps, 100);
  EXPECT_EQ(m.pct_start, 0.25);
  EXPECT_EQ(m.anneal, Anneal::kLinear);
  EXPECT_EQ(m.div_factor, 10);
  EXPECT_EQ(m.final_div_factor, 100);
  EXPECT_TRUE(m.three_phase);
  EXPECT_EQ(m.base_momentum, 0.8);
  EXPECT_EQ(m.max_momentum, 0.9);

  ScheduleSpec sgdr;
  sgdr.kind = ScheduleKind::kSgdr;
  sgdr.t0 = 10;
  sgdr.t_mult = 2;
  sgdr.eta_min = 0.001;
  auto s2 = ScheduleSpecFromProto(ScheduleSpecToProto(sgdr), "schedule");
  ASSERT_TRUE(s2.ok()) << s2.status();
  EXPECT_EQ(s2->t0, 10);
  EXPECT_EQ(s2->t_mult, 2);
  EXPECT_EQ(s2->eta_min, 0.001);
  EXPECT_TRUE(std::isnan(s2->gamma));
}

TEST(ScheduleSpecFromProto, UnsetOptionalsTakeKindDefaults) {
  v1::ScheduleSpec p;
  p.set_kind(v1::SCHEDULE_KIND_COSINE);
  p.set_total_steps(50);
  auto s = ScheduleSpecFromProto(p, "schedule");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->t_max, 50);  // cosine: t_max follows total_steps
  EXPECT_EQ(s->base_lr, 0.1);
  EXPECT_TRUE(std::isnan(s->gamma));
  EXPECT_TRUE(std::isnan(s->base_momentum));
}

TEST(ScheduleSpecFromProto, BadValuesNameTheField) {
  v1::ScheduleSpec p;
  ExpectInvalid(ScheduleSpecFromProto(p, "train.schedule").status(),
                "train.schedule.kind");
  p.set_kind(v1::SCHEDULE_KIND_SGDR);
  ExpectInvalid(ScheduleSpecFromProto(p, "train.schedule").status(),
                "train.schedule.t0");
  p.set_kind(static_cast<v1::ScheduleKind>(99));
  ExpectInvalid(ScheduleSpecFromProto(p, "schedule").status(), "schedule.kind");
  v1::ScheduleSpec seq;
  seq.set_kind(v1::SCHEDULE_KIND_SEQUENTIAL);
  seq.add_children();  // kind unset
  ExpectInvalid(ScheduleSpecFromProto(seq, "schedule").status(),
                "schedule.children[0].kind");
}

TEST(TrainSpecRoundTrip, EveryField) {
  engine::TrainSpec s;
  s.schedule = ScheduleSpec::OneCycle(0.3, 40);
  s.steps = 40;
  s.point_every = 4;
  s.checkpoint_every = 10;
  s.eval_every_steps = 7;
  s.early_stopping.patience = 3;
  s.early_stopping.min_delta = 0.01;
  s.early_stopping.metric = StopMetric::kValAccuracy;
  s.early_stopping.restore_best = false;
  s.snapshot_ensemble = 5;
  s.snapshot_dir = "/tmp/snapshots";  // worker configuration: not sent
  auto back = TrainSpecFromProto(TrainSpecToProto(s));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->eval_every_steps, 7);
  EXPECT_EQ(back->early_stopping.patience, 3);
  EXPECT_EQ(back->early_stopping.min_delta, 0.01);
  EXPECT_EQ(back->early_stopping.metric, StopMetric::kValAccuracy);
  EXPECT_FALSE(back->early_stopping.restore_best);
  EXPECT_EQ(back->snapshot_ensemble, 5);
  EXPECT_TRUE(back->snapshot_dir.empty());
  EXPECT_EQ(back->schedule.kind, ScheduleKind::kOneCycle);
  EXPECT_EQ(back->schedule.max_lr, 0.3);
  EXPECT_EQ(back->steps, 40);
  EXPECT_EQ(back->epochs, 0);
  EXPECT_EQ(back->point_every, 4);
  EXPECT_EQ(back->checkpoint_every, 10);
  EXPECT_TRUE(back->checkpoint_path.empty());

  s.steps = 0;
  s.epochs = 3;
  back = TrainSpecFromProto(TrainSpecToProto(s));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->epochs, 3);
  EXPECT_EQ(back->steps, 0);
}

TEST(TrainSpecFromProto, BadValuesNameTheField) {
  v1::TrainSpec p;
  p.mutable_schedule()->set_kind(v1::SCHEDULE_KIND_CONSTANT);
  ExpectInvalid(TrainSpecFromProto(p).status(), "train.budget");
  p.set_epochs(0);
  ExpectInvalid(TrainSpecFromProto(p).status(), "train.epochs");
  p.set_steps(10);
  p.set_point_every(0);
  ExpectInvalid(TrainSpecFromProto(p).status(), "train.point_every");
  p.set_point_every(1);
  p.set_eval_every_steps(-5);
  ExpectInvalid(TrainSpecFromProto(p).status(), "train.eval_every_steps");
  p.set_eval_every_steps(0);
  p.mutable_early_stopping()->set_patience(-1);
  ExpectInvalid(TrainSpecFromProto(p).status(),
                "train.early_stopping.patience");
  p.mutable_early_stopping()->set_patience(2);
  p.mutable_early_stopping()->set_metric(v1::RANGE_METRIC_TRAIN_LOSS);
  ExpectInvalid(TrainSpecFromProto(p).status(), "train.early_stopping.metric");
  p.mutable_early_stopping()->set_metric(v1::RANGE_METRIC_VAL_ACCURACY);
  p.mutable_early_stopping()->set_min_delta(-0.1);
  ExpectInvalid(TrainSpecFromProto(p).status(),
                "train.early_stopping.min_delta");
  p.clear_early_stopping();
  p.set_snapshot_ensemble(65);
  ExpectInvalid(TrainSpecFromProto(p).status(), "train.snapshot_ensemble");
  p.set_snapshot_ensemble(0);
  p.set_checkpoint_every(-1);
  ExpectInvalid(TrainSpecFromProto(p).status(), "train.checkpoint_every");
  p.set_checkpoint_every(0);
  EXPECT_TRUE(TrainSpecFromProto(p).ok());
}

TEST(ResultsToProto, CurvePointMomentumAndSeedIndex) {
  engine::StepPoint pt;
  pt.seed_index = 0;
  pt.step = 12;
  pt.lr = 0.01;
  pt.loss = kNaN;
  pt.smoothed = 1.5;
  pt.elapsed_s = 0.25;
  v1::CurvePoint p = CurvePointToProto(pt, 3);
  EXPECT_EQ(p.seed_index(), 3);
  EXPECT_EQ(p.step(), 12);
  EXPECT_EQ(p.lr(), 0.01);
  EXPECT_FALSE(p.has_momentum());
  EXPECT_TRUE(std::isnan(p.loss()));  // divergence stays visible
  EXPECT_EQ(p.smoothed(), 1.5);
  EXPECT_EQ(p.elapsed_s(), 0.25);
  pt.momentum = 0.9;
  EXPECT_EQ(CurvePointToProto(pt, 0).momentum(), 0.9);
}

TEST(ResultsToProto, EvaluationNaNIsUnset) {
  engine::Evaluation e;
  e.step = 100;
  e.epoch = 2;
  e.lr = 0.05;
  e.val_loss = 0.7;
  v1::Evaluation p = EvaluationToProto(e, 1);
  EXPECT_FALSE(p.has_train_loss());
  EXPECT_FALSE(p.has_val_accuracy());
  EXPECT_EQ(p.seed_index(), 1);
  EXPECT_EQ(p.epoch(), 2);
  e.train_loss = 0.8;
  e.val_accuracy = 0.75;
  p = EvaluationToProto(e, 0);
  EXPECT_EQ(p.train_loss(), 0.8);
  EXPECT_EQ(p.val_accuracy(), 0.75);
  EXPECT_EQ(p.step(), 100);
  EXPECT_EQ(p.lr(), 0.05);
  EXPECT_EQ(p.val_loss(), 0.7);
}

TEST(ResultsToProto, RecommendationEveryFieldRoundTrips) {
  Recommendation r;
  r.min_lr = 0.001;
  r.max_lr = 0.1;
  r.stepsize_iterations = 40;
  r.stepsize_epochs = 4.0;
  r.lr_steepest = 0.01;
  r.lr_valley = 0.02;
  r.lr_slide = 0.03;  // lr_minimum stays NaN
  r.one_cycle = {0.1, 100, 1e4, 0.25, 0.8, 0.9};
  r.diverged_at = 55;
  r.points_used = 50;
  r.spread_decades = 0.3;
  r.seeds = 2;
  r.warnings = {{"never_diverged", "the loss never diverged"}};
  r.smoothed = {1.0, 0.9, kNaN};
  r.position = {0.95, 0.9};
  v1::Recommendation p = RecommendationToProto(r);
  EXPECT_EQ(p.lr_steepest(), 0.01);
  EXPECT_FALSE(p.has_lr_minimum());
  EXPECT_EQ(p.diverged_at(), 55);
  EXPECT_EQ(p.one_cycle().div_factor(), 100);
  EXPECT_EQ(p.one_cycle().pct_start(), 0.25);
  ASSERT_EQ(p.warnings_size(), 1);
  EXPECT_EQ(p.warnings(0).code(), "never_diverged");
  EXPECT_EQ(p.smoothed_size(), 3);
  Recommendation back = RecommendationFromProto(p);
  EXPECT_EQ(back.min_lr, r.min_lr);
  EXPECT_EQ(back.max_lr, r.max_lr);
  EXPECT_EQ(back.stepsize_iterations, 40);
  EXPECT_EQ(back.stepsize_epochs, 4.0);
  EXPECT_EQ(back.lr_valley, 0.02);
  EXPECT_EQ(back.lr_slide, 0.03);
  EXPECT_TRUE(std::isnan(back.lr_minimum));
  EXPECT_EQ(back.one_cycle.max_lr, 0.1);
  EXPECT_EQ(back.one_cycle.final_div_factor, 1e4);
  EXPECT_EQ(back.one_cycle.base_momentum, 0.8);
  EXPECT_EQ(back.one_cycle.max_momentum, 0.9);
  EXPECT_EQ(back.diverged_at, 55);
  EXPECT_EQ(back.points_used, 50);
  EXPECT_EQ(back.spread_decades, 0.3);
  EXPECT_EQ(back.seeds, 2);
  ASSERT_EQ(back.warnings.size(), 1u);
  EXPECT_EQ(back.warnings[0].message, "the loss never diverged");
  ASSERT_EQ(back.smoothed.size(), 3u);
  EXPECT_TRUE(std::isnan(back.smoothed[2]));
  EXPECT_EQ(back.position, r.position);

  r.diverged_at = -1;
  EXPECT_FALSE(RecommendationToProto(r).has_diverged_at());
}

TEST(ResultsToProto, TaskResults) {
  engine::RangeTestResult rt;
  rt.recommendation.min_lr = 9;  // the aggregate; a task reports its seed's
  rt.per_seed.resize(1);
  rt.per_seed[0].min_lr = 0.002;
  rt.steps_run = 60;
  rt.train_seconds = 1.5;
  rt.device = "cpu";
  v1::RangeTestTaskResult p = RangeTestResultToProto(rt);
  EXPECT_EQ(p.recommendation().min_lr(), 0.002);
  EXPECT_EQ(p.steps_run(), 60);
  EXPECT_EQ(p.train_seconds(), 1.5);
  EXPECT_EQ(p.device(), "cpu");

  engine::TrainResult tr;
  tr.final_eval.val_loss = 0.5;
  tr.best_eval.val_loss = 0.4;
  tr.steps = 200;
  tr.resumed_from = 100;
  tr.train_seconds = 2.0;
  tr.device = "cuda:0";
  tr.stopped_early = true;
  tr.early_stopping_best = engine::Evaluation{0, 120, 3, 0.01, 0.3, 0.35, 0.9};
  tr.restored_best = true;
  tr.snapshots = {{60, {}, "/ckpt/t-snapshots/snapshot-60.pt"}, {120, {}, ""}};
  tr.ensemble_eval.val_accuracy = 0.91;
  tr.ensemble_size = 2;
  tr.skipped_updates = 3;
  v1::TrialTaskResult t = TrainResultToProto(tr);
  const v1::TrainingOutcome& o = t.outcome();
  EXPECT_TRUE(o.stopped_early());
  EXPECT_EQ(o.early_stopping_best().step(), 120);
  EXPECT_TRUE(o.restored_best());
  ASSERT_EQ(o.snapshots_size(), 2);
  EXPECT_EQ(o.snapshots(0).path(), "/ckpt/t-snapshots/snapshot-60.pt");
  EXPECT_EQ(o.snapshots(1).step(), 120);
  EXPECT_EQ(o.ensemble_eval().val_accuracy(), 0.91);
  EXPECT_EQ(o.ensemble_size(), 2);
  EXPECT_EQ(o.skipped_updates(), 3);
  EXPECT_EQ(t.final_eval().val_loss(), 0.5);
  EXPECT_EQ(t.best_eval().val_loss(), 0.4);
  EXPECT_EQ(t.steps(), 200);
  EXPECT_EQ(t.resumed_from(), 100);
  EXPECT_EQ(t.train_seconds(), 2.0);
  EXPECT_EQ(t.device(), "cuda:0");
}

}  // namespace
}  // namespace lrtune::worker
