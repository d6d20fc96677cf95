// Client-driven range tests from many threads at once, without gRPC: runs of
// two jobs reporting concurrently (batches resent, some out of order), the
// sweeper running, one job cancelled under its clients. Every run's stored
// curve must be its steps once each, in order; each job ends once, with
// every run's recommendation. scripts/tsan.sh runs it under
// ThreadSanitizer (client_mu_, the job locks, the store).
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/clock.h"
#include "server/coordinator.h"
#include "server/event_codec.h"
#include "server/job_store.h"

namespace lrtune::server {
namespace {

double UCurve(double lr) {
  const double x = std::log10(lr);
  return 2.3 - 2.0 / (1.0 + std::exp(-(x + 4.0) * 2.5)) +
         0.02 * std::exp((x + 2.0) * 4.0);
}

v1::SubmitJobRequest ClientJob(int runs) {
  v1::SubmitJobRequest request;
  v1::RangeTestSpec& rt = *request.mutable_range_test()->mutable_range_test();
  rt.set_driver(v1::RANGE_DRIVER_CLIENT);
  rt.set_steps(150);
  for (int i = 0; i < runs; ++i) rt.add_seeds(i);
  return request;
}

// One client: joins a run of `job_id` and reports its U-curve in batches
// of 8, sending every other batch twice and now and then a later batch
// before its predecessor (a gap, refused and resent), until STOP.
void Client(Coordinator* coordinator, const std::string& job_id, int id,
            bool may_be_cancelled, std::atomic<int>* failures) {
  v1::JoinRangeTestRequest join;
  join.set_job_id(job_id);
  join.set_client_id(absl::StrCat("client-", id));
  absl::StatusOr<v1::RangeTestRun> run =
      coordinator->JoinRangeTest("owner", join);
  if (!run.ok()) {
    // Cancelled before this client joined: a closed job takes no runs.
    if (!(may_be_cancelled && absl::IsFailedPrecondition(run.status()))) {
      ++*failures;
    }
    return;
  }
  std::mt19937 rng(static_cast<unsigned>(id));
  auto batch = [&](int64_t first) {
    v1::ReportLossesRequest request;
    request.set_run_id(run->run_id());
    request.set_attempt_id(run->attempt_id());
    for (int64_t k = first; k < first + 8 && k < run->plan().lrs_size(); ++k) {
      v1::ClientStep& s = *request.add_steps();
      s.set_step(k);
      s.set_loss(UCurve(run->plan().lrs(static_cast<int>(k)) * (1 + 0.1 * id)));
    }
    return coordinator->ReportLosses("owner", request);
  };
  int64_t next = 0;
  while (next < run->plan().lrs_size()) {
    if (rng() % 4 == 0) (void)batch(next + 8);  // ahead: a gap, nothing kept
    absl::StatusOr<v1::ReportLossesResponse> r = batch(next);
    if (r.ok() && rng() % 2 == 0) r = batch(next);  // a resend
    if (!r.ok()) {
      ++*failures;
      return;
    }
    if (r->directive() == v1::RUN_DIRECTIVE_STOP) return;
    next = r->acked_step() + 1;
  }
}

TEST(ClientRunsConcurrencyTest, RunsOfTwoJobsReportAtOnce) {
  const std::string path = absl::StrCat(
      ::testing::TempDir(), "/client_runs_concurrency_", getpid(), ".db");
  std::remove(path.c_str());
  auto store = JobStore::Open(path, SystemClock(), JobEventEncoder());
  ASSERT_TRUE(store.ok()) << store.status();
  CoordinatorOptions options;
  options.sweep_interval = absl::Milliseconds(5);
  Coordinator coordinator(store->get(), SystemClock(), options);
  coordinator.StartSweeper();
  absl::StatusOr<v1::Job> a = coordinator.SubmitJob("owner", ClientJob(3));
  absl::StatusOr<v1::Job> b = coordinator.SubmitJob("owner", ClientJob(3));
  absl::StatusOr<v1::Job> c = coordinator.SubmitJob("owner", ClientJob(2));
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back(Client, &coordinator, a->job_id(), i, false,
                         &failures);
    threads.emplace_back(Client, &coordinator, b->job_id(), 10 + i, false,
                         &failures);
  }
  for (int i = 0; i < 2; ++i) {
    threads.emplace_back(Client, &coordinator, c->job_id(), 20 + i, true,
                         &failures);
  }
  threads.emplace_back([&] {  // job c is cancelled under its clients
    v1::CancelJobRequest cancel;
    cancel.set_job_id(c->job_id());
    (void)coordinator.CancelJob("owner", cancel);
  });
  for (std::thread& t : threads) t.join();
  coordinator.StopSweeper();
  EXPECT_EQ(failures.load(), 0);

  for (const v1::Job& job : {*a, *b}) {
    absl::StatusOr<v1::Job> done = coordinator.GetJob("owner", job.job_id());
    ASSERT_TRUE(done.ok());
    EXPECT_EQ(done->state(), v1::JOB_STATE_SUCCEEDED) << done->failure();
    EXPECT_EQ(done->range_test_result().per_seed_size(), 3);
    absl::StatusOr<std::vector<v1::JobEvent>> events =
        coordinator.ReadEvents(job.job_id(), 0, 100000);
    ASSERT_TRUE(events.ok());
    std::vector<int64_t> next(3, 0);
    int aggregates = 0, terminal = 0;
    for (const v1::JobEvent& e : *events) {
      if (e.has_point()) {
        const v1::CurvePoint& p = e.point().point();
        EXPECT_EQ(p.step(), next[static_cast<size_t>(p.seed_index())]++)
            << "run " << p.seed_index();
      }
      if (e.has_recommendation() && !e.recommendation().has_seed_index()) {
        ++aggregates;
      }
      if (IsTerminalEvent(e)) ++terminal;
    }
    EXPECT_EQ(aggregates, 1);
    EXPECT_EQ(terminal, 1);
  }
  absl::StatusOr<v1::Job> cancelled = coordinator.GetJob("owner", c->job_id());
  ASSERT_TRUE(cancelled.ok());
  EXPECT_TRUE(cancelled->state() == v1::JOB_STATE_CANCELLED ||
              cancelled->state() == v1::JOB_STATE_SUCCEEDED);
  for (const char* suffix : {"", "-wal", "-shm"}) {
    std::remove((path + suffix).c_str());
  }
}

}  // namespace
}  // namespace lrtune::server
