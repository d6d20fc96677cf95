// JobStore::LeaseClientTask: the lease of a client-driven range test's run.
// Workers lease the next task of any job (LeaseNextTask); a client asks for
// a run of one job, by index or the next free one, and keeps it across its
// reconnections by holding it under its own id.
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "server/job_store.h"

namespace lrtune::server {

absl::StatusOr<JobStore::ClientLease> JobStore::LeaseClientTask(
    absl::string_view job_id, std::optional<int> index,
    absl::string_view holder, absl::Duration ttl) {
  if (ttl <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("lease ttl must be positive");
  }
  lrtune::MutexLock lock(&mu_);
  LRTUNE_ASSIGN_OR_RETURN(auto txn, SqliteTransaction::Begin(db_.get()));
  LRTUNE_ASSIGN_OR_RETURN(JobRecord job, ReadJob(job_id));
  if (IsTerminal(job.state)) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", job_id, " is ", JobStateName(job.state),
                     ": a closed job takes no runs"));
  }
  std::vector<TaskRecord> tasks;
  {
    LRTUNE_ASSIGN_OR_RETURN(
        SqliteStatement st,
        db_->Prepare("SELECT id FROM tasks WHERE job_id = ? ORDER BY idx"));
    st.BindText(1, job_id);
    std::vector<std::string> ids;
    while (true) {
      LRTUNE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) break;
      ids.push_back(st.ColumnText(0));
    }
    for (const std::string& id : ids) {
      LRTUNE_ASSIGN_OR_RETURN(TaskRecord t, ReadTask(id));
      tasks.push_back(std::move(t));
    }
  }
  const int runs = static_cast<int>(tasks.size());
  const TaskRecord* chosen = nullptr;
  if (index.has_value()) {
    if (*index < 0 || *index >= runs) {
      return absl::InvalidArgumentError(
          absl::StrCat("run_index must be in [0, ", runs, "), got ", *index));
    }
    chosen = &tasks[static_cast<size_t>(*index)];
  } else {
    for (const TaskRecord& t : tasks) {
      if (t.state == TaskState::kLeased && t.lease_worker == holder) {
        chosen = &t;
        break;
      }
    }
    for (const TaskRecord& t : tasks) {
      if (chosen != nullptr) break;
      if (t.state == TaskState::kQueued && !t.held && t.last_acked_seq < 0) {
        chosen = &t;
      }
    }
    if (chosen == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("no run of job ", job_id, " is free: its ", runs,
                       " runs are held by clients, done, or hold another "
                       "client's steps; join one by run_index"));
    }
  }
  const TaskRecord& task = *chosen;
  ClientLease out;
  out.index = task.index;
  out.state = task.state;
  out.lease = {task.id,   task.job_id,           task.attempt,
               task.spec, task.lease_expires_at, task.last_acked_seq};
  const absl::Time now = clock_->Now();
  if (task.state == TaskState::kSucceeded || task.state == TaskState::kFailed ||
      task.state == TaskState::kCancelled) {
    return out;  // the run is over: the caller says so
  }
  if (task.state == TaskState::kLeased) {
    if (task.lease_worker != holder) {
      return absl::FailedPreconditionError(
          absl::StrCat("run ", task.index, " of job ", job_id,
                       " is held by another client (its lease runs to ",
                       absl::FormatTime(task.lease_expires_at), ")"));
    }
    // The holder again (a lost answer, a restarted coordinator): the same
    // attempt, renewed.
    LRTUNE_ASSIGN_OR_RETURN(
        SqliteStatement st,
        db_->Prepare("UPDATE tasks SET lease_expires_us = ? WHERE id = ?"));
    st.BindInt64(1, absl::ToUnixMicros(now + ttl));
    st.BindText(2, task.id);
    LRTUNE_RETURN_IF_ERROR(st.Run());
    LRTUNE_RETURN_IF_ERROR(txn.Commit());
    out.lease.expires_at = now + ttl;
    return out;
  }
  if (task.held) {
    return absl::FailedPreconditionError(
        absl::StrCat("run ", task.index, " of job ", job_id, " is held"));
  }
  if (task.last_acked_seq >= 0) {
    // A curve is one training: steps stored under another client must not
    // be continued by a model that did not take them.
    std::string last_holder;
    LRTUNE_ASSIGN_OR_RETURN(
        SqliteStatement st,
        db_->Prepare("SELECT worker FROM task_attempts WHERE task_id = ? "
                     "ORDER BY attempt DESC LIMIT 1"));
    st.BindText(1, task.id);
    LRTUNE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (row) last_holder = st.ColumnText(0);
    if (last_holder != holder) {
      return absl::FailedPreconditionError(absl::StrCat(
          "run ", task.index, " of job ", job_id, " holds steps 0..",
          task.last_acked_seq,
          " reported by another client: a run's curve comes from one "
          "training; join another run or submit a new job"));
    }
  }
  {
    LRTUNE_ASSIGN_OR_RETURN(
        SqliteStatement st,
        db_->Prepare("UPDATE tasks SET state = 'leased', attempt = attempt + "
                     "1, lease_worker = ?, lease_expires_us = ?, "
                     "lease_started_us = ?, lease_device = 'client' WHERE id "
                     "= ?"));
    st.BindText(1, holder);
    st.BindInt64(2, absl::ToUnixMicros(now + ttl));
    st.BindInt64(3, absl::ToUnixMicros(now));
    st.BindText(4, task.id);
    LRTUNE_RETURN_IF_ERROR(st.Run());
  }
  if (job.state == JobState::kQueued) {
    LRTUNE_RETURN_IF_ERROR(SetJobState(job.id, JobState::kRunning, ""));
  }
  LRTUNE_RETURN_IF_ERROR(txn.Commit());
  out.state = TaskState::kLeased;
  out.lease.attempt = task.attempt + 1;
  out.lease.expires_at = now + ttl;
  return out;
}

}  // namespace lrtune::server
