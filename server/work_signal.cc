#include "server/work_signal.h"

#include <algorithm>
#include <iterator>
#include <utility>

#include "absl/time/clock.h"

namespace lrtune::server {

uint64_t WorkSignal::Epoch() {
  lrtune::MutexLock lock(&mu_);
  return epoch_;
}

bool WorkSignal::stopped() {
  lrtune::MutexLock lock(&mu_);
  return stopped_;
}

void WorkSignal::WhenWorkMayExist(uint64_t epoch, absl::Time deadline,
                                  std::function<void()> fn) {
  {
    lrtune::MutexLock lock(&mu_);
    if (!stopped_ && epoch == epoch_ && absl::Now() < deadline) {
      waiters_.push_back({deadline, std::move(fn)});
      return;
    }
  }
  runner_->Post(std::move(fn));
}

void WorkSignal::WakeAll() {
  std::vector<Waiter> woken;
  {
    lrtune::MutexLock lock(&mu_);
    woken.swap(waiters_);
  }
  for (Waiter& w : woken) runner_->Post(std::move(w.fn));
}

void WorkSignal::Signal() {
  {
    lrtune::MutexLock lock(&mu_);
    ++epoch_;
  }
  WakeAll();
}

void WorkSignal::ExpireWaiters(absl::Time wall) {
  std::vector<Waiter> due;
  {
    lrtune::MutexLock lock(&mu_);
    auto keep =
        std::partition(waiters_.begin(), waiters_.end(),
                       [wall](const Waiter& w) { return w.deadline > wall; });
    std::move(keep, waiters_.end(), std::back_inserter(due));
    waiters_.erase(keep, waiters_.end());
  }
  for (Waiter& w : due) runner_->Post(std::move(w.fn));
}

void WorkSignal::Stop() {
  {
    lrtune::MutexLock lock(&mu_);
    stopped_ = true;
  }
  WakeAll();
}

}  // namespace lrtune::server
