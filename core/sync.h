// Mutex, MutexLock, Condition and Notification on std::mutex and
// std::condition_variable, with Abseil's interface and thread annotations.
//
//   lrtune::MutexLock lock(&mu_);
//   mu_.Await(lrtune::Condition(this, &Runner::HasWork));
//
// Why not absl::Mutex: Debian's Abseil is not built with ThreadSanitizer, so
// TSan cannot see absl's locks and reports every guarded access as a race.
// TSan intercepts pthread, which these types are built on, so
// scripts/tsan.sh checks the server's concurrency for real. The types are
// annotated (ABSL_LOCKABLE, ABSL_SCOPED_LOCKABLE) so that clang's
// -Wthread-safety keeps checking ABSL_GUARDED_BY and friends.
//
// Semantics kept from absl::Mutex: a thread in Await/AwaitWithTimeout sees
// its condition re-evaluated whenever another thread releases the mutex
// (Unlock, or entering Await itself), so a change made under the lock wakes
// the waiter without an explicit signal. Not kept: reader locks, and
// fairness. Conditions are evaluated with the mutex held and must not
// change state or block.
#ifndef LRTUNE_CORE_SYNC_H_
#define LRTUNE_CORE_SYNC_H_

#include <algorithm>
#include <atomic>
#include <cassert>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"

namespace lrtune {

// A predicate for Mutex::Await, built like absl::Condition. It refers to
// its arguments (never copies them): they must outlive the Await call.
class Condition {
 public:
  // True once `*cond` is true.
  explicit Condition(const bool* cond) : eval_([cond] { return *cond; }) {}
  // `func(arg)`.
  template <typename T>
  Condition(bool (*func)(T*), T* arg)
      : eval_([func, arg] { return func(arg); }) {}
  // `(object->*method)()`; for a method annotated
  // ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) (the call goes through a member
  // pointer, which -Wthread-safety does not check, as in absl).
  template <typename T>
  Condition(T* object, bool (T::*method)())
      : eval_([object, method] { return (object->*method)(); }) {}
  template <typename T>
  Condition(const T* object, bool (T::*method)() const)
      : eval_([object, method] { return (object->*method)(); }) {}
  // `(*functor)()`, e.g. a lambda declared before the Await call.
  template <typename T>
  explicit Condition(const T* functor)
      : eval_([functor] {
          constexpr auto call = &T::operator();
          return (functor->*call)();
        }) {}

  bool Eval() const { return eval_(); }

 private:
  std::function<bool()> eval_;
};

// A non-recursive exclusive lock. Thread-safe, not copyable.
class ABSL_LOCKABLE Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() {
    mu_.lock();
    owner_.store(std::this_thread::get_id(), std::memory_order_relaxed);
  }

  // Wakes the threads in Await so that they re-evaluate their conditions.
  // The notify happens before the release: once another thread can lock
  // (and so perhaps destroy) this mutex, Unlock no longer touches it.
  void Unlock() ABSL_UNLOCK_FUNCTION() {
    owner_.store(std::thread::id(), std::memory_order_relaxed);
    if (waiters_ > 0) cv_.notify_all();
    mu_.unlock();
  }

  // Debug builds abort unless the calling thread holds the mutex.
  void AssertHeld() const ABSL_ASSERT_EXCLUSIVE_LOCK() {
    assert(owner_.load(std::memory_order_relaxed) ==
           std::this_thread::get_id());
  }

  // Releases the mutex until `cond` is true, then returns holding it again.
  void Await(const Condition& cond) ABSL_EXCLUSIVE_LOCKS_REQUIRED(this) {
    AwaitUntil(cond, std::nullopt);
  }

  // As Await, giving up after `timeout`. Returns whether `cond` was true
  // when it returned (false: timed out). The mutex is held on return either
  // way. An infinite timeout waits forever.
  bool AwaitWithTimeout(const Condition& cond, absl::Duration timeout)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(this) {
    // Beyond a century the steady clock's arithmetic could overflow.
    if (timeout >= absl::Hours(24 * 365 * 100)) {
      AwaitUntil(cond, std::nullopt);
      return true;
    }
    return AwaitUntil(cond, std::chrono::steady_clock::now() +
                                absl::ToChronoNanoseconds(
                                    std::max(timeout, absl::ZeroDuration())));
  }

 private:
  bool AwaitUntil(const Condition& cond,
                  std::optional<std::chrono::steady_clock::time_point> deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(this) {
    AssertHeld();
    if (cond.Eval()) return true;
    std::unique_lock<std::mutex> lock(mu_, std::adopt_lock);
    owner_.store(std::thread::id(), std::memory_order_relaxed);
    // Waiting releases the mutex: the caller may have changed what other
    // waiters wait for, so they look again, as after Unlock. A waiter that
    // wakes to a false condition changed nothing and does not notify.
    if (waiters_ > 0) cv_.notify_all();
    ++waiters_;
    bool ready = false;
    for (;;) {
      if (!deadline.has_value()) {
        cv_.wait(lock);
      } else if (cv_.wait_until(lock, *deadline) == std::cv_status::timeout) {
        ready = cond.Eval();
        break;
      }
      if (cond.Eval()) {
        ready = true;
        break;
      }
    }
    --waiters_;
    lock.release();  // still held; the caller's MutexLock releases it
    owner_.store(std::this_thread::get_id(), std::memory_order_relaxed);
    return ready;
  }

  std::mutex mu_;
  std::condition_variable cv_;
  int waiters_ = 0;  // threads in AwaitUntil; read and written under mu_
  std::atomic<std::thread::id> owner_{};  // for AssertHeld only
};

// Holds `mu` for its scope.
class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) {
    mu_->Lock();
  }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

// A one-shot event: Notify once, wait from any number of threads.
// Thread-safe. May be destroyed as soon as a waiter has seen it notified.
class Notification {
 public:
  Notification() = default;
  Notification(const Notification&) = delete;
  Notification& operator=(const Notification&) = delete;

  // Calling it twice is a bug (asserted in debug builds, as in absl).
  void Notify() {
    MutexLock lock(&mu_);
    assert(!notified_);
    notified_ = true;
  }

  bool HasBeenNotified() const {
    MutexLock lock(&mu_);
    return notified_;
  }

  void WaitForNotification() const {
    MutexLock lock(&mu_);
    mu_.Await(Condition(&notified_));
  }

  // Returns whether it was notified within `timeout`.
  bool WaitForNotificationWithTimeout(absl::Duration timeout) const {
    MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(Condition(&notified_), timeout);
  }

 private:
  mutable Mutex mu_;
  bool notified_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace lrtune

#endif  // LRTUNE_CORE_SYNC_H_
