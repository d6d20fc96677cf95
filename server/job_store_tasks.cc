// Tasks under leases: leasing, fencing, event ingestion, outcomes, expiry,
// cancellation, and how a job's state follows its tasks. At ~615 lines,
// about the house's ~600: each function is one transaction, and they share
// the fencing and roll-up helpers here.
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/status_macros.h"
#include "server/job_store.h"
#include "server/job_store_rows.h"

namespace lrtune::server {

absl::StatusOr<TaskRecord> JobStore::ReadTask(absl::string_view task_id) {
  TaskRecord task;
  {
    LRTUNE_ASSIGN_OR_RETURN(
        SqliteStatement st,
        db_->Prepare(
            absl::StrCat("SELECT ", kTaskColumns, " FROM tasks WHERE id = ?")));
    st.BindText(1, task_id);
    LRTUNE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) {
      return absl::NotFoundError(absl::StrCat("task ", task_id, " not found"));
    }
    LRTUNE_ASSIGN_OR_RETURN(task, TaskFromRow(st));
  }
  LRTUNE_ASSIGN_OR_RETURN(
      SqliteStatement st,
      db_->Prepare("SELECT attempt, reason FROM task_attempts "
                   "WHERE task_id = ? AND outcome != 'succeeded' "
                   "ORDER BY attempt"));
  st.BindText(1, task_id);
  while (true) {
    LRTUNE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    task.attempt_errors.push_back(
        absl::StrCat("attempt ", st.ColumnInt64(0), ": ", st.ColumnText(1)));
  }
  return task;
}

absl::StatusOr<TaskRecord> JobStore::ReadFencedTask(absl::string_view task_id,
                                                    int attempt) {
  LRTUNE_ASSIGN_OR_RETURN(TaskRecord task, ReadTask(task_id));
  if (attempt != task.attempt) {
    return absl::FailedPreconditionError(
        absl::StrCat("task ", task_id, ": stale attempt ", attempt,
                     ", current ", task.attempt));
  }
  if (task.state != TaskState::kLeased) {
    return absl::FailedPreconditionError(
        absl::StrCat("task ", task_id, " is ", TaskStateName(task.state),
                     ", not leased (attempt ", attempt, ")"));
  }
  return task;
}

absl::StatusOr<TaskRecord> JobStore::GetTask(absl::string_view task_id) {
  lrtune::MutexLock lock(&mu_);
  return ReadTask(task_id);
}

absl::StatusOr<std::vector<TaskRecord>> JobStore::ListTasks(
    absl::string_view job_id) {
  lrtune::MutexLock lock(&mu_);
  LRTUNE_RETURN_IF_ERROR(ReadJob(job_id).status());
  std::vector<std::string> ids;
  {
    LRTUNE_ASSIGN_OR_RETURN(
        SqliteStatement st,
        db_->Prepare("SELECT id FROM tasks WHERE job_id = ? ORDER BY idx"));
    st.BindText(1, job_id);
    while (true) {
      LRTUNE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) break;
      ids.push_back(st.ColumnText(0));
    }
  }
  std::vector<TaskRecord> tasks;
  for (const std::string& id : ids) {
    LRTUNE_ASSIGN_OR_RETURN(TaskRecord task, ReadTask(id));
    tasks.push_back(std::move(task));
  }
  return tasks;
}

absl::StatusOr<std::optional<TaskLease>> JobStore::LeaseNextTask(
    absl::string_view worker_id, absl::Duration ttl, const SlotOffer& offer) {
  if (ttl <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("lease ttl must be positive");
  }
  lrtune::MutexLock lock(&mu_);
  LRTUNE_ASSIGN_OR_RETURN(auto txn, SqliteTransaction::Begin(db_.get()));
  std::string task_id;
  {
    LRTUNE_ASSIGN_OR_RETURN(
        SqliteStatement st,
        db_->Prepare(
            "SELECT t.id FROM tasks t JOIN jobs j ON j.id = t.job_id "
            "WHERE t.state = 'queued' AND t.held = 0 AND j.state IN "
            "('queued', 'running') AND (j.max_parallel = 0 OR (SELECT "
            "COUNT(*) FROM tasks l WHERE l.job_id = j.id AND l.state = "
            "'leased') < j.max_parallel) AND (?1 = '' OR t.device = '' OR "
            "(t.device = ?1 AND (t.min_memory = 0 OR t.min_memory <= ?2))) "
            "AND (?3 = 0 OR t.dataset = '' OR "
            "instr(?4, ',' || t.dataset || ',') > 0) "
            "ORDER BY t.num LIMIT 1"));
    st.BindText(1, offer.device);
    st.BindInt64(2, offer.memory_bytes);
    // The worker's data sets as ",a,b,": a name matches only whole.
    st.BindInt64(3, offer.datasets.has_value() ? 1 : 0);
    st.BindText(
        4, offer.datasets.has_value()
               ? absl::StrCat(",", absl::StrJoin(*offer.datasets, ","), ",")
               : std::string());
    LRTUNE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) return std::optional<TaskLease>();
    task_id = st.ColumnText(0);
  }
  const absl::Time now = clock_->Now();
  const absl::Time expires = now + ttl;
  {
    LRTUNE_ASSIGN_OR_RETURN(
        SqliteStatement st,
        db_->Prepare("UPDATE tasks SET state = 'leased', attempt = attempt + "
                     "1, lease_worker = ?, lease_expires_us = ?, "
                     "lease_started_us = ?, lease_device = ? WHERE id = ?"));
    st.BindText(1, worker_id);
    st.BindInt64(2, absl::ToUnixMicros(expires));
    st.BindInt64(3, absl::ToUnixMicros(now));
    st.BindText(4, offer.slot_device);
    st.BindText(5, task_id);
    LRTUNE_RETURN_IF_ERROR(st.Run());
  }
  LRTUNE_ASSIGN_OR_RETURN(TaskRecord task, ReadTask(task_id));
  LRTUNE_ASSIGN_OR_RETURN(JobRecord job, ReadJob(task.job_id));
  if (job.state == JobState::kQueued) {
    LRTUNE_RETURN_IF_ERROR(SetJobState(job.id, JobState::kRunning, ""));
  }
  LRTUNE_RETURN_IF_ERROR(txn.Commit());
  return TaskLease{task.id,   task.job_id,           task.attempt,
                   task.spec, task.lease_expires_at, task.last_acked_seq};
}

absl::StatusOr<LeaseRenewal> JobStore::RenewLease(absl::string_view task_id,
                                                  int attempt,
                                                  absl::Duration ttl) {
  if (ttl <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("lease ttl must be positive");
  }
  lrtune::MutexLock lock(&mu_);
  LRTUNE_ASSIGN_OR_RETURN(auto txn, SqliteTransaction::Begin(db_.get()));
  LRTUNE_ASSIGN_OR_RETURN(TaskRecord task, ReadFencedTask(task_id, attempt));
  absl::Time now = clock_->Now();
  if (now >= task.lease_expires_at) {
    return absl::FailedPreconditionError(absl::StrCat(
        "task ", task_id, ": lease expired at ",
        absl::FormatTime(task.lease_expires_at), " (attempt ", attempt, ")"));
  }
  LeaseRenewal renewal{now + ttl, task.cancel_requested};
  LRTUNE_ASSIGN_OR_RETURN(
      SqliteStatement st,
      db_->Prepare("UPDATE tasks SET lease_expires_us = ? WHERE id = ?"));
  st.BindInt64(1, absl::ToUnixMicros(renewal.expires_at));
  st.BindText(2, task_id);
  LRTUNE_RETURN_IF_ERROR(st.Run());
  LRTUNE_RETURN_IF_ERROR(txn.Commit());
  return renewal;
}

absl::StatusOr<int64_t> JobStore::AppendTaskEvents(
    absl::string_view task_id, int attempt, int64_t first_seq,
    const std::vector<Event>& events, std::optional<absl::Duration> renew,
    absl::Time* stored_at) {
  if (renew.has_value() && *renew <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("lease ttl must be positive");
  }
  if (first_seq < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("first_seq must be >= 0, got ", first_seq));
  }
  // The acked_seq column counts the records stored: last_acked_seq + 1.
  const int64_t count_after = first_seq + static_cast<int64_t>(events.size());
  lrtune::MutexLock lock(&mu_);
  LRTUNE_ASSIGN_OR_RETURN(auto txn, SqliteTransaction::Begin(db_.get()));
  LRTUNE_ASSIGN_OR_RETURN(TaskRecord task, ReadFencedTask(task_id, attempt));
  // The job was cancelled or ended (in the transaction that set this flag):
  // nothing more may follow its terminal event.
  if (task.cancel_requested) {
    // Acknowledged and dropped: the acknowledgement moves on (so every
    // later answer agrees and the worker need not resend), no event is
    // added after the job's terminal one.
    LRTUNE_ASSIGN_OR_RETURN(
        SqliteStatement st,
        db_->Prepare("UPDATE tasks SET acked_seq = MAX(acked_seq, ?) "
                     "WHERE id = ?"));
    st.BindInt64(1, count_after);
    st.BindText(2, task_id);
    LRTUNE_RETURN_IF_ERROR(st.Run());
    LRTUNE_RETURN_IF_ERROR(txn.Commit());
    return absl::AbortedError(absl::StrCat(
        "task ", task_id,
        ": its job was stopped; records acknowledged, not stored"));
  }
  if (first_seq > task.last_acked_seq + 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "task ", task_id, ": records would leave a gap: first_seq ", first_seq,
        " but ",
        task.last_acked_seq < 0
            ? std::string("none is stored")
            : absl::StrCat("only 0..", task.last_acked_seq, " are stored")));
  }
  absl::Time now = clock_->Now();
  if (stored_at != nullptr) *stored_at = now;
  if (renew.has_value() && now >= task.lease_expires_at) {
    return absl::FailedPreconditionError(absl::StrCat(
        "task ", task_id, ": lease expired at ",
        absl::FormatTime(task.lease_expires_at), " (attempt ", attempt, ")"));
  }
  // One read and one write of the job row per batch; the events take the
  // job's next seqs in order.
  LRTUNE_ASSIGN_OR_RETURN(JobRecord job, ReadJob(task.job_id));
  int64_t job_seq = job.last_seq;
  int64_t seq = first_seq;
  for (const Event& event : events) {
    if (seq > task.last_acked_seq) {
      LRTUNE_RETURN_IF_ERROR(InsertEvent(task.job_id, ++job_seq, task_id,
                                         event.type, event.payload, now));
    }
    ++seq;
  }
  if (job_seq == job.last_seq && !renew.has_value()) {
    return job_seq;  // all already stored
  }
  if (job_seq != job.last_seq) {
    LRTUNE_ASSIGN_OR_RETURN(
        SqliteStatement st,
        db_->Prepare("UPDATE jobs SET next_seq = ?, updated_us = ? "
                     "WHERE id = ?"));
    st.BindInt64(1, job_seq + 1);
    st.BindInt64(2, absl::ToUnixMicros(now));
    st.BindText(3, task.job_id);
    LRTUNE_RETURN_IF_ERROR(st.Run());
  }
  // The acknowledgement and (for a worker's report) the lease renewal in
  // the same commit: one fsync per report, not two.
  LRTUNE_ASSIGN_OR_RETURN(
      SqliteStatement st,
      db_->Prepare("UPDATE tasks SET acked_seq = MAX(acked_seq, ?), "
                   "lease_expires_us = COALESCE(?, lease_expires_us) "
                   "WHERE id = ?"));
  st.BindInt64(1, count_after);
  if (renew.has_value()) {
    st.BindInt64(2, absl::ToUnixMicros(now + *renew));
  } else {
    st.BindNull(2);
  }
  st.BindText(3, task_id);
  LRTUNE_RETURN_IF_ERROR(st.Run());
  LRTUNE_RETURN_IF_ERROR(txn.Commit());
  return job_seq;
}

absl::Status JobStore::CompleteTask(absl::string_view task_id, int attempt,
                                    absl::string_view result) {
  lrtune::MutexLock lock(&mu_);
  LRTUNE_ASSIGN_OR_RETURN(auto txn, SqliteTransaction::Begin(db_.get()));
  LRTUNE_ASSIGN_OR_RETURN(TaskRecord task, ReadFencedTask(task_id, attempt));
  LRTUNE_RETURN_IF_ERROR(InsertAttempt(task, AttemptOutcome::kSucceeded, ""));
  {
    LRTUNE_ASSIGN_OR_RETURN(
        SqliteStatement st,
        db_->Prepare("UPDATE tasks SET state = 'succeeded', result = ?, "
                     "lease_worker = '', lease_expires_us = 0 WHERE id = ?"));
    st.BindBlob(1, result);
    st.BindText(2, task_id);
    LRTUNE_RETURN_IF_ERROR(st.Run());
  }
  LRTUNE_RETURN_IF_ERROR(RollUpJob(task.job_id));
  return txn.Commit();
}

absl::Status JobStore::FailTask(absl::string_view task_id, int attempt,
                                absl::string_view reason, FailureKind kind) {
  AttemptOutcome outcome = AttemptOutcome::kFailed;
  if (kind == FailureKind::kReleased) outcome = AttemptOutcome::kReleased;
  if (kind == FailureKind::kCancelled) outcome = AttemptOutcome::kCancelled;
  lrtune::MutexLock lock(&mu_);
  LRTUNE_ASSIGN_OR_RETURN(auto txn, SqliteTransaction::Begin(db_.get()));
  LRTUNE_ASSIGN_OR_RETURN(TaskRecord task, ReadFencedTask(task_id, attempt));
  LRTUNE_RETURN_IF_ERROR(
      EndAttempt(task, reason, outcome, kind == FailureKind::kPermanent));
  return txn.Commit();
}

absl::Status JobStore::InsertAttempt(const TaskRecord& task,
                                     AttemptOutcome outcome,
                                     absl::string_view reason) {
  LRTUNE_ASSIGN_OR_RETURN(
      SqliteStatement st,
      db_->Prepare("INSERT INTO task_attempts (task_id, attempt, worker, "
                   "reason, time_us, outcome, started_us, device) VALUES "
                   "(?, ?, ?, ?, ?, ?, ?, ?)"));
  st.BindText(1, task.id);
  st.BindInt64(2, task.attempt);
  st.BindText(3, task.lease_worker);
  st.BindText(4, reason);
  st.BindInt64(5, absl::ToUnixMicros(clock_->Now()));
  st.BindText(6, AttemptOutcomeName(outcome));
  st.BindInt64(7, absl::ToUnixMicros(task.lease_started_at));
  st.BindText(8, task.lease_device);
  return st.Run();
}

absl::Status JobStore::EndAttempt(const TaskRecord& task,
                                  absl::string_view reason,
                                  AttemptOutcome outcome, bool permanent) {
  LRTUNE_RETURN_IF_ERROR(InsertAttempt(task, outcome, reason));
  // Attempts that count: released ones (a worker shutting down) do not.
  LRTUNE_ASSIGN_OR_RETURN(
      SqliteStatement count,
      db_->Prepare("SELECT COUNT(*) FROM task_attempts WHERE task_id = ? AND "
                   "outcome IN ('failed', 'lease_expired')"));
  count.BindText(1, task.id);
  LRTUNE_ASSIGN_OR_RETURN(bool counted_row, count.Step());
  const int64_t counted = counted_row ? count.ColumnInt64(0) : 0;
  TaskState next = TaskState::kQueued;
  if (task.cancel_requested) {
    next = TaskState::kCancelled;
  } else if (permanent || counted >= task.max_attempts) {
    next = TaskState::kFailed;
  }
  {
    LRTUNE_ASSIGN_OR_RETURN(
        SqliteStatement st,
        db_->Prepare("UPDATE tasks SET state = ?, lease_worker = '', "
                     "lease_expires_us = 0 WHERE id = ?"));
    st.BindText(1, TaskStateName(next));
    st.BindText(2, task.id);
    LRTUNE_RETURN_IF_ERROR(st.Run());
  }
  LRTUNE_ASSIGN_OR_RETURN(JobRecord job, ReadJob(task.job_id));
  if (!IsTerminal(job.state)) {
    AttemptRecord ended;
    ended.task_id = task.id;
    ended.attempt = task.attempt;
    ended.worker = task.lease_worker;
    ended.device = task.lease_device;
    ended.outcome = outcome;
    ended.reason = std::string(reason);
    ended.started = task.lease_started_at;
    ended.ended = clock_->Now();
    LRTUNE_RETURN_IF_ERROR(
        AppendJobEvent(job.id, "", kAttemptEndedEventType,
                       events_->AttemptEnded(ended, next == TaskState::kQueued))
            .status());
  }
  // A grid's trial fails alone; the coordinator ends the grid.
  if (next != TaskState::kFailed || job.kind == "grid") {
    return RollUpJob(task.job_id);
  }
  // Out of attempts: the job fails now, naming every attempt's reason, and
  // its other tasks stop.
  if (IsTerminal(job.state)) return absl::OkStatus();
  LRTUNE_ASSIGN_OR_RETURN(TaskRecord failed, ReadTask(task.id));
  std::string error =
      absl::StrCat("task ", task.id, " failed after ", task.attempt,
                   " attempts: ", absl::StrJoin(failed.attempt_errors, "; "));
  LRTUNE_RETURN_IF_ERROR(SetJobState(job.id, JobState::kFailed, error));
  return StopJobTasks(job.id);
}

absl::Status JobStore::RollUpJob(absl::string_view job_id) {
  LRTUNE_ASSIGN_OR_RETURN(JobRecord job, ReadJob(job_id));
  // A grid ends through FinishJob, once the coordinator has ranked it.
  if (IsTerminal(job.state) || job.kind == "grid") return absl::OkStatus();
  int64_t open = 0, succeeded = 0, failed = 0;
  {
    LRTUNE_ASSIGN_OR_RETURN(
        SqliteStatement st,
        db_->Prepare("SELECT state, COUNT(*) FROM tasks WHERE job_id = ? "
                     "GROUP BY state"));
    st.BindText(1, job_id);
    while (true) {
      LRTUNE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) break;
      LRTUNE_ASSIGN_OR_RETURN(TaskState state,
                              ParseTaskState(st.ColumnText(0)));
      int64_t count = st.ColumnInt64(1);
      if (state == TaskState::kQueued || state == TaskState::kLeased) {
        open += count;
      } else if (state == TaskState::kSucceeded) {
        succeeded += count;
      } else if (state == TaskState::kFailed) {
        failed += count;
      }
    }
  }
  if (open > 0) return absl::OkStatus();
  if (failed > 0) {
    return SetJobState(job_id, JobState::kFailed, "a task failed");
  }
  return SetJobState(
      job_id, succeeded > 0 ? JobState::kSucceeded : JobState::kCancelled, "");
}

absl::Status JobStore::SetJobState(absl::string_view job_id, JobState state,
                                   absl::string_view error) {
  {
    LRTUNE_ASSIGN_OR_RETURN(
        SqliteStatement st,
        db_->Prepare("UPDATE jobs SET state = ?, error = ? WHERE id = ?"));
    st.BindText(1, JobStateName(state));
    st.BindText(2, error);
    st.BindText(3, job_id);
    LRTUNE_RETURN_IF_ERROR(st.Run());
  }
  // AppendJobEvent also stamps updated_us.
  return AppendJobEvent(job_id, "", kStateEventType,
                        events_->StateChanged(state, error))
      .status();
}

absl::Status JobStore::StopJobTasks(absl::string_view job_id) {
  {
    LRTUNE_ASSIGN_OR_RETURN(
        SqliteStatement st,
        db_->Prepare("UPDATE tasks SET state = 'cancelled' "
                     "WHERE job_id = ? AND state = 'queued'"));
    st.BindText(1, job_id);
    LRTUNE_RETURN_IF_ERROR(st.Run());
  }
  LRTUNE_ASSIGN_OR_RETURN(
      SqliteStatement st,
      db_->Prepare("UPDATE tasks SET cancel_requested = 1 "
                   "WHERE job_id = ? AND state = 'leased'"));
  st.BindText(1, job_id);
  return st.Run();
}

absl::StatusOr<std::vector<ExpiredLease>> JobStore::ExpireLeases(
    absl::Time now) {
  lrtune::MutexLock lock(&mu_);
  LRTUNE_ASSIGN_OR_RETURN(auto txn, SqliteTransaction::Begin(db_.get()));
  std::vector<std::string> ids;
  {
    LRTUNE_ASSIGN_OR_RETURN(
        SqliteStatement st,
        db_->Prepare("SELECT id FROM tasks WHERE state = 'leased' AND "
                     "lease_expires_us <= ? ORDER BY num"));
    st.BindInt64(1, absl::ToUnixMicros(now));
    while (true) {
      LRTUNE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) break;
      ids.push_back(st.ColumnText(0));
    }
  }
  std::vector<ExpiredLease> expired;
  for (const std::string& id : ids) {
    LRTUNE_ASSIGN_OR_RETURN(TaskRecord task, ReadTask(id));
    LRTUNE_RETURN_IF_ERROR(
        EndAttempt(task,
                   absl::StrCat("lease expired (worker ", task.lease_worker,
                                " stopped heartbeating)"),
                   AttemptOutcome::kLeaseExpired, /*permanent=*/false));
    LRTUNE_ASSIGN_OR_RETURN(TaskRecord after, ReadTask(id));
    expired.push_back({id, task.job_id, task.attempt, task.lease_worker,
                       after.state == TaskState::kQueued});
  }
  LRTUNE_RETURN_IF_ERROR(txn.Commit());
  return expired;
}

absl::StatusOr<int64_t> JobStore::UpdateTaskSpec(
    absl::string_view task_id, int attempt, absl::string_view spec,
    const std::vector<Event>& events, absl::Time* stored_at) {
  lrtune::MutexLock lock(&mu_);
  LRTUNE_ASSIGN_OR_RETURN(auto txn, SqliteTransaction::Begin(db_.get()));
  LRTUNE_ASSIGN_OR_RETURN(TaskRecord task, ReadFencedTask(task_id, attempt));
  LRTUNE_ASSIGN_OR_RETURN(JobRecord job, ReadJob(task.job_id));
  if (IsTerminal(job.state)) {  // nothing follows a job's terminal event
    return absl::AbortedError(
        absl::StrCat("job ", task.job_id, " is ", JobStateName(job.state)));
  }
  {
    LRTUNE_ASSIGN_OR_RETURN(
        SqliteStatement st,
        db_->Prepare("UPDATE tasks SET spec = ? WHERE id = ?"));
    st.BindBlob(1, spec);
    st.BindText(2, task_id);
    LRTUNE_RETURN_IF_ERROR(st.Run());
  }
  const absl::Time now = clock_->Now();
  int64_t last = 0;
  for (const Event& e : events) {
    LRTUNE_ASSIGN_OR_RETURN(
        last, AppendJobEvent(task.job_id, "", e.type, e.payload, now));
  }
  if (events.empty()) last = job.last_seq;
  LRTUNE_RETURN_IF_ERROR(txn.Commit());
  if (stored_at != nullptr) *stored_at = now;
  return last;
}

absl::StatusOr<int> JobStore::ReleaseHeldTasks(
    absl::string_view job_id, const std::vector<HeldTaskUpdate>& updates,
    const std::vector<Event>& events) {
  lrtune::MutexLock lock(&mu_);
  LRTUNE_ASSIGN_OR_RETURN(auto txn, SqliteTransaction::Begin(db_.get()));
  LRTUNE_ASSIGN_OR_RETURN(JobRecord job, ReadJob(job_id));
  if (IsTerminal(job.state)) return 0;
  std::vector<const HeldTaskUpdate*> todo;
  for (const HeldTaskUpdate& u : updates) {
    LRTUNE_ASSIGN_OR_RETURN(
        SqliteStatement st,
        db_->Prepare("SELECT held FROM tasks WHERE job_id = ? AND idx = ? "
                     "AND state = 'queued'"));
    st.BindText(1, job_id);
    st.BindInt64(2, u.index);
    LRTUNE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (row && st.ColumnInt64(0) != 0) todo.push_back(&u);
  }
  if (todo.empty()) return 0;  // already released
  for (const Event& e : events) {
    LRTUNE_RETURN_IF_ERROR(
        AppendJobEvent(job_id, "", e.type, e.payload).status());
  }
  for (const HeldTaskUpdate* u : todo) {
    if (u->failure.empty()) {
      LRTUNE_ASSIGN_OR_RETURN(
          SqliteStatement st,
          db_->Prepare("UPDATE tasks SET held = 0, spec = ? WHERE job_id = ? "
                       "AND idx = ?"));
      st.BindBlob(1, u->spec);
      st.BindText(2, job_id);
      st.BindInt64(3, u->index);
      LRTUNE_RETURN_IF_ERROR(st.Run());
      continue;
    }
    const std::string task_id = TaskId(job_id, u->index);
    {
      LRTUNE_ASSIGN_OR_RETURN(
          SqliteStatement st,
          db_->Prepare("UPDATE tasks SET held = 0, state = 'failed' "
                       "WHERE id = ?"));
      st.BindText(1, task_id);
      LRTUNE_RETURN_IF_ERROR(st.Run());
    }
    // Recorded as attempt 0: the task never ran.
    LRTUNE_ASSIGN_OR_RETURN(
        SqliteStatement st,
        db_->Prepare("INSERT INTO task_attempts (task_id, attempt, worker, "
                     "reason, time_us, outcome, started_us) VALUES (?, 0, "
                     "'', ?, ?, 'failed', 0)"));
    st.BindText(1, task_id);
    st.BindText(2, u->failure);
    st.BindInt64(3, absl::ToUnixMicros(clock_->Now()));
    LRTUNE_RETURN_IF_ERROR(st.Run());
  }
  LRTUNE_RETURN_IF_ERROR(txn.Commit());
  return static_cast<int>(todo.size());
}

absl::StatusOr<std::vector<AttemptRecord>> JobStore::ListAttempts(
    absl::string_view job_id) {
  lrtune::MutexLock lock(&mu_);
  LRTUNE_RETURN_IF_ERROR(ReadJob(job_id).status());
  std::vector<AttemptRecord> attempts;
  {
    LRTUNE_ASSIGN_OR_RETURN(
        SqliteStatement st,
        db_->Prepare("SELECT a.task_id, a.attempt, a.worker, a.outcome, "
                     "a.reason, a.started_us, a.time_us, a.device FROM "
                     "task_attempts a "
                     "JOIN tasks t ON t.id = a.task_id WHERE t.job_id = ? "
                     "AND a.attempt > 0"));
    st.BindText(1, job_id);
    while (true) {
      LRTUNE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) break;
      AttemptRecord& a = attempts.emplace_back();
      a.task_id = st.ColumnText(0);
      a.attempt = static_cast<int>(st.ColumnInt64(1));
      a.worker = st.ColumnText(2);
      LRTUNE_ASSIGN_OR_RETURN(a.outcome, ParseAttemptOutcome(st.ColumnText(3)));
      a.reason = st.ColumnText(4);
      a.started = absl::FromUnixMicros(st.ColumnInt64(5));
      a.device = st.ColumnText(7);
      a.ended = absl::FromUnixMicros(st.ColumnInt64(6));
    }
  }
  LRTUNE_ASSIGN_OR_RETURN(
      SqliteStatement st,
      db_->Prepare("SELECT id, attempt, lease_worker, lease_started_us, "
                   "lease_device FROM tasks WHERE job_id = ? AND state = "
                   "'leased'"));
  st.BindText(1, job_id);
  while (true) {
    LRTUNE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    AttemptRecord& a = attempts.emplace_back();
    a.task_id = st.ColumnText(0);
    a.attempt = static_cast<int>(st.ColumnInt64(1));
    a.worker = st.ColumnText(2);
    a.started = absl::FromUnixMicros(st.ColumnInt64(3));
    a.device = st.ColumnText(4);
  }
  std::stable_sort(attempts.begin(), attempts.end(),
                   [](const AttemptRecord& a, const AttemptRecord& b) {
                     return a.started < b.started;
                   });
  return attempts;
}

absl::Status JobStore::CancelJob(absl::string_view job_id,
                                 absl::string_view owner,
                                 absl::string_view reason) {
  lrtune::MutexLock lock(&mu_);
  LRTUNE_ASSIGN_OR_RETURN(auto txn, SqliteTransaction::Begin(db_.get()));
  absl::StatusOr<JobRecord> job = ReadJob(job_id);
  if (!job.ok()) return job.status();
  // Another owner's job is reported exactly like a missing one.
  if (job->owner != owner) {
    return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
  }
  if (IsTerminal(job->state)) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", job_id, " is already ", JobStateName(job->state)));
  }
  LRTUNE_RETURN_IF_ERROR(
      SetJobState(job_id, JobState::kCancelled,
                  reason.empty() ? "cancelled by its owner" : reason));
  LRTUNE_RETURN_IF_ERROR(StopJobTasks(job_id));
  return txn.Commit();
}

absl::StatusOr<std::vector<CancelTarget>> JobStore::TasksToCancel() {
  lrtune::MutexLock lock(&mu_);
  LRTUNE_ASSIGN_OR_RETURN(
      SqliteStatement st,
      db_->Prepare("SELECT id, attempt, lease_worker FROM tasks "
                   "WHERE state = 'leased' AND cancel_requested = 1 "
                   "ORDER BY num"));
  std::vector<CancelTarget> targets;
  while (true) {
    LRTUNE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    targets.push_back({st.ColumnText(0), static_cast<int>(st.ColumnInt64(1)),
                       st.ColumnText(2)});
  }
  return targets;
}

}  // namespace lrtune::server
