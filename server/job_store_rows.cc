#include "server/job_store_rows.h"

#include <array>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/status_macros.h"

namespace lrtune::server {
namespace {

constexpr std::array<absl::string_view, 5> kJobStateNames = {
    "queued", "running", "succeeded", "failed", "cancelled"};
constexpr std::array<absl::string_view, 5> kTaskStateNames = {
    "queued", "leased", "succeeded", "failed", "cancelled"};
constexpr std::array<absl::string_view, 6> kOutcomeNames = {
    "running", "succeeded", "failed", "lease_expired", "released", "cancelled"};

}  // namespace

absl::string_view JobStateName(JobState state) {
  return kJobStateNames[static_cast<int>(state)];
}

absl::string_view TaskStateName(TaskState state) {
  return kTaskStateNames[static_cast<int>(state)];
}

absl::string_view AttemptOutcomeName(AttemptOutcome outcome) {
  return kOutcomeNames[static_cast<int>(outcome)];
}

absl::StatusOr<AttemptOutcome> ParseAttemptOutcome(absl::string_view name) {
  for (size_t i = 0; i < kOutcomeNames.size(); ++i) {
    if (kOutcomeNames[i] == name) return static_cast<AttemptOutcome>(i);
  }
  return absl::DataLossError(
      absl::StrCat("stored attempt outcome \"", name, "\" is not known"));
}

// Version 2's attempt_ended payload: tab-separated, the reason last (tabs
// in it were written as spaces).
absl::StatusOr<std::pair<AttemptRecord, bool>> DecodeVersion2AttemptEnded(
    absl::string_view payload) {
  std::vector<absl::string_view> f = absl::StrSplit(payload, '\t');
  AttemptRecord a;
  int64_t started = 0, ended = 0;
  if (f.size() != 9 || !absl::SimpleAtoi(f[1], &a.attempt) ||
      !absl::SimpleAtoi(f[6], &started) || !absl::SimpleAtoi(f[7], &ended) ||
      (f[5] != "0" && f[5] != "1")) {
    return absl::DataLossError("attempt_ended event payload is malformed");
  }
  a.task_id = std::string(f[0]);
  a.worker = std::string(f[2]);
  a.device = std::string(f[3]);
  LRTUNE_ASSIGN_OR_RETURN(a.outcome, ParseAttemptOutcome(f[4]));
  a.started = absl::FromUnixMicros(started);
  a.ended = absl::FromUnixMicros(ended);
  a.reason = std::string(f[8]);
  return std::make_pair(std::move(a), f[5] == "1");
}

bool IsTerminal(JobState state) {
  return state == JobState::kSucceeded || state == JobState::kFailed ||
         state == JobState::kCancelled;
}

absl::StatusOr<JobState> ParseJobState(absl::string_view name) {
  for (size_t i = 0; i < kJobStateNames.size(); ++i) {
    if (kJobStateNames[i] == name) return static_cast<JobState>(i);
  }
  return absl::DataLossError(
      absl::StrCat("stored job state \"", name, "\" is not a known state"));
}

absl::StatusOr<TaskState> ParseTaskState(absl::string_view name) {
  for (size_t i = 0; i < kTaskStateNames.size(); ++i) {
    if (kTaskStateNames[i] == name) return static_cast<TaskState>(i);
  }
  return absl::DataLossError(
      absl::StrCat("stored task state \"", name, "\" is not a known state"));
}

absl::StatusOr<JobRecord> JobFromRow(const SqliteStatement& st) {
  JobRecord job;
  job.id = st.ColumnText(0);
  job.owner = st.ColumnText(1);
  job.kind = st.ColumnText(2);
  LRTUNE_ASSIGN_OR_RETURN(job.state, ParseJobState(st.ColumnText(3)));
  job.spec = st.ColumnBlob(4);
  if (!st.ColumnIsNull(5)) job.result = st.ColumnBlob(5);
  job.error = st.ColumnText(6);
  job.created = absl::FromUnixMicros(st.ColumnInt64(7));
  job.updated = absl::FromUnixMicros(st.ColumnInt64(8));
  job.last_seq = st.ColumnInt64(9) - 1;
  job.max_parallel = static_cast<int>(st.ColumnInt64(11));
  return job;
}

absl::StatusOr<TaskRecord> TaskFromRow(const SqliteStatement& st) {
  TaskRecord task;
  task.id = st.ColumnText(0);
  task.job_id = st.ColumnText(1);
  task.index = static_cast<int>(st.ColumnInt64(2));
  task.spec = st.ColumnBlob(3);
  LRTUNE_ASSIGN_OR_RETURN(task.state, ParseTaskState(st.ColumnText(4)));
  task.attempt = static_cast<int>(st.ColumnInt64(5));
  task.max_attempts = static_cast<int>(st.ColumnInt64(6));
  task.lease_worker = st.ColumnText(7);
  task.lease_expires_at = absl::FromUnixMicros(st.ColumnInt64(8));
  // The column counts the records stored (databases of every version).
  task.last_acked_seq = st.ColumnInt64(9) - 1;
  task.cancel_requested = st.ColumnInt64(10) != 0;
  if (!st.ColumnIsNull(11)) task.result = st.ColumnBlob(11);
  task.held = st.ColumnInt64(12) != 0;
  task.lease_started_at = absl::FromUnixMicros(st.ColumnInt64(13));
  task.lease_device = st.ColumnText(14);
  return task;
}

}  // namespace lrtune::server
