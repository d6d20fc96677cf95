// The store's one event encoding: what JobEventEncoder writes reads back as
// the API's JobEvents, a payload of the wrong type or no JobEvent at all is
// DATA_LOSS, and a version-2 file (the store's own events in their older
// formats) reads the same after the migration as it did before.
#include "server/event_codec.h"

#include <sqlite3.h>
#include <stdlib.h>

#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/clock.h"
#include "server/job_store.h"
#include "server/spec_convert.h"

namespace lrtune::server {
namespace {

using ::testing::HasSubstr;

StoredEvent Row(std::string type, std::string payload) {
  StoredEvent e;
  e.job_id = "j-1";
  e.seq = 4;
  e.type = std::move(type);
  e.payload = std::move(payload);
  e.time = absl::FromUnixMicros(1700000000123456);
  return e;
}

TEST(EventCodecTest, TheStoresOwnEventsReadBackAsJobEvents) {
  const EventEncoder* encoder = JobEventEncoder();

  auto accepted = StoredEventToProto(Row("accepted", encoder->Accepted()));
  ASSERT_TRUE(accepted.ok()) << accepted.status();
  EXPECT_TRUE(accepted->has_accepted());
  EXPECT_EQ(accepted->seq(), 4u);
  EXPECT_EQ(accepted->job_id(), "j-1");
  EXPECT_EQ(accepted->time().seconds(), 1700000000);
  EXPECT_EQ(accepted->time().nanos(), 123456000);

  auto failed = StoredEventToProto(
      Row("state", encoder->StateChanged(JobState::kFailed, "a task failed")));
  ASSERT_TRUE(failed.ok()) << failed.status();
  EXPECT_EQ(failed->state_changed().state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(failed->state_changed().reason(), "a task failed");
  EXPECT_TRUE(IsTerminalEvent(*failed));
  auto running = StoredEventToProto(
      Row("state", encoder->StateChanged(JobState::kRunning, "")));
  ASSERT_TRUE(running.ok());
  EXPECT_EQ(running->state_changed().state(), v1::JOB_STATE_RUNNING);
  EXPECT_FALSE(IsTerminalEvent(*running));

  AttemptRecord a;
  a.task_id = "j-1-t0";
  a.attempt = 2;
  a.worker = "w1";
  a.device = "cuda:1";
  a.outcome = AttemptOutcome::kLeaseExpired;
  a.reason = "lease expired";
  a.started = absl::FromUnixSeconds(100);
  a.ended = absl::FromUnixSeconds(160);
  auto ended = StoredEventToProto(
      Row("attempt_ended", encoder->AttemptEnded(a, /*will_retry=*/true)));
  ASSERT_TRUE(ended.ok()) << ended.status();
  const v1::TaskAttempt& attempt = ended->attempt_ended().attempt();
  EXPECT_EQ(attempt.task_id(), "j-1-t0");
  EXPECT_EQ(attempt.attempt_number(), 2);
  EXPECT_EQ(attempt.worker_id(), "w1");
  EXPECT_EQ(attempt.device(), "cuda:1");
  EXPECT_EQ(attempt.outcome(), v1::ATTEMPT_OUTCOME_LEASE_EXPIRED);
  EXPECT_EQ(attempt.reason(), "lease expired");
  EXPECT_EQ(attempt.end_time().seconds() - attempt.start_time().seconds(), 60);
  EXPECT_TRUE(ended->attempt_ended().will_retry());
}

TEST(EventCodecTest, APayloadOfAnotherTypeOrNoneIsDataLoss) {
  auto wrong = StoredEventToProto(
      Row("point", JobEventEncoder()->StateChanged(JobState::kRunning, "")));
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(wrong.status().message(),
              HasSubstr("event 4 is stored as point but holds state"));
  // What a version-2 attempt_ended row held, had it not been migrated.
  auto garbage = StoredEventToProto(
      Row("attempt_ended", "j-1-t0\t1\tw1\t\tfailed\t1\t10\t20\toops"));
  EXPECT_EQ(garbage.status().code(), absl::StatusCode::kDataLoss);
}

// The payloads a version-2 store wrote for its own events.
std::string Version2Payload(const v1::JobEvent& e) {
  if (e.has_accepted()) return "queued";
  if (e.has_state_changed()) {
    static const JobState kStates[] = {JobState::kQueued, JobState::kRunning,
                                       JobState::kSucceeded, JobState::kFailed,
                                       JobState::kCancelled};
    for (JobState s : kStates) {
      if (JobStateToProto(s) == e.state_changed().state()) {
        return std::string(JobStateName(s));
      }
    }
  }
  const v1::TaskAttempt& a = e.attempt_ended().attempt();
  auto micros = [](const google::protobuf::Timestamp& t) {
    return absl::StrCat(t.seconds() * 1000000 + t.nanos() / 1000);
  };
  return absl::StrJoin(
      {a.task_id(), absl::StrCat(a.attempt_number()), a.worker_id(), a.device(),
       std::string(a.outcome() == v1::ATTEMPT_OUTCOME_FAILED ? "failed"
                                                             : "released"),
       std::string(e.attempt_ended().will_retry() ? "1" : "0"),
       micros(a.start_time()), micros(a.end_time()), a.reason()},
      "\t");
}

TEST(EventCodecTest, AVersion2FileReadsTheSameAfterItsMigration) {
  std::string dir = ::testing::TempDir() + "/event_codec_test.XXXXXX";
  ASSERT_NE(mkdtemp(dir.data()), nullptr);
  const std::string path = dir + "/lrtune.db";
  FakeClock clock(absl::FromUnixSeconds(1700000000));
  std::string job_id;
  std::vector<std::string> before;
  {
    auto store = JobStore::Open(path, &clock, JobEventEncoder());
    ASSERT_TRUE(store.ok()) << store.status();
    auto job = (*store)->CreateJob("alice", "range_test", "spec", {"task"},
                                   /*max_attempts=*/2);
    ASSERT_TRUE(job.ok()) << job.status();
    job_id = job->id;
    for (int attempt = 1; attempt <= 2; ++attempt) {
      auto lease =
          (*store)->LeaseNextTask("w1", absl::Seconds(10), {"cpu", 0, "cpu"});
      ASSERT_TRUE(lease.ok() && lease->has_value());
      clock.Advance(absl::Seconds(3));
      ASSERT_TRUE((*store)
                      ->FailTask((*lease)->task_id, attempt,
                                 absl::StrCat("crash ", attempt))
                      .ok());
    }
    auto events = (*store)->ReadEvents(job_id, 0, 100);
    ASSERT_TRUE(events.ok());
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    for (const StoredEvent& e : *events) {
      auto proto = StoredEventToProto(e);
      ASSERT_TRUE(proto.ok()) << proto.status();
      before.push_back(proto->DebugString());
      if (e.type != "accepted" && e.type != "state" &&
          e.type != "attempt_ended") {
        continue;
      }
      sqlite3_stmt* st = nullptr;
      ASSERT_EQ(sqlite3_prepare_v2(db,
                                   "UPDATE events SET payload = ? WHERE "
                                   "job_id = ? AND seq = ?",
                                   -1, &st, nullptr),
                SQLITE_OK);
      const std::string old = Version2Payload(*proto);
      sqlite3_bind_blob(st, 1, old.data(), static_cast<int>(old.size()),
                        SQLITE_TRANSIENT);
      sqlite3_bind_text(st, 2, job_id.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_int64(st, 3, e.seq);
      EXPECT_EQ(sqlite3_step(st), SQLITE_DONE);
      sqlite3_finalize(st);
    }
    // A version-2 file has no tasks.dataset either (migration 4 adds it).
    ASSERT_EQ(sqlite3_exec(db, "ALTER TABLE tasks DROP COLUMN dataset", nullptr,
                           nullptr, nullptr),
              SQLITE_OK);
    ASSERT_EQ(
        sqlite3_exec(db, "PRAGMA user_version = 2", nullptr, nullptr, nullptr),
        SQLITE_OK);
    sqlite3_close(db);
  }
  // accepted, running, attempt 1 ended, attempt 2 ended, failed.
  ASSERT_EQ(before.size(), 5u);
  EXPECT_THAT(before.back(), HasSubstr("crash 2"));

  auto store = JobStore::Open(path, &clock, JobEventEncoder());
  ASSERT_TRUE(store.ok()) << store.status();
  auto events = (*store)->ReadEvents(job_id, 0, 100);
  ASSERT_TRUE(events.ok());
  std::vector<std::string> after;
  for (const StoredEvent& e : *events) {
    auto proto = StoredEventToProto(e);
    ASSERT_TRUE(proto.ok()) << proto.status();
    after.push_back(proto->DebugString());
  }
  EXPECT_EQ(after, before);
  store->reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace lrtune::server
