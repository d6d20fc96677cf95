// ClientRangeTest against an in-process coordinator over gRPC on loopback:
// a loop that follows the plan to the coordinator's STOP, a coordinator
// restarted under a running loop (every step stored once, the loop never
// waiting), and the errors Start passes on.
#include "client/client_range_test.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/auth.h"
#include "server/clock.h"
#include "server/coordinator.h"
#include "server/event_codec.h"
#include "server/grpc_services.h"
#include "server/job_store.h"

namespace lrtune::client {
namespace {

// A U-shaped loss over LR: flat, a drop around 1e-4, a blow-up past 1e-1.
double UCurve(double lr) {
  const double x = std::log10(lr);
  return 2.3 - 2.0 / (1.0 + std::exp(-(x + 4.0) * 2.5)) +
         0.02 * std::exp((x + 2.0) * 4.0);
}

class ClientRangeTestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_path_ = absl::StrCat(
        ::testing::TempDir(), "/client_range_test_", getpid(), "_",
        ::testing::UnitTest::GetInstance()->current_test_info()->name(), ".db");
    std::remove(db_path_.c_str());
    StartServer();
    ClientOptions options;
    options.rpc_deadline = absl::Seconds(5);
    options.initial_backoff = absl::Milliseconds(20);
    options.max_backoff = absl::Milliseconds(200);
    absl::StatusOr<std::unique_ptr<Client>> client =
        Client::Connect(absl::StrCat("127.0.0.1:", port_), options);
    ASSERT_TRUE(client.ok());
    client_ = *std::move(client);
  }

  void TearDown() override {
    client_.reset();
    StopServer();
    for (const char* suffix : {"", "-wal", "-shm"}) {
      std::remove((db_path_ + suffix).c_str());
    }
  }

  // A coordinator on the store, serving on port_ (chosen the first time).
  void StartServer() {
    auto store = server::JobStore::Open(db_path_, server::SystemClock(),
                                        server::JobEventEncoder());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    coordinator_ = std::make_unique<server::Coordinator>(
        store_.get(), server::SystemClock(), server::CoordinatorOptions{});
    service_ =
        std::make_unique<server::LrTuneService>(coordinator_.get(), &auth_);
    grpc::ServerBuilder builder;
    builder.AddListeningPort(absl::StrCat("127.0.0.1:", port_),
                             grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    coordinator_->StartSweeper();
  }

  // What a crash leaves: the store's file, nothing in memory.
  void StopServer() {
    if (server_ != nullptr) {
      server_->Shutdown(absl::ToChronoTime(absl::Now()));
      server_->Wait();
    }
    server_.reset();
    service_.reset();
    coordinator_.reset();
    store_.reset();
  }

  static v1::RangeTestJob Job(int runs = 1) {
    v1::RangeTestJob job;
    job.mutable_run()->mutable_optimizer()->set_momentum(0.9);
    v1::RangeTestSpec& rt = *job.mutable_range_test();
    rt.set_start_lr(1e-7);
    rt.set_end_lr(10);
    rt.set_steps(200);
    rt.mutable_analysis()->set_iters_per_epoch(100);
    for (int i = 0; i < runs; ++i) rt.add_seeds(i);
    return job;
  }

  std::vector<v1::CurvePoint> StoredPoints(const std::string& job_id) {
    std::vector<v1::CurvePoint> points;
    absl::Status watched =
        client_
            ->WatchJob(job_id, 0,
                       [&](const v1::JobEvent& e) {
                         if (e.has_point()) points.push_back(e.point().point());
                       })
            .status();
    EXPECT_TRUE(watched.ok()) << watched;
    return points;
  }

  std::string db_path_;
  int port_ = 0;
  server::LocalAuthenticator auth_;
  std::unique_ptr<server::JobStore> store_;
  std::unique_ptr<server::Coordinator> coordinator_;
  std::unique_ptr<server::LrTuneService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<Client> client_;
};

TEST_F(ClientRangeTestTest, TheLoopFollowsThePlanToTheCoordinatorsStop) {
  ClientRangeTestOptions options;
  options.job = Job();
  // The loss blows up at ~60% of the plan: 160 steps of a millisecond are
  // left for the asynchronous STOP to arrive.
  options.job.mutable_range_test()->set_end_lr(1e4);
  options.job.mutable_range_test()->set_steps(400);
  options.flush_interval = absl::Milliseconds(5);
  absl::StatusOr<std::unique_ptr<ClientRangeTest>> rt =
      ClientRangeTest::Start(client_.get(), options);
  ASSERT_TRUE(rt.ok()) << rt.status();
  EXPECT_EQ((*rt)->run().plan().lrs_size(), 400);
  std::vector<double> lrs;
  while (!(*rt)->done()) {
    lrs.push_back((*rt)->lr());
    if (lrs.size() == 3) (*rt)->SkipStep();  // an AMP overflow at step 2
    (*rt)->Step(UCurve((*rt)->lr()));
    absl::SleepFor(absl::Milliseconds(1));  // a training step
  }
  // Stopped by the coordinator's divergence rule, not by the plan's end.
  EXPECT_LT((*rt)->step(), 400);
  EXPECT_NE((*rt)->stop_reason().find("diverged at step"), std::string::npos)
      << (*rt)->stop_reason();
  absl::StatusOr<v1::EndRunResponse> end = (*rt)->Finish();
  ASSERT_TRUE(end.ok()) << end.status();
  EXPECT_GT(end->recommendation().max_lr(), 0.0);
  absl::StatusOr<v1::Job> job = (*rt)->WaitForJob();
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->state(), v1::JOB_STATE_SUCCEEDED);
  // One run's aggregate is its own (a median of one, in log space).
  EXPECT_NEAR(job->range_test_result().recommendation().max_lr(),
              end->recommendation().max_lr(),
              1e-9 * end->recommendation().max_lr());
  const std::vector<v1::CurvePoint> points = StoredPoints((*rt)->job_id());
  ASSERT_FALSE(points.empty());
  for (size_t i = 0; i < points.size(); ++i) {
    EXPECT_EQ(points[i].step(), static_cast<int64_t>(i));
    EXPECT_EQ(points[i].lr(), lrs[i]);
    EXPECT_EQ(points[i].skipped_updates(), i == 2 ? 1 : 0);
  }
}

TEST_F(ClientRangeTestTest,
       ARestartedCoordinatorLosesNoStepAndTheLoopNeverWaits) {
  ClientRangeTestOptions options;
  options.job = Job();
  options.flush_interval = absl::Milliseconds(5);
  absl::StatusOr<std::unique_ptr<ClientRangeTest>> rt =
      ClientRangeTest::Start(client_.get(), options);
  ASSERT_TRUE(rt.ok()) << rt.status();
  absl::Duration slowest_step;
  int steps = 0;
  while (!(*rt)->done()) {
    if (steps == 40) StopServer();   // a crash mid-test
    if (steps == 70) StartServer();  // back, on the same store and port
    const absl::Time before = absl::Now();
    (*rt)->Step(UCurve((*rt)->lr()));
    slowest_step = std::max(slowest_step, absl::Now() - before);
    ++steps;
    absl::SleepFor(absl::Milliseconds(3));
  }
  ASSERT_TRUE((*rt)->status().ok()) << (*rt)->status();
  EXPECT_LT(slowest_step, absl::Milliseconds(20));  // no network wait
  absl::StatusOr<v1::EndRunResponse> end = (*rt)->Finish();
  ASSERT_TRUE(end.ok()) << end.status();
  const std::vector<v1::CurvePoint> points = StoredPoints((*rt)->job_id());
  ASSERT_GT(points.size(), 70u);
  for (size_t i = 0; i < points.size(); ++i) {
    EXPECT_EQ(points[i].step(), static_cast<int64_t>(i));
  }
}

TEST_F(ClientRangeTestTest, StartPassesTheCoordinatorsRefusalsOn) {
  ClientRangeTestOptions options;
  options.job = Job();
  options.job.mutable_range_test()->set_steps(1);
  absl::StatusOr<std::unique_ptr<ClientRangeTest>> rt =
      ClientRangeTest::Start(client_.get(), options);
  EXPECT_EQ(rt.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(rt.status().message().find("range_test.steps"), std::string::npos)
      << rt.status();
  options = {};
  options.job_id = "j-0000000000000000";
  EXPECT_EQ(ClientRangeTest::Start(client_.get(), options).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(ClientRangeTestTest, TwoProcessesReportIntoOneJobAsItsSeeds) {
  ClientRangeTestOptions first;
  first.job = Job(2);
  first.flush_interval = absl::Milliseconds(5);
  absl::StatusOr<std::unique_ptr<ClientRangeTest>> a =
      ClientRangeTest::Start(client_.get(), first);
  ASSERT_TRUE(a.ok()) << a.status();
  ClientRangeTestOptions second;
  second.job_id = (*a)->job_id();
  absl::StatusOr<std::unique_ptr<ClientRangeTest>> b =
      ClientRangeTest::Start(client_.get(), second);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ((*b)->run().run_index(), 1);
  while (!(*a)->done() || !(*b)->done()) {
    if (!(*a)->done()) (*a)->Step(UCurve((*a)->lr()));
    if (!(*b)->done()) (*b)->Step(UCurve((*b)->lr() * 1.5));
  }
  ASSERT_TRUE((*a)->Finish().ok());
  ASSERT_TRUE((*b)->Finish().ok());
  absl::StatusOr<v1::Job> job = (*a)->WaitForJob();
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->range_test_result().recommendation().seeds(), 2);
  EXPECT_GT(job->range_test_result().recommendation().spread_decades(), 0.0);
}

}  // namespace
}  // namespace lrtune::client
