// The job store on real SQLite files: jobs, leases and fencing, idempotent
// gap-free events, crash safety (SIGKILL mid-write, reopen), schema
// versions, holds and caps. Over ~600 lines: one fixture, and each case one
// of the guarantees job_store.h states.
#include "server/job_store.h"

#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lrtune::server {
namespace {

using ::testing::HasSubstr;

// The store's own events in a form a test reads: a state's name, and an
// attempt's fields. (The coordinator's encoder, server/event_codec.h, has
// its own test.)
class TextEventEncoder final : public EventEncoder {
 public:
  std::string Accepted() const override { return "queued"; }
  std::string StateChanged(JobState state,
                           absl::string_view reason) const override {
    return reason.empty() ? std::string(JobStateName(state))
                          : absl::StrCat(JobStateName(state), ": ", reason);
  }
  std::string AttemptEnded(const AttemptRecord& a,
                           bool will_retry) const override {
    return absl::StrCat(a.task_id, " attempt ", a.attempt, " ",
                        AttemptOutcomeName(a.outcome),
                        will_retry ? " (will retry)" : "", ": ", a.reason);
  }
};

constexpr absl::Duration kTtl = absl::Seconds(10);

class JobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "/job_store_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/lrtune.db";
    store_ = OpenStore();
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::unique_ptr<JobStore> OpenStore() {
    auto store = JobStore::Open(path_, &clock_, &encoder_);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }

  JobRecord Create(const std::string& owner, int tasks = 1,
                   int max_attempts = 3) {
    std::vector<std::string> specs;
    for (int i = 0; i < tasks; ++i) specs.push_back(absl::StrCat("task", i));
    auto job =
        store_->CreateJob(owner, "range_test", "spec", specs, max_attempts);
    EXPECT_TRUE(job.ok()) << job.status();
    return *job;
  }

  TaskLease Lease(const std::string& worker = "w1") {
    auto lease = store_->LeaseNextTask(worker, kTtl);
    EXPECT_TRUE(lease.ok()) << lease.status();
    EXPECT_TRUE(lease->has_value());
    return **lease;
  }

  static std::vector<Event> Points(int first, int count) {
    std::vector<Event> events;
    for (int i = first; i < first + count; ++i) {
      events.push_back({"point", absl::StrCat("p", i)});
    }
    return events;
  }

  std::vector<StoredEvent> Events(const std::string& job_id) {
    auto events = store_->ReadEvents(job_id, 0, 100000);
    EXPECT_TRUE(events.ok()) << events.status();
    return *events;
  }

  FakeClock clock_{absl::FromUnixSeconds(1700000000)};
  TextEventEncoder encoder_;
  std::string dir_;
  std::string path_;
  std::unique_ptr<JobStore> store_;
};

TEST_F(JobStoreTest, CreateGetAndValidate) {
  JobRecord job = Create("alice", 2);
  EXPECT_THAT(job.id, ::testing::MatchesRegex("j-[0-9a-f]{16}"));
  EXPECT_EQ(job.state, JobState::kQueued);
  EXPECT_EQ(job.last_seq, 1);  // the accepted event
  EXPECT_EQ(job.created, clock_.Now());
  auto got = store_->GetJob(job.id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->owner, "alice");
  EXPECT_EQ(got->spec, "spec");
  auto tasks = store_->ListTasks(job.id);
  ASSERT_TRUE(tasks.ok());
  ASSERT_EQ(tasks->size(), 2u);
  EXPECT_EQ((*tasks)[1].spec, "task1");
  EXPECT_EQ((*tasks)[1].index, 1);
  std::vector<StoredEvent> events = Events(job.id);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type, kAcceptedEventType);

  EXPECT_EQ(store_->GetJob("j-nope").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->CreateJob("alice", "sweep", "", {"t"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->CreateJob("alice", "grid", "", {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->CreateJob("alice", "grid", "", {"t"}, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(JobStoreTest, ListPagesOwnJobsNewestFirst) {
  std::vector<std::string> alice;
  for (int i = 0; i < 5; ++i) {
    alice.push_back(Create("alice").id);
    Create("bob");
  }
  std::vector<std::string> seen;
  std::string token;
  int pages = 0;
  do {
    auto page = store_->ListJobs("alice", std::nullopt, 2, token);
    ASSERT_TRUE(page.ok()) << page.status();
    for (const JobRecord& job : page->jobs) {
      EXPECT_EQ(job.owner, "alice");
      seen.push_back(job.id);
    }
    token = page->next_page_token;
    ++pages;
  } while (!token.empty());
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(seen, std::vector<std::string>(alice.rbegin(), alice.rend()));

  Lease();  // alice's oldest job starts running
  auto running = store_->ListJobs("alice", JobState::kRunning, 10, "");
  ASSERT_TRUE(running.ok());
  ASSERT_EQ(running->jobs.size(), 1u);
  EXPECT_EQ(running->jobs[0].id, alice[0]);
  EXPECT_EQ(
      store_->ListJobs("alice", std::nullopt, 2, "garbage").status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->ListJobs("alice", std::nullopt, 0, "").status().code(),
            absl::StatusCode::kInvalidArgument);

  // Without an owner: everyone's, still newest first and paged.
  std::vector<std::string> owners;
  token.clear();
  do {
    auto page = store_->ListJobs(std::nullopt, std::nullopt, 4, token);
    ASSERT_TRUE(page.ok()) << page.status();
    for (const JobRecord& job : page->jobs) owners.push_back(job.owner);
    token = page->next_page_token;
  } while (!token.empty());
  ASSERT_EQ(owners.size(), 10u);
  EXPECT_EQ(owners.front(), "bob");  // the newest
  EXPECT_EQ(owners.back(), "alice");
}

TEST_F(JobStoreTest, LeasesOldestQueuedTaskAndCountsAttempts) {
  JobRecord a = Create("alice", 2);
  JobRecord b = Create("bob", 1);
  TaskLease l1 = Lease();
  TaskLease l2 = Lease();
  TaskLease l3 = Lease();
  EXPECT_EQ(l1.task_id, a.id + "-t0");
  EXPECT_EQ(l2.task_id, a.id + "-t1");
  EXPECT_EQ(l3.task_id, b.id + "-t0");
  EXPECT_EQ(l1.attempt, 1);
  EXPECT_EQ(l1.spec, "task0");
  EXPECT_EQ(l1.expires_at, clock_.Now() + kTtl);
  auto none = store_->LeaseNextTask("w1", kTtl);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());

  EXPECT_EQ(store_->GetJob(a.id)->state, JobState::kRunning);
  std::vector<StoredEvent> events = Events(a.id);
  ASSERT_EQ(events.size(), 2u);  // accepted, running (once for two leases)
  EXPECT_EQ(events[1].type, kStateEventType);
  EXPECT_EQ(events[1].payload, "running");

  ASSERT_TRUE(store_->FailTask(l1.task_id, 1, "oom").ok());
  TaskLease again = Lease("w2");
  EXPECT_EQ(again.task_id, l1.task_id);
  EXPECT_EQ(again.attempt, 2);
}

TEST_F(JobStoreTest, StaleAttemptIsFencedEverywhere) {
  Create("alice");
  TaskLease first = Lease("w1");
  clock_.Advance(kTtl + absl::Seconds(1));
  // Not yet swept: renewing still fails because the lease has lapsed.
  absl::Status late = store_->RenewLease(first.task_id, 1, kTtl).status();
  EXPECT_EQ(late.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(late.message(), HasSubstr("lease expired"));
  ASSERT_EQ(store_->ExpireLeases(clock_.Now())->size(), 1u);
  TaskLease second = Lease("w2");
  ASSERT_EQ(second.attempt, 2);

  auto expect_stale = [](const absl::Status& status) {
    EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
    EXPECT_THAT(status.message(), HasSubstr("stale attempt 1, current 2"));
  };
  expect_stale(store_->RenewLease(first.task_id, 1, kTtl).status());
  expect_stale(
      store_->AppendTaskEvents(first.task_id, 1, 0, Points(1, 2)).status());
  expect_stale(store_->CompleteTask(first.task_id, 1, "zombie"));
  expect_stale(store_->FailTask(first.task_id, 1, "zombie"));
  // accepted, running, attempt 1 ended: no zombie points.
  std::vector<StoredEvent> so_far = Events(second.job_id);
  ASSERT_EQ(so_far.size(), 3u);
  EXPECT_EQ(so_far[2].type, kAttemptEndedEventType);

  auto renewed = store_->RenewLease(second.task_id, 2, kTtl);
  ASSERT_TRUE(renewed.ok()) << renewed.status();
  EXPECT_EQ(renewed->expires_at, clock_.Now() + kTtl);
  ASSERT_TRUE(store_->CompleteTask(second.task_id, 2, "ok").ok());
  absl::Status done = store_->RenewLease(second.task_id, 2, kTtl).status();
  EXPECT_EQ(done.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(done.message(), HasSubstr("succeeded, not leased"));
}

TEST_F(JobStoreTest, RepeatedBatchIsStoredOnceAndSeqsAreGapFree) {
  JobRecord job = Create("alice");
  TaskLease lease = Lease();
  auto first = store_->AppendTaskEvents(lease.task_id, 1, 0, Points(1, 3));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(*first, 5);  // accepted, running, 3 points
  auto repeat = store_->AppendTaskEvents(lease.task_id, 1, 0, Points(1, 3));
  ASSERT_TRUE(repeat.ok());
  EXPECT_EQ(*repeat, 5);
  auto overlap = store_->AppendTaskEvents(lease.task_id, 1, 1, Points(2, 4));
  ASSERT_TRUE(overlap.ok());
  EXPECT_EQ(*overlap, 7);  // only points 4 and 5 are new

  absl::Status gap =
      store_->AppendTaskEvents(lease.task_id, 1, 6, Points(7, 1)).status();
  EXPECT_EQ(gap.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(gap.message(), HasSubstr("gap"));
  EXPECT_EQ(store_->AppendTaskEvents(lease.task_id, 1, -1, Points(0, 1))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);

  std::vector<StoredEvent> events = Events(job.id);
  ASSERT_EQ(events.size(), 7u);
  std::vector<std::string> points;
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].seq, static_cast<int64_t>(i) + 1);
    if (events[i].type == "point") {
      EXPECT_EQ(events[i].task_id, lease.task_id);
      points.push_back(events[i].payload);
    }
  }
  EXPECT_EQ(points, (std::vector<std::string>{"p1", "p2", "p3", "p4", "p5"}));

  // A new attempt learns what is stored and resends only the rest.
  ASSERT_TRUE(store_->FailTask(lease.task_id, 1, "preempted").ok());
  TaskLease next = Lease();
  EXPECT_EQ(next.last_acked_seq, 4);  // records 0..4
  auto resumed = store_->AppendTaskEvents(next.task_id, 2, 0, Points(1, 6));
  ASSERT_TRUE(resumed.ok());
  EXPECT_EQ(*resumed, 9);  // attempt 1 ended (seq 8); p6 is the only new one

  auto tail = store_->ReadEvents(job.id, 6, 10);
  ASSERT_TRUE(tail.ok());
  ASSERT_EQ(tail->size(), 3u);
  // The task, attempt 1, failed, will retry, and the reason.
  EXPECT_EQ((*tail)[1].type, kAttemptEndedEventType);
  EXPECT_EQ((*tail)[1].payload,
            absl::StrCat(lease.task_id,
                         " attempt 1 failed (will retry): ", "preempted"));
  EXPECT_EQ((*tail)[2].payload, "p6");
}

TEST_F(JobStoreTest, ExpiryRequeuesThenFailsWithEveryReason) {
  JobRecord job = Create("alice", 2, 3);
  for (int i = 1; i <= 3; ++i) {
    TaskLease lease = Lease(absl::StrCat("w", i));
    EXPECT_EQ(lease.task_id, job.id + "-t0");
    if (i == 2) {
      ASSERT_TRUE(store_->FailTask(lease.task_id, 2, "nan loss").ok());
      continue;
    }
    // Not yet expired: nothing happens.
    EXPECT_TRUE(store_->ExpireLeases(clock_.Now() + kTtl / 2)->empty());
    clock_.Advance(kTtl);
    auto expired = store_->ExpireLeases(clock_.Now());
    ASSERT_TRUE(expired.ok());
    ASSERT_EQ(expired->size(), 1u);
    EXPECT_EQ((*expired)[0].worker, absl::StrCat("w", i));
    EXPECT_EQ((*expired)[0].requeued, i < 3);
  }
  auto task = store_->GetTask(job.id + "-t0");
  ASSERT_TRUE(task.ok());
  EXPECT_EQ(task->state, TaskState::kFailed);
  EXPECT_EQ(task->attempt_errors.size(), 3u);
  auto failed = store_->GetJob(job.id);
  ASSERT_TRUE(failed.ok());
  EXPECT_EQ(failed->state, JobState::kFailed);
  EXPECT_THAT(failed->error,
              HasSubstr("attempt 1: lease expired (worker w1 stopped "
                        "heartbeating)"));
  EXPECT_THAT(failed->error, HasSubstr("attempt 2: nan loss"));
  EXPECT_THAT(failed->error, HasSubstr("attempt 3: lease expired (worker w3"));
  // The job's other task was never started and is now cancelled.
  EXPECT_EQ(store_->GetTask(job.id + "-t1")->state, TaskState::kCancelled);
  EXPECT_FALSE(store_->LeaseNextTask("w9", kTtl)->has_value());
  // The failed event carries the job's reason.
  EXPECT_EQ(Events(job.id).back().payload,
            absl::StrCat("failed: ", failed->error));
}

TEST_F(JobStoreTest, JobSucceedsWhenEveryTaskHas) {
  JobRecord job = Create("alice", 2);
  TaskLease t0 = Lease();
  TaskLease t1 = Lease();
  ASSERT_TRUE(store_->CompleteTask(t0.task_id, 1, "r0").ok());
  EXPECT_EQ(store_->GetJob(job.id)->state, JobState::kRunning);
  ASSERT_TRUE(store_->CompleteTask(t1.task_id, 1, "r1").ok());
  EXPECT_EQ(store_->GetJob(job.id)->state, JobState::kSucceeded);
  EXPECT_EQ(store_->GetTask(t1.task_id)->result, "r1");
  ASSERT_TRUE(store_->SetJobResult(job.id, "aggregate").ok());
  EXPECT_EQ(store_->GetJob(job.id)->result, "aggregate");
  EXPECT_EQ(store_->SetJobResult("j-none", "x").code(),
            absl::StatusCode::kNotFound);
  std::vector<StoredEvent> events = Events(job.id);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[2].payload, "succeeded");
}

TEST_F(JobStoreTest, CancelStopsOnlyTheOwnersJob) {
  JobRecord job = Create("alice", 2);
  TaskLease running = Lease("w1");  // t0 leased, t1 still queued

  absl::Status other = store_->CancelJob(job.id, "mallory");
  EXPECT_EQ(other.code(), absl::StatusCode::kNotFound);
  // Same answer as a job that does not exist: existence does not leak.
  EXPECT_EQ(other.message(), absl::StrCat("job ", job.id, " not found"));
  EXPECT_EQ(store_->GetJob(job.id)->state, JobState::kRunning);

  ASSERT_TRUE(store_->CancelJob(job.id, "alice").ok());
  EXPECT_EQ(store_->GetJob(job.id)->state, JobState::kCancelled);
  EXPECT_EQ(store_->GetTask(job.id + "-t1")->state, TaskState::kCancelled);
  EXPECT_FALSE(store_->LeaseNextTask("w2", kTtl)->has_value());
  auto targets = store_->TasksToCancel();
  ASSERT_TRUE(targets.ok());
  ASSERT_EQ(targets->size(), 1u);
  EXPECT_EQ((*targets)[0].task_id, running.task_id);
  EXPECT_EQ((*targets)[0].worker, "w1");
  auto renewal = store_->RenewLease(running.task_id, 1, kTtl);
  ASSERT_TRUE(renewal.ok());
  EXPECT_TRUE(renewal->cancel_requested);

  // The worker stops: the task ends cancelled, not requeued.
  ASSERT_TRUE(store_->FailTask(running.task_id, 1, "cancelled").ok());
  EXPECT_EQ(store_->GetTask(running.task_id)->state, TaskState::kCancelled);
  EXPECT_TRUE(store_->TasksToCancel()->empty());
  EXPECT_EQ(store_->GetJob(job.id)->state, JobState::kCancelled);
  EXPECT_EQ(Events(job.id).back().payload, "cancelled: cancelled by its owner");
  EXPECT_EQ(store_->CancelJob(job.id, "alice").code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(JobStoreTest, CancelRecordsTheReasonGiven) {
  JobRecord job = Create("alice", 1);
  ASSERT_TRUE(store_->CancelJob(job.id, "alice", "seen enough").ok());
  EXPECT_EQ(store_->GetJob(job.id)->error, "seen enough");
  EXPECT_EQ(Events(job.id).back().payload, "cancelled: seen enough");
}

TEST_F(JobStoreTest, ReopenKeepsJobsEventsAndLeases) {
  JobRecord job = Create("alice", 2);
  TaskLease lease = Lease();
  ASSERT_TRUE(store_->AppendTaskEvents(lease.task_id, 1, 0, Points(1, 4)).ok());
  store_.reset();
  store_ = OpenStore();
  ASSERT_NE(store_, nullptr);
  EXPECT_EQ(store_->GetJob(job.id)->last_seq, 6);
  EXPECT_EQ(Events(job.id).size(), 6u);
  // The lease survived the restart: the same worker renews and continues.
  ASSERT_TRUE(store_->RenewLease(lease.task_id, 1, kTtl).ok());
  EXPECT_EQ(*store_->AppendTaskEvents(lease.task_id, 1, 4, Points(5, 1)), 7);
  EXPECT_EQ(Lease().task_id, job.id + "-t1");
}

// The child appends batches and reports each acknowledged job seq on a pipe;
// it is SIGKILLed mid-stream. Every seq it reported must be on disk.
TEST_F(JobStoreTest, AcknowledgedEventsSurviveSigkill) {
  JobRecord job = Create("alice");
  TaskLease lease = Lease();
  store_.reset();
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(fds[0]);
    auto store = JobStore::Open(path_, &clock_, &encoder_);
    if (!store.ok()) _exit(2);
    for (int batch = 0;; ++batch) {
      auto seq = (*store)->AppendTaskEvents(lease.task_id, 1, batch * 4,
                                            Points(batch * 4 + 1, 4));
      if (!seq.ok()) _exit(3);
      int64_t acked = *seq;
      if (write(fds[1], &acked, sizeof(acked)) != sizeof(acked)) _exit(4);
    }
  }
  close(fds[1]);
  int64_t acked = 0;
  for (int i = 0; i < 20; ++i) {
    ASSERT_EQ(read(fds[0], &acked, sizeof(acked)),
              static_cast<ssize_t>(sizeof(acked)));
  }
  ASSERT_EQ(kill(child, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status)) << "child exited early: " << status;
  close(fds[0]);

  store_ = OpenStore();
  ASSERT_NE(store_, nullptr);
  std::vector<StoredEvent> events = Events(job.id);
  ASSERT_GE(static_cast<int64_t>(events.size()), acked);
  for (size_t i = 0; i < events.size(); ++i) {
    ASSERT_EQ(events[i].seq, static_cast<int64_t>(i) + 1);
    if (i >= 2) {
      EXPECT_EQ(events[i].payload, absl::StrCat("p", i - 1));
    }
  }
  // The store picks up where the killed writer's last commit left it.
  EXPECT_EQ(store_->GetTask(lease.task_id)->last_acked_seq,
            static_cast<int64_t>(events.size()) - 3);
}

TEST_F(JobStoreTest, NewerSchemaIsRefused) {
  store_.reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(
      sqlite3_exec(db, "PRAGMA user_version = 99", nullptr, nullptr, nullptr),
      SQLITE_OK);
  sqlite3_close(db);
  auto store = JobStore::Open(path_, &clock_, &encoder_);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(store.status().message(), HasSubstr("schema version 99"));
}

// A version-2 file wrote its own events in formats of their own: the state's
// name, and an attempt as tab-separated fields. Opening it re-encodes them
// with the encoder, so that every stored payload has one encoding; the
// reason of a failed job comes from its row, where version 2 kept it.
TEST_F(JobStoreTest, OpeningAVersion2FileReencodesTheStoresOwnEvents) {
  JobRecord job = Create("alice", 1, /*max_attempts=*/2);
  TaskLease lease = Lease();
  ASSERT_TRUE(store_->FailTask(lease.task_id, 1, "preempted").ok());
  TaskLease second = Lease();
  ASSERT_TRUE(store_->FailTask(second.task_id, 2, "out of memory").ok());
  const std::vector<StoredEvent> before = Events(job.id);
  ASSERT_GE(before.size(), 5u);  // accepted, running, ended, (running), ...
  store_.reset();

  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  auto exec = [db](const std::string& sql) {
    char* error = nullptr;
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error),
              SQLITE_OK)
        << sql << ": " << (error != nullptr ? error : "");
    sqlite3_free(error);
  };
  // The rows as version 2 wrote them (times in microseconds).
  exec(
      "UPDATE events SET payload = CAST('queued' AS BLOB) "
      "WHERE type = 'accepted'");
  exec(
      "UPDATE events SET payload = CAST(substr(CAST(payload AS TEXT), 1, "
      "instr(CAST(payload AS TEXT) || ':', ':') - 1) AS BLOB) "
      "WHERE type = 'state'");
  exec(absl::StrCat(
      "UPDATE events SET payload = CAST(",
      "CASE WHEN CAST(payload AS TEXT) LIKE '%attempt 1 %' THEN '",
      lease.task_id,
      "' || char(9) || '1' || char(9) || 'w1' || char(9) || '' || char(9) || "
      "'failed' || char(9) || '1' || char(9) || '10' || char(9) || '20' || "
      "char(9) || 'preempted' ELSE '",
      lease.task_id,
      "' || char(9) || '2' || char(9) || 'w1' || char(9) || 'cpu' || char(9) "
      "|| 'failed' || char(9) || '0' || char(9) || '30' || char(9) || '40' || "
      "char(9) || 'out of memory' END AS BLOB) WHERE type = 'attempt_ended'"));
  // Version 2 had no tasks.dataset (migration 4 adds it).
  exec("ALTER TABLE tasks DROP COLUMN dataset");
  exec("PRAGMA user_version = 2");
  sqlite3_close(db);

  store_ = OpenStore();
  ASSERT_NE(store_, nullptr);
  const std::vector<StoredEvent> after = Events(job.id);
  ASSERT_EQ(after.size(), before.size());
  std::vector<std::string> own;
  for (const StoredEvent& e : after) {
    if (e.type == kAcceptedEventType || e.type == kStateEventType ||
        e.type == kAttemptEndedEventType) {
      own.push_back(e.payload);
    }
  }
  const std::string failed = store_->GetJob(job.id)->error;
  EXPECT_THAT(failed, HasSubstr("out of memory"));
  EXPECT_EQ(own,
            (std::vector<std::string>{
                "queued", "running",
                absl::StrCat(lease.task_id,
                             " attempt 1 failed (will retry): preempted"),
                absl::StrCat(lease.task_id, " attempt 2 failed: out of memory"),
                absl::StrCat("failed: ", failed)}));
  // And the file is version 3 now: reopening changes nothing.
  store_.reset();
  store_ = OpenStore();
  EXPECT_EQ(Events(job.id).back().payload, absl::StrCat("failed: ", failed));
}

TEST_F(JobStoreTest, TaskIdsAndTheirJobs) {
  JobRecord job = Create("alice", 12);
  auto tasks = store_->ListTasks(job.id);
  ASSERT_TRUE(tasks.ok());
  ASSERT_EQ(tasks->size(), 12u);
  for (const TaskRecord& t : *tasks) {
    EXPECT_EQ(JobStore::JobOfTask(t.id), job.id) << t.id;
    EXPECT_EQ(JobStore::TaskId(job.id, t.index), t.id);
  }
  EXPECT_EQ(JobStore::JobOfTask(""), "");
  EXPECT_EQ(JobStore::JobOfTask("j-1"), "");
  EXPECT_EQ(JobStore::JobOfTask("-t3"), "");
  EXPECT_EQ(JobStore::JobOfTask("j-1-t"), "");
}

TEST_F(JobStoreTest, CorruptFileIsDataLoss) {
  store_.reset();
  std::filesystem::remove_all(dir_);
  std::filesystem::create_directory(dir_);
  std::ofstream(path_) << std::string(8192, 'x');
  auto store = JobStore::Open(path_, &clock_, &encoder_);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss)
      << store.status();
}

// Root ignores file modes, so the check runs in a child that drops to nobody.
TEST_F(JobStoreTest, ReadOnlyFileIsAClearError) {
  Create("alice");
  store_.reset();
  ASSERT_EQ(chmod(path_.c_str(), 0444), 0);
  ASSERT_EQ(chmod(dir_.c_str(), 0555), 0);
  auto check = [this]() -> int {
    auto store = JobStore::Open(path_, &clock_, &encoder_);
    if (store.ok()) return 1;
    if (store.status().code() != absl::StatusCode::kUnavailable) return 2;
    if (store.status().message().find("read-only") == absl::string_view::npos)
      return 3;
    return 0;
  };
  int result = 0;
  if (geteuid() != 0) {
    result = check();
  } else {
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      if (setgid(65534) != 0 || setuid(65534) != 0) _exit(10);
      _exit(check());
    }
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    result = WEXITSTATUS(status);
  }
  chmod(dir_.c_str(), 0755);
  EXPECT_EQ(result, 0) << "1: opened, 2: wrong code, 3: unclear message";
}

TEST_F(JobStoreTest, ConcurrentWritersKeepEachJobGapFree) {
  constexpr int kJobs = 4;
  for (int i = 0; i < kJobs; ++i) Create("alice");
  std::vector<TaskLease> leases;
  for (int i = 0; i < kJobs; ++i) leases.push_back(Lease());
  std::vector<std::thread> threads;
  for (const TaskLease& lease : leases) {
    threads.emplace_back([this, lease] {
      for (int b = 0; b < 10; ++b) {
        EXPECT_TRUE(store_
                        ->AppendTaskEvents(lease.task_id, 1, b * 5,
                                           Points(b * 5 + 1, 5))
                        .ok());
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (const TaskLease& lease : leases) {
    std::vector<StoredEvent> events = Events(lease.job_id);
    ASSERT_EQ(events.size(), 52u);
    EXPECT_EQ(events.back().seq, 52);
    EXPECT_EQ(events.back().payload, "p50");
  }
}

// Disk full, simulated with a page cap: the error is RESOURCE_EXHAUSTED with
// SQLite's message, and the failed transaction leaves no trace.
TEST(SqliteDbTest, FullDiskIsResourceExhaustedAndRolledBack) {
  auto db = SqliteDb::Open(":memory:");
  ASSERT_TRUE(db.ok()) << db.status();
  ASSERT_TRUE((*db)->Exec("CREATE TABLE t (v BLOB)").ok());
  ASSERT_TRUE((*db)->Exec("INSERT INTO t VALUES ('kept')").ok());
  ASSERT_TRUE((*db)->Exec("PRAGMA max_page_count = 8").ok());
  absl::Status status;
  {
    auto txn = SqliteTransaction::Begin(db->get());
    ASSERT_TRUE(txn.ok());
    for (int i = 0; i < 100 && status.ok(); ++i) {
      auto st = (*db)->Prepare("INSERT INTO t VALUES (?)");
      ASSERT_TRUE(st.ok());
      st->BindBlob(1, std::string(4096, 'x'));
      status = st->Run();
    }
  }
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
  EXPECT_THAT(status.message(), HasSubstr("full"));
  auto rows = (*db)->QueryInt64("SELECT COUNT(*) FROM t");
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(*rows, 1);
}

TEST_F(JobStoreTest, HeldTasksWaitUntilReleasedOnce) {
  auto job = store_->CreateJob(
      "alice", "grid", "spec",
      std::vector<NewTask>{{"seed", false}, {"trial?", true}, {"t2?", true}},
      JobOptions{3, 0});
  ASSERT_TRUE(job.ok()) << job.status();
  TaskLease seed = Lease();
  EXPECT_EQ(seed.task_id, job->id + "-t0");
  // Only held tasks remain: nothing to lease.
  EXPECT_FALSE(store_->LeaseNextTask("w2", kTtl)->has_value());
  std::vector<HeldTaskUpdate> updates = {{1, "trial1", ""},
                                         {2, "", "bounds rejected"}};
  auto released =
      store_->ReleaseHeldTasks(job->id, updates, {{"recommendation", "rec"}});
  ASSERT_TRUE(released.ok()) << released.status();
  EXPECT_EQ(*released, 2);
  // A repeat (a coordinator retrying after a crash) changes nothing.
  EXPECT_EQ(
      *store_->ReleaseHeldTasks(job->id, updates, {{"recommendation", "rec"}}),
      0);
  TaskLease trial = Lease("w2");
  EXPECT_EQ(trial.task_id, job->id + "-t1");
  EXPECT_EQ(trial.spec, "trial1");
  auto failed = store_->GetTask(job->id + "-t2");
  EXPECT_EQ(failed->state, TaskState::kFailed);
  ASSERT_EQ(failed->attempt_errors.size(), 1u);
  EXPECT_EQ(failed->attempt_errors[0], "attempt 0: bounds rejected");
  int recommendations = 0;
  for (const StoredEvent& e : Events(job->id)) {
    recommendations += e.type == "recommendation";
  }
  EXPECT_EQ(recommendations, 1);
  EXPECT_EQ(store_
                ->CreateJob("alice", "grid", "spec",
                            std::vector<NewTask>{{"x", true}}, JobOptions{})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(JobStoreTest, GridTaskFailsAloneAndTheCoordinatorFinishesTheJob) {
  auto job = store_->CreateJob("alice", "grid", "spec",
                               std::vector<NewTask>{{"a", false}, {"b", false}},
                               JobOptions{1, 0});
  ASSERT_TRUE(job.ok()) << job.status();
  TaskLease a = Lease();
  TaskLease b = Lease();
  ASSERT_TRUE(store_->FailTask(a.task_id, 1, "diverged").ok());
  EXPECT_EQ(store_->GetTask(a.task_id)->state, TaskState::kFailed);
  EXPECT_EQ(store_->GetJob(job->id)->state, JobState::kRunning);
  ASSERT_TRUE(store_->CompleteTask(b.task_id, 1, "acc=0.8").ok());
  // Every task is terminal, yet the grid waits for its ranking.
  EXPECT_EQ(store_->GetJob(job->id)->state, JobState::kRunning);
  auto running = store_->ListJobIds("grid", JobState::kRunning);
  ASSERT_TRUE(running.ok());
  EXPECT_EQ(*running, std::vector<std::string>{job->id});
  ASSERT_TRUE(store_
                  ->FinishJob(job->id, JobState::kSucceeded, "",
                              std::string("ranking"), {{"ranking", "1,0"}})
                  .ok());
  ASSERT_TRUE(store_
                  ->FinishJob(job->id, JobState::kFailed, "late", std::nullopt,
                              {{"ranking", "again"}})
                  .ok());  // a repeat: ignored
  auto done = store_->GetJob(job->id);
  EXPECT_EQ(done->state, JobState::kSucceeded);
  EXPECT_EQ(done->result, "ranking");
  std::vector<StoredEvent> events = Events(job->id);
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events[events.size() - 2].type, "ranking");
  EXPECT_EQ(events.back().payload, "succeeded");

  auto attempts = store_->ListAttempts(job->id);
  ASSERT_TRUE(attempts.ok()) << attempts.status();
  ASSERT_EQ(attempts->size(), 2u);
  EXPECT_EQ((*attempts)[0].outcome, AttemptOutcome::kFailed);
  EXPECT_EQ((*attempts)[0].reason, "diverged");
  EXPECT_EQ((*attempts)[1].outcome, AttemptOutcome::kSucceeded);
}

TEST_F(JobStoreTest, ReleasedAttemptsDoNotCountAndPermanentFailsAtOnce) {
  JobRecord job = Create("alice", 2, 1);
  TaskLease t0 = Lease();
  for (int attempt = 1; attempt <= 3; ++attempt) {
    ASSERT_TRUE(store_
                    ->FailTask(t0.task_id, attempt, "worker stopping",
                               FailureKind::kReleased)
                    .ok());
    EXPECT_EQ(store_->GetTask(t0.task_id)->state, TaskState::kQueued);
    TaskLease again = Lease();
    ASSERT_EQ(again.task_id, t0.task_id);
  }
  auto attempts = store_->ListAttempts(job.id);
  ASSERT_EQ(attempts->size(), 4u);  // 3 released, 1 running
  EXPECT_EQ((*attempts)[0].outcome, AttemptOutcome::kReleased);
  EXPECT_EQ((*attempts)[3].outcome, AttemptOutcome::kRunning);
  ASSERT_TRUE(store_->CompleteTask(t0.task_id, 4, "ok").ok());

  TaskLease t1 = Lease();
  ASSERT_TRUE(
      store_->FailTask(t1.task_id, 1, "bad spec", FailureKind::kPermanent)
          .ok());
  EXPECT_EQ(store_->GetTask(t1.task_id)->state, TaskState::kFailed);
  EXPECT_EQ(store_->GetJob(job.id)->state, JobState::kFailed);
}

TEST_F(JobStoreTest, MaxParallelCapsLeasesPerJob) {
  auto capped = store_->CreateJob(
      "alice", "grid", "spec",
      std::vector<NewTask>{{"a", false}, {"b", false}, {"c", false}},
      JobOptions{3, 2});
  ASSERT_TRUE(capped.ok());
  JobRecord other = Create("bob");
  EXPECT_EQ(Lease().job_id, capped->id);
  EXPECT_EQ(Lease().job_id, capped->id);
  EXPECT_EQ(Lease().job_id, other.id);  // the cap skips to the next job
  EXPECT_FALSE(store_->LeaseNextTask("w", kTtl)->has_value());
  ASSERT_TRUE(store_->CompleteTask(capped->id + "-t0", 1, "ok").ok());
  EXPECT_EQ(Lease().task_id, capped->id + "-t2");
}

TEST_F(JobStoreTest, LeaseOrderIsStoredAndKeepsTheIndices) {
  JobOptions options;
  options.lease_order = {2, 0, 1};
  auto job = store_->CreateJob(
      "alice", "grid", "spec",
      std::vector<NewTask>{{"a", false}, {"b", false}, {"c", false}}, options);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(Lease().spec, "c");
  // A reopened store leases in the same order.
  store_.reset();
  store_ = OpenStore();
  ASSERT_NE(store_, nullptr);
  EXPECT_EQ(Lease().spec, "a");
  EXPECT_EQ(Lease().spec, "b");
  auto tasks = store_->ListTasks(job->id);
  ASSERT_TRUE(tasks.ok()) << tasks.status();
  ASSERT_EQ(tasks->size(), 3u);
  EXPECT_EQ((*tasks)[2].id, job->id + "-t2");
  EXPECT_EQ((*tasks)[2].index, 2);

  for (std::vector<int> bad : {std::vector<int>{0, 1}, {0, 1, 1}, {0, 1, 3}}) {
    options.lease_order = bad;
    absl::Status refused =
        store_
            ->CreateJob("alice", "grid", "spec",
                        std::vector<NewTask>{{"a"}, {"b"}, {"c"}}, options)
            .status();
    EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(refused.message(), HasSubstr("lease_order must list each"));
  }
}

TEST_F(JobStoreTest, AppendCanRenewTheLeaseInTheSameCommit) {
  Create("alice");
  TaskLease lease = Lease();
  clock_.Advance(kTtl / 2);
  ASSERT_TRUE(
      store_->AppendTaskEvents(lease.task_id, 1, 0, Points(1, 2), kTtl).ok());
  EXPECT_EQ(store_->GetTask(lease.task_id)->lease_expires_at,
            clock_.Now() + kTtl);
  EXPECT_EQ(store_->GetTask(lease.task_id)->last_acked_seq, 1);
  clock_.Advance(kTtl);  // lapsed, not yet swept
  absl::Status late =
      store_->AppendTaskEvents(lease.task_id, 1, 2, Points(3, 1), kTtl)
          .status();
  EXPECT_EQ(late.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(late.message(), HasSubstr("lease expired"));
  EXPECT_EQ(store_->GetTask(lease.task_id)->last_acked_seq, 1);
}

TEST_F(JobStoreTest, TasksGoOnlyToSlotsMeetingTheirDevice) {
  auto job =
      store_->CreateJob("alice", "range_test", "spec",
                        std::vector<NewTask>{{"gpu", false, "cuda", 40ll << 30},
                                             {"cpu", false, "cpu", 0},
                                             {"any", false, "", 0}},
                        JobOptions{});
  ASSERT_TRUE(job.ok()) << job.status();
  const SlotOffer cpu{"cpu", 0, "cpu"}, small_gpu{"cuda", 16ll << 30, "cuda:0"},
      big_gpu{"cuda", 80ll << 30, "cuda:1"};
  EXPECT_EQ((*store_->LeaseNextTask("w1", kTtl, cpu))->spec, "cpu");
  EXPECT_EQ((*store_->LeaseNextTask("w2", kTtl, small_gpu))->spec, "any");
  EXPECT_FALSE(store_->LeaseNextTask("w3", kTtl, small_gpu)->has_value());
  EXPECT_FALSE(store_->LeaseNextTask("w4", kTtl, cpu)->has_value());
  EXPECT_EQ((*store_->LeaseNextTask("w5", kTtl, big_gpu))->spec, "gpu");
  // Each attempt records the slot's device.
  auto attempts = store_->ListAttempts(job->id);
  ASSERT_TRUE(attempts.ok());
  std::set<std::string> devices;
  for (const AttemptRecord& a : *attempts) devices.insert(a.device);
  EXPECT_EQ(devices, (std::set<std::string>{"cpu", "cuda:0", "cuda:1"}));
}

TEST_F(JobStoreTest, TasksGoOnlyToWorkersWithTheirDataSet) {
  std::vector<NewTask> tasks = {{"mine"}, {"mine-2"}, {"builtin"}};
  tasks[0].dataset = "mine";
  tasks[1].dataset = "mine-2";
  ASSERT_TRUE(
      store_->CreateJob("alice", "range_test", "spec", tasks, JobOptions{})
          .ok());
  SlotOffer none{"cpu", 0, "cpu"}, other{"cpu", 0, "cpu"},
      prefix{"cpu", 0, "cpu"}, both{"cpu", 0, "cpu"};
  none.datasets.emplace();
  other.datasets = std::vector<std::string>{"other"};
  prefix.datasets = std::vector<std::string>{"mine-", "mine-2x", "ine"};
  both.datasets = std::vector<std::string>{"mine-2", "mine"};
  // A worker without the set gets only the task that needs none; names
  // match whole, never as a part of another.
  EXPECT_EQ((*store_->LeaseNextTask("w1", kTtl, prefix))->spec, "builtin");
  EXPECT_FALSE(store_->LeaseNextTask("w2", kTtl, none)->has_value());
  EXPECT_FALSE(store_->LeaseNextTask("w3", kTtl, other)->has_value());
  EXPECT_EQ((*store_->LeaseNextTask("w4", kTtl, both))->spec, "mine");
  EXPECT_EQ((*store_->LeaseNextTask("w4", kTtl, both))->spec, "mine-2");
  // A tool's offer (no data sets given) takes anything: nothing is left.
  EXPECT_FALSE(store_->LeaseNextTask("w5", kTtl, {})->has_value());
}

}  // namespace
}  // namespace lrtune::server
