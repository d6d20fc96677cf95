// The coordinator's in-memory view of who holds which task, beside the
// durable store (job_store.h): answers heartbeats without a disk write,
// finds lapsed leases, and carries cancellation to workers.
//
//   LeaseTable leases(SystemClock());
//   LRTUNE_ASSIGN_OR_RETURN(Lease l, leases.Grant("t1", "w1", 1, ttl));
//   LRTUNE_ASSIGN_OR_RETURN(Lease now, leases.Renew("t1", 1));
//   if (now.cancel_requested) { /* reply "stop t1" to the heartbeat */ }
//
// Fencing: a lease carries the attempt id the store assigned. Renew and
// Release name the attempt they come from; anything but the current
// holder's attempt is refused with FAILED_PRECONDITION, so a worker that
// comes back after its task was re-granted cannot extend or drop the new
// holder's lease. The store stays the authority: it fences writes the same
// way and survives restarts; this table is rebuilt from it on start.
//
// Cancellation within 1 s (docs/api.md, "Workers, leases and fencing"):
// MarkCancel sets a flag that every later Renew returns, so the answer to the
// worker's next heartbeat tells it to stop. Workers heartbeat every
// HeartbeatInterval(ttl) = min(ttl / 3, 500 ms), one heartbeat covering all of
// a worker's tasks, so a cancel reaches the worker within 0.5 s plus one round
// trip. ttl / 3 leaves two missed heartbeats before a lease lapses.
//
// Thread-safe: every method may be called from any thread.
#ifndef LRTUNE_SERVER_LEASE_TABLE_H_
#define LRTUNE_SERVER_LEASE_TABLE_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/sync.h"
#include "server/clock.h"

namespace lrtune::server {

// The longest a worker waits between heartbeats, whatever the TTL.
inline constexpr absl::Duration kMaxHeartbeatInterval = absl::Milliseconds(500);

// How often a worker holding leases of `ttl` heartbeats: min(ttl / 3,
// kMaxHeartbeatInterval).
absl::Duration HeartbeatInterval(absl::Duration ttl);

struct Lease {
  std::string task_id;
  std::string worker_id;
  int attempt = 0;  // the fencing token, >= 1
  absl::Time expires_at;
  absl::Duration ttl;             // each Renew extends to now + ttl
  bool cancel_requested = false;  // set by MarkCancel: tell the worker to stop
};

class LeaseTable {
 public:
  // `clock` is not owned and must outlive the table.
  explicit LeaseTable(Clock* clock);
  LeaseTable(const LeaseTable&) = delete;
  LeaseTable& operator=(const LeaseTable&) = delete;

  // Gives `task_id` to `worker_id` under `attempt` until now + ttl, replacing
  // a lease of an older attempt (live or lapsed: the old holder is now
  // stale). Returns the lease. InvalidArgument for an empty id, attempt < 1
  // or ttl <= 0; FailedPrecondition when the table holds the task under an
  // attempt >= `attempt` ("task t1: attempt 2 cannot replace attempt 3").
  absl::StatusOr<Lease> Grant(absl::string_view task_id,
                              absl::string_view worker_id, int attempt,
                              absl::Duration ttl);

  // Extends the lease to now + ttl and returns it (cancel_requested tells
  // the caller to stop the worker). FailedPrecondition, naming both
  // attempts, when `attempt` is not the holder's ("task t1: attempt 1 is
  // stale; attempt 2 holds the lease (worker w2)"), when the lease has
  // expired (it stays for Expired() to collect, so the task is requeued)
  // or when the task has no lease.
  absl::StatusOr<Lease> Renew(absl::string_view task_id, int attempt);

  // Drops the lease of a task that completed, failed or was stopped.
  // FailedPrecondition for another attempt's lease (left in place),
  // NotFound when the task has no lease.
  absl::Status Release(absl::string_view task_id, int attempt);

  // Removes and returns every lease with expires_at <= now, by task id.
  // `now` is a parameter so that one sweep uses one instant.
  std::vector<Lease> Expired(absl::Time now);

  // The leases `worker_id` holds (expired ones included, until collected),
  // by task id: what its heartbeat should cover.
  std::vector<Lease> LeasesOf(absl::string_view worker_id) const;

  // Flags the task's lease so that the next Renew reports cancel_requested.
  // NotFound when the task has no lease (nothing runs it to stop).
  absl::Status MarkCancel(absl::string_view task_id);

  // The task's lease, or empty.
  std::optional<Lease> Get(absl::string_view task_id) const;
  size_t size() const;

 private:
  Clock* const clock_;
  mutable lrtune::Mutex mu_;
  std::map<std::string, Lease, std::less<>> leases_ ABSL_GUARDED_BY(mu_);
};

}  // namespace lrtune::server

#endif  // LRTUNE_SERVER_LEASE_TABLE_H_
