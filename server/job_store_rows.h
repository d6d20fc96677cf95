// Internal to JobStore: the column lists it selects and how a row becomes a
// record, shared by job_store.cc and job_store_tasks.cc. Not a public API.
#ifndef LRTUNE_SERVER_JOB_STORE_ROWS_H_
#define LRTUNE_SERVER_JOB_STORE_ROWS_H_

#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/job_store.h"
#include "server/sqlite_db.h"

namespace lrtune::server {

// Parses a stored state name; DATA_LOSS for anything else (the schema's CHECK
// constraints make that a damaged file).
absl::StatusOr<JobState> ParseJobState(absl::string_view name);
absl::StatusOr<TaskState> ParseTaskState(absl::string_view name);
absl::StatusOr<AttemptOutcome> ParseAttemptOutcome(absl::string_view name);

// A version-2 file's attempt_ended payload (migration 3 re-encodes it);
// DATA_LOSS when malformed.
absl::StatusOr<std::pair<AttemptRecord, bool>> DecodeVersion2AttemptEnded(
    absl::string_view payload);

inline constexpr absl::string_view kJobColumns =
    "id, owner, kind, state, spec, result, error, created_us, updated_us, "
    "next_seq, num, max_parallel";
inline constexpr int kJobNumColumn = 10;

// Reads a row selected with kJobColumns.
absl::StatusOr<JobRecord> JobFromRow(const SqliteStatement& st);

inline constexpr absl::string_view kTaskColumns =
    "id, job_id, idx, spec, state, attempt, max_attempts, lease_worker, "
    "lease_expires_us, acked_seq, cancel_requested, result, held, "
    "lease_started_us, lease_device";

// Reads a row selected with kTaskColumns (attempt_errors is left empty).
absl::StatusOr<TaskRecord> TaskFromRow(const SqliteStatement& st);

}  // namespace lrtune::server

#endif  // LRTUNE_SERVER_JOB_STORE_ROWS_H_
