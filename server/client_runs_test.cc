// Client-driven range tests through the Coordinator (client_runs.cc): the
// plan, the online stop, the aggregate over runs, resends, restarts, lease
// lapses, cancellation and the reports it refuses. A real store on a
// temporary file and a fake clock; no gRPC (the C++ client's test,
// client/client_range_test_test.cc, covers the wire).
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/curve_analysis.h"
#include "core/schedule.h"
#include "gtest/gtest.h"
#include "server/clock.h"
#include "server/coordinator.h"
#include "server/event_codec.h"
#include "server/job_store.h"

namespace lrtune::server {
namespace {

bool Contains(absl::string_view text, absl::string_view part) {
  return text.find(part) != absl::string_view::npos;
}

// A U-shaped loss over LR: flat, a drop around 1e-4, a blow-up past 1e-1.
double UCurve(double lr, double shift = 0.0) {
  const double x = std::log10(lr) - shift;
  return 2.3 - 2.0 / (1.0 + std::exp(-(x + 4.0) * 2.5)) +
         0.02 * std::exp((x + 2.0) * 4.0);
}

class ClientRunsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_path_ = absl::StrCat(
        ::testing::TempDir(), "/client_runs_test_", getpid(), "_",
        ::testing::UnitTest::GetInstance()->current_test_info()->name(), ".db");
    std::remove(db_path_.c_str());
    Open();
  }

  void TearDown() override {
    coordinator_.reset();
    store_.reset();
    for (const char* suffix : {"", "-wal", "-shm"}) {
      std::remove((db_path_ + suffix).c_str());
    }
  }

  // (Re)opens the store and a fresh coordinator on it: a restart.
  void Open() {
    coordinator_.reset();
    store_.reset();
    auto store = JobStore::Open(db_path_, &clock_, JobEventEncoder());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    coordinator_ =
        std::make_unique<Coordinator>(store_.get(), &clock_, Options());
  }

  static CoordinatorOptions Options() {
    CoordinatorOptions options;
    options.lease_ttl = absl::Seconds(10);
    return options;
  }

  static v1::SubmitJobRequest ClientJob(int runs, int64_t steps = 100) {
    v1::SubmitJobRequest request;
    v1::RangeTestJob& job = *request.mutable_range_test();
    job.mutable_run()->mutable_optimizer()->set_kind(v1::OPTIMIZER_KIND_SGD);
    job.mutable_run()->mutable_optimizer()->set_momentum(0.9);
    v1::RangeTestSpec& rt = *job.mutable_range_test();
    rt.set_driver(v1::RANGE_DRIVER_CLIENT);
    rt.set_start_lr(1e-7);
    rt.set_end_lr(10);
    rt.set_steps(steps);
    rt.mutable_analysis()->set_iters_per_epoch(50);
    for (int i = 0; i < runs; ++i) rt.add_seeds(100 + i);
    return request;
  }

  std::string Submit(const v1::SubmitJobRequest& request,
                     const std::string& owner = "alice") {
    absl::StatusOr<v1::Job> job = coordinator_->SubmitJob(owner, request);
    EXPECT_TRUE(job.ok()) << job.status();
    return job.ok() ? job->job_id() : "";
  }

  absl::StatusOr<v1::RangeTestRun> Join(const std::string& job_id,
                                        const std::string& client,
                                        std::optional<int> index = {},
                                        const std::string& owner = "alice") {
    v1::JoinRangeTestRequest request;
    request.set_job_id(job_id);
    request.set_client_id(client);
    if (index.has_value()) request.set_run_index(*index);
    return coordinator_->JoinRangeTest(owner, request);
  }

  static v1::ClientStep Step(int64_t k, double loss, double elapsed = 0.0) {
    v1::ClientStep s;
    s.set_step(k);
    s.set_loss(loss);
    s.set_elapsed_s(elapsed);
    return s;
  }

  // Steps [first, first + count) of `run` with the U-curve's losses.
  absl::StatusOr<v1::ReportLossesResponse> Report(
      const v1::RangeTestRun& run, int64_t first, int64_t count,
      double shift = 0.0, const std::string& owner = "alice") {
    v1::ReportLossesRequest request;
    request.set_run_id(run.run_id());
    request.set_attempt_id(run.attempt_id());
    for (int64_t k = first; k < first + count && k < run.plan().lrs_size();
         ++k) {
      *request.add_steps() =
          Step(k, UCurve(run.plan().lrs(static_cast<int>(k)), shift),
               0.01 * static_cast<double>(k));
    }
    return coordinator_->ReportLosses(owner, request);
  }

  // Reports batches of 16 until STOP; returns the last answer.
  v1::ReportLossesResponse ReportToTheEnd(const v1::RangeTestRun& run,
                                          int64_t from, double shift = 0.0) {
    v1::ReportLossesResponse last;
    for (int64_t k = from; k < run.plan().lrs_size(); k += 16) {
      absl::StatusOr<v1::ReportLossesResponse> r = Report(run, k, 16, shift);
      EXPECT_TRUE(r.ok()) << r.status();
      if (!r.ok()) break;
      last = *r;
      if (r->directive() == v1::RUN_DIRECTIVE_STOP) break;
    }
    return last;
  }

  // The job's stored point events of run `index`, in order.
  std::vector<v1::CurvePoint> StoredPoints(const std::string& job_id,
                                           int index) {
    std::vector<v1::CurvePoint> points;
    absl::StatusOr<std::vector<v1::JobEvent>> events =
        coordinator_->ReadEvents(job_id, 0, 100000);
    EXPECT_TRUE(events.ok()) << events.status();
    for (const v1::JobEvent& e : *events) {
      if (e.has_point() && e.point().point().seed_index() == index) {
        points.push_back(e.point().point());
      }
    }
    return points;
  }

  v1::Job Get(const std::string& job_id) {
    absl::StatusOr<v1::Job> job = coordinator_->GetJob("alice", job_id);
    EXPECT_TRUE(job.ok()) << job.status();
    return job.ok() ? *job : v1::Job();
  }

  FakeClock clock_{absl::FromUnixSeconds(1000000)};
  std::string db_path_;
  std::unique_ptr<JobStore> store_;
  std::unique_ptr<Coordinator> coordinator_;
};

TEST_F(ClientRunsTest, TwoRunsTrainStopAtDivergenceAndAggregate) {
  const std::string job_id = Submit(ClientJob(2));
  absl::StatusOr<v1::RangeTestRun> a = Join(job_id, "client-a");
  absl::StatusOr<v1::RangeTestRun> b = Join(job_id, "client-b");
  ASSERT_TRUE(a.ok() && b.ok()) << a.status() << b.status();
  EXPECT_EQ(a->run_index(), 0);
  EXPECT_EQ(b->run_index(), 1);
  EXPECT_EQ(a->seed(), 100u);
  EXPECT_EQ(b->seed(), 101u);
  EXPECT_EQ(a->acked_step(), -1);
  // The plan is the worker's ramp.
  absl::StatusOr<Schedule> ramp =
      Schedule::Create(ScheduleSpec::Ramp(1e-7, 10, 100, RampShape::kExp));
  ASSERT_TRUE(ramp.ok());
  ASSERT_EQ(a->plan().lrs_size(), 100);
  for (int k = 0; k < 100; ++k) EXPECT_EQ(a->plan().lrs(k), ramp->Lr(k));
  EXPECT_EQ(a->plan().divergence_factor(), 4.0);
  EXPECT_EQ(Get(job_id).state(), v1::JOB_STATE_RUNNING);

  const v1::ReportLossesResponse end_a = ReportToTheEnd(*a, 0);
  EXPECT_EQ(end_a.directive(), v1::RUN_DIRECTIVE_STOP);
  EXPECT_TRUE(Contains(end_a.stop_reason(), "diverged at step"))
      << end_a.stop_reason();
  EXPECT_EQ(Get(job_id).state(), v1::JOB_STATE_RUNNING);  // b still runs
  const v1::ReportLossesResponse end_b = ReportToTheEnd(*b, 0, 0.2);
  EXPECT_EQ(end_b.directive(), v1::RUN_DIRECTIVE_STOP);

  const v1::Job job = Get(job_id);
  ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.failure();
  const v1::RangeTestResult& result = job.range_test_result();
  ASSERT_EQ(result.per_seed_size(), 2);
  EXPECT_EQ(result.recommendation().seeds(), 2);
  EXPECT_GT(result.recommendation().max_lr(), 0.0);
  EXPECT_GT(result.recommendation().spread_decades(), 0.0);
  EXPECT_TRUE(result.recommendation().has_schedules());

  // The stored curve is every step once, up to the divergence, and the
  // run's recommendation is AnalyzeCurve's of it.
  const std::vector<v1::CurvePoint> points = StoredPoints(job_id, 0);
  std::vector<CurvePoint> curve;
  for (size_t i = 0; i < points.size(); ++i) {
    EXPECT_EQ(points[i].step(), static_cast<int64_t>(i));
    EXPECT_EQ(points[i].lr(), ramp->Lr(static_cast<int64_t>(i)));
    curve.push_back({points[i].step(), points[i].lr(), points[i].loss()});
  }
  ASSERT_TRUE(result.per_seed(0).has_diverged_at());
  EXPECT_EQ(static_cast<int64_t>(points.size()),
            result.per_seed(0).diverged_at() + 1);
  AnalysisOptions options;
  options.iters_per_epoch = 50;
  options.momentum = 0.9;
  absl::StatusOr<Recommendation> direct = AnalyzeCurve(curve, options);
  ASSERT_TRUE(direct.ok());
  EXPECT_EQ(result.per_seed(0).max_lr(), direct->max_lr);
  EXPECT_EQ(result.per_seed(0).min_lr(), direct->min_lr);
  EXPECT_EQ(result.per_seed(0).stepsize_iterations(), 200);

  // A late report after the end is acknowledged and told to stop.
  absl::StatusOr<v1::ReportLossesResponse> late = Report(*a, 90, 5);
  ASSERT_TRUE(late.ok()) << late.status();
  EXPECT_EQ(late->directive(), v1::RUN_DIRECTIVE_STOP);
  EXPECT_EQ(late->acked_step(), 94);
}

TEST_F(ClientRunsTest, RepeatsAndGapsStoreEveryStepOnce) {
  const std::string job_id = Submit(ClientJob(1));
  absl::StatusOr<v1::RangeTestRun> run = Join(job_id, "c");
  ASSERT_TRUE(run.ok()) << run.status();
  ASSERT_TRUE(Report(*run, 0, 10).ok());
  absl::StatusOr<v1::ReportLossesResponse> repeat = Report(*run, 5, 10);
  ASSERT_TRUE(repeat.ok());
  EXPECT_EQ(repeat->acked_step(), 14);
  absl::StatusOr<v1::ReportLossesResponse> gap = Report(*run, 20, 5);
  ASSERT_TRUE(gap.ok());
  EXPECT_EQ(gap->acked_step(), 14);  // nothing stored: resend from 15
  EXPECT_EQ(gap->directive(), v1::RUN_DIRECTIVE_CONTINUE);
  ASSERT_TRUE(Report(*run, 15, 5).ok());
  const std::vector<v1::CurvePoint> points = StoredPoints(job_id, 0);
  ASSERT_EQ(points.size(), 20u);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(points[i].step(), i);
  // An empty report renews the lease and changes nothing.
  absl::StatusOr<v1::ReportLossesResponse> empty = Report(*run, 0, 0);
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->acked_step(), 19);
}

TEST_F(ClientRunsTest, ARestartedCoordinatorContinuesTheCurve) {
  const std::string job_id = Submit(ClientJob(1));
  absl::StatusOr<v1::RangeTestRun> run = Join(job_id, "c");
  ASSERT_TRUE(run.ok());
  ASSERT_TRUE(Report(*run, 0, 30).ok());
  const std::vector<v1::CurvePoint> before = StoredPoints(job_id, 0);
  Open();  // a restart: nothing cached
  // The same client joins again: the same attempt, from step 30.
  absl::StatusOr<v1::RangeTestRun> again = Join(job_id, "c");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->attempt_id(), run->attempt_id());
  EXPECT_EQ(again->acked_step(), 29);
  // A resend of steps already stored, then new ones.
  ASSERT_TRUE(Report(*run, 25, 10).ok());
  const v1::ReportLossesResponse end = ReportToTheEnd(*run, 35);
  EXPECT_EQ(end.directive(), v1::RUN_DIRECTIVE_STOP);
  const std::vector<v1::CurvePoint> points = StoredPoints(job_id, 0);
  for (size_t i = 0; i < points.size(); ++i) {
    EXPECT_EQ(points[i].step(), static_cast<int64_t>(i));
  }
  // The smoothing continued across the restart as if none happened.
  Open();
  const std::string fresh = Submit(ClientJob(1));
  absl::StatusOr<v1::RangeTestRun> other = Join(fresh, "d");
  ASSERT_TRUE(other.ok());
  ReportToTheEnd(*other, 0);
  const std::vector<v1::CurvePoint> reference = StoredPoints(fresh, 0);
  ASSERT_EQ(reference.size(), points.size());
  for (size_t i = 0; i < points.size(); ++i) {
    EXPECT_EQ(points[i].smoothed(), reference[i].smoothed()) << i;
  }
  EXPECT_EQ(before.size(), 30u);
  EXPECT_EQ(Get(job_id).state(), v1::JOB_STATE_SUCCEEDED);
}

TEST_F(ClientRunsTest, BadReportsAreRefusedNamingTheRuleAndChangeNothing) {
  const std::string job_id = Submit(ClientJob(2, 40));
  absl::StatusOr<v1::RangeTestRun> run = Join(job_id, "c");
  ASSERT_TRUE(run.ok());
  ASSERT_TRUE(Report(*run, 0, 5).ok());

  v1::ReportLossesRequest request;
  request.set_run_id(run->run_id());
  request.set_attempt_id(run->attempt_id());
  *request.add_steps() = Step(5, 1.0);
  *request.add_steps() = Step(40, 1.0);
  absl::StatusOr<v1::ReportLossesResponse> r =
      coordinator_->ReportLosses("alice", request);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(r.status().message(), "steps[1].step must be 6"))
      << r.status();
  request.mutable_steps(1)->set_step(6);
  request.mutable_steps(1)->set_elapsed_s(
      std::numeric_limits<double>::quiet_NaN());
  r = coordinator_->ReportLosses("alice", request);
  EXPECT_TRUE(Contains(r.status().message(),
                       "steps[1].elapsed_s must be a finite number >= 0"))
      << r.status();
  request.clear_steps();
  *request.add_steps() = Step(40, 1.0);
  r = coordinator_->ReportLosses("alice", request);
  EXPECT_TRUE(Contains(r.status().message(),
                       "steps[0].step must be in [0, 40) (the plan's steps)"))
      << r.status();
  request.mutable_steps(0)->set_step(5);
  request.mutable_steps(0)->set_skipped_updates(-2);
  r = coordinator_->ReportLosses("alice", request);
  EXPECT_TRUE(
      Contains(r.status().message(), "steps[0].skipped_updates must be >= 0"));
  // Another owner's run, a stale attempt, no such run.
  r = Report(*run, 5, 1, 0.0, "mallory");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  v1::RangeTestRun stale = *run;
  stale.set_attempt_id(run->attempt_id() + 1);
  r = Report(stale, 5, 1);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(Contains(r.status().message(), "stale attempt")) << r.status();
  v1::RangeTestRun unknown = *run;
  unknown.set_run_id("nonsense");
  EXPECT_EQ(Report(unknown, 5, 1).status().code(), absl::StatusCode::kNotFound);
  // Joins that do not fit.
  EXPECT_EQ(Join(job_id, "x", 0, "mallory").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(Contains(Join(job_id, "x", 2).status().message(),
                       "run_index must be in [0, 2)"));
  EXPECT_TRUE(Contains(Join(job_id, "x", 0).status().message(),
                       "is held by another client"));
  EXPECT_TRUE(
      Contains(Join(job_id, "bad id").status().message(), "client_id must be"));
  // None of it touched the curve, and the other run is untouched.
  EXPECT_EQ(StoredPoints(job_id, 0).size(), 5u);
  ASSERT_TRUE(Report(*run, 5, 5).ok());
  absl::StatusOr<v1::RangeTestRun> other = Join(job_id, "d");
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(other->run_index(), 1);
  ReportToTheEnd(*run, 10);
  ReportToTheEnd(*other, 0);
  EXPECT_EQ(Get(job_id).state(), v1::JOB_STATE_SUCCEEDED);
  // A closed job takes no runs.
  absl::StatusOr<v1::RangeTestRun> closed = Join(job_id, "e", 0);
  EXPECT_EQ(closed.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(Contains(closed.status().message(),
                       "is succeeded: a closed job takes no runs"))
      << closed.status();
}

TEST_F(ClientRunsTest, AWorkerJobIsNotJoinedAndAClientJobIsNotLeased) {
  v1::SubmitJobRequest worker_job = ClientJob(1);
  worker_job.mutable_range_test()->mutable_range_test()->clear_driver();
  const std::string worker_id = Submit(worker_job);
  EXPECT_TRUE(Contains(Join(worker_id, "c").status().message(),
                       "is not a client-driven range test"));
  const std::string client_id = Submit(ClientJob(1));
  v1::RegisterRequest reg;
  reg.set_worker_id("w");
  reg.mutable_capabilities()->add_devices()->set_name("cpu");
  reg.mutable_capabilities()->add_slots()->set_device("cpu");
  reg.mutable_capabilities()->add_slots()->set_device("cpu");
  ASSERT_TRUE(coordinator_->Register(reg).ok());
  v1::AcquireTaskRequest acquire;
  acquire.set_worker_id("w");
  absl::StatusOr<v1::AcquireTaskResponse> got =
      coordinator_->AcquireTask(acquire);
  ASSERT_TRUE(got.ok());
  ASSERT_TRUE(got->has_task());
  EXPECT_EQ(got->task().job_id(), worker_id);  // the worker's job only
  acquire.set_slot(1);
  got = coordinator_->AcquireTask(acquire);
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(got->has_task()) << got->task().job_id() << " " << client_id;
}

TEST_F(ClientRunsTest, SubmitRefusesWhatAClientDrivenTestCannotUse) {
  v1::SubmitJobRequest request = ClientJob(1);
  request.mutable_range_test()->mutable_run()->mutable_model()->set_kind(
      v1::MODEL_KIND_CNN);
  absl::StatusOr<v1::Job> job = coordinator_->SubmitJob("alice", request);
  EXPECT_TRUE(Contains(job.status().message(),
                       "run.model must be unset for a client-driven range "
                       "test"))
      << job.status();
  request = ClientJob(1, 200000);
  job = coordinator_->SubmitJob("alice", request);
  EXPECT_TRUE(Contains(job.status().message(),
                       "range_test.steps must be in [2, 100000] for a "
                       "client-driven test"))
      << job.status();
  v1::SubmitJobRequest grid;
  grid.mutable_grid()->mutable_range_test()->set_driver(
      v1::RANGE_DRIVER_CLIENT);
  job = coordinator_->SubmitJob("alice", grid);
  EXPECT_TRUE(
      Contains(job.status().message(), "grid.range_test.driver must be worker"))
      << job.status();
}

TEST_F(ClientRunsTest, ALapsedLeaseIsRejoinedByItsClientOnly) {
  const std::string job_id = Submit(ClientJob(1));
  absl::StatusOr<v1::RangeTestRun> run = Join(job_id, "c");
  ASSERT_TRUE(run.ok());
  ASSERT_TRUE(Report(*run, 0, 10).ok());
  clock_.Advance(absl::Seconds(11));
  ASSERT_TRUE(coordinator_->SweepOnce().ok());
  absl::StatusOr<v1::ReportLossesResponse> r = Report(*run, 10, 5);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  // Another client may not continue a curve it did not train.
  absl::StatusOr<v1::RangeTestRun> thief = Join(job_id, "other", 0);
  EXPECT_TRUE(Contains(thief.status().message(),
                       "holds steps 0..9 reported by another client"))
      << thief.status();
  EXPECT_EQ(Join(job_id, "other").status().code(),
            absl::StatusCode::kFailedPrecondition);
  absl::StatusOr<v1::RangeTestRun> again = Join(job_id, "c", 0);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_GT(again->attempt_id(), run->attempt_id());
  EXPECT_EQ(again->acked_step(), 9);
  ReportToTheEnd(*again, 10);
  EXPECT_EQ(Get(job_id).state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(StoredPoints(job_id, 0).front().step(), 0);
}

TEST_F(ClientRunsTest, CancelStopsTheRunsAndEndRunEndsEarlyOrFails) {
  const std::string job_id = Submit(ClientJob(1));
  absl::StatusOr<v1::RangeTestRun> run = Join(job_id, "c");
  ASSERT_TRUE(run.ok());
  ASSERT_TRUE(Report(*run, 0, 10).ok());
  v1::CancelJobRequest cancel;
  cancel.set_job_id(job_id);
  ASSERT_TRUE(coordinator_->CancelJob("alice", cancel).ok());
  absl::StatusOr<v1::ReportLossesResponse> r = Report(*run, 10, 5);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->directive(), v1::RUN_DIRECTIVE_STOP);
  EXPECT_TRUE(Contains(r->stop_reason(), "the job is cancelled"))
      << r->stop_reason();
  EXPECT_EQ(StoredPoints(job_id, 0).size(), 10u);

  // Ended early by the client: analysed as far as it went.
  const std::string early = Submit(ClientJob(1));
  absl::StatusOr<v1::RangeTestRun> e = Join(early, "c");
  ASSERT_TRUE(e.ok());
  ASSERT_TRUE(Report(*e, 0, 60).ok());
  v1::EndRunRequest end;
  end.set_run_id(e->run_id());
  end.set_attempt_id(e->attempt_id());
  end.set_final_step(70);
  EXPECT_EQ(coordinator_->EndRun("alice", end).status().code(),
            absl::StatusCode::kFailedPrecondition);
  end.set_final_step(59);
  absl::StatusOr<v1::EndRunResponse> ended = coordinator_->EndRun("alice", end);
  ASSERT_TRUE(ended.ok()) << ended.status();
  EXPECT_TRUE(Contains(ended->end_reason(), "after step 59 of 100"));
  EXPECT_EQ(ended->recommendation().points_used(), 60);
  EXPECT_EQ(Get(early).state(), v1::JOB_STATE_SUCCEEDED);
  ended = coordinator_->EndRun("alice", end);  // idempotent
  ASSERT_TRUE(ended.ok());
  EXPECT_EQ(ended->recommendation().points_used(), 60);

  // A client that fails fails its run and the job; the other run stops.
  const std::string failing = Submit(ClientJob(2));
  absl::StatusOr<v1::RangeTestRun> f0 = Join(failing, "c0");
  absl::StatusOr<v1::RangeTestRun> f1 = Join(failing, "c1");
  ASSERT_TRUE(f0.ok() && f1.ok());
  ASSERT_TRUE(Report(*f1, 0, 5).ok());
  v1::EndRunRequest fail;
  fail.set_run_id(f0->run_id());
  fail.set_attempt_id(f0->attempt_id());
  // A failure longer than the store keeps is refused, and fails nothing.
  fail.set_failure(std::string(4097, 'x'));
  absl::StatusOr<v1::EndRunResponse> too_long =
      coordinator_->EndRun("alice", fail);
  EXPECT_EQ(too_long.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(too_long.status().message(),
                       "failure must be at most 4096 bytes, got 4097"))
      << too_long.status();
  EXPECT_EQ(Get(failing).state(), v1::JOB_STATE_RUNNING);
  fail.set_failure("CUDA out of memory");
  ASSERT_TRUE(coordinator_->EndRun("alice", fail).ok());
  const v1::Job failed = Get(failing);
  EXPECT_EQ(failed.state(), v1::JOB_STATE_FAILED);
  EXPECT_TRUE(Contains(failed.failure(), "CUDA out of memory"))
      << failed.failure();
  r = Report(*f1, 5, 5);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->directive(), v1::RUN_DIRECTIVE_STOP);
  EXPECT_TRUE(Contains(r->stop_reason(), "the job is failed"));
}

TEST_F(ClientRunsTest, ANonFiniteLossStopsTheRunAtThatStep) {
  const std::string job_id = Submit(ClientJob(1));
  absl::StatusOr<v1::RangeTestRun> run = Join(job_id, "c");
  ASSERT_TRUE(run.ok());
  v1::ReportLossesRequest request;
  request.set_run_id(run->run_id());
  request.set_attempt_id(run->attempt_id());
  for (int k = 0; k < 30; ++k) *request.add_steps() = Step(k, 2.0);
  *request.add_steps() = Step(30, std::numeric_limits<double>::infinity());
  for (int k = 31; k < 40; ++k) *request.add_steps() = Step(k, 2.0);
  absl::StatusOr<v1::ReportLossesResponse> r =
      coordinator_->ReportLosses("alice", request);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->directive(), v1::RUN_DIRECTIVE_STOP);
  EXPECT_EQ(r->acked_step(), 39);
  EXPECT_EQ(StoredPoints(job_id, 0).size(), 31u);
  const v1::Job job = Get(job_id);
  ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(job.range_test_result().per_seed(0).diverged_at(), 30);
}

}  // namespace
}  // namespace lrtune::server
