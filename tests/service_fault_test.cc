// Fault injection with the real binaries on loopback: lrtune-server and
// lrtune-worker processes are killed with SIGKILL in the middle of a range
// test, and the service's guarantees (docs/api.md: durable events, leases and
// fencing, resumption) are checked from the
// client's side:
//
//   WorkerKilled  the worker holding the task dies; its lease (2 s) lapses
//                 and a second worker finishes the task.
//   ServerKilled  the coordinator dies and restarts on the same --db and
//                 port (at once, or after its lease lapsed); the worker
//                 finds it again by itself.
//
// In both, the job succeeds, every event the client received before the
// fault is stored with the same seq and content, and the stored curve is
// gap-free: steps 0..n-1 once each, in order. Each test takes 10-30 s.
// Over the house's ~600 lines: each case starts real processes with its
// own flags, and they share the process and client helpers here.
#include <signal.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "lrtune/v1/lrtune.grpc.pb.h"
#include "small_run.h"
#include "test_process.h"

namespace {

using Clock = std::chrono::steady_clock;
using lrtune::testing::FreePort;
using lrtune::testing::MakeTempDir;
using lrtune::testing::Process;

// Steps of the range test: long enough (several seconds on one CPU
// thread) that a fault lands mid-task, short enough to keep the test fast.
// The LR ramp stays low, so the run never diverges and makes every step.
constexpr int64_t kSteps = 12000;

// One temporary directory, a port and the command lines of the binaries.
class ServiceFaultTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir(
        std::string("lrtune_service_fault_test_") +
        testing::UnitTest::GetInstance()->current_test_info()->name());
    address_ = "127.0.0.1:" + std::to_string(FreePort());
  }
  void TearDown() override {
    // The logs of a failed test stay for a look (as on request).
    if (!HasFailure() && std::getenv("LRTUNE_TEST_KEEP_DIR") == nullptr) {
      std::filesystem::remove_all(dir_);
    }
  }

  std::unique_ptr<Process> StartServer() {
    // A 2 s lease, swept every 200 ms: a dead worker's task is requeued
    // within about 2.5 s.
    return std::make_unique<Process>(
        std::vector<std::string>{LRTUNE_SERVER_BIN, "--listen", address_,
                                 "--db", (dir_ / "jobs.db").string(),
                                 "--lease-ttl", "2s", "--sweep-interval",
                                 "200ms"},
        (dir_ / "server.log").string());
  }
  // `checkpoint_dir`: the worker's --checkpoint-dir (empty: none).
  std::unique_ptr<Process> StartWorker(const std::string& id,
                                       const std::string& checkpoint_dir = "") {
    std::vector<std::string> args = {LRTUNE_WORKER_BIN,
                                     "--server",
                                     address_,
                                     "--devices",
                                     "cpu",
                                     "--slots",
                                     "1",
                                     "--threads",
                                     "1",
                                     "--worker-id",
                                     id};
    if (!checkpoint_dir.empty()) {
      args.insert(args.end(), {"--checkpoint-dir", checkpoint_dir});
    }
    return std::make_unique<Process>(args, (dir_ / (id + ".log")).string());
  }

  // A stub on a fresh channel, once the server accepts connections. The
  // channel has subchannels of its own: a global pool could hand it the
  // connection to a server just killed, before gRPC noticed its death.
  std::unique_ptr<lrtune::v1::LrTune::Stub> Connect() {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    auto channel = grpc::CreateCustomChannel(
        address_, grpc::InsecureChannelCredentials(), args);
    EXPECT_TRUE(channel->WaitForConnected(std::chrono::system_clock::now() +
                                          std::chrono::seconds(20)))
        << "no server on " << address_;
    return lrtune::v1::LrTune::NewStub(channel);
  }

  void KillServerMidJob(std::chrono::milliseconds down);

  std::filesystem::path dir_;
  std::string address_;
};

lrtune::v1::SubmitJobRequest OneSeedRangeTest() {
  lrtune::v1::SubmitJobRequest request;
  *request.mutable_range_test()->mutable_run() = lrtune::testing::SmallRun(32);
  // One seed: one task, so the worker that holds it is known.
  *request.mutable_range_test()->mutable_range_test() =
      lrtune::testing::Ramp(kSteps, 1e-5, 1e-3, {1});
  return request;
}

// Events of one WatchJob stream, as read.
struct Watched {
  std::vector<lrtune::v1::JobEvent> events;
  grpc::Status status;
};

// Watches `job_id` from `after_seq` until the stream ends (the terminal
// event, or the server's death) or, when `stop_after_points` > 0, until
// that many point events have arrived. `points_read`, when given, counts
// the points as they arrive.
Watched Watch(lrtune::v1::LrTune::Stub& stub, const std::string& job_id,
              uint64_t after_seq, int stop_after_points = 0,
              std::atomic<int>* points_read = nullptr) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(90));
  lrtune::v1::WatchJobRequest request;
  request.set_job_id(job_id);
  request.set_after_seq(after_seq);
  auto reader = stub.WatchJob(&context, request);
  Watched out;
  int points = 0;
  lrtune::v1::JobEvent event;
  while (reader->Read(&event)) {
    out.events.push_back(event);
    if (event.has_point()) {
      ++points;
      if (points_read != nullptr) ++*points_read;
    }
    if (stop_after_points > 0 && points >= stop_after_points) {
      context.TryCancel();
      break;
    }
  }
  out.status = reader->Finish();
  return out;
}

// The content of an event as a client compares it: all of it. A live
// event carries the time the store stamped on it, and a replayed
// JobAccepted the job as it was accepted, so a replay from the store is
// byte for byte what was streamed live.
std::string Content(const lrtune::v1::JobEvent& event) {
  return event.SerializeAsString();
}

// The whole stored log: seqs 1..n without gaps, ending in SUCCEEDED, and
// the curve of the only seed complete and in order.
void ExpectCompleteLog(const std::vector<lrtune::v1::JobEvent>& events) {
  ASSERT_FALSE(events.empty());
  std::vector<int64_t> steps;
  for (size_t i = 0; i < events.size(); ++i) {
    ASSERT_EQ(events[i].seq(), i + 1) << "a gap or a duplicate in the log";
    if (events[i].has_point()) {
      EXPECT_EQ(events[i].point().point().seed_index(), 0);
      steps.push_back(events[i].point().point().step());
    }
  }
  const lrtune::v1::JobEvent& last = events.back();
  ASSERT_TRUE(last.has_state_changed());
  EXPECT_EQ(last.state_changed().state(), lrtune::v1::JOB_STATE_SUCCEEDED)
      << last.state_changed().reason();
  ASSERT_EQ(steps.size(), static_cast<size_t>(kSteps));
  for (size_t i = 0; i < steps.size(); ++i) {
    ASSERT_EQ(steps[i], static_cast<int64_t>(i)) << "curve point " << i;
  }
}

// Every event of `seen` is in `stored` under the same seq, unchanged.
void ExpectSameEvents(const std::vector<lrtune::v1::JobEvent>& seen,
                      const std::vector<lrtune::v1::JobEvent>& stored) {
  std::map<uint64_t, const lrtune::v1::JobEvent*> by_seq;
  for (const lrtune::v1::JobEvent& e : stored) by_seq[e.seq()] = &e;
  for (const lrtune::v1::JobEvent& e : seen) {
    auto it = by_seq.find(e.seq());
    ASSERT_NE(it, by_seq.end()) << "event " << e.seq() << " was lost";
    EXPECT_EQ(Content(*it->second), Content(e))
        << "event " << e.seq() << " changed: was " << e.ShortDebugString()
        << ", now " << it->second->ShortDebugString();
  }
}

// Follows the job from where `before` stopped to its end, as a client
// whose stream broke resumes it, then reads the whole stored log: every
// event the client saw must be there, unchanged. Returns the stored log.
Watched FollowToTheEnd(lrtune::v1::LrTune::Stub& stub,
                       const std::string& job_id, const Watched& before) {
  Watched rest = Watch(stub, job_id, before.events.back().seq());
  EXPECT_TRUE(rest.status.ok()) << rest.status.error_message();
  std::vector<lrtune::v1::JobEvent> seen = before.events;
  seen.insert(seen.end(), rest.events.begin(), rest.events.end());
  Watched stored = Watch(stub, job_id, 0);
  if (stored.status.ok()) ExpectSameEvents(seen, stored.events);
  return stored;
}

TEST_F(ServiceFaultTest, WorkerKilledMidTaskAnotherWorkerFinishesIt) {
  const auto start = Clock::now();
  std::unique_ptr<Process> server = StartServer();
  ASSERT_TRUE(server->started());
  std::unique_ptr<Process> worker_a = StartWorker("worker-a");
  ASSERT_TRUE(worker_a->started());
  auto stub = Connect();

  grpc::ClientContext submit_context;
  lrtune::v1::Job job;
  grpc::Status submitted =
      stub->SubmitJob(&submit_context, OneSeedRangeTest(), &job);
  ASSERT_TRUE(submitted.ok()) << submitted.error_message();

  // Worker A is alone, so the points come from it; then B joins and A dies.
  Watched before = Watch(*stub, job.job_id(), 0, /*stop_after_points=*/200);
  ASSERT_GE(before.events.size(), 200u) << before.status.error_message();
  std::unique_ptr<Process> worker_b = StartWorker("worker-b");
  ASSERT_TRUE(worker_b->started());
  worker_a->Kill();

  // Follow the job to its end, resuming where the first watch stopped.
  Watched stored = FollowToTheEnd(*stub, job.job_id(), before);
  ASSERT_TRUE(stored.status.ok()) << stored.status.error_message();
  ExpectCompleteLog(stored.events);

  // The task really moved: B ran a second attempt of it.
  const std::string b_log = worker_b->Log();
  EXPECT_NE(b_log.find("attempt 2 of job " + job.job_id()), std::string::npos)
      << "worker B log:\n"
      << b_log;
  EXPECT_EQ(worker_b->Stop(), 0);
  server->Stop();
  std::cerr << "worker-kill test took "
            << std::chrono::duration<double>(Clock::now() - start).count()
            << " s\n";
}

// A grid trial's worker is SIGKILLed mid-training; the worker that takes
// the task over sees the same --checkpoint-dir and resumes from the last
// checkpoint (an epoch end) instead of step 0: the trial reports where it
// resumed, the curve is complete and gap-free, and the checkpoint is gone
// once the trial succeeded.
TEST_F(ServiceFaultTest, WorkerKilledMidTrialTheNextResumesFromItsCheckpoint) {
  const auto start = Clock::now();
  const std::string checkpoints = (dir_ / "checkpoints").string();
  std::unique_ptr<Process> server = StartServer();
  ASSERT_TRUE(server->started());
  std::unique_ptr<Process> worker_a = StartWorker("worker-a", checkpoints);
  ASSERT_TRUE(worker_a->started());
  auto stub = Connect();

  constexpr int64_t kTrialSteps = 2500;
  lrtune::v1::SubmitJobRequest request;
  lrtune::v1::GridSearchJob* grid = request.mutable_grid();
  *grid->mutable_run() = OneSeedRangeTest().range_test().run();
  // Epochs of 150 steps (a checkpoint each), longer than the reports lag
  // behind training, so the checkpoint before the newest is always stored.
  grid->mutable_run()->mutable_data()->set_synthetic_samples(12000);
  grid->mutable_train()->set_steps(kTrialSteps);
  grid->mutable_train()->mutable_schedule()->set_kind(
      lrtune::v1::SCHEDULE_KIND_COSINE);
  lrtune::v1::LrBoundsValue* bounds = grid->mutable_grid()
                                          ->add_axes()
                                          ->mutable_lr_bounds()
                                          ->add_values()
                                          ->mutable_explicit_bounds();
  bounds->set_min_lr(1e-3);
  bounds->set_max_lr(5e-2);
  grpc::ClientContext submit_context;
  lrtune::v1::Job job;
  grpc::Status submitted = stub->SubmitJob(&submit_context, request, &job);
  ASSERT_TRUE(submitted.ok()) << submitted.error_message();

  // Worker A is alone, so it holds the trial; past a few epochs (and their
  // checkpoints) B joins and A dies.
  Watched before = Watch(*stub, job.job_id(), 0, /*stop_after_points=*/600);
  ASSERT_GE(before.events.size(), 600u) << before.status.error_message();
  std::unique_ptr<Process> worker_b = StartWorker("worker-b", checkpoints);
  ASSERT_TRUE(worker_b->started());
  worker_a->Kill();
  const std::string checkpoint = checkpoints + "/" + job.job_id() + "-t0.ckpt";
  // A checkpoint is there, the newest or the one before it: a kill between
  // SaveCheckpoint's two renames leaves only the previous one (".prev",
  // worker/engine.h kPreviousCheckpointSuffix), which the next worker then
  // resumes from (as a CI run at 0bed87f saw once).
  EXPECT_TRUE(std::filesystem::exists(checkpoint) ||
              std::filesystem::exists(checkpoint + ".prev"))
      << "no checkpoint at " << checkpoint << "[.prev]";

  Watched stored = FollowToTheEnd(*stub, job.job_id(), before);
  ASSERT_TRUE(stored.status.ok()) << stored.status.error_message();
  ASSERT_FALSE(stored.events.empty());
  EXPECT_EQ(stored.events.back().state_changed().state(),
            lrtune::v1::JOB_STATE_SUCCEEDED)
      << stored.events.back().ShortDebugString();
  std::vector<int64_t> steps;
  std::vector<int64_t> evaluated;  // steps of the epoch-end evaluations
  for (size_t i = 0; i < stored.events.size(); ++i) {
    ASSERT_EQ(stored.events[i].seq(), i + 1) << "a gap or a duplicate";
    if (stored.events[i].has_point()) {
      steps.push_back(stored.events[i].point().point().step());
    }
    if (stored.events[i].has_evaluation()) {
      evaluated.push_back(stored.events[i].evaluation().evaluation().step());
    }
  }
  ASSERT_EQ(steps.size(), static_cast<size_t>(kTrialSteps));
  for (size_t i = 0; i < steps.size(); ++i) {
    ASSERT_EQ(steps[i], static_cast<int64_t>(i)) << "curve point " << i;
  }
  for (size_t i = 1; i < evaluated.size(); ++i) {
    ASSERT_LT(evaluated[i - 1], evaluated[i]) << "an evaluation repeated";
  }

  // B resumed, from a step A reached, not from 0.
  const std::string b_log = worker_b->Log();
  EXPECT_NE(b_log.find("resumed at step"), std::string::npos)
      << "worker B log:\n"
      << b_log;
  grpc::ClientContext get_context;
  lrtune::v1::GetJobRequest get;
  get.set_job_id(job.job_id());
  lrtune::v1::Job done;
  ASSERT_TRUE(stub->GetJob(&get_context, get, &done).ok());
  ASSERT_EQ(done.trials_size(), 1);
  EXPECT_GT(done.trials(0).resumed_from_step(), 0);
  EXPECT_LT(done.trials(0).resumed_from_step(), kTrialSteps);
  EXPECT_EQ(done.trials(0).steps(), kTrialSteps);
  EXPECT_FALSE(std::filesystem::exists(checkpoint))
      << "the checkpoint of a finished trial is left behind";
  EXPECT_EQ(worker_b->Stop(), 0);
  server->Stop();
  std::cerr << "trial resume test took "
            << std::chrono::duration<double>(Clock::now() - start).count()
            << " s; resumed at step " << done.trials(0).resumed_from_step()
            << "\n";
}

// Kills the coordinator after 300 points of a one-seed range test, keeps
// it down for `down`, restarts it on the same --db and port, and checks
// the outcome.
void ServiceFaultTest::KillServerMidJob(std::chrono::milliseconds down) {
  const auto start = Clock::now();
  std::unique_ptr<Process> server = StartServer();
  ASSERT_TRUE(server->started());
  std::unique_ptr<Process> worker = StartWorker("worker-a");
  ASSERT_TRUE(worker->started());
  auto stub = Connect();

  grpc::ClientContext submit_context;
  lrtune::v1::Job job;
  grpc::Status submitted =
      stub->SubmitJob(&submit_context, OneSeedRangeTest(), &job);
  ASSERT_TRUE(submitted.ok()) << submitted.error_message();

  // The client is watching when the coordinator dies: what it read up to
  // then was acknowledged to it, so it must all survive.
  std::atomic<int> points{0};
  Watched before;
  std::thread watcher([&] {
    before = Watch(*stub, job.job_id(), 0, /*stop_after_points=*/0, &points);
  });
  const auto give_up = Clock::now() + std::chrono::seconds(30);
  while (points < 300 && Clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  server->Kill();
  watcher.join();
  ASSERT_GE(points.load(), 300) << before.status.error_message();
  ASSERT_FALSE(before.events.back().has_state_changed() &&
               before.events.back().state_changed().state() ==
                   lrtune::v1::JOB_STATE_SUCCEEDED)
      << "the job ended before the coordinator was killed";
  EXPECT_EQ(before.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  std::this_thread::sleep_for(down);
  server = StartServer();  // the same --db and port
  ASSERT_TRUE(server->started());
  stub = Connect();

  // Everything received before the crash is stored as it was sent, and the
  // worker, reconnecting by itself, finishes the job.
  Watched stored = Watch(*stub, job.job_id(), 0);
  ASSERT_TRUE(stored.status.ok()) << stored.status.error_message();
  ExpectSameEvents(before.events, stored.events);
  ExpectCompleteLog(stored.events);

  // The worker carried on under its id: the new coordinator's registry of
  // workers starts empty, so its first heartbeat made it register again.
  EXPECT_NE(worker->Log().find("registering again"), std::string::npos)
      << worker->Log();
  EXPECT_EQ(worker->Stop(), 0) << worker->Log();
  server->Stop();
  std::cerr << "server-kill test (down " << down.count() << " ms) took "
            << std::chrono::duration<double>(Clock::now() - start).count()
            << " s\n";
}

TEST_F(ServiceFaultTest, ServerKilledMidJobRestartsAndTheJobFinishes) {
  // Restarted at once: the task's lease (2 s) is still valid, and the
  // worker's attempt carries on.
  KillServerMidJob(std::chrono::milliseconds(0));
}

TEST_F(ServiceFaultTest, ServerDownLongerThanTheLeaseTheJobStillFinishes) {
  // Down past the lease: the restarted coordinator requeues the task, the
  // worker is told to abandon its attempt and (being the only worker)
  // leases the task again, resuming after the stored points.
  KillServerMidJob(std::chrono::milliseconds(3500));
}

// A worker that stops heartbeating but keeps running (SIGSTOP, SIGCONT after
// its lease lapsed and another worker took the task over): its late
// reports are refused as a stale attempt, it abandons the task, and the
// job's log stays gap-free and identical to what was streamed.
TEST_F(ServiceFaultTest, WorkerPausedPastItsLeaseItsLateWritesAreRefused) {
  std::unique_ptr<Process> server = StartServer();
  ASSERT_TRUE(server->started());
  std::unique_ptr<Process> worker_a = StartWorker("worker-a");
  ASSERT_TRUE(worker_a->started());
  auto stub = Connect();
  grpc::ClientContext submit_context;
  lrtune::v1::Job job;
  grpc::Status submitted =
      stub->SubmitJob(&submit_context, OneSeedRangeTest(), &job);
  ASSERT_TRUE(submitted.ok()) << submitted.error_message();

  Watched before = Watch(*stub, job.job_id(), 0, /*stop_after_points=*/200);
  ASSERT_GE(before.events.size(), 200u) << before.status.error_message();
  worker_a->Signal(SIGSTOP);
  std::unique_ptr<Process> worker_b = StartWorker("worker-b");
  ASSERT_TRUE(worker_b->started());
  // Lease 2 s, sweep 200 ms: by 4 s the task is B's (attempt 2).
  std::this_thread::sleep_for(std::chrono::seconds(4));
  worker_a->Signal(SIGCONT);

  Watched stored = FollowToTheEnd(*stub, job.job_id(), before);
  ASSERT_TRUE(stored.status.ok()) << stored.status.error_message();
  ExpectCompleteLog(stored.events);

  const std::string a_log = worker_a->Log();
  EXPECT_NE(a_log.find("abandon"), std::string::npos) << "worker A log:\n"
                                                      << a_log;
  EXPECT_NE(worker_b->Log().find("attempt 2 of job " + job.job_id()),
            std::string::npos);
  EXPECT_EQ(worker_a->Stop(), 0);
  EXPECT_EQ(worker_b->Stop(), 0);
  server->Stop();
}

// The coordinator killed with SIGKILL during a grid (a range test, then 4
// trials on its bounds, two workers) while points flow, restarted on the
// same store: every event the client had is there unchanged, the workers
// reconnect by themselves, the grid finishes, and each seed's and trial's
// curve is complete and in order.
TEST_F(ServiceFaultTest, ServerKilledMidGridRestartsAndTheGridFinishes) {
  std::unique_ptr<Process> server = StartServer();
  ASSERT_TRUE(server->started());
  std::unique_ptr<Process> worker_a = StartWorker("worker-a");
  std::unique_ptr<Process> worker_b = StartWorker("worker-b");
  auto stub = Connect();

  lrtune::v1::SubmitJobRequest request;
  lrtune::v1::GridSearchJob* grid = request.mutable_grid();
  *grid->mutable_run() = OneSeedRangeTest().range_test().run();
  grid->mutable_train()->set_steps(3000);
  grid->mutable_range_test()->set_steps(150);
  grid->mutable_range_test()->set_start_lr(1e-5);
  grid->mutable_range_test()->set_end_lr(10);
  auto* schedules = grid->mutable_grid()->add_axes()->mutable_schedules();
  schedules->add_values()->set_kind(lrtune::v1::SCHEDULE_KIND_ONE_CYCLE);
  schedules->add_values()->set_kind(lrtune::v1::SCHEDULE_KIND_COSINE);
  grid->mutable_grid()
      ->add_axes()
      ->mutable_lr_bounds()
      ->add_values()
      ->mutable_recommended();
  auto* seeds = grid->mutable_grid()->add_axes()->mutable_seeds();
  seeds->add_values(1);
  seeds->add_values(2);
  grpc::ClientContext submit_context;
  lrtune::v1::Job job;
  grpc::Status submitted = stub->SubmitJob(&submit_context, request, &job);
  ASSERT_TRUE(submitted.ok()) << submitted.error_message();

  // Kill it once trials are streaming (points of the range test first).
  std::atomic<int> points{0};
  Watched before;
  std::thread watcher([&] {
    before = Watch(*stub, job.job_id(), 0, /*stop_after_points=*/0, &points);
  });
  const auto give_up = Clock::now() + std::chrono::seconds(60);
  while (points < 150 + 400 && Clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  server->Kill();
  watcher.join();
  ASSERT_GE(points.load(), 550) << before.status.error_message();
  server = StartServer();
  ASSERT_TRUE(server->started());
  stub = Connect();

  Watched stored = Watch(*stub, job.job_id(), 0);
  ASSERT_TRUE(stored.status.ok()) << stored.status.error_message();
  ExpectSameEvents(before.events, stored.events);
  ASSERT_FALSE(stored.events.empty());
  EXPECT_EQ(stored.events.back().state_changed().state(),
            lrtune::v1::JOB_STATE_SUCCEEDED)
      << stored.events.back().ShortDebugString();
  std::map<int, std::vector<int64_t>> curves;  // trial (-1: range test)
  for (size_t i = 0; i < stored.events.size(); ++i) {
    ASSERT_EQ(stored.events[i].seq(), i + 1);
    if (!stored.events[i].has_point()) continue;
    const lrtune::v1::Origin& o = stored.events[i].point().origin();
    curves[o.has_trial_index() ? o.trial_index() : -1].push_back(
        stored.events[i].point().point().step());
  }
  ASSERT_EQ(curves.size(), 5u);
  for (const auto& [trial, steps] : curves) {
    EXPECT_EQ(steps.size(), trial < 0 ? 150u : 3000u) << "trial " << trial;
    for (size_t i = 0; i < steps.size(); ++i) {
      ASSERT_EQ(steps[i], static_cast<int64_t>(i)) << "trial " << trial;
    }
  }
  EXPECT_EQ(worker_a->Stop(), 0);
  EXPECT_EQ(worker_b->Stop(), 0);
  server->Stop();
}

// A pruned search: two schedule kinds x four explicit bounds (8 trials of
// 3000 steps, rungs at 333 and 1000; the triangular's at its next cycle
// ends). Run once to its end on one worker, as the reference; then again,
// with the coordinator SIGKILLed after its third rung decision and
// restarted: every trial is pruned or promoted at every rung exactly as in
// the reference, each decision is in the log once, and the ones taken
// before the kill are unchanged.
lrtune::v1::SubmitJobRequest PrunedSearch() {
  lrtune::v1::SubmitJobRequest request;
  lrtune::v1::GridSearchJob* grid = request.mutable_grid();
  *grid->mutable_run() = OneSeedRangeTest().range_test().run();
  grid->mutable_train()->set_steps(3000);
  auto* schedules = grid->mutable_grid()->add_axes()->mutable_schedules();
  schedules->add_values()->set_kind(lrtune::v1::SCHEDULE_KIND_COSINE);
  auto* tri = schedules->add_values();
  tri->set_kind(lrtune::v1::SCHEDULE_KIND_TRIANGULAR);
  tri->set_step_size_up(250);
  auto* bounds = grid->mutable_grid()->add_axes()->mutable_lr_bounds();
  for (double max_lr : {0.003, 0.03, 0.3, 3.0}) {
    auto* b = bounds->add_values()->mutable_explicit_bounds();
    b->set_min_lr(max_lr / 10);
    b->set_max_lr(max_lr);
  }
  grid->mutable_grid()->mutable_pruning()->set_kind(
      lrtune::v1::PRUNING_KIND_SUCCESSIVE_HALVING);
  return request;
}

// trial -> "rung:promoted rung:promoted ..." from a job's log; every
// (trial, rung) once.
std::map<int, std::string> Decisions(
    const std::vector<lrtune::v1::JobEvent>& events) {
  std::map<int, std::string> out;
  std::set<std::pair<int, int>> seen;
  for (const lrtune::v1::JobEvent& e : events) {
    if (!e.has_rung_decision()) continue;
    const auto& d = e.rung_decision();
    EXPECT_TRUE(seen.insert({d.trial_index(), d.result().rung()}).second)
        << "trial " << d.trial_index() << " rung " << d.result().rung()
        << " decided twice";
    absl::StrAppend(&out[d.trial_index()], d.result().rung(), ":",
                    d.result().promoted() ? "on " : "pruned ");
  }
  return out;
}

TEST_F(ServiceFaultTest, ServerKilledMidPrunedSearchKeepsItsDecisions) {
  std::map<int, std::string> reference;
  {
    std::unique_ptr<Process> server = StartServer();
    ASSERT_TRUE(server->started());
    std::unique_ptr<Process> worker = StartWorker("reference");
    auto stub = Connect();
    grpc::ClientContext context;
    lrtune::v1::Job job;
    ASSERT_TRUE(stub->SubmitJob(&context, PrunedSearch(), &job).ok());
    Watched all = Watch(*stub, job.job_id(), 0);
    ASSERT_TRUE(all.status.ok()) << all.status.error_message();
    ASSERT_EQ(all.events.back().state_changed().state(),
              lrtune::v1::JOB_STATE_SUCCEEDED);
    reference = Decisions(all.events);
    EXPECT_EQ(worker->Stop(), 0);
    server->Stop();
  }
  ASSERT_EQ(reference.size(), 8u);  // every trial reached its first rung
  int pruned = 0;
  for (const auto& [trial, d] : reference) {
    pruned += absl::StrContains(d, "pruned");
  }
  // One worker: the trials arrive one after another, and ASHA keeps a new
  // arrival that beats the ones before it, so few are pruned; some must be.
  EXPECT_GE(pruned, 1);

  for (const char* file : {"jobs.db", "jobs.db-wal", "jobs.db-shm"}) {
    std::filesystem::remove(dir_ / file);
  }
  std::unique_ptr<Process> server = StartServer();
  ASSERT_TRUE(server->started());
  std::unique_ptr<Process> worker = StartWorker("faulty");
  auto stub = Connect();
  grpc::ClientContext context;
  lrtune::v1::Job job;
  ASSERT_TRUE(stub->SubmitJob(&context, PrunedSearch(), &job).ok());
  // Read until the third decision, then kill the coordinator.
  Watched before;
  {
    grpc::ClientContext watch_context;
    watch_context.set_deadline(std::chrono::system_clock::now() +
                               std::chrono::seconds(90));
    lrtune::v1::WatchJobRequest watch;
    watch.set_job_id(job.job_id());
    auto reader = stub->WatchJob(&watch_context, watch);
    lrtune::v1::JobEvent event;
    int decisions = 0;
    while (decisions < 3 && reader->Read(&event)) {
      before.events.push_back(event);
      decisions += event.has_rung_decision();
    }
    server->Kill();
    watch_context.TryCancel();
    reader->Finish();
    ASSERT_EQ(decisions, 3);
  }
  server = StartServer();
  ASSERT_TRUE(server->started());
  stub = Connect();
  Watched stored = Watch(*stub, job.job_id(), 0);
  ASSERT_TRUE(stored.status.ok()) << stored.status.error_message();
  ASSERT_EQ(stored.events.back().state_changed().state(),
            lrtune::v1::JOB_STATE_SUCCEEDED)
      << stored.events.back().ShortDebugString();
  ExpectSameEvents(before.events, stored.events);
  for (size_t i = 0; i < stored.events.size(); ++i) {
    ASSERT_EQ(stored.events[i].seq(), i + 1);
  }
  EXPECT_EQ(Decisions(stored.events), reference);
  EXPECT_EQ(worker->Stop(), 0);
  server->Stop();
}

// The store's disk fills up (the server's file size limit, RLIMIT_FSIZE,
// with SIGXFSZ ignored so writes fail with EFBIG as on a full disk): new
// jobs are refused with RESOURCE_EXHAUSTED and a message saying so, never
// acknowledged; what was acknowledged before stays readable, and the
// server keeps serving.
TEST_F(ServiceFaultTest, FullDiskRefusesNewWorkAndKeepsWhatItHas) {
  // Ignored signals stay ignored across exec: the server inherits it.
  struct sigaction ignore = {};
  ignore.sa_handler = SIG_IGN;
  struct sigaction previous = {};
  sigaction(SIGXFSZ, &ignore, &previous);
  std::unique_ptr<Process> server = StartServer();
  sigaction(SIGXFSZ, &previous, nullptr);
  ASSERT_TRUE(server->started());
  auto stub = Connect();

  lrtune::v1::Job first;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub->SubmitJob(&context, OneSeedRangeTest(), &first).ok());
  }
  // From now on no file of the server may grow past 1 MiB beyond the
  // store's current size (the database or its write-ahead log).
  uintmax_t size = 0;
  for (const char* f : {"jobs.db", "jobs.db-wal"}) {
    std::error_code error;
    const uintmax_t s = std::filesystem::file_size(dir_ / f, error);
    if (!error) size = std::max(size, s);
  }
  struct rlimit limit = {};
  limit.rlim_cur = limit.rlim_max = size + (1 << 20);
  ASSERT_EQ(prlimit(server->pid(), RLIMIT_FSIZE, &limit, nullptr), 0);

  grpc::Status refused;
  int accepted = 0;
  lrtune::v1::SubmitJobRequest big = OneSeedRangeTest();
  // 64 KiB of labels per request: the limit is reached within a few jobs.
  lrtune::v1::InlineData* data = big.mutable_range_test()
                                     ->mutable_run()
                                     ->mutable_data()
                                     ->mutable_inline_data();
  data->add_x_shape(16384);
  data->add_x_shape(1);
  for (int i = 0; i < 16384; ++i) {
    data->add_x(static_cast<float>(i));
    data->add_y_labels(i % 2);
  }
  for (int i = 0; i < 64; ++i) {
    grpc::ClientContext context;
    lrtune::v1::Job job;
    refused = stub->SubmitJob(&context, big, &job);
    if (!refused.ok()) break;
    ++accepted;
  }
  ASSERT_FALSE(refused.ok()) << "64 jobs fit under the limit";
  // RESOURCE_EXHAUSTED when the OS says ENOSPC/EFBIG; a short write (how
  // the limit usually shows) leaves SQLite no errno: UNAVAILABLE, naming
  // the disk. Either way the job was not acknowledged.
  EXPECT_TRUE(refused.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED ||
              refused.error_code() == grpc::StatusCode::UNAVAILABLE)
      << refused.error_message();
  EXPECT_NE(refused.error_message().find("disk"), std::string::npos)
      << refused.error_message();
  {  // Nothing half-written: the refused jobs are not listed.
    lrtune::v1::ListJobsRequest list;
    list.set_page_size(1000);
    lrtune::v1::ListJobsResponse jobs;
    grpc::ClientContext context;
    ASSERT_TRUE(stub->ListJobs(&context, list, &jobs).ok());
    EXPECT_EQ(jobs.jobs_size(), accepted + 1);
  }

  // The job acknowledged before is still there, and the server answers.
  lrtune::v1::GetJobRequest get;
  get.set_job_id(first.job_id());
  lrtune::v1::Job again;
  grpc::ClientContext context;
  grpc::Status status = stub->GetJob(&context, get, &again);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(again.job_id(), first.job_id());
  std::cerr << "full disk: " << accepted << " big jobs accepted, then "
            << refused.error_message() << "\n";
  server->Stop();
}

}  // namespace
