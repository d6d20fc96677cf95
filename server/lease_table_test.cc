#include "server/lease_table.h"

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/clock.h"

namespace lrtune::server {
namespace {

const absl::Time kStart = absl::FromUnixSeconds(1'700'000'000);
const absl::Duration kTtl = absl::Seconds(10);

void ExpectStatus(const absl::Status& st, absl::StatusCode code,
                  const std::string& fragment) {
  EXPECT_EQ(st.code(), code) << st;
  EXPECT_NE(st.message().find(fragment), std::string::npos) << st;
}

class LeaseTableTest : public ::testing::Test {
 protected:
  FakeClock clock_{kStart};
  LeaseTable table_{&clock_};
};

TEST_F(LeaseTableTest, GrantRenewExpire) {
  absl::StatusOr<Lease> lease = table_.Grant("t1", "w1", 1, kTtl);
  ASSERT_TRUE(lease.ok()) << lease.status();
  EXPECT_EQ(lease->task_id, "t1");
  EXPECT_EQ(lease->worker_id, "w1");
  EXPECT_EQ(lease->attempt, 1);
  EXPECT_EQ(lease->expires_at, kStart + kTtl);
  EXPECT_FALSE(lease->cancel_requested);

  clock_.Advance(absl::Seconds(6));
  lease = table_.Renew("t1", 1);
  ASSERT_TRUE(lease.ok()) << lease.status();
  EXPECT_EQ(lease->expires_at, kStart + absl::Seconds(16));

  clock_.Advance(absl::Seconds(9));  // t = 15: one second left
  EXPECT_TRUE(table_.Expired(clock_.Now()).empty());
  clock_.Advance(absl::Seconds(1));  // t = 16: expiry is inclusive
  ExpectStatus(table_.Renew("t1", 1).status(),
               absl::StatusCode::kFailedPrecondition,
               "task t1: the lease of attempt 1 expired");
  // A refused renewal leaves the lapsed lease for the sweep to requeue.
  ASSERT_TRUE(table_.Get("t1").has_value());
  std::vector<Lease> expired = table_.Expired(clock_.Now());
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_EQ(expired[0].task_id, "t1");
  EXPECT_EQ(expired[0].attempt, 1);
  EXPECT_EQ(table_.size(), 0u);
  EXPECT_TRUE(table_.Expired(clock_.Now()).empty());
}

TEST_F(LeaseTableTest, ExpiredTakesOnlyLapsedLeasesInTaskOrder) {
  ASSERT_TRUE(table_.Grant("b", "w1", 1, absl::Seconds(5)).ok());
  ASSERT_TRUE(table_.Grant("a", "w2", 1, absl::Seconds(5)).ok());
  ASSERT_TRUE(table_.Grant("c", "w1", 1, absl::Seconds(30)).ok());
  std::vector<Lease> expired = table_.Expired(kStart + absl::Seconds(5));
  ASSERT_EQ(expired.size(), 2u);
  EXPECT_EQ(expired[0].task_id, "a");
  EXPECT_EQ(expired[1].task_id, "b");
  EXPECT_EQ(table_.size(), 1u);
  EXPECT_TRUE(table_.Get("c").has_value());
}

TEST_F(LeaseTableTest, StaleAttemptIsFencedAfterReGrant) {
  ASSERT_TRUE(table_.Grant("t1", "w1", 1, kTtl).ok());
  clock_.Advance(absl::Seconds(11));  // w1 is partitioned; its lease lapses
  ASSERT_EQ(table_.Expired(clock_.Now()).size(), 1u);
  ASSERT_TRUE(table_.Grant("t1", "w2", 2, kTtl).ok());

  // w1 comes back: it can neither renew nor release w2's lease.
  ExpectStatus(table_.Renew("t1", 1).status(),
               absl::StatusCode::kFailedPrecondition,
               "task t1: attempt 1 is stale; attempt 2 holds the lease "
               "(worker w2)");
  ExpectStatus(table_.Release("t1", 1), absl::StatusCode::kFailedPrecondition,
               "attempt 1 cannot release the lease of attempt 2");
  ASSERT_TRUE(table_.Get("t1").has_value());
  EXPECT_EQ(table_.Get("t1")->worker_id, "w2");
  EXPECT_TRUE(table_.Renew("t1", 2).ok());

  // Attempts only move forward.
  ExpectStatus(table_.Grant("t1", "w1", 1, kTtl).status(),
               absl::StatusCode::kFailedPrecondition,
               "task t1: attempt 1 cannot replace attempt 2 (worker w2)");
  ExpectStatus(table_.Grant("t1", "w3", 2, kTtl).status(),
               absl::StatusCode::kFailedPrecondition,
               "attempt 2 cannot replace attempt 2");
}

TEST_F(LeaseTableTest, ReGrantReplacesALapsedLeaseNotYetCollected) {
  ASSERT_TRUE(table_.Grant("t1", "w1", 1, kTtl).ok());
  clock_.Advance(absl::Seconds(20));
  absl::StatusOr<Lease> lease = table_.Grant("t1", "w2", 2, kTtl);
  ASSERT_TRUE(lease.ok()) << lease.status();
  EXPECT_EQ(lease->expires_at, kStart + absl::Seconds(30));
  EXPECT_TRUE(table_.Expired(clock_.Now()).empty());
}

TEST_F(LeaseTableTest, Release) {
  ASSERT_TRUE(table_.Grant("t1", "w1", 1, kTtl).ok());
  EXPECT_TRUE(table_.Release("t1", 1).ok());
  EXPECT_EQ(table_.size(), 0u);
  ExpectStatus(table_.Renew("t1", 1).status(),
               absl::StatusCode::kFailedPrecondition,
               "task t1: attempt 1 holds no lease");
  ExpectStatus(table_.Release("t1", 1), absl::StatusCode::kNotFound,
               "task t1: no lease to release");
  // A released task's expiry never shows up in a sweep.
  clock_.Advance(absl::Hours(1));
  EXPECT_TRUE(table_.Expired(clock_.Now()).empty());
}

TEST_F(LeaseTableTest, InvalidGrants) {
  ExpectStatus(table_.Grant("", "w1", 1, kTtl).status(),
               absl::StatusCode::kInvalidArgument, "must not be empty");
  ExpectStatus(table_.Grant("t1", "w1", 0, kTtl).status(),
               absl::StatusCode::kInvalidArgument,
               "task t1: attempt must be >= 1, got 0");
  ExpectStatus(table_.Grant("t1", "w1", 1, absl::ZeroDuration()).status(),
               absl::StatusCode::kInvalidArgument, "task t1: ttl must be > 0");
  EXPECT_EQ(table_.size(), 0u);
}

TEST_F(LeaseTableTest, LeasesOfAWorker) {
  ASSERT_TRUE(table_.Grant("t3", "w1", 1, kTtl).ok());
  ASSERT_TRUE(table_.Grant("t1", "w1", 4, absl::Seconds(2)).ok());
  ASSERT_TRUE(table_.Grant("t2", "w2", 1, kTtl).ok());
  clock_.Advance(absl::Seconds(3));  // t1 has lapsed but is not collected
  std::vector<Lease> held = table_.LeasesOf("w1");
  ASSERT_EQ(held.size(), 2u);
  EXPECT_EQ(held[0].task_id, "t1");
  EXPECT_EQ(held[0].attempt, 4);
  EXPECT_EQ(held[1].task_id, "t3");
  EXPECT_EQ(table_.LeasesOf("w2").size(), 1u);
  EXPECT_TRUE(table_.LeasesOf("w9").empty());
}

TEST_F(LeaseTableTest, CancelFlagRidesOnTheNextRenewal) {
  ASSERT_TRUE(table_.Grant("t1", "w1", 1, kTtl).ok());
  ASSERT_TRUE(table_.Grant("t2", "w1", 1, kTtl).ok());
  EXPECT_FALSE(table_.Renew("t1", 1)->cancel_requested);
  ASSERT_TRUE(table_.MarkCancel("t1").ok());
  EXPECT_TRUE(table_.Renew("t1", 1)->cancel_requested);
  EXPECT_TRUE(table_.Renew("t1", 1)->cancel_requested);  // until released
  EXPECT_FALSE(table_.Renew("t2", 1)->cancel_requested);
  ExpectStatus(table_.MarkCancel("t9"), absl::StatusCode::kNotFound,
               "task t9: no lease to cancel");
  // The flag belongs to the attempt: a re-grant starts without it.
  clock_.Advance(absl::Seconds(11));
  ASSERT_TRUE(table_.Grant("t1", "w2", 2, kTtl).ok());
  EXPECT_FALSE(table_.Renew("t1", 2)->cancel_requested);
}

TEST(HeartbeatIntervalTest, CancelReachesTheWorkerWithinHalfASecond) {
  EXPECT_EQ(HeartbeatInterval(absl::Seconds(10)), absl::Milliseconds(500));
  EXPECT_EQ(HeartbeatInterval(absl::Milliseconds(900)),
            absl::Milliseconds(300));

  // A worker heartbeating on schedule; the client cancels between beats.
  FakeClock clock(kStart);
  LeaseTable table(&clock);
  ASSERT_TRUE(table.Grant("t1", "w1", 1, absl::Seconds(10)).ok());
  const absl::Duration beat = HeartbeatInterval(absl::Seconds(10));
  const absl::Time cancel_at = kStart + absl::Milliseconds(1234);
  bool marked = false, cancelled = false;
  absl::Time seen_at;
  for (int i = 0; i < 10 && !cancelled; ++i) {
    clock.Advance(beat);
    if (!marked && clock.Now() >= cancel_at) {  // it came during this beat
      ASSERT_TRUE(table.MarkCancel("t1").ok());
      marked = true;
    }
    absl::StatusOr<Lease> reply = table.Renew("t1", 1);
    ASSERT_TRUE(reply.ok()) << reply.status();
    cancelled = reply->cancel_requested;
    seen_at = clock.Now();
  }
  ASSERT_TRUE(cancelled);
  EXPECT_LE(seen_at - cancel_at, kMaxHeartbeatInterval);
}

// Many threads renew, list and grant at once. Without the table's lock
// ThreadSanitizer reports the races and std::map corrupts; with it every
// renewal of a live lease succeeds.
TEST(LeaseTableConcurrencyTest, ConcurrentRenewsGrantsAndSweeps) {
  FakeClock clock(kStart);
  LeaseTable table(&clock);
  constexpr int kThreads = 6;
  constexpr int kRounds = 1000;
  ASSERT_TRUE(table.Grant("shared", "w-shared", 1, absl::Hours(1)).ok());
  for (int i = 0; i < kThreads; ++i) {
    ASSERT_TRUE(table
                    .Grant(absl::StrCat("t", i), absl::StrCat("w", i % 2), 1,
                           absl::Hours(1))
                    .ok());
  }
  std::vector<int> failures(kThreads + 1, 0);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      const std::string own = absl::StrCat("t", i);
      for (int r = 0; r < kRounds; ++r) {
        if (!table.Renew(own, 1).ok()) ++failures[i];
        if (!table.Renew("shared", 1).ok()) ++failures[i];
        if (r % 50 == 0) clock.Advance(absl::Milliseconds(1));
      }
    });
  }
  // A churner: grants and releases short-lived tasks, lists and sweeps.
  threads.emplace_back([&] {
    for (int r = 0; r < kRounds; ++r) {
      const std::string task = absl::StrCat("churn", r);
      if (!table.Grant(task, "w0", 1, absl::Hours(1)).ok()) ++failures.back();
      if (table.LeasesOf("w0").empty()) ++failures.back();
      if (r % 2 == 0 && !table.Release(task, 1).ok()) ++failures.back();
      (void)table.Expired(kStart);  // nothing lapses at the start
    }
  });
  for (std::thread& t : threads) t.join();
  for (int i = 0; i <= kThreads; ++i) EXPECT_EQ(failures[i], 0) << i;
  EXPECT_EQ(table.size(), 1u + kThreads + kRounds / 2);
  EXPECT_EQ(table.LeasesOf("w-shared").size(), 1u);
}

}  // namespace
}  // namespace lrtune::server
