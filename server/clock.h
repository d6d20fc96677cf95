// The server's source of time, behind an interface so that lease expiry,
// retries and timestamps are tested without sleeping.
//
//   Clock* clock = SystemClock();          // production
//   FakeClock fake(absl::FromUnixSeconds(1000));
//   fake.Advance(absl::Seconds(11));
#ifndef LRTUNE_SERVER_CLOCK_H_
#define LRTUNE_SERVER_CLOCK_H_

#include "absl/base/thread_annotations.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/sync.h"

namespace lrtune::server {

// Thread-safe in every implementation.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() = 0;
};

// The wall clock (absl::Now()). Never null; lives as long as the process.
inline Clock* SystemClock() {
  class WallClock final : public Clock {
   public:
    absl::Time Now() override { return absl::Now(); }
  };
  static WallClock* const clock = new WallClock;
  return clock;
}

// A clock that moves only when told to; for tests. Thread-safe.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(absl::Time start) : now_(start) {}
  absl::Time Now() override {
    lrtune::MutexLock lock(&mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    lrtune::MutexLock lock(&mu_);
    now_ += d;
  }
  void Set(absl::Time t) {
    lrtune::MutexLock lock(&mu_);
    now_ = t;
  }

 private:
  lrtune::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

}  // namespace lrtune::server

#endif  // LRTUNE_SERVER_CLOCK_H_
