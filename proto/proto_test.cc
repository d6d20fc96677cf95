// Round-trips of the API's main messages through the wire format, the
// JobEvent oneof, and a compile-time check that the service code exists.
#include <cmath>
#include <memory>
#include <string>
#include <type_traits>

#include "gtest/gtest.h"
#include "lrtune/v1/jobs.pb.h"
#include "lrtune/v1/lrtune.grpc.pb.h"
#include "lrtune/v1/worker.grpc.pb.h"

namespace lrtune::v1 {
namespace {

template <typename T>
T RoundTrip(const T& in) {
  std::string wire;
  EXPECT_TRUE(in.SerializeToString(&wire));
  T out;
  EXPECT_TRUE(out.ParseFromString(wire));
  return out;
}

RangeTestRequest FullRangeTestRequest() {
  RangeTestRequest req;
  RunSpec* run = req.mutable_run();
  run->mutable_model()->set_kind(MODEL_KIND_MLP);
  run->mutable_model()->add_hidden(32);
  InlineData* data = run->mutable_data()->mutable_inline_data();
  data->add_x_shape(10);
  data->add_x_shape(2);
  for (int i = 0; i < 20; ++i) data->add_x(0.5f * i);
  for (int i = 0; i < 10; ++i) data->add_y_labels(i % 2);
  run->mutable_data()->set_validation_fraction(0.0);
  run->mutable_optimizer()->set_kind(OPTIMIZER_KIND_SGD);
  run->mutable_optimizer()->set_momentum(0.9);
  run->set_loss(LOSS_KIND_CROSS_ENTROPY);
  run->set_batch_size(4);
  run->set_seed(7);
  run->mutable_device()->set_device("cuda:0");
  run->mutable_device()->set_bf16(true);
  RangeTestSpec* spec = req.mutable_range_test();
  spec->set_start_lr(1e-6);
  spec->set_end_lr(3.0);
  spec->set_steps(200);
  spec->set_shape(RAMP_SHAPE_LINEAR);
  spec->mutable_analysis()->set_divergence_factor(5.0);
  spec->mutable_analysis()->set_iters_per_epoch(469);
  spec->add_seeds(1);
  spec->add_seeds(2);
  spec->set_eval_every(10);
  req.set_request_id("req-1");
  req.set_max_attempts(2);
  return req;
}

TEST(ProtoTest, RangeTestRequestRoundTrips) {
  const RangeTestRequest in = FullRangeTestRequest();
  const RangeTestRequest out = RoundTrip(in);
  EXPECT_EQ(out.SerializeAsString(), in.SerializeAsString());
  EXPECT_TRUE(out.run().data().has_inline_data());
  EXPECT_EQ(out.run().data().inline_data().x_size(), 20);
  EXPECT_FLOAT_EQ(out.run().data().inline_data().x(19), 9.5f);
  // Set to zero is distinguishable from unset.
  EXPECT_TRUE(out.run().data().has_validation_fraction());
  EXPECT_EQ(out.run().data().validation_fraction(), 0.0);
  EXPECT_FALSE(out.run().data().has_synthetic_samples());
  EXPECT_FALSE(out.range_test().analysis().has_smoothing_beta());
  EXPECT_EQ(out.range_test().seeds_size(), 2);
  EXPECT_EQ(out.run().device().device(), "cuda:0");
}

GridSearchJob FullGrid() {
  GridSearchJob job;
  job.mutable_run()->mutable_data()->set_name("fashion-mnist");
  job.mutable_train()->set_epochs(1);
  job.mutable_train()->mutable_schedule()->set_kind(SCHEDULE_KIND_CONSTANT);
  job.mutable_range_test()->set_steps(100);
  GridSpec* grid = job.mutable_grid();
  GridAxis* bounds = grid->add_axes();
  bounds->mutable_lr_bounds()->add_values()->mutable_recommended();
  LrBoundsValue* explicit_bounds =
      bounds->mutable_lr_bounds()->add_values()->mutable_explicit_bounds();
  explicit_bounds->set_min_lr(0.01);
  explicit_bounds->set_max_lr(0.1);
  GridAxis* schedules = grid->add_axes();
  schedules->set_name("schedule");
  schedules->mutable_schedules()->add_values()->set_kind(
      SCHEDULE_KIND_ONE_CYCLE);
  ScheduleSpec* sgdr = schedules->mutable_schedules()->add_values();
  sgdr->set_kind(SCHEDULE_KIND_SGDR);
  sgdr->set_t0(100);
  sgdr->set_t_mult(2);
  ScheduleSpec* warmup = schedules->mutable_schedules()->add_values();
  warmup->set_kind(SCHEDULE_KIND_SEQUENTIAL);
  warmup->add_children()->set_kind(SCHEDULE_KIND_LINEAR);
  warmup->add_children()->set_kind(SCHEDULE_KIND_COSINE);
  warmup->add_boundaries(50);
  GridAxis* budgets = grid->add_axes();
  budgets->mutable_budgets()->add_values()->set_epochs(1);
  budgets->mutable_budgets()->add_values()->set_steps(3000);
  grid->add_axes()->mutable_seeds()->add_values(3);
  OptimizerSpec* adam = grid->add_axes()->mutable_optimizers()->add_values();
  adam->set_kind(OPTIMIZER_KIND_ADAM);
  adam->set_beta2(0.99);
  grid->mutable_objective()->set_metric(OBJECTIVE_METRIC_VAL_LOSS);
  grid->mutable_objective()->set_use_best(true);
  grid->set_max_trials(12);
  return job;
}

TEST(ProtoTest, GridSpecRoundTrips) {
  SubmitJobRequest req;
  *req.mutable_grid() = FullGrid();
  const SubmitJobRequest out = RoundTrip(req);
  ASSERT_EQ(out.spec_case(), SubmitJobRequest::kGrid);
  const GridSpec& grid = out.grid().grid();
  ASSERT_EQ(grid.axes_size(), 5);
  EXPECT_EQ(grid.axes(0).axis_case(), GridAxis::kLrBounds);
  EXPECT_TRUE(grid.axes(0).lr_bounds().values(0).has_recommended());
  EXPECT_FALSE(grid.axes(0).lr_bounds().values(0).recommended().has_scale());
  EXPECT_DOUBLE_EQ(
      grid.axes(0).lr_bounds().values(1).explicit_bounds().max_lr(), 0.1);
  const ScheduleSpec& seq = grid.axes(1).schedules().values(2);
  EXPECT_EQ(seq.children_size(), 2);
  EXPECT_EQ(seq.children(1).kind(), SCHEDULE_KIND_COSINE);
  EXPECT_EQ(grid.axes(1).schedules().values(1).t_mult(), 2);
  EXPECT_FALSE(grid.axes(1).schedules().values(0).has_max_lr());
  EXPECT_EQ(grid.axes(2).budgets().values(1).value_case(), Budget::kSteps);
  EXPECT_TRUE(grid.axes(4).optimizers().values(0).has_beta2());
  EXPECT_FALSE(grid.axes(4).optimizers().values(0).has_momentum());
  EXPECT_EQ(grid.objective().metric(), OBJECTIVE_METRIC_VAL_LOSS);
  EXPECT_EQ(grid.max_trials(), 12);
  EXPECT_EQ(out.SerializeAsString(), req.SerializeAsString());
}

TEST(ProtoTest, JobEventOneofCarriesPointsAndRecommendations) {
  JobEvent point_event;
  point_event.set_seq(42);
  point_event.set_job_id("j1");
  PointEvent* point = point_event.mutable_point();
  point->mutable_point()->set_seed_index(1);
  point->mutable_point()->set_step(40);
  point->mutable_point()->set_lr(0.01);
  point->mutable_point()->set_loss(std::nan(""));
  const JobEvent p = RoundTrip(point_event);
  ASSERT_EQ(p.event_case(), JobEvent::kPoint);
  EXPECT_EQ(p.seq(), 42u);
  EXPECT_FALSE(p.point().origin().has_trial_index());
  EXPECT_EQ(p.point().point().seed_index(), 1);
  EXPECT_TRUE(std::isnan(p.point().point().loss()));
  EXPECT_FALSE(p.point().point().has_momentum());

  JobEvent rec_event;
  Recommendation* rec =
      rec_event.mutable_recommendation()->mutable_recommendation();
  rec->set_min_lr(0.01);
  rec->set_max_lr(0.1);
  rec->set_lr_valley(0.03);
  rec->mutable_schedules()->mutable_one_cycle()->set_kind(
      SCHEDULE_KIND_ONE_CYCLE);
  AnalysisWarning* warning = rec->add_warnings();
  warning->set_code("never_diverged");
  const JobEvent r = RoundTrip(rec_event);
  ASSERT_EQ(r.event_case(), JobEvent::kRecommendation);
  EXPECT_FALSE(r.recommendation().has_seed_index());
  EXPECT_TRUE(r.recommendation().recommendation().has_lr_valley());
  EXPECT_FALSE(r.recommendation().recommendation().has_lr_steepest());
  EXPECT_FALSE(r.recommendation().recommendation().has_diverged_at());
  EXPECT_EQ(r.recommendation().recommendation().warnings(0).code(),
            "never_diverged");

  // Setting another member clears the previous one.
  rec_event.mutable_state_changed()->set_state(JOB_STATE_SUCCEEDED);
  EXPECT_EQ(rec_event.event_case(), JobEvent::kStateChanged);
  EXPECT_FALSE(rec_event.has_recommendation());
}

TEST(ProtoTest, WorkerTaskCarriesFencingAndResume) {
  AcquireTaskResponse resp;
  Task* task = resp.mutable_task();
  task->set_task_id("t1");
  task->set_attempt_id(3);
  task->mutable_lease_expires_at()->set_seconds(1700000000);
  task->mutable_trial()->set_trial_index(5);
  *task->mutable_trial()->mutable_train() = FullGrid().train();
  task->mutable_resume()->set_last_acked_seq(-1);
  const AcquireTaskResponse out = RoundTrip(resp);
  ASSERT_TRUE(out.has_task());
  EXPECT_EQ(out.task().attempt_id(), 3u);
  EXPECT_EQ(out.task().spec_case(), Task::kTrial);
  EXPECT_TRUE(out.task().resume().has_last_acked_seq());
  EXPECT_FALSE(out.task().resume().has_checkpoint_step());
  EXPECT_FALSE(AcquireTaskResponse().has_task());
}

class WorkerHubForTest final : public WorkerHub::CallbackService {
 public:
  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* context,
                                      const HeartbeatRequest* request,
                                      HeartbeatResponse* response) override {
    return nullptr;
  }
};

class LrTuneForTest final : public LrTune::CallbackService {
 public:
  grpc::ServerWriteReactor<JobEvent>* WatchJob(
      grpc::CallbackServerContext* context,
      const WatchJobRequest* request) override {
    return nullptr;
  }
};

// The generated services exist with the RPCs and the callback API.
TEST(ProtoTest, ServiceCodeIsGenerated) {
  static_assert(std::is_class_v<LrTune::Stub>);
  static_assert(std::is_class_v<WorkerHub::Stub>);
  static_assert(
      std::is_same_v<decltype(&LrTune::NewStub),
                     std::unique_ptr<LrTune::Stub> (*)(
                         const std::shared_ptr<grpc::ChannelInterface>&,
                         const grpc::StubOptions&)>);
  static_assert(std::is_polymorphic_v<LrTune::CallbackService>);
  static_assert(std::is_polymorphic_v<WorkerHub::CallbackService>);
  // The callback handlers a server overrides have the expected signatures.
  WorkerHubForTest hub;
  LrTuneForTest tune;
  EXPECT_EQ(hub.Heartbeat(nullptr, nullptr, nullptr), nullptr);
  EXPECT_EQ(tune.WatchJob(nullptr, nullptr), nullptr);
  EXPECT_EQ(LrTune::service_full_name(), std::string("lrtune.v1.LrTune"));
  EXPECT_EQ(WorkerHub::service_full_name(), std::string("lrtune.v1.WorkerHub"));
}

}  // namespace
}  // namespace lrtune::v1
