#include "core/sync.h"

#include <memory>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace lrtune {
namespace {

// A long timeout for waits that must succeed: a lost wake-up fails the
// test after it instead of hanging.
constexpr absl::Duration kLongWait = absl::Seconds(10);

struct Counter {
  Mutex mu;
  int value ABSL_GUARDED_BY(mu) = 0;
  int evaluations ABSL_GUARDED_BY(mu) = 0;
};

// The change happens only after the waiter has evaluated its condition to
// false and gone to sleep, and nobody signals: Unlock alone must wake it.
TEST(MutexTest, AwaitWakesOnAChangeMadeUnderTheLock) {
  Counter c;
  auto reached_one = [&c]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(c.mu) {
    ++c.evaluations;
    return c.value == 1;
  };
  std::thread writer([&c] {
    for (;;) {
      {
        MutexLock lock(&c.mu);
        if (c.evaluations > 0) {
          c.value = 1;
          return;
        }
      }
      absl::SleepFor(absl::Milliseconds(1));
    }
  });
  {
    MutexLock lock(&c.mu);
    EXPECT_TRUE(c.mu.AwaitWithTimeout(Condition(&reached_one), kLongWait));
    EXPECT_EQ(c.value, 1);
    EXPECT_GE(c.evaluations, 2);
  }
  writer.join();
}

TEST(MutexTest, AwaitWithTimeoutReturnsFalseAndHoldsTheLock) {
  Counter c;
  bool never = false;
  MutexLock lock(&c.mu);
  const absl::Time start = absl::Now();
  EXPECT_FALSE(
      c.mu.AwaitWithTimeout(Condition(&never), absl::Milliseconds(50)));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(50));
  c.mu.AssertHeld();
  c.value = 2;  // still ours: -Wthread-safety and TSan agree
  EXPECT_FALSE(c.mu.AwaitWithTimeout(Condition(&never), -absl::Seconds(1)));
}

TEST(MutexTest, AwaitReturnsAtOnceWhenTheConditionHolds) {
  Mutex mu;
  bool yes = true;
  MutexLock lock(&mu);
  mu.Await(Condition(&yes));
  EXPECT_TRUE(mu.AwaitWithTimeout(Condition(&yes), absl::ZeroDuration()));
  EXPECT_TRUE(mu.AwaitWithTimeout(Condition(&yes), absl::InfiniteDuration()));
}

class Queue {
 public:
  void Push(int v) {
    MutexLock lock(&mu_);
    items_.push_back(v);
  }
  void Close() {
    MutexLock lock(&mu_);
    closed_ = true;
  }
  // Blocks until an item or Close; false once closed and drained.
  bool Pop(int* v) {
    MutexLock lock(&mu_);
    mu_.Await(Condition(this, &Queue::Ready));
    if (items_.empty()) return false;
    *v = items_.front();
    items_.erase(items_.begin());
    return true;
  }

 private:
  bool Ready() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return closed_ || !items_.empty();
  }
  Mutex mu_;
  std::vector<int> items_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

// Several consumers on a member-function condition: every item is taken
// exactly once and Close releases them all.
TEST(MutexTest, ConsumersWaitingOnAMethodConditionDrainTheQueue) {
  Queue queue;
  Mutex sum_mu;
  long sum = 0;  // under sum_mu
  std::vector<std::thread> consumers;
  for (int i = 0; i < 4; ++i) {
    consumers.emplace_back([&] {
      int v;
      while (queue.Pop(&v)) {
        MutexLock lock(&sum_mu);
        sum += v;
      }
    });
  }
  for (int i = 1; i <= 1000; ++i) queue.Push(i);
  queue.Close();
  for (std::thread& t : consumers) t.join();
  MutexLock lock(&sum_mu);
  EXPECT_EQ(sum, 1000 * 1001 / 2);
}

// absl::Mutex re-evaluates conditions when a holder goes into Await, not
// only on Unlock: the first waiter must wake although the second thread
// never unlocks before waiting itself.
TEST(MutexTest, EnteringAwaitWakesOtherWaiters) {
  Mutex mu;
  int stage = 0;
  auto at_one = +[](int* s) { return *s >= 1; };
  auto at_two = +[](int* s) { return *s >= 2; };
  std::thread first([&] {
    MutexLock lock(&mu);
    EXPECT_TRUE(mu.AwaitWithTimeout(Condition(at_one, &stage), kLongWait));
    stage = 2;
  });
  absl::SleepFor(absl::Milliseconds(20));  // usually lets `first` wait
  {
    MutexLock lock(&mu);
    stage = 1;
    EXPECT_TRUE(mu.AwaitWithTimeout(Condition(at_two, &stage), kLongWait));
  }
  first.join();
}

TEST(NotificationTest, NotifyWakesWaiters) {
  Notification done;
  EXPECT_FALSE(done.HasBeenNotified());
  std::vector<std::thread> waiters;
  for (int i = 0; i < 3; ++i) {
    waiters.emplace_back([&done] {
      EXPECT_TRUE(done.WaitForNotificationWithTimeout(kLongWait));
      done.WaitForNotification();
      EXPECT_TRUE(done.HasBeenNotified());
    });
  }
  absl::SleepFor(absl::Milliseconds(10));
  done.Notify();
  for (std::thread& t : waiters) t.join();
  EXPECT_TRUE(done.HasBeenNotified());
}

TEST(NotificationTest, WaitWithTimeoutReturnsFalseUntilNotified) {
  Notification n;
  EXPECT_FALSE(n.WaitForNotificationWithTimeout(absl::Milliseconds(20)));
  n.Notify();
  EXPECT_TRUE(n.WaitForNotificationWithTimeout(absl::ZeroDuration()));
}

// A notification owned by the waiter may be destroyed as soon as the wait
// returns (TSan and ASan check that Notify is done with it by then).
TEST(NotificationTest, WaiterMayDestroyItRightAfterTheWait) {
  for (int i = 0; i < 50; ++i) {
    auto n = std::make_unique<Notification>();
    std::thread notifier([p = n.get()] { p->Notify(); });
    n->WaitForNotification();
    n.reset();
    notifier.join();
  }
}

}  // namespace
}  // namespace lrtune
