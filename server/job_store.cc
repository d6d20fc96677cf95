// Jobs, events, schema and recovery. Task leases and their outcomes are in
// job_store_tasks.cc; row mapping shared by both is in job_store_rows.h.
#include "server/job_store.h"

#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "core/status_macros.h"
#include "server/job_store_rows.h"

namespace lrtune::server {
namespace {

// Migration i (0-based) takes the schema from version i to version i+1.
// Never edit a released entry: append a new one.
constexpr const char* kMigrations[] = {
    R"sql(
CREATE TABLE jobs (
  num INTEGER PRIMARY KEY AUTOINCREMENT,  -- creation order, page tokens
  id TEXT NOT NULL UNIQUE,
  owner TEXT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('range_test', 'grid')),
  state TEXT NOT NULL CHECK (state IN
    ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
  spec BLOB NOT NULL,
  result BLOB,
  error TEXT NOT NULL DEFAULT '',
  created_us INTEGER NOT NULL,
  updated_us INTEGER NOT NULL,
  next_seq INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX jobs_by_owner ON jobs (owner, num);
CREATE TABLE tasks (
  num INTEGER PRIMARY KEY AUTOINCREMENT,  -- lease order
  id TEXT NOT NULL UNIQUE,
  job_id TEXT NOT NULL REFERENCES jobs (id),
  idx INTEGER NOT NULL,
  spec BLOB NOT NULL,
  state TEXT NOT NULL CHECK (state IN
    ('queued', 'leased', 'succeeded', 'failed', 'cancelled')),
  attempt INTEGER NOT NULL DEFAULT 0,
  max_attempts INTEGER NOT NULL CHECK (max_attempts >= 1),
  lease_worker TEXT NOT NULL DEFAULT '',
  lease_expires_us INTEGER NOT NULL DEFAULT 0,
  acked_seq INTEGER NOT NULL DEFAULT 0,
  cancel_requested INTEGER NOT NULL DEFAULT 0,
  result BLOB,
  UNIQUE (job_id, idx)
);
CREATE INDEX tasks_by_state ON tasks (state, num);
CREATE TABLE task_attempts (
  task_id TEXT NOT NULL REFERENCES tasks (id),
  attempt INTEGER NOT NULL,
  worker TEXT NOT NULL,
  reason TEXT NOT NULL,
  time_us INTEGER NOT NULL,
  PRIMARY KEY (task_id, attempt)
) WITHOUT ROWID;
CREATE TABLE events (
  job_id TEXT NOT NULL REFERENCES jobs (id),
  seq INTEGER NOT NULL,
  task_id TEXT,
  type TEXT NOT NULL,
  payload BLOB NOT NULL,
  time_us INTEGER NOT NULL,
  PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
)sql",
    // 2: grids (held tasks, parallelism cap) and attempt history.
    R"sql(
ALTER TABLE jobs ADD COLUMN max_parallel INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN request_id TEXT NOT NULL DEFAULT '';
CREATE INDEX jobs_by_request ON jobs (owner, request_id) WHERE request_id != '';
CREATE INDEX jobs_by_owner_state ON jobs (owner, state);
ALTER TABLE tasks ADD COLUMN held INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN lease_started_us INTEGER NOT NULL DEFAULT 0;
ALTER TABLE task_attempts ADD COLUMN outcome TEXT NOT NULL DEFAULT 'failed';
ALTER TABLE task_attempts ADD COLUMN started_us INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN device TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN min_memory INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN lease_device TEXT NOT NULL DEFAULT '';
ALTER TABLE task_attempts ADD COLUMN device TEXT NOT NULL DEFAULT '';
)sql",
    // 3: the store's own events ("accepted", "state", "attempt_ended") in
    // its EventEncoder's encoding. No schema change: ReencodeOwnEvents
    // rewrites their payloads.
    "",
    // 4: the data set by reference a task reads, which a worker must have.
    R"sql(
ALTER TABLE tasks ADD COLUMN dataset TEXT NOT NULL DEFAULT '';
)sql",
};
// The migration whose data step is ReencodeOwnEvents.
constexpr int kReencodeMigration = 2;
constexpr int kSchemaVersion = sizeof(kMigrations) / sizeof(kMigrations[0]);

constexpr absl::string_view kPageTokenPrefix = "jobs-before:";
// A task's id is its job's, this, and its index (a job id is "j-" and hex).
constexpr absl::string_view kTaskIdInfix = "-t";

std::string EncodePageToken(int64_t num) {
  return absl::WebSafeBase64Escape(absl::StrCat(kPageTokenPrefix, num));
}

absl::StatusOr<int64_t> DecodePageToken(absl::string_view token) {
  std::string raw;
  int64_t num = 0;
  absl::string_view rest;
  if (absl::WebSafeBase64Unescape(token, &raw)) rest = raw;
  if (!absl::ConsumePrefix(&rest, kPageTokenPrefix) ||
      !absl::SimpleAtoi(rest, &num) || num < 1) {
    return absl::InvalidArgumentError(
        "page_token is not one this server issued");
  }
  return num;
}

}  // namespace

int JobStore::SchemaVersion() { return kSchemaVersion; }

std::string JobStore::TaskId(absl::string_view job_id, int64_t index) {
  return absl::StrCat(job_id, kTaskIdInfix, index);
}

std::string JobStore::JobOfTask(absl::string_view task_id) {
  const size_t at = task_id.rfind(kTaskIdInfix);
  if (at == absl::string_view::npos || at == 0 ||
      at + kTaskIdInfix.size() == task_id.size()) {
    return "";
  }
  return std::string(task_id.substr(0, at));
}

absl::StatusOr<std::unique_ptr<JobStore>> JobStore::Open(
    const std::string& path, Clock* clock, const EventEncoder* events) {
  if (clock == nullptr || events == nullptr) {
    return absl::InvalidArgumentError(
        "JobStore::Open needs a clock and an event encoder");
  }
  LRTUNE_ASSIGN_OR_RETURN(std::unique_ptr<SqliteDb> db, SqliteDb::Open(path));
  // busy_timeout first: a second process holding the file makes the pragmas
  // below wait instead of failing with "database is locked".
  LRTUNE_RETURN_IF_ERROR(db->Exec("PRAGMA busy_timeout = 5000"));
  LRTUNE_RETURN_IF_ERROR(db->Exec("PRAGMA journal_mode = WAL"));
  LRTUNE_RETURN_IF_ERROR(db->Exec("PRAGMA synchronous = FULL"));
  LRTUNE_RETURN_IF_ERROR(db->Exec("PRAGMA foreign_keys = ON"));
  std::unique_ptr<JobStore> store(new JobStore(std::move(db), clock, events));
  {
    lrtune::MutexLock lock(&store->mu_);
    LRTUNE_RETURN_IF_ERROR(store->Migrate());
  }
  return store;
}

absl::Status JobStore::Migrate() {
  LRTUNE_ASSIGN_OR_RETURN(auto txn, SqliteTransaction::Begin(db_.get()));
  LRTUNE_ASSIGN_OR_RETURN(int64_t version,
                          db_->QueryInt64("PRAGMA user_version"));
  if (version > kSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "database '%s' has schema version %d, newer than this binary's %d: "
        "run a newer lrtune-server (refusing to touch the file)",
        db_->path(), version, kSchemaVersion));
  }
  if (version == kSchemaVersion) return txn.Commit();
  for (int64_t v = version; v < kSchemaVersion; ++v) {
    LRTUNE_RETURN_IF_ERROR(db_->Exec(kMigrations[v]));
    if (v == kReencodeMigration) LRTUNE_RETURN_IF_ERROR(ReencodeOwnEvents());
  }
  LRTUNE_RETURN_IF_ERROR(
      db_->Exec(absl::StrCat("PRAGMA user_version = ", kSchemaVersion)));
  return txn.Commit();
}

absl::StatusOr<JobRecord> JobStore::CreateJob(
    absl::string_view owner, absl::string_view kind, absl::string_view spec,
    const std::vector<std::string>& task_specs, int max_attempts) {
  std::vector<NewTask> tasks;
  tasks.reserve(task_specs.size());
  for (const std::string& s : task_specs) tasks.push_back({s, false});
  return CreateJob(owner, kind, spec, tasks, JobOptions{max_attempts, 0});
}

absl::StatusOr<JobRecord> JobStore::CreateJob(absl::string_view owner,
                                              absl::string_view kind,
                                              absl::string_view spec,
                                              const std::vector<NewTask>& tasks,
                                              JobOptions options) {
  const int max_attempts = options.max_attempts;
  if (owner.empty()) return absl::InvalidArgumentError("owner is empty");
  if (kind != "range_test" && kind != "grid") {
    return absl::InvalidArgumentError(absl::StrCat(
        "kind must be \"range_test\" or \"grid\", got \"", kind, "\""));
  }
  if (tasks.empty()) {
    return absl::InvalidArgumentError("a job needs at least one task");
  }
  bool runnable = false;
  for (const NewTask& t : tasks) runnable |= !t.held;
  if (!runnable) {
    return absl::InvalidArgumentError(
        "a job needs at least one task that is not held");
  }
  if (options.max_parallel < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_parallel must be >= 0, got ", options.max_parallel));
  }
  if (max_attempts < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_attempts must be >= 1, got ", max_attempts));
  }
  if (!options.lease_order.empty()) {
    std::vector<bool> seen(tasks.size(), false);
    bool ok = options.lease_order.size() == tasks.size();
    for (int i : options.lease_order) {
      ok = ok && i >= 0 && static_cast<size_t>(i) < tasks.size() && !seen[i];
      if (ok) seen[i] = true;
    }
    if (!ok) {
      return absl::InvalidArgumentError(absl::StrCat(
          "lease_order must list each of the ", tasks.size(),
          " task indices once, got ", options.lease_order.size(), " entries"));
    }
  }
  lrtune::MutexLock lock(&mu_);
  std::string job_id =
      absl::StrFormat("j-%016x", absl::Uniform<uint64_t>(bitgen_));
  int64_t now = absl::ToUnixMicros(clock_->Now());
  LRTUNE_ASSIGN_OR_RETURN(auto txn, SqliteTransaction::Begin(db_.get()));
  {
    LRTUNE_ASSIGN_OR_RETURN(
        SqliteStatement st,
        db_->Prepare("INSERT INTO jobs (id, owner, kind, state, spec, "
                     "created_us, updated_us, max_parallel, request_id) "
                     "VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?)"));
    st.BindText(1, job_id);
    st.BindText(2, owner);
    st.BindText(3, kind);
    st.BindBlob(4, spec);
    st.BindInt64(5, now);
    st.BindInt64(6, now);
    st.BindInt64(7, options.max_parallel);
    st.BindText(8, options.request_id);
    LRTUNE_RETURN_IF_ERROR(st.Run());
  }
  // Tasks are inserted in lease order: LeaseNextTask takes the lowest num.
  std::vector<size_t> order(tasks.size());
  for (size_t k = 0; k < order.size(); ++k) {
    order[k] = options.lease_order.empty()
                   ? k
                   : static_cast<size_t>(options.lease_order[k]);
  }
  for (size_t i : order) {
    LRTUNE_ASSIGN_OR_RETURN(
        SqliteStatement st,
        db_->Prepare("INSERT INTO tasks (id, job_id, idx, spec, state, "
                     "max_attempts, held, device, min_memory, dataset) VALUES "
                     "(?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?)"));
    st.BindText(1, TaskId(job_id, static_cast<int64_t>(i)));
    st.BindText(2, job_id);
    st.BindInt64(3, static_cast<int64_t>(i));
    st.BindBlob(4, tasks[i].spec);
    st.BindInt64(5, max_attempts);
    st.BindInt64(6, tasks[i].held ? 1 : 0);
    st.BindText(7, tasks[i].device);
    st.BindInt64(8, tasks[i].min_memory);
    st.BindText(9, tasks[i].dataset);
    LRTUNE_RETURN_IF_ERROR(st.Run());
  }
  LRTUNE_RETURN_IF_ERROR(
      AppendJobEvent(job_id, "", kAcceptedEventType, events_->Accepted())
          .status());
  LRTUNE_RETURN_IF_ERROR(txn.Commit());
  return ReadJob(job_id);
}

absl::StatusOr<JobRecord> JobStore::GetJob(absl::string_view job_id) {
  lrtune::MutexLock lock(&mu_);
  return ReadJob(job_id);
}

absl::StatusOr<JobRecord> JobStore::ReadJob(absl::string_view job_id) {
  LRTUNE_ASSIGN_OR_RETURN(SqliteStatement st, db_->Prepare(absl::StrCat(
                                                  "SELECT ", kJobColumns,
                                                  " FROM jobs WHERE id = ?")));
  st.BindText(1, job_id);
  LRTUNE_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row)
    return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
  return JobFromRow(st);
}

absl::StatusOr<JobPage> JobStore::ListJobs(
    std::optional<absl::string_view> owner, std::optional<JobState> state,
    int page_size, absl::string_view page_token) {
  if (page_size < 1 || page_size > 1000) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size must be in [1, 1000], got ", page_size));
  }
  int64_t before = INT64_MAX;
  if (!page_token.empty()) {
    LRTUNE_ASSIGN_OR_RETURN(before, DecodePageToken(page_token));
  }
  lrtune::MutexLock lock(&mu_);
  LRTUNE_ASSIGN_OR_RETURN(
      SqliteStatement st,
      db_->Prepare(absl::StrCat(
          "SELECT ", kJobColumns, " FROM jobs WHERE ",
          owner.has_value() ? "owner = ?1 AND " : "",
          "(?2 IS NULL OR state = ?2) AND num < ?3 ORDER BY num DESC "
          "LIMIT ?4")));
  if (owner.has_value()) st.BindText(1, *owner);
  if (state.has_value()) {
    st.BindText(2, JobStateName(*state));
  } else {
    st.BindNull(2);
  }
  st.BindInt64(3, before);
  st.BindInt64(4, page_size + 1);  // one more tells whether a page follows
  JobPage page;
  int64_t last_num = 0;
  while (true) {
    LRTUNE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    if (static_cast<int>(page.jobs.size()) == page_size) {
      page.next_page_token = EncodePageToken(last_num);
      break;
    }
    last_num = st.ColumnInt64(kJobNumColumn);
    LRTUNE_ASSIGN_OR_RETURN(JobRecord job, JobFromRow(st));
    page.jobs.push_back(std::move(job));
  }
  return page;
}

absl::Status JobStore::SetJobResult(absl::string_view job_id,
                                    absl::string_view result) {
  lrtune::MutexLock lock(&mu_);
  LRTUNE_ASSIGN_OR_RETURN(auto txn, SqliteTransaction::Begin(db_.get()));
  LRTUNE_ASSIGN_OR_RETURN(
      SqliteStatement st,
      db_->Prepare("UPDATE jobs SET result = ?, updated_us = ? WHERE id = ?"));
  st.BindBlob(1, result);
  st.BindInt64(2, absl::ToUnixMicros(clock_->Now()));
  st.BindText(3, job_id);
  LRTUNE_RETURN_IF_ERROR(st.Run());
  if (db_->Changes() == 0) {
    return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
  }
  return txn.Commit();
}

absl::StatusOr<int64_t> JobStore::AppendJobEvents(
    absl::string_view job_id, const std::vector<Event>& events) {
  lrtune::MutexLock lock(&mu_);
  LRTUNE_ASSIGN_OR_RETURN(auto txn, SqliteTransaction::Begin(db_.get()));
  LRTUNE_ASSIGN_OR_RETURN(JobRecord job, ReadJob(job_id));
  if (IsTerminal(job.state)) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", job_id, " is ", JobStateName(job.state)));
  }
  int64_t last = job.last_seq;
  for (const Event& e : events) {
    LRTUNE_ASSIGN_OR_RETURN(last,
                            AppendJobEvent(job_id, "", e.type, e.payload));
  }
  LRTUNE_RETURN_IF_ERROR(txn.Commit());
  return last;
}

absl::Status JobStore::FinishJob(absl::string_view job_id, JobState state,
                                 absl::string_view error,
                                 const std::optional<std::string>& result,
                                 const std::vector<Event>& events) {
  if (!IsTerminal(state)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "FinishJob needs a terminal state, got ", JobStateName(state)));
  }
  lrtune::MutexLock lock(&mu_);
  LRTUNE_ASSIGN_OR_RETURN(auto txn, SqliteTransaction::Begin(db_.get()));
  LRTUNE_ASSIGN_OR_RETURN(JobRecord job, ReadJob(job_id));
  if (IsTerminal(job.state)) return absl::OkStatus();  // a repeat
  for (const Event& e : events) {
    LRTUNE_RETURN_IF_ERROR(
        AppendJobEvent(job_id, "", e.type, e.payload).status());
  }
  if (result.has_value()) {
    LRTUNE_ASSIGN_OR_RETURN(
        SqliteStatement st,
        db_->Prepare("UPDATE jobs SET result = ? WHERE id = ?"));
    st.BindBlob(1, *result);
    st.BindText(2, job_id);
    LRTUNE_RETURN_IF_ERROR(st.Run());
  }
  LRTUNE_RETURN_IF_ERROR(SetJobState(job_id, state, error));
  LRTUNE_RETURN_IF_ERROR(StopJobTasks(job_id));
  return txn.Commit();
}

absl::StatusOr<std::optional<JobRecord>> JobStore::FindByRequestId(
    absl::string_view owner, absl::string_view request_id) {
  lrtune::MutexLock lock(&mu_);
  LRTUNE_ASSIGN_OR_RETURN(
      SqliteStatement st,
      db_->Prepare(absl::StrCat("SELECT ", kJobColumns,
                                " FROM jobs WHERE owner = ? AND request_id = ? "
                                "AND request_id != '' LIMIT 1")));
  st.BindText(1, owner);
  st.BindText(2, request_id);
  LRTUNE_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return std::optional<JobRecord>();
  LRTUNE_ASSIGN_OR_RETURN(JobRecord job, JobFromRow(st));
  return std::optional<JobRecord>(std::move(job));
}

absl::StatusOr<int64_t> JobStore::CountJobs(absl::string_view owner,
                                            JobState state) {
  lrtune::MutexLock lock(&mu_);
  LRTUNE_ASSIGN_OR_RETURN(
      SqliteStatement st,
      db_->Prepare("SELECT COUNT(*) FROM jobs WHERE owner = ? AND state = ?"));
  st.BindText(1, owner);
  st.BindText(2, JobStateName(state));
  LRTUNE_ASSIGN_OR_RETURN(bool row, st.Step());
  return row ? st.ColumnInt64(0) : 0;
}

absl::StatusOr<std::vector<std::string>> JobStore::ListJobIds(
    absl::string_view kind, JobState state) {
  lrtune::MutexLock lock(&mu_);
  LRTUNE_ASSIGN_OR_RETURN(
      SqliteStatement st,
      db_->Prepare(
          "SELECT id FROM jobs WHERE kind = ? AND state = ? ORDER BY num"));
  st.BindText(1, kind);
  st.BindText(2, JobStateName(state));
  std::vector<std::string> ids;
  while (true) {
    LRTUNE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    ids.push_back(st.ColumnText(0));
  }
  return ids;
}

absl::StatusOr<int64_t> JobStore::AppendJobEvent(
    absl::string_view job_id, absl::string_view task_id, absl::string_view type,
    absl::string_view payload, std::optional<absl::Time> time) {
  int64_t seq = 0;
  {
    LRTUNE_ASSIGN_OR_RETURN(
        SqliteStatement st,
        db_->Prepare("UPDATE jobs SET next_seq = next_seq + 1, updated_us = ? "
                     "WHERE id = ? RETURNING next_seq - 1"));
    st.BindInt64(1, absl::ToUnixMicros(clock_->Now()));
    st.BindText(2, job_id);
    LRTUNE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) {
      return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
    }
    seq = st.ColumnInt64(0);
  }
  LRTUNE_RETURN_IF_ERROR(InsertEvent(job_id, seq, task_id, type, payload,
                                     time.value_or(clock_->Now())));
  return seq;
}

absl::Status JobStore::ReencodeOwnEvents() {
  struct Row {
    std::string job_id;
    int64_t seq = 0;
    std::string payload;
  };
  std::vector<Row> rows;
  {
    LRTUNE_ASSIGN_OR_RETURN(
        SqliteStatement st,
        db_->Prepare("SELECT e.job_id, e.seq, e.type, e.payload, j.error "
                     "FROM events e JOIN jobs j ON j.id = e.job_id "
                     "WHERE e.type IN (?, ?, ?)"));
    st.BindText(1, kAcceptedEventType);
    st.BindText(2, kStateEventType);
    st.BindText(3, kAttemptEndedEventType);
    while (true) {
      LRTUNE_ASSIGN_OR_RETURN(bool more, st.Step());
      if (!more) break;
      Row& row = rows.emplace_back();
      row.job_id = st.ColumnText(0);
      row.seq = st.ColumnInt64(1);
      const std::string type = st.ColumnText(2);
      const std::string old = st.ColumnBlob(3);
      if (type == kAcceptedEventType) {
        row.payload = events_->Accepted();
      } else if (type == kStateEventType) {
        LRTUNE_ASSIGN_OR_RETURN(JobState state, ParseJobState(old));
        // Version 2 kept the reason only in the job's row, and read it from
        // there into the job's (one, last) failed or cancelled event.
        const bool has_reason =
            state == JobState::kFailed || state == JobState::kCancelled;
        row.payload = events_->StateChanged(
            state, has_reason ? st.ColumnText(4) : std::string());
      } else {
        LRTUNE_ASSIGN_OR_RETURN(auto ended, DecodeVersion2AttemptEnded(old));
        row.payload = events_->AttemptEnded(ended.first, ended.second);
      }
    }
  }
  for (const Row& row : rows) {
    LRTUNE_ASSIGN_OR_RETURN(
        SqliteStatement st,
        db_->Prepare(
            "UPDATE events SET payload = ? WHERE job_id = ? AND seq = ?"));
    st.BindBlob(1, row.payload);
    st.BindText(2, row.job_id);
    st.BindInt64(3, row.seq);
    LRTUNE_RETURN_IF_ERROR(st.Run());
  }
  return absl::OkStatus();
}

absl::Status JobStore::InsertEvent(absl::string_view job_id, int64_t seq,
                                   absl::string_view task_id,
                                   absl::string_view type,
                                   absl::string_view payload, absl::Time time) {
  LRTUNE_ASSIGN_OR_RETURN(
      SqliteStatement st,
      db_->Prepare("INSERT INTO events (job_id, seq, task_id, type, payload, "
                   "time_us) VALUES (?, ?, ?, ?, ?, ?)"));
  st.BindText(1, job_id);
  st.BindInt64(2, seq);
  if (task_id.empty()) {
    st.BindNull(3);
  } else {
    st.BindText(3, task_id);
  }
  st.BindText(4, type);
  st.BindBlob(5, payload);
  st.BindInt64(6, absl::ToUnixMicros(time));
  return st.Run();
}

absl::StatusOr<std::vector<StoredEvent>> JobStore::ReadEvents(
    absl::string_view job_id, int64_t after_seq, int limit) {
  if (limit < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("limit must be >= 1, got ", limit));
  }
  lrtune::MutexLock lock(&mu_);
  LRTUNE_RETURN_IF_ERROR(ReadJob(job_id).status());
  LRTUNE_ASSIGN_OR_RETURN(
      SqliteStatement st,
      db_->Prepare("SELECT seq, task_id, type, payload, time_us FROM events "
                   "WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?"));
  st.BindText(1, job_id);
  st.BindInt64(2, after_seq);
  st.BindInt64(3, limit);
  std::vector<StoredEvent> events;
  while (true) {
    LRTUNE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    StoredEvent& e = events.emplace_back();
    e.job_id = std::string(job_id);
    e.seq = st.ColumnInt64(0);
    if (!st.ColumnIsNull(1)) e.task_id = st.ColumnText(1);
    e.type = st.ColumnText(2);
    e.payload = st.ColumnBlob(3);
    e.time = absl::FromUnixMicros(st.ColumnInt64(4));
  }
  return events;
}

}  // namespace lrtune::server
