// Runs the coordinator's gRPC server in-process on a loopback port with a
// temporary SQLite file, and drives it through generated stubs: a fake
// worker (register, acquire, report, complete) and a client. At ~990 lines
// it is over the house's ~600: every test shares the one fixture (server,
// fake worker, client calls), and the grid and fault cases are in their own
// files already (coordinator_concurrency_test.cc, tests/).
#include "server/coordinator.h"

#include <unistd.h>

#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "lrtune/v1/lrtune.grpc.pb.h"
#include "lrtune/v1/worker.grpc.pb.h"
#include "proto/status_details.h"
#include "server/clock.h"
#include "server/grpc_services.h"
#include "server/job_store.h"

namespace lrtune::server {
namespace {

using ::grpc::ClientContext;
using ::grpc::StatusCode;

class CoordinatorTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (server_ != nullptr) {
      server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
    }
    server_.reset();
    coordinator_.reset();
    store_.reset();
    if (!db_path_.empty()) {
      std::remove(db_path_.c_str());
      std::remove((db_path_ + "-wal").c_str());
      std::remove((db_path_ + "-shm").c_str());
    }
  }

  // With `fake`, the store and the coordinator read time from it and no
  // sweeper runs: a test moves time and calls SweepOnce itself.
  // `keep_store`: a restart, on the store the last start left.
  void StartServer(absl::Duration lease_ttl = absl::Seconds(10),
                   FakeClock* fake = nullptr, bool keep_store = false) {
    Clock* clock = fake != nullptr ? static_cast<Clock*>(fake) : SystemClock();
    if (!keep_store) {
      db_path_ = absl::StrCat(
          ::testing::TempDir(), "/coordinator_test_", getpid(), "_",
          ::testing::UnitTest::GetInstance()->current_test_info()->name(),
          ".db");
      std::remove(db_path_.c_str());
    }
    auto store = JobStore::Open(db_path_, clock, JobEventEncoder());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    CoordinatorOptions options;
    options.lease_ttl = lease_ttl;
    options.sweep_interval = absl::Milliseconds(20);
    coordinator_ = std::make_unique<Coordinator>(store_.get(), clock, options);
    lrtune_service_ =
        std::make_unique<LrTuneService>(coordinator_.get(), &auth_);
    hub_service_ = std::make_unique<WorkerHubService>(coordinator_.get());
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(lrtune_service_.get());
    builder.RegisterService(hub_service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port, 0);
    if (fake == nullptr) coordinator_->StartSweeper();
    auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                       grpc::InsecureChannelCredentials());
    client_ = v1::LrTune::NewStub(channel);
    worker_ = v1::WorkerHub::NewStub(channel);
  }

  // The coordinator stops (its memory lost: leases, workers, caches) and a
  // new one opens the same store.
  void RestartServer() {
    server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
    server_.reset();
    coordinator_.reset();
    store_.reset();
    StartServer(absl::Seconds(10), nullptr, /*keep_store=*/true);
  }

  static void SetDeadline(ClientContext* context, absl::Duration d) {
    context->set_deadline(absl::ToChronoTime(absl::Now() + d));
  }

  static v1::RangeTestJob TwoSeedJob() {
    v1::RangeTestJob job;
    job.mutable_run()->mutable_data()->set_name("spirals");
    job.mutable_range_test()->set_start_lr(1e-5);
    job.mutable_range_test()->set_end_lr(1.0);
    job.mutable_range_test()->set_steps(100);
    job.mutable_range_test()->add_seeds(7);
    job.mutable_range_test()->add_seeds(8);
    // One task per seed (TwoPackedSeedsRunAsOneTask: packed).
    job.mutable_range_test()->set_pack_seeds(false);
    return job;
  }

  v1::Job Submit(const v1::RangeTestJob& job) {
    v1::SubmitJobRequest request;
    *request.mutable_range_test() = job;
    v1::Job response;
    ClientContext context;
    SetDeadline(&context, absl::Seconds(5));
    grpc::Status status = client_->SubmitJob(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  std::string Register(const std::string& id) {
    v1::RegisterRequest request;
    request.set_worker_id(id);
    request.mutable_capabilities()->add_devices()->set_name("cpu");
    request.mutable_capabilities()->add_slots()->set_device("cpu");
    v1::RegisterResponse response;
    ClientContext context;
    SetDeadline(&context, absl::Seconds(5));
    EXPECT_TRUE(worker_->Register(&context, request, &response).ok());
    return response.worker_id();
  }

  // Polls AcquireTask until a task comes or the deadline passes.
  std::optional<v1::Task> Acquire(const std::string& worker,
                                  absl::Duration within = absl::Seconds(5)) {
    const absl::Time deadline = absl::Now() + within;
    while (absl::Now() < deadline) {
      v1::AcquireTaskRequest request;
      request.set_worker_id(worker);
      v1::AcquireTaskResponse response;
      ClientContext context;
      SetDeadline(&context, absl::Seconds(5));
      grpc::Status status = worker_->AcquireTask(&context, request, &response);
      EXPECT_TRUE(status.ok()) << status.error_message();
      if (response.has_task()) return response.task();
      absl::SleepFor(absl::Milliseconds(10));
    }
    return std::nullopt;
  }

  grpc::Status Report(const v1::Task& task, int64_t first, int count,
                      v1::ReportPointsResponse* response) {
    v1::ReportPointsRequest request;
    request.set_task_id(task.task_id());
    request.set_attempt_id(task.attempt_id());
    for (int i = 0; i < count; ++i) {
      v1::TaskRecord* r = request.add_records();
      r->set_seq(first + i);
      v1::CurvePoint* p = r->mutable_point();
      p->set_seed_index(task.range_test().seed_index());
      p->set_step(first + i);
      p->set_lr(1e-5 * (first + i + 1));
      p->set_loss(2.0 - 0.001 * (first + i));
    }
    ClientContext context;
    SetDeadline(&context, absl::Seconds(5));
    return worker_->ReportPoints(&context, request, response);
  }

  // Runs one task as a worker would: `points` points in batches of 50 (each
  // batch sent twice, the repeat must be ignored), then CompleteTask with a
  // synthetic recommendation.
  void RunTask(const v1::Task& task, int points) {
    for (int first = 0; first < points; first += 50) {
      const int count = std::min(50, points - first);
      for (int repeat = 0; repeat < 2; ++repeat) {
        v1::ReportPointsResponse response;
        grpc::Status status = Report(task, first, count, &response);
        ASSERT_TRUE(status.ok()) << status.error_message();
        EXPECT_EQ(response.acked_seq(), first + count - 1);
      }
    }
    v1::CompleteTaskRequest request;
    request.set_task_id(task.task_id());
    request.set_attempt_id(task.attempt_id());
    request.set_final_seq(points - 1);
    const double k = 1.0 + task.range_test().seed_index();
    v1::Recommendation* rec =
        request.mutable_range_test()->mutable_recommendation();
    rec->set_min_lr(1e-3 * k);
    rec->set_max_lr(1e-2 * k);
    rec->set_stepsize_iterations(400);
    rec->set_lr_valley(3e-3 * k);
    rec->set_points_used(points);
    rec->set_seeds(1);
    request.mutable_range_test()->set_steps_run(points);
    v1::CompleteTaskResponse response;
    ClientContext context;
    SetDeadline(&context, absl::Seconds(5));
    grpc::Status status = worker_->CompleteTask(&context, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  // Reads a stream to its end.
  static std::vector<v1::JobEvent> ReadAll(
      grpc::ClientReaderInterface<v1::JobEvent>* reader, grpc::Status* status) {
    std::vector<v1::JobEvent> events;
    v1::JobEvent event;
    while (reader->Read(&event)) events.push_back(event);
    *status = reader->Finish();
    return events;
  }

  static void ExpectGapFree(const std::vector<v1::JobEvent>& events,
                            uint64_t first) {
    for (size_t i = 0; i < events.size(); ++i) {
      ASSERT_EQ(events[i].seq(), first + i) << "event " << i;
    }
  }

  std::string db_path_;
  LocalAuthenticator auth_;
  std::unique_ptr<JobStore> store_;
  std::unique_ptr<Coordinator> coordinator_;
  std::unique_ptr<LrTuneService> lrtune_service_;
  std::unique_ptr<WorkerHubService> hub_service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::LrTune::Stub> client_;
  std::unique_ptr<v1::WorkerHub::Stub> worker_;
};

TEST_F(CoordinatorTest, TwoSeedRangeTestStreamsAndAggregates) {
  StartServer();
  constexpr int kPoints = 300;  // more than a watcher's queue holds
  v1::RangeTestRequest request;
  *request.mutable_run() = TwoSeedJob().run();
  *request.mutable_range_test() = TwoSeedJob().range_test();
  ClientContext context;
  SetDeadline(&context, absl::Seconds(15));
  auto reader = client_->RangeTest(&context, request);

  std::thread worker([&] {
    const std::string id = Register("w1");
    for (int i = 0; i < 2; ++i) {
      std::optional<v1::Task> task = Acquire(id);
      ASSERT_TRUE(task.has_value());
      EXPECT_EQ(task->attempt_id(), 1u);
      EXPECT_EQ(task->range_test().range_test().seeds_size(), 1);
      RunTask(*task, kPoints);
    }
  });
  grpc::Status status;
  std::vector<v1::JobEvent> events = ReadAll(reader.get(), &status);
  worker.join();
  ASSERT_TRUE(status.ok()) << status.error_message();

  ExpectGapFree(events, 1);
  ASSERT_FALSE(events.empty());
  EXPECT_TRUE(events.front().has_accepted());
  const std::string job_id = events.front().job_id();
  EXPECT_EQ(events.front().accepted().job().job_id(), job_id);
  ASSERT_TRUE(events.back().has_state_changed());
  EXPECT_EQ(events.back().state_changed().state(), v1::JOB_STATE_SUCCEEDED);
  int points = 0;
  std::vector<v1::RecommendationEvent> recs;
  for (const v1::JobEvent& e : events) {
    if (e.has_point()) ++points;
    if (e.has_recommendation()) recs.push_back(e.recommendation());
  }
  EXPECT_EQ(points, 2 * kPoints);  // repeated batches were stored once
  ASSERT_EQ(recs.size(), 3u);      // two seeds, then the aggregate
  EXPECT_FALSE(recs.back().has_seed_index());
  EXPECT_EQ(recs.back().recommendation().seeds(), 2);
  EXPECT_GT(recs.back().recommendation().min_lr(), 0.0);
  const v1::RecommendedSchedules& schedules =
      recs.back().recommendation().schedules();
  EXPECT_EQ(schedules.total_steps(), 8 * 400);
  EXPECT_EQ(schedules.triangular().kind(), v1::SCHEDULE_KIND_TRIANGULAR);
  EXPECT_EQ(schedules.triangular().max_lr(),
            recs.back().recommendation().max_lr());
  EXPECT_EQ(schedules.sgdr().t0(), 2 * 400);

  v1::GetJobRequest get;
  get.set_job_id(job_id);
  v1::Job job;
  ClientContext get_context;
  ASSERT_TRUE(client_->GetJob(&get_context, get, &job).ok());
  EXPECT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(job.tasks_done(), 2);
  EXPECT_EQ(job.last_seq(), events.back().seq());
  EXPECT_EQ(job.range_test_result().per_seed_size(), 2);
  EXPECT_EQ(job.range_test_result().recommendation().seeds(), 2);
}

// An mlp's seeds run packed: one task holding every seed, whose points
// carry each seed's index and whose result has a recommendation per seed.
TEST_F(CoordinatorTest, TwoPackedSeedsRunAsOneTask) {
  StartServer();
  v1::RangeTestJob job = TwoSeedJob();
  job.mutable_range_test()->clear_pack_seeds();
  const std::string job_id = Submit(job).job_id();
  const std::string id = Register("w1");
  std::optional<v1::Task> task = Acquire(id);
  ASSERT_TRUE(task.has_value());
  const v1::RangeTestTask& rt = task->range_test();
  ASSERT_EQ(rt.range_test().seeds_size(), 2);
  EXPECT_EQ(rt.range_test().seeds(1), 8u);
  EXPECT_EQ(rt.seed_index(), 0);

  v1::ReportPointsRequest report;
  report.set_task_id(task->task_id());
  report.set_attempt_id(task->attempt_id());
  for (int i = 0; i < 4; ++i) {  // steps 0, 0, 1, 1 of seeds 0, 1, 0, 1
    v1::TaskRecord* r = report.add_records();
    r->set_seq(i);
    r->mutable_point()->set_seed_index(i % 2);
    r->mutable_point()->set_step(i / 2);
    r->mutable_point()->set_lr(1e-5 * (i / 2 + 1));
    r->mutable_point()->set_loss(2.0);
  }
  v1::ReportPointsResponse reported;
  {
    ClientContext context;
    SetDeadline(&context, absl::Seconds(5));
    ASSERT_TRUE(worker_->ReportPoints(&context, report, &reported).ok());
  }
  v1::CompleteTaskRequest complete;
  complete.set_task_id(task->task_id());
  complete.set_attempt_id(task->attempt_id());
  complete.set_final_seq(3);
  v1::RangeTestTaskResult& result = *complete.mutable_range_test();
  for (int s = 0; s < 2; ++s) {
    v1::Recommendation* rec = result.add_per_seed();
    rec->set_min_lr(1e-3 * (s + 1));
    rec->set_max_lr(1e-2 * (s + 1));
    rec->set_stepsize_iterations(400);
    rec->set_lr_valley(3e-3 * (s + 1));
    rec->set_points_used(2);
    rec->set_seeds(1);
  }
  *result.mutable_recommendation() = result.per_seed(0);
  result.set_steps_run(4);
  {
    v1::CompleteTaskResponse response;
    ClientContext context;
    SetDeadline(&context, absl::Seconds(5));
    grpc::Status status = worker_->CompleteTask(&context, complete, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  v1::WatchJobRequest watch;
  watch.set_job_id(job_id);
  ClientContext context;
  SetDeadline(&context, absl::Seconds(5));
  auto reader = client_->WatchJob(&context, watch);
  grpc::Status status;
  std::vector<v1::JobEvent> events = ReadAll(reader.get(), &status);
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::vector<int> point_seeds;
  std::vector<v1::RecommendationEvent> recs;
  for (const v1::JobEvent& e : events) {
    if (e.has_point()) point_seeds.push_back(e.point().point().seed_index());
    if (e.has_recommendation()) recs.push_back(e.recommendation());
  }
  EXPECT_EQ(point_seeds, (std::vector<int>{0, 1, 0, 1}));
  ASSERT_EQ(recs.size(), 3u);  // each seed, then the aggregate
  EXPECT_EQ(recs[0].seed_index(), 0);
  EXPECT_EQ(recs[1].seed_index(), 1);
  EXPECT_DOUBLE_EQ(recs[1].recommendation().max_lr(), 2e-2);
  EXPECT_FALSE(recs[2].has_seed_index());
  EXPECT_EQ(recs[2].recommendation().seeds(), 2);

  v1::GetJobRequest get;
  get.set_job_id(job_id);
  v1::Job got;
  ClientContext get_context;
  ASSERT_TRUE(client_->GetJob(&get_context, get, &got).ok());
  EXPECT_EQ(got.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(got.tasks_total(), 1) << "the seeds' task is the job's only one";
  EXPECT_EQ(got.range_test_result().per_seed_size(), 2);
}

TEST_F(CoordinatorTest, WatchJobResumesAfterSeq) {
  StartServer();
  v1::Job job = Submit(TwoSeedJob());
  const std::string id = Register("w1");
  for (int i = 0; i < 2; ++i) {
    std::optional<v1::Task> task = Acquire(id);
    ASSERT_TRUE(task.has_value());
    RunTask(*task, 20);
  }
  for (uint64_t after : {0u, 1u, 17u, 30u}) {
    v1::WatchJobRequest request;
    request.set_job_id(job.job_id());
    request.set_after_seq(after);
    ClientContext context;
    SetDeadline(&context, absl::Seconds(5));
    auto reader = client_->WatchJob(&context, request);
    grpc::Status status;
    std::vector<v1::JobEvent> events = ReadAll(reader.get(), &status);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_FALSE(events.empty());
    ExpectGapFree(events, after + 1);
    EXPECT_EQ(events.back().state_changed().state(), v1::JOB_STATE_SUCCEEDED);
  }
  // Beyond the end: OUT_OF_RANGE.
  v1::WatchJobRequest request;
  request.set_job_id(job.job_id());
  request.set_after_seq(100000);
  ClientContext context;
  auto reader = client_->WatchJob(&context, request);
  grpc::Status status;
  ReadAll(reader.get(), &status);
  EXPECT_EQ(status.error_code(), StatusCode::OUT_OF_RANGE);
}

TEST_F(CoordinatorTest, LiveWatcherAndResumedWatcherSeeSameEvents) {
  StartServer();
  v1::Job job = Submit(TwoSeedJob());
  v1::WatchJobRequest request;
  request.set_job_id(job.job_id());
  ClientContext context;
  SetDeadline(&context, absl::Seconds(10));
  auto reader = client_->WatchJob(&context, request);
  // Read a few events live, then drop the stream and resume from there.
  const std::string id = Register("w1");
  std::thread worker([&] {
    for (int i = 0; i < 2; ++i) {
      std::optional<v1::Task> task = Acquire(id);
      ASSERT_TRUE(task.has_value());
      RunTask(*task, 120);
    }
  });
  std::vector<v1::JobEvent> first;
  v1::JobEvent event;
  while (first.size() < 5 && reader->Read(&event)) first.push_back(event);
  context.TryCancel();
  while (reader->Read(&event)) {
  }
  reader->Finish();
  ASSERT_EQ(first.size(), 5u);
  ExpectGapFree(first, 1);

  v1::WatchJobRequest resume;
  resume.set_job_id(job.job_id());
  resume.set_after_seq(first.back().seq());
  ClientContext resume_context;
  SetDeadline(&resume_context, absl::Seconds(10));
  auto resumed = client_->WatchJob(&resume_context, resume);
  grpc::Status status;
  std::vector<v1::JobEvent> rest = ReadAll(resumed.get(), &status);
  worker.join();
  ASSERT_TRUE(status.ok()) << status.error_message();
  ExpectGapFree(rest, 6);
  EXPECT_EQ(rest.back().state_changed().state(), v1::JOB_STATE_SUCCEEDED);
}

TEST_F(CoordinatorTest, SlowWatcherCatchesUpFromTheStore) {
  StartServer();
  v1::RangeTestJob spec = TwoSeedJob();
  spec.mutable_range_test()->clear_seeds();
  v1::Job job = Submit(spec);
  v1::WatchJobRequest request;
  request.set_job_id(job.job_id());
  ClientContext context;
  SetDeadline(&context, absl::Seconds(15));
  auto reader = client_->WatchJob(&context, request);
  // The watcher reads nothing while 4000 points are ingested: flow control
  // stalls its writes, its queue fills, and it must fall back to the store.
  std::optional<v1::Task> task = Acquire(Register("w1"));
  ASSERT_TRUE(task.has_value());
  constexpr int kPoints = 4000;
  for (int first = 0; first < kPoints; first += 500) {
    v1::ReportPointsResponse response;
    ASSERT_TRUE(Report(*task, first, 500, &response).ok());
  }
  // The stream ends at a terminal event: cancelling the job gives one.
  v1::CancelJobRequest cancel;
  cancel.set_job_id(job.job_id());
  v1::Job cancelled;
  ClientContext cancel_context;
  ASSERT_TRUE(client_->CancelJob(&cancel_context, cancel, &cancelled).ok());
  grpc::Status status;
  std::vector<v1::JobEvent> events = ReadAll(reader.get(), &status);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ExpectGapFree(events, 1);
  int points = 0;
  for (const v1::JobEvent& e : events) points += e.has_point() ? 1 : 0;
  EXPECT_EQ(points, kPoints);
  EXPECT_EQ(events.back().state_changed().state(), v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(events.back().seq(), cancelled.last_seq());
}

TEST_F(CoordinatorTest, StaleAttemptIsRefusedAfterRegrant) {
  FakeClock clock(absl::Now());
  StartServer(absl::Seconds(10), &clock);
  v1::RangeTestJob spec = TwoSeedJob();
  spec.mutable_range_test()->clear_seeds();
  v1::Job job = Submit(spec);
  std::optional<v1::Task> zombie = Acquire(Register("w1"));
  ASSERT_TRUE(zombie.has_value());
  v1::ReportPointsResponse response;
  ASSERT_TRUE(Report(*zombie, 0, 3, &response).ok());

  // w1 stops heartbeating past its lease; a sweep requeues the task and w2
  // gets it.
  clock.Advance(absl::Seconds(11));
  absl::StatusOr<Coordinator::SweepReport> swept = coordinator_->SweepOnce();
  ASSERT_TRUE(swept.ok()) << swept.status();
  EXPECT_EQ(swept->expired_leases, 1);
  std::optional<v1::Task> fresh = Acquire(Register("w2"), absl::Seconds(5));
  ASSERT_TRUE(fresh.has_value());
  EXPECT_EQ(fresh->task_id(), zombie->task_id());
  EXPECT_GT(fresh->attempt_id(), zombie->attempt_id());
  ASSERT_TRUE(fresh->resume().has_last_acked_seq());
  EXPECT_EQ(fresh->resume().last_acked_seq(), 2);

  grpc::Status stale = Report(*zombie, 3, 2, &response);
  EXPECT_EQ(stale.error_code(), StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(stale.error_message().find("stale attempt"), std::string::npos)
      << stale.error_message();

  v1::HeartbeatRequest hb;
  hb.set_worker_id("w1");
  v1::TaskStatus* ts = hb.add_tasks();
  ts->set_task_id(zombie->task_id());
  ts->set_attempt_id(zombie->attempt_id());
  v1::HeartbeatResponse hb_response;
  ClientContext hb_context;
  ASSERT_TRUE(worker_->Heartbeat(&hb_context, hb, &hb_response).ok());
  ASSERT_EQ(hb_response.directives_size(), 1);
  EXPECT_EQ(hb_response.directives(0).directive(), v1::DIRECTIVE_ABANDON);

  // The new attempt continues where the store left off.
  ASSERT_TRUE(Report(*fresh, 3, 2, &response).ok());
  EXPECT_EQ(response.acked_seq(), 4);
}

TEST_F(CoordinatorTest, CancelReachesTheNextHeartbeat) {
  StartServer();
  v1::Job job = Submit(TwoSeedJob());
  std::optional<v1::Task> task = Acquire(Register("w1"));
  ASSERT_TRUE(task.has_value());

  v1::HeartbeatRequest hb;
  hb.set_worker_id("w1");
  v1::TaskStatus* ts = hb.add_tasks();
  ts->set_task_id(task->task_id());
  ts->set_attempt_id(task->attempt_id());
  {
    v1::HeartbeatResponse response;
    ClientContext context;
    ASSERT_TRUE(worker_->Heartbeat(&context, hb, &response).ok());
    ASSERT_EQ(response.directives_size(), 1);
    EXPECT_EQ(response.directives(0).directive(), v1::DIRECTIVE_CONTINUE);
  }
  v1::CancelJobRequest cancel;
  cancel.set_job_id(job.job_id());
  // A reason over 1024 bytes is refused, naming the field; one within is
  // the job's failure.
  cancel.set_reason(std::string(1025, 'x'));
  v1::Job cancelled;
  {
    ClientContext too_long;
    grpc::Status status = client_->CancelJob(&too_long, cancel, &cancelled);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(status.error_message(),
              "reason must be at most 1024 bytes, got 1025");
  }
  cancel.set_reason("the loss went flat");
  ClientContext cancel_context;
  grpc::Status status = client_->CancelJob(&cancel_context, cancel, &cancelled);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(cancelled.state(), v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(cancelled.failure(), "the loss went flat");

  v1::HeartbeatResponse response;
  ClientContext context;
  ASSERT_TRUE(worker_->Heartbeat(&context, hb, &response).ok());
  ASSERT_EQ(response.directives_size(), 1);
  EXPECT_EQ(response.directives(0).directive(), v1::DIRECTIVE_CANCEL);

  // Records and a result the worker sends before it notices are not stored:
  // the job's terminal event stays its last.
  v1::ReportPointsResponse late;
  ASSERT_TRUE(Report(*task, 0, 5, &late).ok());
  EXPECT_EQ(late.directive(), v1::DIRECTIVE_CANCEL);
  EXPECT_EQ(late.acked_seq(), 4);  // acknowledged and dropped: no resend
  RunTask(*task, 0);  // CompleteTask: accepted, recorded as cancelled
  v1::WatchJobRequest watch;
  watch.set_job_id(job.job_id());
  ClientContext watch_context;
  SetDeadline(&watch_context, absl::Seconds(5));
  auto reader = client_->WatchJob(&watch_context, watch);
  grpc::Status watched;
  std::vector<v1::JobEvent> events = ReadAll(reader.get(), &watched);
  ASSERT_TRUE(watched.ok()) << watched.error_message();
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().state_changed().state(), v1::JOB_STATE_CANCELLED);
  for (const v1::JobEvent& e : events) EXPECT_FALSE(e.has_point());
}

TEST_F(CoordinatorTest, WorkerCallsAreFencedAndIdempotent) {
  StartServer();
  v1::RangeTestJob spec = TwoSeedJob();
  spec.mutable_range_test()->clear_seeds();
  Submit(spec);
  {
    v1::AcquireTaskRequest request;
    request.set_worker_id("nobody");
    v1::AcquireTaskResponse response;
    ClientContext context;
    const grpc::Status status =
        worker_->AcquireTask(&context, request, &response);
    EXPECT_EQ(status.error_code(), StatusCode::NOT_FOUND);
    // The fact travels in the status details, not only in the text.
    absl::Status received(absl::StatusCode::kNotFound, status.error_message());
    EXPECT_FALSE(IsWorkerNotRegistered(received));
    AddStatusDetails(status.error_details(), received);
    EXPECT_TRUE(IsWorkerNotRegistered(received)) << status.error_message();
  }
  const std::string id = Register("w1");
  std::optional<v1::Task> task = Acquire(id);
  ASSERT_TRUE(task.has_value());
  {  // The slot is busy while its lease lives.
    v1::AcquireTaskRequest request;
    request.set_worker_id(id);
    v1::AcquireTaskResponse response;
    ClientContext context;
    EXPECT_EQ(worker_->AcquireTask(&context, request, &response).error_code(),
              StatusCode::FAILED_PRECONDITION);
  }
  // FailTask retries the task; a repeat of the call changes nothing.
  for (int repeat = 0; repeat < 2; ++repeat) {
    v1::FailTaskRequest request;
    request.set_task_id(task->task_id());
    request.set_attempt_id(task->attempt_id());
    request.set_reason("synthetic failure");
    v1::FailTaskResponse response;
    ClientContext context;
    grpc::Status status = worker_->FailTask(&context, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_TRUE(response.will_retry());
  }
  std::optional<v1::Task> retry = Acquire(id);
  ASSERT_TRUE(retry.has_value());
  EXPECT_EQ(retry->attempt_id(), task->attempt_id() + 1);
  EXPECT_EQ(retry->attempt_number(), 2);

  // CompleteTask waits for every record up to final_seq.
  v1::ReportPointsResponse report;
  ASSERT_TRUE(Report(*retry, 0, 3, &report).ok());
  v1::CompleteTaskRequest complete;
  complete.set_task_id(retry->task_id());
  complete.set_attempt_id(retry->attempt_id());
  complete.set_final_seq(5);
  complete.mutable_range_test()->mutable_recommendation()->set_seeds(1);
  {
    v1::CompleteTaskResponse response;
    ClientContext context;
    EXPECT_EQ(worker_->CompleteTask(&context, complete, &response).error_code(),
              StatusCode::FAILED_PRECONDITION);
  }
  complete.set_final_seq(2);
  for (int repeat = 0; repeat < 2; ++repeat) {
    v1::CompleteTaskResponse response;
    ClientContext context;
    grpc::Status status = worker_->CompleteTask(&context, complete, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
  }
}

TEST_F(CoordinatorTest, RequestIdMakesSubmitIdempotent) {
  StartServer();
  v1::SubmitJobRequest request;
  *request.mutable_range_test() = TwoSeedJob();
  request.set_request_id("r-1");
  v1::Job first, second, other;
  ClientContext c1, c2, c3;
  ASSERT_TRUE(client_->SubmitJob(&c1, request, &first).ok());
  ASSERT_TRUE(client_->SubmitJob(&c2, request, &second).ok());
  EXPECT_EQ(first.job_id(), second.job_id());
  request.mutable_range_test()->mutable_range_test()->set_steps(50);
  EXPECT_EQ(client_->SubmitJob(&c3, request, &other).error_code(),
            StatusCode::ALREADY_EXISTS);
}

TEST_F(CoordinatorTest, BadRequestsNameTheField) {
  StartServer();
  struct Case {
    std::function<void(v1::SubmitJobRequest*)> mutate;
    std::string field;
  };
  const std::vector<Case> cases = {
      {[](v1::SubmitJobRequest* r) { r->clear_spec(); }, "spec"},
      {[](v1::SubmitJobRequest* r) {
         r->mutable_range_test()->mutable_range_test()->set_start_lr(1);
         r->mutable_range_test()->mutable_range_test()->set_end_lr(0.5);
       },
       "range_test.end_lr (0.5) must be > start_lr (1)"},
      {[](v1::SubmitJobRequest* r) {
         r->mutable_range_test()->mutable_run()->set_batch_size(0);
       },
       "run.batch_size"},
      {[](v1::SubmitJobRequest* r) {
         r->mutable_range_test()->mutable_range_test()->add_seeds(7);
       },
       "range_test.seeds[2]"},
      {[](v1::SubmitJobRequest* r) { r->set_max_attempts(0); }, "max_attempts"},
  };
  for (const Case& c : cases) {
    v1::SubmitJobRequest request;
    *request.mutable_range_test() = TwoSeedJob();
    c.mutate(&request);
    v1::Job response;
    ClientContext context;
    grpc::Status status = client_->SubmitJob(&context, request, &response);
    EXPECT_EQ(status.error_code(), StatusCode::INVALID_ARGUMENT) << c.field;
    EXPECT_NE(status.error_message().find(c.field), std::string::npos)
        << status.error_message();
  }
  v1::GetJobRequest get;
  get.set_job_id("j-0000000000000000");
  v1::Job job;
  ClientContext context;
  EXPECT_EQ(client_->GetJob(&context, get, &job).error_code(),
            StatusCode::NOT_FOUND);
}

TEST_F(CoordinatorTest, ListJobsPagesTheOwnersJobs) {
  StartServer();
  for (int i = 0; i < 3; ++i) Submit(TwoSeedJob());
  v1::ListJobsRequest request;
  request.set_page_size(2);
  request.add_states(v1::JOB_STATE_QUEUED);
  v1::ListJobsResponse page;
  ClientContext context;
  ASSERT_TRUE(client_->ListJobs(&context, request, &page).ok());
  EXPECT_EQ(page.jobs_size(), 2);
  ASSERT_FALSE(page.next_page_token().empty());
  request.set_page_token(page.next_page_token());
  ClientContext context2;
  ASSERT_TRUE(client_->ListJobs(&context2, request, &page).ok());
  EXPECT_EQ(page.jobs_size(), 1);
  EXPECT_EQ(page.jobs(0).owner(), "local");
}

// A grid with a range test first: 2 schedules x (recommended, explicit)
// bounds. The recommended trials wait for the seed, then run with its
// bounds; one trial fails for good, the rest are ranked by accuracy.
TEST_F(CoordinatorTest, GridRunsTheRangeTestThenRanksItsTrials) {
  StartServer();
  v1::SubmitJobRequest request;
  v1::GridSearchJob* grid = request.mutable_grid();
  grid->mutable_run()->mutable_data()->set_name("spirals");
  grid->mutable_train()->set_steps(40);
  grid->mutable_range_test()->set_steps(50);
  v1::GridAxis* schedules = grid->mutable_grid()->add_axes();
  schedules->mutable_schedules()->add_values()->set_kind(
      v1::SCHEDULE_KIND_ONE_CYCLE);
  schedules->mutable_schedules()->add_values()->set_kind(
      v1::SCHEDULE_KIND_COSINE);
  v1::LrBoundsAxis* bounds =
      grid->mutable_grid()->add_axes()->mutable_lr_bounds();
  bounds->add_values()->mutable_recommended();
  bounds->add_values()->mutable_explicit_bounds()->set_min_lr(0.05);
  bounds->mutable_values(1)->mutable_explicit_bounds()->set_max_lr(0.5);
  v1::Job job;
  {
    ClientContext context;
    SetDeadline(&context, absl::Seconds(5));
    grpc::Status status = client_->SubmitJob(&context, request, &job);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  EXPECT_EQ(job.tasks_total(), 5);  // 1 seed + 4 trials
  ASSERT_EQ(job.trials_size(), 4);
  EXPECT_EQ(job.trials(0).label(), "schedule=one_cycle lr_bounds=recommended");

  // One slot each: five workers for the five tasks.
  std::vector<std::string> w;
  for (int i = 0; i < 5; ++i) w.push_back(Register(absl::StrCat("w", i)));
  // The seed first, then the two explicit-bounds trials; the recommended
  // ones are held.
  std::optional<v1::Task> seed = Acquire(w[0]);
  ASSERT_TRUE(seed.has_value() && seed->has_range_test());
  std::vector<v1::Task> explicit_trials;
  for (int i = 0; i < 2; ++i) {
    std::optional<v1::Task> t = Acquire(w[1 + i]);
    ASSERT_TRUE(t.has_value() && t->has_trial());
    explicit_trials.push_back(*t);
  }
  EXPECT_EQ(explicit_trials[0].trial().trial_index(), 1);
  EXPECT_EQ(explicit_trials[0].trial().train().schedule().max_lr(), 0.5);
  EXPECT_FALSE(Acquire(w[3], absl::Milliseconds(100)).has_value());
  RunTask(*seed, 50);  // recommendation 1e-3 .. 1e-2

  std::vector<v1::Task> recommended;
  for (int i = 0; i < 2; ++i) {
    std::optional<v1::Task> t = Acquire(w[3 + i]);
    ASSERT_TRUE(t.has_value() && t->has_trial());
    recommended.push_back(*t);
  }
  EXPECT_EQ(recommended[0].trial().trial_index(), 0);
  EXPECT_DOUBLE_EQ(recommended[0].trial().train().schedule().max_lr(), 1e-2);
  EXPECT_DOUBLE_EQ(recommended[0].trial().train().schedule().div_factor(),
                   10.0);
  EXPECT_EQ(recommended[0].trial().train().schedule().total_steps(), 40);
  EXPECT_DOUBLE_EQ(recommended[1].trial().train().schedule().eta_min(), 1e-3);

  auto finish = [&](const v1::Task& t, double accuracy) {
    v1::ReportPointsRequest report;
    report.set_task_id(t.task_id());
    report.set_attempt_id(t.attempt_id());
    v1::TaskRecord* r = report.add_records();
    r->mutable_evaluation()->set_step(40);
    r->mutable_evaluation()->set_val_loss(1 - accuracy);
    r->mutable_evaluation()->set_val_accuracy(accuracy);
    v1::ReportPointsResponse reported;
    ClientContext rc;
    SetDeadline(&rc, absl::Seconds(5));
    ASSERT_TRUE(worker_->ReportPoints(&rc, report, &reported).ok());
    v1::CompleteTaskRequest done;
    done.set_task_id(t.task_id());
    done.set_attempt_id(t.attempt_id());
    done.set_final_seq(0);
    *done.mutable_trial()->mutable_final_eval() = r->evaluation();
    *done.mutable_trial()->mutable_best_eval() = r->evaluation();
    done.mutable_trial()->set_steps(40);
    v1::CompleteTaskResponse ok;
    ClientContext cc;
    SetDeadline(&cc, absl::Seconds(5));
    grpc::Status status = worker_->CompleteTask(&cc, done, &ok);
    ASSERT_TRUE(status.ok()) << status.error_message();
  };
  finish(explicit_trials[0], 0.7);  // trial 1
  finish(recommended[0], 0.9);      // trial 0
  finish(recommended[1], 0.7);      // trial 2: ties trial 1
  {
    v1::FailTaskRequest fail;  // trial 3
    fail.set_task_id(explicit_trials[1].task_id());
    fail.set_attempt_id(explicit_trials[1].attempt_id());
    fail.set_kind(v1::FAILURE_KIND_PERMANENT);
    fail.set_reason("loss is NaN at step 3");
    v1::FailTaskResponse failed;
    ClientContext context;
    SetDeadline(&context, absl::Seconds(5));
    ASSERT_TRUE(worker_->FailTask(&context, fail, &failed).ok());
    EXPECT_FALSE(failed.will_retry());
  }

  v1::GetJobRequest get;
  get.set_job_id(job.job_id());
  v1::Job done;
  {
    ClientContext context;
    SetDeadline(&context, absl::Seconds(5));
    ASSERT_TRUE(client_->GetJob(&context, get, &done).ok());
  }
  EXPECT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(std::vector<int32_t>(done.grid_result().ranking().begin(),
                                 done.grid_result().ranking().end()),
            (std::vector<int32_t>{0, 1, 2}));
  EXPECT_DOUBLE_EQ(done.grid_result().bounds().max_lr(), 1e-2);
  EXPECT_EQ(done.trials(0).rank(), 1);
  EXPECT_EQ(done.trials(3).state(), v1::TRIAL_STATE_FAILED);
  EXPECT_NE(done.trials(3).failure().find("loss is NaN"), std::string::npos);
  EXPECT_FALSE(done.trials(3).has_rank());
  EXPECT_EQ(done.attempts_size(), 5);

  // The log: gap-free, trial events with their origin, the final ranking
  // before the terminal state.
  v1::WatchJobRequest watch;
  watch.set_job_id(job.job_id());
  ClientContext context;
  SetDeadline(&context, absl::Seconds(5));
  auto reader = client_->WatchJob(&context, watch);
  grpc::Status status;
  std::vector<v1::JobEvent> events = ReadAll(reader.get(), &status);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ExpectGapFree(events, 1);
  int started = 0, finished = 0, aggregates = 0, trial_evals = 0;
  for (const v1::JobEvent& e : events) {
    started += e.has_trial_started();
    finished += e.has_trial_finished();
    aggregates +=
        e.has_recommendation() && !e.recommendation().has_seed_index();
    trial_evals +=
        e.has_evaluation() && e.evaluation().origin().has_trial_index();
  }
  EXPECT_EQ(started, 4);
  EXPECT_EQ(finished, 3);
  EXPECT_EQ(aggregates, 1);
  EXPECT_EQ(trial_evals, 3);
  ASSERT_GE(events.size(), 2u);
  EXPECT_TRUE(events[events.size() - 2].has_ranking());
  EXPECT_EQ(events.back().state_changed().state(), v1::JOB_STATE_SUCCEEDED);
}

TEST_F(CoordinatorTest, GridErrorsNameTheField) {
  StartServer();
  v1::SubmitJobRequest request;
  v1::GridSearchJob* grid = request.mutable_grid();
  grid->mutable_train()->set_steps(10);
  grid->mutable_grid()
      ->add_axes()
      ->mutable_lr_bounds()
      ->add_values()
      ->mutable_recommended();
  v1::Job job;
  ClientContext context;
  SetDeadline(&context, absl::Seconds(5));
  grpc::Status status = client_->SubmitJob(&context, request, &job);
  EXPECT_EQ(status.error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find(
                "grid.grid.axes[0].values[0].recommended needs "
                "grid.range_test"),
            std::string::npos)
      << status.error_message();
}

TEST_F(CoordinatorTest, AcquireLongPollAnswersWhenWorkArrives) {
  StartServer();
  const std::string w = Register("w-poll");
  auto poll = [&](absl::Duration wait, v1::AcquireTaskResponse* response) {
    v1::AcquireTaskRequest request;
    request.set_worker_id(w);
    request.mutable_wait()->set_seconds(absl::ToInt64Seconds(wait));
    request.mutable_wait()->set_nanos(static_cast<int32_t>(
        absl::ToInt64Nanoseconds(wait % absl::Seconds(1))));
    ClientContext context;
    SetDeadline(&context, wait + absl::Seconds(5));
    return worker_->AcquireTask(&context, request, response);
  };
  // Nothing to do: the call waits out its 300 ms and may ask again at once.
  absl::Time start = absl::Now();
  v1::AcquireTaskResponse idle;
  ASSERT_TRUE(poll(absl::Milliseconds(300), &idle).ok());
  EXPECT_FALSE(idle.has_task());
  EXPECT_FALSE(idle.has_retry_after());
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(300));

  // A job submitted during the wait is handed out without the retry delay.
  std::thread submitter([&] {
    absl::SleepFor(absl::Milliseconds(200));
    Submit(TwoSeedJob());
  });
  start = absl::Now();
  v1::AcquireTaskResponse got;
  grpc::Status status = poll(absl::Seconds(10), &got);
  const absl::Duration took = absl::Now() - start;
  submitter.join();
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(got.has_task());
  EXPECT_LT(took, absl::Seconds(2));

  v1::AcquireTaskResponse bad;
  grpc::Status too_long = poll(absl::Seconds(31), &bad);
  EXPECT_EQ(too_long.error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(too_long.error_message().find("wait must be in [0s, 30s]"),
            std::string::npos);
}

// The sweeper takes the ingest lock only for grids that may need moving on:
// all running grids once (recovery after a crash), then a grid whose lease
// expired; otherwise a sweep leaves every grid alone.
TEST_F(CoordinatorTest,
       SweepsAdvanceEveryGridOnceThenOnlyThoseWithExpiredLeases) {
  FakeClock clock(absl::Now());
  StartServer(absl::Seconds(10), &clock);
  v1::SubmitJobRequest request;
  v1::GridSearchJob* grid = request.mutable_grid();
  grid->mutable_run()->mutable_data()->set_name("spirals");
  grid->mutable_train()->set_steps(40);
  grid->mutable_range_test()->set_steps(50);
  grid->mutable_grid()->add_axes()->mutable_schedules()->add_values()->set_kind(
      v1::SCHEDULE_KIND_COSINE);
  grid->mutable_grid()
      ->add_axes()
      ->mutable_lr_bounds()
      ->add_values()
      ->mutable_recommended();
  v1::Job job;
  {
    ClientContext context;
    SetDeadline(&context, absl::Seconds(5));
    ASSERT_TRUE(client_->SubmitJob(&context, request, &job).ok());
  }
  std::optional<v1::Task> seed = Acquire(Register("w1"));  // grid running
  ASSERT_TRUE(seed.has_value() && seed->has_range_test());

  auto sweep = [&] {
    absl::StatusOr<Coordinator::SweepReport> r = coordinator_->SweepOnce();
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : Coordinator::SweepReport{-1, -1};
  };
  EXPECT_EQ(sweep().grids_advanced, 1);  // the first sweep: every grid
  EXPECT_EQ(sweep().grids_advanced, 0);
  EXPECT_EQ(sweep().grids_advanced, 0);
  clock.Advance(absl::Seconds(11));  // the seed's lease lapses
  const Coordinator::SweepReport expired = sweep();
  EXPECT_EQ(expired.expired_leases, 1);
  EXPECT_EQ(expired.grids_advanced, 1);
  EXPECT_EQ(sweep().grids_advanced, 0);
}

// A pruned grid: trials of one budget and kind meet at rungs (steps 10
// and 30 of 90), each decision is taken once as its evaluation is stored,
// told to the worker, stored with the trial and as an event, and a restart
// neither repeats nor changes one: the next decisions weigh the stored ones.
TEST_F(CoordinatorTest, PrunedGridDecidesAtRungsOnceAndDurably) {
  StartServer();
  v1::SubmitJobRequest request;
  v1::GridSearchJob* grid = request.mutable_grid();
  grid->mutable_run()->mutable_data()->set_name("spirals");
  grid->mutable_train()->set_steps(90);
  grid->mutable_train()->mutable_schedule()->set_kind(v1::SCHEDULE_KIND_COSINE);
  v1::LrBoundsAxis* bounds =
      grid->mutable_grid()->add_axes()->mutable_lr_bounds();
  for (int i = 0; i < 5; ++i) {
    v1::LrBoundsValue* b = bounds->add_values()->mutable_explicit_bounds();
    b->set_min_lr(0.001 * (i + 1));
    b->set_max_lr(0.01 * (i + 1));
  }
  grid->mutable_grid()->mutable_pruning()->set_kind(
      v1::PRUNING_KIND_SUCCESSIVE_HALVING);
  v1::Job job;
  {
    ClientContext context;
    SetDeadline(&context, absl::Seconds(5));
    ASSERT_TRUE(client_->SubmitJob(&context, request, &job).ok());
  }
  ASSERT_EQ(job.trials_size(), 5);
  EXPECT_EQ(job.trials(0).pruning_group(), "cosine/90");
  EXPECT_EQ(std::vector<int64_t>(job.trials(0).train().rung_steps().begin(),
                                 job.trials(0).train().rung_steps().end()),
            (std::vector<int64_t>{10, 30}));
  std::vector<v1::Task> tasks(5);
  for (int i = 0; i < 5; ++i) {
    std::optional<v1::Task> t = Acquire(Register(absl::StrCat("w", i)));
    ASSERT_TRUE(t.has_value() && t->has_trial());
    tasks[t->trial().trial_index()] = *t;
  }
  EXPECT_EQ(tasks[0].trial().train().rung_steps_size(), 2);
  // Reports an evaluation at `step` (record `seq`); whether it was pruned.
  auto rung = [&](int trial, int64_t seq, int64_t step, double accuracy) {
    v1::ReportPointsRequest report;
    report.set_task_id(tasks[trial].task_id());
    report.set_attempt_id(tasks[trial].attempt_id());
    v1::TaskRecord* r = report.add_records();
    r->set_seq(seq);
    r->mutable_evaluation()->set_step(step);
    r->mutable_evaluation()->set_val_loss(1 - accuracy);
    r->mutable_evaluation()->set_val_accuracy(accuracy);
    v1::ReportPointsResponse response;
    ClientContext context;
    SetDeadline(&context, absl::Seconds(5));
    grpc::Status status = worker_->ReportPoints(&context, report, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.pruned();
  };
  // Rung 0, in arrival order; eta 3 keeps the best max(1, n / 3).
  EXPECT_FALSE(rung(0, 0, 10, 0.50));  // alone
  EXPECT_FALSE(rung(1, 0, 10, 0.60));  // the best of 2
  EXPECT_TRUE(rung(2, 0, 10, 0.40));   // 3rd of 3
  EXPECT_FALSE(rung(3, 0, 10, 0.70));  // the best of 4
  EXPECT_TRUE(rung(4, 0, 10, 0.55));   // 3rd of 5
  // A repeated report gets the stored decision, whatever it says now.
  EXPECT_TRUE(rung(2, 0, 10, 0.99));
  EXPECT_FALSE(rung(1, 0, 10, 0.01));

  RestartServer();
  EXPECT_TRUE(rung(4, 0, 10, 0.55));  // stored, not taken again
  EXPECT_FALSE(rung(0, 1, 30, 0.80));
  EXPECT_FALSE(rung(1, 1, 30, 0.90));
  EXPECT_TRUE(rung(3, 1, 30, 0.85));  // 2nd of 3 at rung 1

  // Every trial completes: the pruned ones at their rung.
  auto complete = [&](int trial, int64_t steps, bool pruned, double acc) {
    v1::CompleteTaskRequest done;
    done.set_task_id(tasks[trial].task_id());
    done.set_attempt_id(tasks[trial].attempt_id());
    done.set_final_seq(trial == 2 || trial == 4 ? 0 : 1);
    done.mutable_trial()->set_steps(steps);
    done.mutable_trial()->mutable_final_eval()->set_val_accuracy(acc);
    if (pruned)
      done.mutable_trial()->mutable_outcome()->set_pruned_at_step(steps);
    v1::CompleteTaskResponse ok;
    ClientContext context;
    SetDeadline(&context, absl::Seconds(5));
    grpc::Status status = worker_->CompleteTask(&context, done, &ok);
    ASSERT_TRUE(status.ok()) << status.error_message();
  };
  complete(2, 10, true, 0.40);
  complete(4, 10, true, 0.55);
  complete(3, 30, true, 0.85);
  complete(0, 90, false, 0.91);
  complete(1, 90, false, 0.93);

  v1::GetJobRequest get;
  get.set_job_id(job.job_id());
  v1::Job done;
  {
    ClientContext context;
    SetDeadline(&context, absl::Seconds(5));
    ASSERT_TRUE(client_->GetJob(&context, get, &done).ok());
  }
  EXPECT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(std::vector<int32_t>(done.grid_result().ranking().begin(),
                                 done.grid_result().ranking().end()),
            (std::vector<int32_t>{1, 0}));
  for (int t : {2, 3, 4}) {
    EXPECT_EQ(done.trials(t).state(), v1::TRIAL_STATE_PRUNED) << t;
    EXPECT_FALSE(done.trials(t).has_rank()) << t;
  }
  ASSERT_EQ(done.trials(3).rungs_size(), 2);
  EXPECT_TRUE(done.trials(3).rungs(0).promoted());
  EXPECT_FALSE(done.trials(3).rungs(1).promoted());
  EXPECT_EQ(done.trials(3).rungs(1).step(), 30);
  EXPECT_EQ(done.trials(3).rungs(1).order(), 8);  // the 8th decision
  EXPECT_EQ(done.grid_result().trial_steps(), 90 + 90 + 10 + 30 + 10);
  EXPECT_EQ(done.grid_result().full_grid_trial_steps(), 5 * 90);
  EXPECT_EQ(done.grid_result().trials_pruned(), 3);

  // The log holds each decision once, in the order taken.
  v1::WatchJobRequest watch;
  watch.set_job_id(job.job_id());
  ClientContext context;
  SetDeadline(&context, absl::Seconds(5));
  auto reader = client_->WatchJob(&context, watch);
  grpc::Status status;
  std::vector<v1::JobEvent> events = ReadAll(reader.get(), &status);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ExpectGapFree(events, 1);
  std::vector<int32_t> decided;
  for (const v1::JobEvent& e : events) {
    if (e.has_rung_decision()) {
      decided.push_back(e.rung_decision().trial_index());
      EXPECT_EQ(e.rung_decision().result().order(),
                static_cast<int64_t>(decided.size()));
    }
  }
  EXPECT_EQ(decided, (std::vector<int32_t>{0, 1, 2, 3, 4, 0, 1, 3}));
}

}  // namespace
}  // namespace lrtune::server
