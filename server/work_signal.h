// AcquireTask's long poll: a counter that moves whenever a task may have
// become leasable, and the calls waiting for it to move. One idea with its
// own lock, apart from the coordinator's job logic.
//
//   const uint64_t epoch = signal.Epoch();     // before a failed acquire
//   signal.WhenWorkMayExist(epoch, deadline, [this] { Try(); });
//   signal.Signal();                           // a task was queued
//
// Every `fn` runs once, on the BackgroundRunner, never under the lock.
// Thread-safe.
#ifndef LRTUNE_SERVER_WORK_SIGNAL_H_
#define LRTUNE_SERVER_WORK_SIGNAL_H_

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/time/time.h"
#include "core/sync.h"
#include "server/event_hub.h"

namespace lrtune::server {

class WorkSignal {
 public:
  // `runner` is not owned and must outlive this.
  explicit WorkSignal(BackgroundRunner* runner) : runner_(runner) {}

  uint64_t Epoch();
  // Runs `fn` once: when the epoch moves past `epoch` (at once if it
  // already has, or after Stop), when ExpireWaiters sees `deadline` pass
  // (wall time, as the RPC's own deadline), or on WakeAll.
  void WhenWorkMayExist(uint64_t epoch, absl::Time deadline,
                        std::function<void()> fn);
  // Moves the epoch and wakes every waiter.
  void Signal();
  // Runs every pending `fn` now (a watcher-side cancellation uses it).
  void WakeAll();
  // Runs the `fn`s whose deadline is at or before `wall`.
  void ExpireWaiters(absl::Time wall);
  // Shutdown: wakes every waiter, and later waits return at once.
  void Stop();
  bool stopped();

 private:
  struct Waiter {
    absl::Time deadline;
    std::function<void()> fn;
  };

  BackgroundRunner* const runner_;
  lrtune::Mutex mu_;
  uint64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<Waiter> waiters_ ABSL_GUARDED_BY(mu_);
};

}  // namespace lrtune::server

#endif  // LRTUNE_SERVER_WORK_SIGNAL_H_
