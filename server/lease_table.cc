#include "server/lease_table.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_format.h"

namespace lrtune::server {

absl::Duration HeartbeatInterval(absl::Duration ttl) {
  return std::min(ttl / 3, kMaxHeartbeatInterval);
}

LeaseTable::LeaseTable(Clock* clock) : clock_(clock) {}

absl::StatusOr<Lease> LeaseTable::Grant(absl::string_view task_id,
                                        absl::string_view worker_id,
                                        int attempt, absl::Duration ttl) {
  if (task_id.empty() || worker_id.empty()) {
    return absl::InvalidArgumentError(
        "lease: task_id and worker_id must not be empty");
  }
  if (attempt < 1) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "task %s: attempt must be >= 1, got %d", task_id, attempt));
  }
  if (ttl <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("task %s: ttl must be > 0, got %s", task_id,
                        absl::FormatDuration(ttl)));
  }
  const absl::Time now = clock_->Now();
  lrtune::MutexLock lock(&mu_);
  auto it = leases_.find(task_id);
  if (it != leases_.end() && it->second.attempt >= attempt) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "task %s: attempt %d cannot replace attempt %d (worker %s)", task_id,
        attempt, it->second.attempt, it->second.worker_id));
  }
  Lease lease{std::string(task_id),
              std::string(worker_id),
              attempt,
              now + ttl,
              ttl,
              /*cancel_requested=*/false};
  if (it == leases_.end()) {
    leases_.emplace(lease.task_id, lease);
  } else {
    it->second = lease;
  }
  return lease;
}

absl::StatusOr<Lease> LeaseTable::Renew(absl::string_view task_id,
                                        int attempt) {
  const absl::Time now = clock_->Now();
  lrtune::MutexLock lock(&mu_);
  auto it = leases_.find(task_id);
  if (it == leases_.end()) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "task %s: attempt %d holds no lease (none is held: it was released, "
        "collected after expiry, or never granted)",
        task_id, attempt));
  }
  Lease& lease = it->second;
  if (lease.attempt != attempt) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "task %s: attempt %d is stale; attempt %d holds the lease (worker %s)",
        task_id, attempt, lease.attempt, lease.worker_id));
  }
  if (lease.expires_at <= now) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "task %s: the lease of attempt %d expired at %s, %s ago", task_id,
        attempt, absl::FormatTime(lease.expires_at, absl::UTCTimeZone()),
        absl::FormatDuration(now - lease.expires_at)));
  }
  // max: a renewal that read the clock earlier than a concurrent one must
  // not move the expiry back.
  lease.expires_at = std::max(lease.expires_at, now + lease.ttl);
  return lease;
}

absl::Status LeaseTable::Release(absl::string_view task_id, int attempt) {
  lrtune::MutexLock lock(&mu_);
  auto it = leases_.find(task_id);
  if (it == leases_.end()) {
    return absl::NotFoundError(
        absl::StrFormat("task %s: no lease to release", task_id));
  }
  if (it->second.attempt != attempt) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "task %s: attempt %d cannot release the lease of attempt %d (worker "
        "%s)",
        task_id, attempt, it->second.attempt, it->second.worker_id));
  }
  leases_.erase(it);
  return absl::OkStatus();
}

std::vector<Lease> LeaseTable::Expired(absl::Time now) {
  std::vector<Lease> expired;
  lrtune::MutexLock lock(&mu_);
  for (auto it = leases_.begin(); it != leases_.end();) {
    if (it->second.expires_at <= now) {
      expired.push_back(std::move(it->second));
      it = leases_.erase(it);
    } else {
      ++it;
    }
  }
  return expired;
}

std::vector<Lease> LeaseTable::LeasesOf(absl::string_view worker_id) const {
  std::vector<Lease> held;
  lrtune::MutexLock lock(&mu_);
  // A scan: a coordinator holds at most a few thousand leases.
  for (const auto& [task_id, lease] : leases_) {
    if (lease.worker_id == worker_id) held.push_back(lease);
  }
  return held;
}

absl::Status LeaseTable::MarkCancel(absl::string_view task_id) {
  lrtune::MutexLock lock(&mu_);
  auto it = leases_.find(task_id);
  if (it == leases_.end()) {
    return absl::NotFoundError(
        absl::StrFormat("task %s: no lease to cancel", task_id));
  }
  it->second.cancel_requested = true;
  return absl::OkStatus();
}

std::optional<Lease> LeaseTable::Get(absl::string_view task_id) const {
  lrtune::MutexLock lock(&mu_);
  auto it = leases_.find(task_id);
  if (it == leases_.end()) return std::nullopt;
  return it->second;
}

size_t LeaseTable::size() const {
  lrtune::MutexLock lock(&mu_);
  return leases_.size();
}

}  // namespace lrtune::server
