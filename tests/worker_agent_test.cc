// End to end on loopback: the real lrtune-server and lrtune-worker
// processes and a client::Client. (1) A 2-seed range test (spirals, mlp, 60
// steps, cpu, 1 thread) through LrTune.RangeTest, read to its terminal event:
// the curve per seed is gap-free from step 0, both per-seed and the aggregate
// recommendations arrive, the job succeeds, and the worker exits 0 on
// SIGTERM. (2) A 12-trial grid after a range test on two workers.
#include <chrono>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "client/lrtune_client.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "small_run.h"
#include "test_process.h"

namespace {

using lrtune::testing::FreePort;
using lrtune::testing::MakeTempDir;
using lrtune::testing::Process;

TEST(WorkerAgentEndToEnd, TwoSeedRangeTestCompletes) {
  const std::filesystem::path dir = MakeTempDir("lrtune_worker_agent_test");
  const std::string address = "127.0.0.1:" + std::to_string(FreePort());
  Process server({LRTUNE_SERVER_BIN, "--listen", address, "--db",
                  (dir / "jobs.db").string()});
  ASSERT_TRUE(server.started());
  Process worker({LRTUNE_WORKER_BIN, "--server", address, "--devices", "cpu",
                  "--slots", "1", "--threads", "1"});
  ASSERT_TRUE(worker.started());

  auto channel =
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  ASSERT_TRUE(channel->WaitForConnected(std::chrono::system_clock::now() +
                                        std::chrono::seconds(20)));
  auto client = lrtune::client::Client::FromChannel(channel, address, {});

  lrtune::v1::RangeTestRequest request;
  *request.mutable_run() = lrtune::testing::SmallRun(32);
  *request.mutable_range_test() = lrtune::testing::Ramp(60, 1e-5, 10, {1, 2});

  std::map<int, std::vector<int64_t>> steps;  // seed_index -> steps
  int per_seed = 0;
  bool aggregate = false;
  lrtune::v1::JobState final_state = lrtune::v1::JOB_STATE_UNSPECIFIED;
  std::string reason;
  uint64_t last_seq = 0;
  absl::StatusOr<lrtune::v1::Job> job =
      client->RangeTest(request, [&](const lrtune::v1::JobEvent& event) {
        EXPECT_EQ(event.seq(), last_seq + 1);
        last_seq = event.seq();
        if (event.has_point()) {
          steps[event.point().point().seed_index()].push_back(
              event.point().point().step());
        } else if (event.has_recommendation()) {
          if (event.recommendation().has_seed_index()) {
            ++per_seed;
          } else {
            aggregate = true;
            EXPECT_EQ(event.recommendation().recommendation().seeds(), 2);
          }
        } else if (event.has_state_changed()) {
          final_state = event.state_changed().state();
          reason = event.state_changed().reason();
        }
      });
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->state(), lrtune::v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(final_state, lrtune::v1::JOB_STATE_SUCCEEDED) << reason;
  EXPECT_EQ(per_seed, 2);
  EXPECT_TRUE(aggregate);
  ASSERT_EQ(steps.size(), 2u);
  for (const auto& [seed, curve] : steps) {
    ASSERT_GE(curve.size(), 10u) << "seed " << seed;
    EXPECT_LE(curve.size(), 60u);
    for (size_t i = 0; i < curve.size(); ++i) {
      ASSERT_EQ(curve[i], static_cast<int64_t>(i)) << "seed " << seed;
    }
  }

  EXPECT_EQ(worker.Stop(), 0);
  server.Stop();
  std::filesystem::remove_all(dir);
}

// A 12-trial grid (3 schedules x {recommended, explicit} bounds x {1, 2}
// epochs) after a range test, on a server and two workers: every trial
// runs, each trial's curve is gap-free, both workers take part, and the
// grid ends ranked.
TEST(WorkerAgentEndToEnd, TwelveTrialGridOnTwoWorkers) {
  const std::filesystem::path dir = MakeTempDir("lrtune_worker_agent_grid");
  const std::string address = "127.0.0.1:" + std::to_string(FreePort());
  Process server({LRTUNE_SERVER_BIN, "--listen", address, "--db",
                  (dir / "jobs.db").string()});
  ASSERT_TRUE(server.started());
  std::vector<Process> workers;
  for (const char* id : {"wa", "wb"}) {
    workers.emplace_back(
        std::vector<std::string>{LRTUNE_WORKER_BIN, "--server", address,
                                 "--devices", "cpu", "--slots", "1",
                                 "--threads", "1", "--worker-id", id},
        (dir / (std::string(id) + ".log")).string());
    ASSERT_TRUE(workers.back().started());
  }
  // Both up before the job: a worker still loading LibTorch when the test
  // ends has no SIGTERM handler yet, and its Stop() would read 143.
  for (Process& w : workers) {
    ASSERT_TRUE(w.WaitForLog("registered as", std::chrono::seconds(60)))
        << w.Log();
  }
  auto channel =
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  ASSERT_TRUE(channel->WaitForConnected(std::chrono::system_clock::now() +
                                        std::chrono::seconds(20)));
  auto client = lrtune::client::Client::FromChannel(channel, address, {});

  lrtune::v1::SubmitJobRequest request;
  lrtune::v1::GridSearchJob& grid = *request.mutable_grid();
  lrtune::v1::RunSpec& run = *grid.mutable_run();
  run = lrtune::testing::SmallRun(32, 64);  // 819 / 64: 12 steps per epoch
  run.mutable_optimizer()->set_momentum(0.9);
  // Bounds ~0.02..0.2.
  *grid.mutable_range_test() = lrtune::testing::Ramp(150, 1e-5, 10, {});
  auto* schedules = grid.mutable_grid()->add_axes()->mutable_schedules();
  for (auto kind : {lrtune::v1::SCHEDULE_KIND_ONE_CYCLE,
                    lrtune::v1::SCHEDULE_KIND_TRIANGULAR,
                    lrtune::v1::SCHEDULE_KIND_COSINE}) {
    schedules->add_values()->set_kind(kind);
  }
  auto* bounds = grid.mutable_grid()->add_axes()->mutable_lr_bounds();
  bounds->add_values()->mutable_recommended();
  auto* fixed = bounds->add_values()->mutable_explicit_bounds();
  fixed->set_min_lr(0.01);
  fixed->set_max_lr(0.1);
  auto* budgets = grid.mutable_grid()->add_axes()->mutable_budgets();
  budgets->add_values()->set_epochs(1);
  budgets->add_values()->set_epochs(2);

  absl::StatusOr<lrtune::v1::Job> job = client->SubmitJob(request);
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_EQ(job->trials_size(), 12);

  std::map<int, std::vector<int64_t>> steps;  // trial_index -> steps
  std::map<int, int> evaluations;
  int finished = 0;
  uint64_t last_seq = 0;
  lrtune::v1::JobState final_state = lrtune::v1::JOB_STATE_UNSPECIFIED;
  std::string reason;
  absl::StatusOr<lrtune::v1::Job> watched = client->WatchJob(
      job->job_id(), 0, [&](const lrtune::v1::JobEvent& event) {
        EXPECT_EQ(event.seq(), last_seq + 1);
        last_seq = event.seq();
        if (event.has_point() && event.point().origin().has_trial_index()) {
          steps[event.point().origin().trial_index()].push_back(
              event.point().point().step());
        } else if (event.has_evaluation() &&
                   event.evaluation().origin().has_trial_index()) {
          ++evaluations[event.evaluation().origin().trial_index()];
        } else if (event.has_trial_finished()) {
          ++finished;
        } else if (event.has_state_changed()) {
          final_state = event.state_changed().state();
          reason = event.state_changed().reason();
        }
      });
  ASSERT_TRUE(watched.ok()) << watched.status();
  ASSERT_EQ(final_state, lrtune::v1::JOB_STATE_SUCCEEDED) << reason;

  absl::StatusOr<lrtune::v1::Job> got = client->GetJob(job->job_id());
  ASSERT_TRUE(got.ok()) << got.status();
  const lrtune::v1::Job& done = *got;
  int succeeded = 0;
  for (const lrtune::v1::Trial& t : done.trials()) {
    if (t.state() != lrtune::v1::TRIAL_STATE_SUCCEEDED) continue;
    ++succeeded;
    const int index = t.trial_index();
    const int64_t want =
        (t.label().find("budget=2epochs") != std::string::npos) ? 24 : 12;
    EXPECT_EQ(t.steps(), want) << t.label();
    ASSERT_EQ(steps[index].size(), static_cast<size_t>(want)) << t.label();
    for (size_t i = 0; i < steps[index].size(); ++i) {
      ASSERT_EQ(steps[index][i], static_cast<int64_t>(i)) << t.label();
    }
    EXPECT_GE(evaluations[index], 1) << t.label();
    EXPECT_TRUE(t.has_rank()) << t.label();
  }
  // CPU runs are deterministic: with these bounds every trial trains.
  EXPECT_EQ(succeeded, 12);
  EXPECT_EQ(finished, succeeded);
  EXPECT_EQ(done.grid_result().ranking_size(), succeeded);
  EXPECT_GT(done.grid_result().bounds().max_lr(), 0);
  std::set<std::string> used;
  for (const lrtune::v1::TaskAttempt& a : done.attempts()) {
    used.insert(a.worker_id());
  }
  // Which workers took part depends on timing (one may take every trial
  // before the other has registered); only these two may have.
  EXPECT_FALSE(used.empty());
  for (const std::string& w : used) {
    EXPECT_TRUE(w == "wa" || w == "wb") << w;
  }

  for (Process& w : workers) EXPECT_EQ(w.Stop(), 0) << w.Log();
  server.Stop();
  std::filesystem::remove_all(dir);
}

}  // namespace
