// The agent against an in-process fake WorkerHub: a real engine run (tiny
// range tests on spirals), with the coordinator's answers scripted.
#include "worker/agent.h"

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/sync.h"
#include "gtest/gtest.h"
#include "proto/status_details.h"
#include "tests/small_run.h"

namespace lrtune::worker {
namespace {

v1::Task RangeTask(int64_t steps, int seed_index) {
  v1::Task task;
  task.set_task_id("job-t" + std::to_string(seed_index));
  task.set_job_id("job");
  task.set_attempt_id(5);
  task.set_attempt_number(1);
  v1::RangeTestTask& rt = *task.mutable_range_test();
  *rt.mutable_run() = testing::SmallRun(16, 32);
  rt.mutable_run()->mutable_data()->set_synthetic_samples(256);
  rt.mutable_run()->set_seed(7);
  // No divergence: every step is a point.
  *rt.mutable_range_test() = testing::Ramp(steps, 1e-4, 1e-3, {});
  rt.set_seed_index(seed_index);
  return task;
}

absl::Status NotRegistered() { return WorkerNotRegisteredError("w-1"); }

class FakeHub final : public HubClient {
 public:
  absl::StatusOr<v1::RegisterResponse> Register(
      const v1::RegisterRequest& request) override {
    lrtune::MutexLock lock(&mu);
    registered = request;
    register_ids.push_back(request.worker_id());
    forgotten = false;
    v1::RegisterResponse r;
    r.set_worker_id("w-1");
    r.mutable_heartbeat_interval()->set_nanos(20'000'000);
    return r;
  }
  absl::StatusOr<v1::AcquireTaskResponse> AcquireTask(
      const v1::AcquireTaskRequest& request) override {
    lrtune::MutexLock lock(&mu);
    if (forgotten) return NotRegistered();
    EXPECT_EQ(request.worker_id(), "w-1");
    ++acquires;
    if (long_poll) {  // a long poll with no task, until CancelWaits
      mu.AwaitWithTimeout(lrtune::Condition(&waits_cancelled),
                          absl::Seconds(10));
      return absl::CancelledError("cancelled");
    }
    v1::AcquireTaskResponse r;
    if (!tasks.empty()) {
      *r.mutable_task() = tasks.front();
      tasks.erase(tasks.begin());
    } else {
      r.mutable_retry_after()->set_nanos(10'000'000);
    }
    return r;
  }
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(
      const v1::HeartbeatRequest& request) override {
    lrtune::MutexLock lock(&mu);
    if (forgotten) return NotRegistered();
    EXPECT_EQ(request.worker_id(), "w-1");
    ++heartbeats;
    if (register_ids.size() >= 2 && request.tasks_size() > 0) {
      ++task_heartbeats_after_reregister;
    }
    v1::HeartbeatResponse r;
    for (const v1::TaskStatus& t : request.tasks()) {
      v1::TaskDirective& d = *r.add_directives();
      d.set_task_id(t.task_id());
      d.set_attempt_id(t.attempt_id());
      d.set_directive(heartbeat_directive);
    }
    return r;
  }
  absl::StatusOr<v1::ReportPointsResponse> ReportPoints(
      const v1::ReportPointsRequest& request) override {
    lrtune::MutexLock lock(&mu);
    if (unavailable_reports > 0) {
      --unavailable_reports;
      return absl::UnavailableError("coordinator away");
    }
    if (forgotten && reports_need_registration) return NotRegistered();
    first_seqs.push_back(request.records(0).seq());
    EXPECT_EQ(request.attempt_id(), 5u);
    for (const v1::TaskRecord& r : request.records()) {
      if (r.seq() == stored + 1) {
        ++stored;
        if (stored == forget_at_stored) forgotten = true;  // a restart
        steps.push_back(r.point().step());
        EXPECT_EQ(r.point().seed_index(), 3);
      }
    }
    v1::ReportPointsResponse response;
    response.set_acked_seq(stored);
    return response;
  }
  absl::StatusOr<v1::CompleteTaskResponse> CompleteTask(
      const v1::CompleteTaskRequest& request) override {
    lrtune::MutexLock lock(&mu);
    completed.push_back(request);
    return v1::CompleteTaskResponse{};
  }
  absl::StatusOr<v1::FailTaskResponse> FailTask(
      const v1::FailTaskRequest& request) override {
    lrtune::MutexLock lock(&mu);
    failed.push_back(request);
    return v1::FailTaskResponse{};
  }

  void CancelWaits() override {
    lrtune::MutexLock lock(&mu);
    waits_cancelled = true;
  }

  bool Done() {
    lrtune::MutexLock lock(&mu);
    return !completed.empty() || !failed.empty();
  }

  lrtune::Mutex mu;
  v1::RegisterRequest registered;
  std::vector<v1::Task> tasks;
  v1::Directive heartbeat_directive = v1::DIRECTIVE_CONTINUE;
  int heartbeats = 0;
  int unavailable_reports = 0;
  // The coordinator restarted and lost its worker registry: Heartbeat and
  // AcquireTask (and ReportPoints, if reports_need_registration) answer
  // NOT_FOUND until the next Register.
  bool forgotten = false;
  bool reports_need_registration = false;
  int64_t forget_at_stored = -2;          // forget once this seq is stored
  std::vector<std::string> register_ids;  // worker_id of each Register
  int task_heartbeats_after_reregister = 0;
  bool long_poll = false;
  bool waits_cancelled = false;
  int acquires = 0;
  int64_t stored = -1;
  std::vector<int64_t> steps;
  std::vector<int64_t> first_seqs;
  std::vector<v1::CompleteTaskRequest> completed;
  std::vector<v1::FailTaskRequest> failed;
};

struct Harness {
  explicit Harness(FakeHub* hub_in) : hub(hub_in) {
    AgentOptions options;
    options.server = "fake";
    options.threads = 1;
    options.acquire_wait = absl::Milliseconds(10);
    options.report_interval = absl::Milliseconds(5);
    options.report_batch = 16;
    options.backoff.initial = absl::Milliseconds(1);
    options.backoff.max = absl::Milliseconds(20);
    agent = std::make_unique<Agent>(options, std::unique_ptr<HubClient>(hub));
    thread = std::thread([this] { run_status = agent->Run(); });
  }
  bool WaitDone() {
    for (int i = 0; i < 1200 && !hub->Done(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return hub->Done();
  }
  ~Harness() {
    agent->Shutdown();
    thread.join();
  }
  FakeHub* hub;  // owned by the agent
  std::unique_ptr<Agent> agent;
  std::thread thread;
  absl::Status run_status;
};

TEST(Agent, RunsARangeTestAndCompletesWithEveryRecord) {
  auto* hub = new FakeHub;
  hub->tasks.push_back(RangeTask(40, 3));
  hub->unavailable_reports = 3;  // the coordinator is away at first
  Harness h(hub);
  ASSERT_TRUE(h.WaitDone());
  lrtune::MutexLock lock(&hub->mu);
  ASSERT_EQ(hub->completed.size(), 1u);
  const v1::CompleteTaskRequest& c = hub->completed[0];
  EXPECT_EQ(c.task_id(), "job-t3");
  EXPECT_EQ(c.attempt_id(), 5u);
  EXPECT_EQ(c.final_seq(), 39);
  EXPECT_TRUE(c.has_range_test());
  EXPECT_EQ(c.range_test().steps_run(), 40);
  EXPECT_EQ(c.range_test().device(), "cpu");
  ASSERT_EQ(hub->steps.size(), 40u);
  for (int i = 0; i < 40; ++i) EXPECT_EQ(hub->steps[i], i);
  EXPECT_EQ(hub->registered.capabilities().slots_size(), 1);
  EXPECT_EQ(hub->registered.capabilities().devices(0).name(), "cpu");
  EXPECT_EQ(hub->registered.capabilities().devices(0).gpu_name(), "");
  EXPECT_EQ(hub->registered.capabilities().devices(0).memory_bytes(), 0);
  EXPECT_EQ(hub->registered.capabilities().threads(), 1);
}

TEST(Agent, ResumeDoesNotResendAcknowledgedRecords) {
  auto* hub = new FakeHub;
  v1::Task task = RangeTask(30, 3);
  task.mutable_resume()->set_last_acked_seq(9);
  hub->tasks.push_back(task);
  hub->stored = 9;
  for (int i = 0; i < 10; ++i) hub->steps.push_back(i);
  Harness h(hub);
  ASSERT_TRUE(h.WaitDone());
  lrtune::MutexLock lock(&hub->mu);
  ASSERT_FALSE(hub->first_seqs.empty());
  EXPECT_EQ(hub->first_seqs[0], 10);
  ASSERT_EQ(hub->completed.size(), 1u);
  EXPECT_EQ(hub->completed[0].final_seq(), 29);
  ASSERT_EQ(hub->steps.size(), 30u);
  for (int i = 0; i < 30; ++i) EXPECT_EQ(hub->steps[i], i);
}

TEST(Agent, CancelDirectiveStopsTheRunAndFailsAsCancelled) {
  auto* hub = new FakeHub;
  hub->tasks.push_back(RangeTask(1000000, 3));
  hub->heartbeat_directive = v1::DIRECTIVE_CANCEL;
  Harness h(hub);
  ASSERT_TRUE(h.WaitDone());
  lrtune::MutexLock lock(&hub->mu);
  ASSERT_EQ(hub->failed.size(), 1u);
  EXPECT_EQ(hub->failed[0].kind(), v1::FAILURE_KIND_CANCELLED);
  EXPECT_EQ(hub->failed[0].code(),
            static_cast<int>(absl::StatusCode::kCancelled));
  EXPECT_TRUE(hub->completed.empty());
}

TEST(Agent, AbandonDirectiveSendsNothingMore) {
  auto* hub = new FakeHub;
  hub->tasks.push_back(RangeTask(1000000, 3));
  hub->heartbeat_directive = v1::DIRECTIVE_ABANDON;
  Harness h(hub);
  for (int i = 0; i < 100; ++i) {
    {
      lrtune::MutexLock lock(&hub->mu);
      if (hub->heartbeats >= 5) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  lrtune::MutexLock lock(&hub->mu);
  EXPECT_TRUE(hub->failed.empty());
  EXPECT_TRUE(hub->completed.empty());
  EXPECT_GE(hub->heartbeats, 5);
}

TEST(Agent, ShutdownReleasesTheRunningTask) {
  auto* hub = new FakeHub;
  hub->tasks.push_back(RangeTask(1000000, 3));
  auto h = std::make_unique<Harness>(hub);
  for (int i = 0; i < 200; ++i) {
    {
      lrtune::MutexLock lock(&hub->mu);
      if (hub->stored >= 20) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  h->agent->Shutdown();
  h->thread.join();
  EXPECT_TRUE(h->run_status.ok()) << h->run_status;
  {
    lrtune::MutexLock lock(&hub->mu);
    ASSERT_EQ(hub->failed.size(), 1u);
    EXPECT_EQ(hub->failed[0].kind(), v1::FAILURE_KIND_RELEASED);
  }
  h->thread = std::thread([] {});  // the destructor joins once more
}

TEST(Agent, RegistersAgainWithTheSameIdWhenTheCoordinatorForgetsIt) {
  auto* hub = new FakeHub;
  hub->tasks.push_back(RangeTask(1000000, 3));
  auto h = std::make_unique<Harness>(hub);
  auto wait_for = [&](auto done) {
    for (int i = 0; i < 500; ++i) {
      {
        lrtune::MutexLock lock(&hub->mu);
        if (done()) return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  };
  ASSERT_TRUE(wait_for([&] { return hub->stored >= 20; }));
  int64_t stored_at_restart = 0;
  {
    lrtune::MutexLock lock(&hub->mu);
    hub->forgotten = true;  // heartbeats now get NOT_FOUND
    stored_at_restart = hub->stored;
  }
  // The agent registers again under its id, its heartbeats carry the
  // running task again, and the task keeps reporting.
  ASSERT_TRUE(wait_for([&] {
    return hub->task_heartbeats_after_reregister >= 3 &&
           hub->stored > stored_at_restart + 20;
  }));
  h->agent->Shutdown();
  h->thread.join();
  EXPECT_TRUE(h->run_status.ok()) << h->run_status;
  {
    lrtune::MutexLock lock(&hub->mu);
    ASSERT_GE(hub->register_ids.size(), 2u);
    EXPECT_EQ(hub->register_ids[0], "");
    for (size_t i = 1; i < hub->register_ids.size(); ++i) {
      EXPECT_EQ(hub->register_ids[i], "w-1") << "Register #" << i;
    }
    EXPECT_TRUE(hub->completed.empty());
    ASSERT_EQ(hub->failed.size(), 1u);  // released at shutdown, not lost
    EXPECT_EQ(hub->failed[0].kind(), v1::FAILURE_KIND_RELEASED);
  }
  h->thread = std::thread([] {});  // the destructor joins once more
}

TEST(Agent, ReportsNotRegisteredAreRetriedAfterRegisteringAgain) {
  auto* hub = new FakeHub;
  hub->tasks.push_back(RangeTask(300, 3));
  hub->reports_need_registration = true;
  hub->forget_at_stored = 49;
  Harness h(hub);
  ASSERT_TRUE(h.WaitDone());
  lrtune::MutexLock lock(&hub->mu);
  EXPECT_GE(hub->register_ids.size(), 2u);
  ASSERT_EQ(hub->completed.size(), 1u) << "the task was abandoned";
  EXPECT_EQ(hub->completed[0].final_seq(), 299);
  ASSERT_EQ(hub->steps.size(), 300u);
  for (int i = 0; i < 300; ++i) EXPECT_EQ(hub->steps[i], i);
}

TEST(Agent, ShutdownCancelsALongPoll) {
  auto* hub = new FakeHub;
  hub->long_poll = true;
  auto h = std::make_unique<Harness>(hub);
  for (int i = 0; i < 200; ++i) {
    {
      lrtune::MutexLock lock(&hub->mu);
      if (hub->acquires > 0) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const absl::Time start = absl::Now();
  h->agent->Shutdown();
  h->thread.join();
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));  // not the 10 s poll
  EXPECT_TRUE(h->run_status.ok()) << h->run_status;
  h->thread = std::thread([] {});  // the destructor joins once more
}

TEST(ParseDevices, AcceptsCpuAndCudaListsOnly) {
  auto d = ParseDevices("cuda:0,cuda:1");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->size(), 2u);
  EXPECT_EQ((*d)[1], "cuda:1");
  EXPECT_FALSE(ParseDevices("gpu").ok());
  EXPECT_FALSE(ParseDevices("cuda:").ok());
  EXPECT_FALSE(ParseDevices("").ok());
}

}  // namespace
}  // namespace lrtune::worker
