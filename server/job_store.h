// JobStore: the coordinator's durable state -- jobs, their tasks under
// fenced leases, and each job's gap-free event log -- in one SQLite file.
//
//   LRTUNE_ASSIGN_OR_RETURN(auto store, JobStore::Open(path, SystemClock()));
//   LRTUNE_ASSIGN_OR_RETURN(JobRecord job, store->CreateJob(owner, "grid",
//                                                           spec, tasks));
//
// Durability (docs/api.md, "Jobs and their lifecycle"): the file runs in WAL
// mode with synchronous=FULL, and every mutating call commits its one
// transaction before it returns, so anything a caller acknowledges after an OK
// status survives kill -9 and power loss. A failed call rolls its transaction
// back and changes nothing.
//
// Fencing (docs/api.md, "Workers, leases and fencing"): each lease increments
// the task's `attempt`; every task write names the attempt it comes from and is
// refused with FAILED_PRECONDITION when that attempt is not the task's current
// lease. Event batches carry task-level sequence numbers (1, 2, ...), so a
// repeated batch is applied once and a new attempt can skip what is already
// stored.
//
// Grid jobs: a task may be created "held" (a trial waiting for its range
// test's bounds): it is not leased until ReleaseHeldTasks gives it its spec.
// A grid's task that runs out of attempts fails alone, and a grid job never
// rolls up by itself: the coordinator ranks its trials and ends it with
// FinishJob. A job's max_parallel caps its tasks leased at once.
//
// Attempts: every lease is an attempt (task_attempts); its outcome is
// recorded when it ends, with an "attempt_ended" job event in the same
// transaction. Released attempts (a worker shutting down) do not count
// against max_attempts.
//
// Recovery: opening an existing file is the whole recovery. SQLite replays
// its WAL; queued tasks stay queued; leased tasks keep their lease and expiry
// (their worker may come back and renew before it lapses), and the
// coordinator's periodic ExpireLeases() requeues the rest. Nothing is lost.
//
// Errors: SQLite failures become UNAVAILABLE (read-only, locked, I/O),
// RESOURCE_EXHAUSTED (disk full) or DATA_LOSS (corrupt file), with SQLite's
// message. Thread-safe: one connection, every call serialized by a mutex.
#ifndef LRTUNE_SERVER_JOB_STORE_H_
#define LRTUNE_SERVER_JOB_STORE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/sync.h"
#include "server/clock.h"
#include "server/sqlite_db.h"

namespace lrtune::server {

enum class JobState { kQueued, kRunning, kSucceeded, kFailed, kCancelled };
enum class TaskState { kQueued, kLeased, kSucceeded, kFailed, kCancelled };

// Lower-case names as stored ("queued", "running", ...).
absl::string_view JobStateName(JobState state);
absl::string_view TaskStateName(TaskState state);
bool IsTerminal(JobState state);

// Event types the store writes itself, with payloads from its
// EventEncoder. Callers' events use any other type.
inline constexpr absl::string_view kAcceptedEventType = "accepted";
inline constexpr absl::string_view kStateEventType = "state";
inline constexpr absl::string_view kAttemptEndedEventType = "attempt_ended";

// How an attempt ended (stored by name: "succeeded", "failed", ...).
enum class AttemptOutcome {
  kRunning,  // not ended (the task's current lease)
  kSucceeded,
  kFailed,        // counts against max_attempts
  kLeaseExpired,  // counts against max_attempts
  kReleased,      // the worker gave it back; does not count
  kCancelled,
};
absl::string_view AttemptOutcomeName(AttemptOutcome outcome);

// Why FailTask ends an attempt.
enum class FailureKind {
  kError,      // retried while attempts remain
  kPermanent,  // the spec cannot run anywhere: the task fails now
  kReleased,   // requeued at once, not counted
  kCancelled,  // stopped after a cancel request
};

struct JobRecord {
  std::string id;     // "j-" + 16 hex digits
  std::string owner;  // principal that submitted it
  std::string kind;   // "range_test" | "grid"
  JobState state = JobState::kQueued;
  std::string spec;                   // opaque (a serialized proto)
  std::optional<std::string> result;  // set by SetJobResult
  std::string error;     // why it failed or was cancelled; else empty
  int max_parallel = 0;  // tasks leased at once; 0 = no limit
  absl::Time created;
  absl::Time updated;
  int64_t last_seq = 0;  // seq of the job's newest event
};

struct TaskRecord {
  std::string id;  // "<job id>-t<index>"
  std::string job_id;
  int index = 0;
  std::string spec;
  TaskState state = TaskState::kQueued;
  int attempt = 0;  // 0 before the first lease; the fencing token
  int max_attempts = 3;
  std::string lease_worker;     // empty unless leased
  absl::Time lease_expires_at;  // meaningful while leased
  // The highest record seq stored, counted as the API counts a worker's
  // records (v1::TaskRecord.seq: 0, 1, ...); -1 while none is.
  int64_t last_acked_seq = -1;
  bool cancel_requested = false;
  bool held = false;            // waiting for ReleaseHeldTasks
  absl::Time lease_started_at;  // meaningful while leased
  std::string lease_device;     // the leasing slot's device
  std::optional<std::string> result;
  std::vector<std::string> attempt_errors;  // "attempt N: reason", in order
};

// One attempt (lease) of one task.
struct AttemptRecord {
  std::string task_id;
  int attempt = 0;
  std::string worker;
  std::string device;  // the slot's device, e.g. "cuda:0" ("" if unknown)
  AttemptOutcome outcome = AttemptOutcome::kRunning;
  std::string reason;  // empty for running and succeeded attempts
  absl::Time started;
  absl::Time ended;  // meaningful once ended
};

// How the store encodes the events it writes itself, so that every payload
// in the events table is in one encoding: the one its callers append in (the
// coordinator's serialized v1::JobEvent, server/event_codec.h). The store
// stays protobuf-free and treats payloads as opaque.
class EventEncoder {
 public:
  virtual ~EventEncoder() = default;
  // A job's first event. It names no job: the job's row holds what it was.
  virtual std::string Accepted() const = 0;
  // The job moved to `state`; `reason` is why it failed or was cancelled
  // (empty otherwise).
  virtual std::string StateChanged(JobState state,
                                   absl::string_view reason) const = 0;
  // An attempt ended without success; `will_retry` when its task is queued
  // again.
  virtual std::string AttemptEnded(const AttemptRecord& attempt,
                                   bool will_retry) const = 0;
};

struct NewTask {
  NewTask(std::string spec, bool held = false, std::string device = "",
          int64_t min_memory = 0)
      : spec(std::move(spec)),
        held(held),
        device(std::move(device)),
        min_memory(min_memory) {}

  std::string spec;
  bool held = false;  // not leased until ReleaseHeldTasks
  // The slots that may run it: "" any, "cpu", "cuda" (any CUDA device with
  // at least min_memory bytes; 0 = no requirement).
  std::string device;
  int64_t min_memory = 0;
  // The data set by reference it reads (core/spec.h IsReferencedDataset):
  // only a worker that has it may run it. "": any worker.
  std::string dataset;
};

// What the slot asking for a task offers (LeaseNextTask).
struct SlotOffer {
  std::string device;  // "cpu" or "cuda"; "" leases any task (tests, tools)
  int64_t memory_bytes = 0;
  std::string slot_device;  // the slot's own device ("cuda:1"), recorded
  // The data sets by reference the worker has (names hold no ','): a task
  // naming another is not leased. nullopt: any task (tests, tools).
  std::optional<std::vector<std::string>> datasets = std::nullopt;
};

struct JobOptions {
  JobOptions(int max_attempts = 3, int max_parallel = 0,
             std::string request_id = "")
      : max_attempts(max_attempts),
        max_parallel(max_parallel),
        request_id(std::move(request_id)) {}

  int max_attempts = 3;    // per task, >= 1
  int max_parallel = 0;    // tasks leased at once, >= 0; 0 = no limit
  std::string request_id;  // the client's idempotency key; "" = none
  // The order slots lease the tasks in, as task indices (a permutation of
  // 0..n-1); empty: index order. Stored as the tasks' lease order, so a
  // restart keeps it.
  std::vector<int> lease_order;
};

// What ReleaseHeldTasks does with one held task (by index).
struct HeldTaskUpdate {
  int index = 0;
  std::string spec;     // the task's runnable spec, when releasing
  std::string failure;  // non-empty: the task fails with this reason instead
};

struct TaskLease {
  std::string task_id;
  std::string job_id;
  int attempt = 0;
  std::string spec;
  absl::Time expires_at;
  int64_t last_acked_seq = -1;  // records 0..last_acked_seq are stored
};

struct LeaseRenewal {
  absl::Time expires_at;
  bool cancel_requested = false;  // the job was cancelled: stop the task
};

struct Event {
  std::string type;
  std::string payload;
};

struct StoredEvent {
  std::string job_id;
  int64_t seq = 0;                     // gap-free per job, from 1
  std::optional<std::string> task_id;  // unset for job-level events
  std::string type;
  std::string payload;
  absl::Time time;
};

struct ExpiredLease {
  std::string task_id;
  std::string job_id;
  int attempt = 0;
  std::string worker;
  bool requeued = false;  // false: failed (out of attempts) or cancelled
};

struct CancelTarget {  // a leased task whose worker must be told to stop
  std::string task_id;
  int attempt = 0;
  std::string worker;
};

struct JobPage {
  std::vector<JobRecord> jobs;
  std::string next_page_token;  // empty on the last page
};

class JobStore {
 public:
  static constexpr int kDefaultMaxAttempts = 3;

  // Opens or creates the store at `path` (":memory:" for a private in-memory
  // one), applying schema migrations in a transaction. `clock` and `events`
  // are not owned and must outlive the store; `events` encodes the store's
  // own events (and, migrating a version-2 file, re-encodes the ones it
  // wrote in its older formats). Errors: FAILED_PRECONDITION when the file's
  // schema is newer than this binary; UNAVAILABLE / DATA_LOSS from SQLite.
  static absl::StatusOr<std::unique_ptr<JobStore>> Open(
      const std::string& path, Clock* clock, const EventEncoder* events);
  JobStore(const JobStore&) = delete;
  JobStore& operator=(const JobStore&) = delete;

  // The schema version this binary writes.
  static int SchemaVersion();

  // A task's id, "<job id>-t<index>", and back: the job of a task id (""
  // when `task_id` is not one). Read nothing.
  static std::string TaskId(absl::string_view job_id, int64_t index);
  static std::string JobOfTask(absl::string_view task_id);

  // Creates a queued job with one queued task per spec, and its "accepted"
  // event (seq 1). INVALID_ARGUMENT for an unknown kind, no tasks, or
  // max_attempts < 1.
  absl::StatusOr<JobRecord> CreateJob(
      absl::string_view owner, absl::string_view kind, absl::string_view spec,
      const std::vector<std::string>& task_specs,
      int max_attempts = kDefaultMaxAttempts);
  // The same with held tasks and a parallelism cap; INVALID_ARGUMENT also
  // when max_parallel < 0 or every task is held.
  absl::StatusOr<JobRecord> CreateJob(absl::string_view owner,
                                      absl::string_view kind,
                                      absl::string_view spec,
                                      const std::vector<NewTask>& tasks,
                                      JobOptions options);

  // NOT_FOUND when absent. Callers check the owner.
  absl::StatusOr<JobRecord> GetJob(absl::string_view job_id);
  absl::StatusOr<TaskRecord> GetTask(absl::string_view task_id);
  absl::StatusOr<std::vector<TaskRecord>> ListTasks(absl::string_view job_id);

  // The owner's jobs (every owner's when `owner` is nullopt), newest
  // first, at most `page_size` (1..1000) per page. Pass the previous page's
  // token to continue; INVALID_ARGUMENT for a token this store did not
  // issue.
  absl::StatusOr<JobPage> ListJobs(std::optional<absl::string_view> owner,
                                   std::optional<JobState> state, int page_size,
                                   absl::string_view page_token);

  // Leases the oldest queued, unheld task (by job creation, then index) of a
  // job that is queued or running and below its max_parallel: attempt+1,
  // expiry now+ttl, job -> running. Returns nullopt when nothing is queued.
  // Only tasks whose device requirement the slot meets are considered.
  absl::StatusOr<std::optional<TaskLease>> LeaseNextTask(
      absl::string_view worker_id, absl::Duration ttl,
      const SlotOffer& offer = {});

  // A client-driven range test's run (job_store_client_runs.cc): leases
  // task `index` of the job, or with no index the task `holder` holds, else
  // the lowest queued, unheld task with no record stored, to `holder` (a
  // client's id) until now+ttl, the job moving to running. A task `holder`
  // already holds is renewed and returned as it is (the same attempt); a
  // task that ended is returned with its state and not leased.
  // NOT_FOUND (job); INVALID_ARGUMENT (index out of range);
  // FAILED_PRECONDITION naming the reason: the job is closed, the task is
  // leased to another holder, its stored records were reported under
  // another holder (a curve comes from one training), no task is free.
  struct ClientLease {
    TaskLease lease;
    TaskState state = TaskState::kLeased;
    int index = 0;
  };
  absl::StatusOr<ClientLease> LeaseClientTask(absl::string_view job_id,
                                              std::optional<int> index,
                                              absl::string_view holder,
                                              absl::Duration ttl);

  // Extends the lease to now+ttl. FAILED_PRECONDITION "stale attempt N,
  // current M", "task is <state>, not leased" or "lease expired".
  absl::StatusOr<LeaseRenewal> RenewLease(absl::string_view task_id,
                                          int attempt, absl::Duration ttl);

  // Stores `events` as the task's records first_seq, first_seq+1, ... (the
  // API's record seqs, from 0). Those at or below the task's last_acked_seq
  // are skipped (already stored); the rest get the job's next seqs. Returns
  // the job's last seq. Fenced as above; INVALID_ARGUMENT when first_seq < 0
  // or leaves a gap (first_seq > last_acked_seq + 1); ABORTED once the
  // task's job was cancelled or ended: the records are acknowledged
  // (last_acked_seq moves on) but not stored, as nothing follows a job's
  // terminal event.
  // With `renew`, the lease is also
  // extended to now+renew in the same transaction (as RenewLease, including
  // its "lease expired" refusal). `stored_at`, when given, receives the
  // time stamped on the events (for publishing them live with the same).
  absl::StatusOr<int64_t> AppendTaskEvents(
      absl::string_view task_id, int attempt, int64_t first_seq,
      const std::vector<Event>& events,
      std::optional<absl::Duration> renew = std::nullopt,
      absl::Time* stored_at = nullptr);

  // The task succeeds with `result`; the job rolls up (succeeded once every
  // task has). Fenced as above.
  absl::Status CompleteTask(absl::string_view task_id, int attempt,
                            absl::string_view result);
  // Records `reason` for this attempt; requeues the task while attempts
  // remain (kReleased: always, uncounted), otherwise (or kPermanent) fails
  // the task and -- for a range test -- its job with every attempt's reason
  // (the job's other queued tasks are cancelled, leased ones flagged).
  absl::Status FailTask(absl::string_view task_id, int attempt,
                        absl::string_view reason,
                        FailureKind kind = FailureKind::kError);
  // In one transaction: replaces the spec of `task_id` (the current attempt
  // of a leased task: fenced as above) with `spec` and appends `events` as
  // job-level events. A pruned search stores a trial's rung decision this
  // way: the trial's record and the decision event, both or neither.
  // Returns the job's last seq; ABORTED once the job ended.
  // `stored_at`, when given, receives the time stamped on the events.
  absl::StatusOr<int64_t> UpdateTaskSpec(absl::string_view task_id, int attempt,
                                         absl::string_view spec,
                                         const std::vector<Event>& events,
                                         absl::Time* stored_at = nullptr);
  // Stores the coordinator's aggregate result. NOT_FOUND when absent.
  absl::Status SetJobResult(absl::string_view job_id, absl::string_view result);

  // Appends job-level events (no task). Returns the job's last seq.
  // FAILED_PRECONDITION when the job is terminal.
  absl::StatusOr<int64_t> AppendJobEvents(absl::string_view job_id,
                                          const std::vector<Event>& events);

  // In one transaction: applies `updates` to those of the job's tasks that
  // are still held (queued with a new spec, or failed with the reason) and,
  // when at least one was, appends `events` first. Idempotent: once no task
  // is held it changes nothing. Returns how many tasks it updated.
  absl::StatusOr<int> ReleaseHeldTasks(
      absl::string_view job_id, const std::vector<HeldTaskUpdate>& updates,
      const std::vector<Event>& events);

  // Ends a queued or running job in `state` (terminal) with `error`, its
  // result and `events` (appended before the state event), in one
  // transaction; the job's open tasks stop. A job already terminal is left
  // as it is (returns OK: a repeat).
  absl::Status FinishJob(absl::string_view job_id, JobState state,
                         absl::string_view error,
                         const std::optional<std::string>& result,
                         const std::vector<Event>& events);

  // The owner's job created with `request_id` (JobOptions), if any; an
  // indexed lookup, whatever the owner's history.
  absl::StatusOr<std::optional<JobRecord>> FindByRequestId(
      absl::string_view owner, absl::string_view request_id);
  // How many of the owner's jobs are in `state` (indexed).
  absl::StatusOr<int64_t> CountJobs(absl::string_view owner, JobState state);

  // Ids of the jobs of `kind` in `state`, oldest first (recovery scans).
  absl::StatusOr<std::vector<std::string>> ListJobIds(absl::string_view kind,
                                                      JobState state);

  // Every attempt of every task of the job, ended and running, in start
  // order. NOT_FOUND when the job is absent.
  absl::StatusOr<std::vector<AttemptRecord>> ListAttempts(
      absl::string_view job_id);

  // Requeues (or fails, when out of attempts; or cancels, when the job was
  // cancelled) every leased task whose lease expired at or before `now`.
  absl::StatusOr<std::vector<ExpiredLease>> ExpireLeases(absl::Time now);

  // Cancels a queued or running job of `owner`: its queued tasks are
  // cancelled, its leased ones flagged (TasksToCancel, RenewLease) until
  // their worker stops. NOT_FOUND for a missing job or another owner's;
  // FAILED_PRECONDITION for a finished job. `reason` becomes the job's
  // failure; empty: "cancelled by its owner".
  absl::Status CancelJob(absl::string_view job_id, absl::string_view owner,
                         absl::string_view reason = "");
  // Leased tasks whose job was cancelled or failed.
  absl::StatusOr<std::vector<CancelTarget>> TasksToCancel();

  // Up to `limit` events with seq > after_seq, in seq order. NOT_FOUND when
  // the job is absent.
  absl::StatusOr<std::vector<StoredEvent>> ReadEvents(absl::string_view job_id,
                                                      int64_t after_seq,
                                                      int limit);

 private:
  JobStore(std::unique_ptr<SqliteDb> db, Clock* clock,
           const EventEncoder* events)
      : db_(std::move(db)), clock_(clock), events_(events) {}

  absl::Status Migrate() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Migration 3's data step: the store's own events of a version-2 file,
  // from their old payloads (a state name, tab-separated fields) into
  // events_'s encoding.
  absl::Status ReencodeOwnEvents() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<JobRecord> ReadJob(absl::string_view job_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<TaskRecord> ReadTask(absl::string_view task_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<TaskRecord> ReadFencedTask(absl::string_view task_id,
                                            int attempt)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `time`: when the event is stamped; unset: now.
  absl::StatusOr<int64_t> AppendJobEvent(
      absl::string_view job_id, absl::string_view task_id,
      absl::string_view type, absl::string_view payload,
      std::optional<absl::Time> time = std::nullopt)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status InsertEvent(absl::string_view job_id, int64_t seq,
                           absl::string_view task_id, absl::string_view type,
                           absl::string_view payload, absl::Time time)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status SetJobState(absl::string_view job_id, JobState state,
                           absl::string_view error)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status EndAttempt(const TaskRecord& task, absl::string_view reason,
                          AttemptOutcome outcome, bool permanent)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status InsertAttempt(const TaskRecord& task, AttemptOutcome outcome,
                             absl::string_view reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status RollUpJob(absl::string_view job_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status StopJobTasks(absl::string_view job_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  lrtune::Mutex mu_;
  std::unique_ptr<SqliteDb> db_ ABSL_GUARDED_BY(mu_);
  absl::BitGen bitgen_ ABSL_GUARDED_BY(mu_);  // job ids
  Clock* const clock_;
  const EventEncoder* const events_;
};

}  // namespace lrtune::server

#endif  // LRTUNE_SERVER_JOB_STORE_H_
