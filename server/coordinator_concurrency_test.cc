// The coordinator driven from many threads at once, without gRPC in
// between, so that ThreadSanitizer (scripts/tsan.sh) sees every lock the
// coordinator, its event hub, lease table, background runner and sweeper
// take: clients submit, cancel and read jobs while workers lease tasks
// (through the long poll), report points, heartbeat and complete, and the
// sweeper runs. Every job must end, its events gap-free and its curves
// complete.
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/sync.h"
#include "gtest/gtest.h"
#include "lrtune/v1/lrtune.pb.h"
#include "lrtune/v1/worker.pb.h"
#include "server/clock.h"
#include "server/coordinator.h"
#include "server/job_store.h"

namespace lrtune::server {
namespace {

constexpr int kWorkers = 4;
constexpr int kClients = 3;
constexpr int kJobsPerClient = 6;
constexpr int kSeeds = 2;
constexpr int kPoints = 60;
constexpr int kBatch = 20;

v1::SubmitJobRequest RangeTestRequest() {
  v1::SubmitJobRequest request;
  v1::RangeTestJob& job = *request.mutable_range_test();
  job.mutable_run()->mutable_data()->set_name("spirals");
  job.mutable_range_test()->set_start_lr(1e-5);
  job.mutable_range_test()->set_end_lr(1.0);
  job.mutable_range_test()->set_steps(kPoints);
  for (int s = 0; s < kSeeds; ++s) job.mutable_range_test()->add_seeds(s + 1);
  job.mutable_range_test()->set_pack_seeds(false);  // one task per seed
  return request;
}

bool Terminal(v1::JobState state) {
  return state == v1::JOB_STATE_SUCCEEDED || state == v1::JOB_STATE_CANCELLED ||
         state == v1::JOB_STATE_FAILED;
}

class CoordinatorConcurrencyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_path_ = absl::StrCat(::testing::TempDir(),
                            "/coordinator_concurrency_test_", getpid(), ".db");
    Remove();
    auto store = JobStore::Open(db_path_, SystemClock(), JobEventEncoder());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    CoordinatorOptions options;
    options.lease_ttl = absl::Seconds(30);  // no expiry under TSan's pace
    options.sweep_interval = absl::Milliseconds(5);
    coordinator_ =
        std::make_unique<Coordinator>(store_.get(), SystemClock(), options);
    coordinator_->StartSweeper();
  }
  void TearDown() override {
    coordinator_.reset();
    store_.reset();
    Remove();
  }
  void Remove() {
    for (const char* suffix : {"", "-wal", "-shm"}) {
      std::remove((db_path_ + suffix).c_str());
    }
  }

  // A worker: leases through the long poll, reports in batches (each sent
  // twice: the repeat is ignored), heartbeats, completes; stops a task when
  // told its job is cancelled.
  void Work(int index, const std::atomic<bool>& done) {
    v1::RegisterRequest reg;
    reg.set_worker_id(absl::StrCat("worker-", index));
    reg.mutable_capabilities()->add_devices()->set_name("cpu");
    reg.mutable_capabilities()->add_slots()->set_device("cpu");
    absl::StatusOr<v1::RegisterResponse> registered =
        coordinator_->Register(reg);
    ASSERT_TRUE(registered.ok()) << registered.status();
    const std::string worker = registered->worker_id();
    while (!done.load()) {
      const uint64_t epoch = coordinator_->work_signal()->Epoch();
      v1::AcquireTaskRequest acquire;
      acquire.set_worker_id(worker);
      absl::StatusOr<v1::AcquireTaskResponse> got =
          coordinator_->AcquireTask(acquire);
      ASSERT_TRUE(got.ok()) << got.status();
      if (!got->has_task()) {
        // The long poll: woken on the background runner.
        Notification woken;
        coordinator_->work_signal()->WhenWorkMayExist(
            epoch, absl::Now() + absl::Milliseconds(50),
            [&woken] { woken.Notify(); });
        woken.WaitForNotification();
        continue;
      }
      RunTask(worker, got->task());
    }
  }

  void RunTask(const std::string& worker, const v1::Task& task) {
    for (int first = 0; first < kPoints; first += kBatch) {
      v1::ReportPointsRequest report;
      report.set_task_id(task.task_id());
      report.set_attempt_id(task.attempt_id());
      for (int i = first; i < first + kBatch; ++i) {
        v1::TaskRecord* r = report.add_records();
        r->set_seq(i);
        v1::CurvePoint* p = r->mutable_point();
        p->set_seed_index(task.range_test().seed_index());
        p->set_step(i);
        p->set_lr(1e-5 * (i + 1));
        p->set_loss(2.0 - 0.01 * i);
      }
      bool cancelled = false;
      for (int repeat = 0; repeat < 2; ++repeat) {
        absl::StatusOr<v1::ReportPointsResponse> r =
            coordinator_->ReportPoints(report);
        if (!r.ok()) {  // the job ended under us: nothing more is stored
          cancelled = true;
          break;
        }
        cancelled = r->directive() == v1::DIRECTIVE_CANCEL;
      }
      v1::HeartbeatRequest beat;
      beat.set_worker_id(worker);
      beat.add_tasks()->set_task_id(task.task_id());
      (void)coordinator_->Heartbeat(beat);
      if (cancelled) {
        v1::FailTaskRequest fail;
        fail.set_task_id(task.task_id());
        fail.set_attempt_id(task.attempt_id());
        fail.set_kind(v1::FAILURE_KIND_CANCELLED);
        fail.set_code(1);  // CANCELLED
        fail.set_reason("job cancelled");
        (void)coordinator_->FailTask(fail);
        return;
      }
    }
    v1::CompleteTaskRequest complete;
    complete.set_task_id(task.task_id());
    complete.set_attempt_id(task.attempt_id());
    complete.set_final_seq(kPoints - 1);
    const double k = 1.0 + task.range_test().seed_index();
    v1::Recommendation* rec =
        complete.mutable_range_test()->mutable_recommendation();
    rec->set_min_lr(1e-3 * k);
    rec->set_max_lr(1e-2 * k);
    rec->set_stepsize_iterations(400);
    rec->set_lr_valley(3e-3 * k);
    rec->set_points_used(kPoints);
    rec->set_seeds(1);
    complete.mutable_range_test()->set_steps_run(kPoints);
    (void)coordinator_->CompleteTask(complete);  // refused once cancelled
  }

  // A client: submits its jobs, cancels every third one at once, and reads
  // each job's events until it ends.
  void Use(int index, std::map<std::string, std::string>* jobs) {
    const std::string owner = absl::StrCat("client-", index);
    std::vector<std::string> ids;
    for (int j = 0; j < kJobsPerClient; ++j) {
      v1::SubmitJobRequest request = RangeTestRequest();
      absl::StatusOr<v1::Job> job = coordinator_->SubmitJob(owner, request);
      ASSERT_TRUE(job.ok()) << job.status();
      ids.push_back(job->job_id());
      if (j % 3 == 2) {
        v1::CancelJobRequest cancel;
        cancel.set_job_id(job->job_id());
        ASSERT_TRUE(coordinator_->CancelJob(owner, cancel).ok());
      }
    }
    for (const std::string& id : ids) {
      const absl::Time give_up = absl::Now() + absl::Seconds(120);
      while (absl::Now() < give_up) {
        absl::StatusOr<v1::Job> job = coordinator_->GetJob(owner, id);
        ASSERT_TRUE(job.ok()) << job.status();
        absl::StatusOr<std::vector<v1::JobEvent>> some =
            coordinator_->ReadEvents(id, 0, 50);  // reads beside the writes
        ASSERT_TRUE(some.ok()) << some.status();
        if (Terminal(job->state())) break;
        absl::SleepFor(absl::Milliseconds(5));
      }
      (*jobs)[id] = owner;
    }
  }

  std::string db_path_;
  std::unique_ptr<JobStore> store_;
  std::unique_ptr<Coordinator> coordinator_;
};

TEST_F(CoordinatorConcurrencyTest, ClientsWorkersAndSweeperTogether) {
  std::atomic<bool> done{false};
  std::vector<std::thread> workers;
  for (int i = 0; i < kWorkers; ++i) {
    workers.emplace_back([this, i, &done] { Work(i, done); });
  }
  std::vector<std::map<std::string, std::string>> jobs(kClients);
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([this, i, &jobs] { Use(i, &jobs[i]); });
  }
  for (std::thread& t : clients) t.join();
  done = true;
  coordinator_->work_signal()->WakeAll();
  for (std::thread& t : workers) t.join();

  int succeeded = 0;
  int cancelled = 0;
  for (const auto& by_client : jobs) {
    for (const auto& [id, owner] : by_client) {
      absl::StatusOr<v1::Job> job = coordinator_->GetJob(owner, id);
      ASSERT_TRUE(job.ok()) << job.status();
      ASSERT_TRUE(Terminal(job->state())) << id << " did not end";
      absl::StatusOr<std::vector<v1::JobEvent>> events =
          coordinator_->ReadEvents(id, 0, 100000);
      ASSERT_TRUE(events.ok()) << events.status();
      std::map<int, std::vector<int64_t>> curves;
      for (size_t i = 0; i < events->size(); ++i) {
        const v1::JobEvent& e = (*events)[i];
        ASSERT_EQ(e.seq(), i + 1) << id << ": a gap or a duplicate";
        if (e.has_point()) {
          curves[e.point().point().seed_index()].push_back(
              e.point().point().step());
        }
      }
      for (const auto& [seed, steps] : curves) {
        for (size_t i = 0; i < steps.size(); ++i) {
          ASSERT_EQ(steps[i], static_cast<int64_t>(i))
              << id << " seed " << seed;
        }
      }
      if (job->state() == v1::JOB_STATE_SUCCEEDED) {
        ++succeeded;
        ASSERT_EQ(curves.size(), static_cast<size_t>(kSeeds)) << id;
        for (const auto& [seed, steps] : curves) {
          EXPECT_EQ(steps.size(), static_cast<size_t>(kPoints)) << id;
        }
      } else {
        EXPECT_EQ(job->state(), v1::JOB_STATE_CANCELLED) << id;
        ++cancelled;
      }
    }
  }
  EXPECT_EQ(succeeded + cancelled, kClients * kJobsPerClient);
  EXPECT_GE(succeeded, kClients * kJobsPerClient * 2 / 3);
}

}  // namespace
}  // namespace lrtune::server
