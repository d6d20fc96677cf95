// JobLocks: one job's holders exclude each other, another job's do not wait
// on them, and an entry lives only while its lock is held or waited for.
#include "server/job_locks.h"

#include <thread>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "core/sync.h"
#include "gtest/gtest.h"

namespace lrtune::server {
namespace {

TEST(JobLocksTest, OneJobsHoldersExcludeEachOther) {
  JobLocks locks;
  int count = 0;  // unguarded on purpose: only the job's lock protects it
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        JobLocks::Held held = locks.Lock("j-a");
        count = count + 1;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(count, 8 * 2000);
  EXPECT_EQ(locks.Entries(), 0);
}

TEST(JobLocksTest, AnotherJobDoesNotWait) {
  JobLocks locks;
  JobLocks::Held a = locks.Lock("j-a");
  lrtune::Notification b_locked;
  std::thread other([&] {
    JobLocks::Held b = locks.Lock("j-b");
    EXPECT_EQ(b.job_id(), "j-b");
    b_locked.Notify();
  });
  // Would time out if j-b waited for j-a's holder (this thread).
  EXPECT_TRUE(b_locked.WaitForNotificationWithTimeout(absl::Seconds(30)));
  other.join();
  EXPECT_EQ(locks.Entries(), 1);  // j-a, still held
}

TEST(JobLocksTest, AMovedHeldReleasesOnce) {
  JobLocks locks;
  {
    JobLocks::Held first = locks.Lock("j-a");
    JobLocks::Held moved = std::move(first);
    EXPECT_EQ(moved.job_id(), "j-a");
    EXPECT_EQ(locks.Entries(), 1);
  }
  EXPECT_EQ(locks.Entries(), 0);
  // Free again: a second holder does not block.
  JobLocks::Held again = locks.Lock("j-a");
  EXPECT_EQ(locks.Entries(), 1);
}

}  // namespace
}  // namespace lrtune::server
