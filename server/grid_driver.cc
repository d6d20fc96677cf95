// The coordinator's grid driver: a grid's trials as the API shows them
// (FillGrid), a finished trial's events (TrialFinishedEvents), and moving a
// grid on from what the store holds (AdvanceGrid): releasing its held
// trials once the range test's seeds are done, ranking and ending it once
// no task is open. Members of Coordinator (coordinator.h); they run under
// its ingest lock where the header says so.
#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "proto/core_convert.h"
#include "server/coordinator.h"
#include "server/range_test_results.h"

namespace lrtune::server {
namespace {

v1::TrialState TrialStateOf(const TaskRecord& task) {
  switch (task.state) {
    case TaskState::kQueued:
      return v1::TRIAL_STATE_PENDING;
    case TaskState::kLeased:
      return v1::TRIAL_STATE_RUNNING;
    case TaskState::kSucceeded:
      return v1::TRIAL_STATE_SUCCEEDED;
    case TaskState::kFailed:
      return v1::TRIAL_STATE_FAILED;
    case TaskState::kCancelled:
      return v1::TRIAL_STATE_CANCELLED;
  }
  return v1::TRIAL_STATE_UNSPECIFIED;
}

// A trial as stored (its spec) with its task's state, result and failure.
absl::StatusOr<v1::Trial> TrialOf(const v1::GridSearchJob& grid,
                                  const TaskRecord& task) {
  v1::Trial trial;
  if (!trial.ParseFromString(task.spec)) {
    return absl::DataLossError(
        absl::StrCat("task ", task.id, ": stored trial does not parse"));
  }
  trial.set_state(TrialStateOf(task));
  // A pruned search stopped it: pruned, whatever its task did after.
  const bool pruned = IsPruned(trial);
  if (pruned) trial.set_state(v1::TRIAL_STATE_PRUNED);
  if (task.state == TaskState::kSucceeded && task.result.has_value()) {
    v1::TrialTaskResult result;
    if (!result.ParseFromString(*task.result)) {
      return absl::DataLossError(
          absl::StrCat("task ", task.id, ": stored result does not parse"));
    }
    *trial.mutable_final_eval() = result.final_eval();
    *trial.mutable_best_eval() = result.best_eval();
    trial.set_steps(result.steps());
    trial.set_train_seconds(result.train_seconds());
    trial.set_resumed_from_step(result.resumed_from());
    *trial.mutable_outcome() = result.outcome();
    std::optional<double> value = ObjectiveValue(grid, result);
    if (value.has_value() && !pruned) trial.set_objective_value(*value);
  }
  if (task.state == TaskState::kFailed && !task.attempt_errors.empty()) {
    trial.set_failure(task.attempt_errors.back());
  }
  return trial;
}

}  // namespace

absl::Status Coordinator::FillGrid(const JobRecord& record, v1::Job& job) {
  LRTUNE_ASSIGN_OR_RETURN(JobLayout layout, Layout(record.id));
  LRTUNE_ASSIGN_OR_RETURN(std::vector<TaskRecord> tasks,
                          store_->ListTasks(record.id));
  std::vector<std::pair<int32_t, double>> values;
  for (const TaskRecord& t : tasks) {
    if (!IsTrial(layout, t)) continue;
    LRTUNE_ASSIGN_OR_RETURN(v1::Trial trial, TrialOf(layout.spec, t));
    if (trial.has_objective_value()) {
      values.emplace_back(trial.trial_index(), trial.objective_value());
    }
    *job.add_trials() = std::move(trial);
  }
  if (record.result.has_value() &&
      !job.mutable_grid_result()->ParseFromString(*record.result)) {
    return absl::DataLossError(
        absl::StrCat("job ", record.id, ": stored result does not parse"));
  }
  // The ranking so far (final once the job ended).
  const std::vector<int32_t> ranking = RankByObjective(layout.spec, values);
  for (size_t r = 0; r < ranking.size(); ++r) {
    for (v1::Trial& trial : *job.mutable_trials()) {
      if (trial.trial_index() == ranking[r]) {
        trial.set_rank(static_cast<int32_t>(r + 1));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::JobEvent>> Coordinator::TrialFinishedEvents(
    const JobLayout& layout, const TaskRecord& task,
    const v1::TrialTaskResult& result) {
  TaskRecord done = task;
  done.state = TaskState::kSucceeded;
  done.result = result.SerializeAsString();
  std::vector<v1::JobEvent> events(2);
  LRTUNE_ASSIGN_OR_RETURN(*events[0].mutable_trial_finished()->mutable_trial(),
                          TrialOf(layout.spec, done));
  LRTUNE_ASSIGN_OR_RETURN(std::vector<TaskRecord> tasks,
                          store_->ListTasks(task.job_id));
  std::vector<std::pair<int32_t, double>> values;
  for (const TaskRecord& t : tasks) {
    if (!IsTrial(layout, t)) continue;
    LRTUNE_ASSIGN_OR_RETURN(v1::Trial trial,
                            TrialOf(layout.spec, t.id == task.id ? done : t));
    if (trial.has_objective_value()) {
      values.emplace_back(trial.trial_index(), trial.objective_value());
    }
  }
  v1::RankingEvent* ranking = events[1].mutable_ranking();
  for (int32_t index : RankByObjective(layout.spec, values)) {
    ranking->add_ranking(index);
    for (const auto& [i, v] : values) {
      if (i == index) ranking->add_objective_values(v);
    }
  }
  return events;
}

absl::Status Coordinator::AdvanceGrid(const JobLocks::Held& held) {
  const std::string& job_id = held.job_id();
  LRTUNE_ASSIGN_OR_RETURN(JobRecord record, store_->GetJob(job_id));
  if (record.kind != "grid" || IsTerminal(record.state)) {
    return absl::OkStatus();
  }
  LRTUNE_ASSIGN_OR_RETURN(JobLayout layout, Layout(job_id));
  LRTUNE_ASSIGN_OR_RETURN(std::vector<TaskRecord> tasks,
                          store_->ListTasks(job_id));
  // The range test phase: done when every seed succeeded.
  bool seeds_done = true;
  std::string seeds_failure;
  std::vector<v1::RangeTestTaskResult> seed_results;
  for (const TaskRecord& t : tasks) {
    if (IsTrial(layout, t)) continue;
    v1::RangeTestTaskResult r;
    if (t.state == TaskState::kSucceeded && t.result.has_value() &&
        r.ParseFromString(*t.result)) {
      seed_results.push_back(std::move(r));
      continue;
    }
    seeds_done = false;
    if ((t.state == TaskState::kFailed || t.state == TaskState::kCancelled) &&
        seeds_failure.empty()) {
      seeds_failure = absl::StrCat(
          "the range test's task ", t.id, " ", TaskStateName(t.state),
          t.attempt_errors.empty()
              ? std::string()
              : absl::StrCat(": ", t.attempt_errors.back()));
    }
  }
  std::optional<v1::RangeTestResult> range_result;
  if (layout.range_tasks > 0 && seeds_done) {
    LRTUNE_ASSIGN_OR_RETURN(range_result, AggregateRangeTest(seed_results));
  }

  std::vector<HeldTaskUpdate> updates;
  for (const TaskRecord& t : tasks) {
    if (!t.held || t.state != TaskState::kQueued) continue;
    if (range_result.has_value()) {
      v1::Trial trial;
      if (!trial.ParseFromString(t.spec)) {
        return absl::DataLossError(
            absl::StrCat("task ", t.id, ": stored trial does not parse"));
      }
      absl::Status filled = FillRecommendedBounds(
          layout.spec, range_result->recommendation(), trial);
      if (filled.ok()) {
        updates.push_back({t.index, trial.SerializeAsString(), ""});
      } else {
        updates.push_back({t.index, "", std::string(filled.message())});
      }
    } else if (!seeds_failure.empty()) {
      updates.push_back(
          {t.index, "",
           absl::StrCat("no recommended bounds: ", seeds_failure)});
    }
  }
  if (!updates.empty()) {
    std::vector<Event> events;
    if (range_result.has_value()) {
      v1::JobEvent agg;
      *agg.mutable_recommendation()->mutable_recommendation() =
          range_result->recommendation();
      events.push_back({EventType(agg), agg.SerializeAsString()});
    }
    LRTUNE_ASSIGN_OR_RETURN(int released,
                            store_->ReleaseHeldTasks(job_id, updates, events));
    if (released > 0) {
      NotifyJob(job_id);
      SignalWork();
      LRTUNE_ASSIGN_OR_RETURN(tasks, store_->ListTasks(job_id));
    }
  }

  // The end: every task terminal.
  std::vector<std::pair<int32_t, double>> values;
  int succeeded = 0;
  std::string first_failure;
  v1::GridResult result;
  for (const TaskRecord& t : tasks) {
    if (t.state == TaskState::kQueued || t.state == TaskState::kLeased) {
      return absl::OkStatus();  // still running
    }
    if (!IsTrial(layout, t)) continue;
    LRTUNE_ASSIGN_OR_RETURN(v1::Trial trial, TrialOf(layout.spec, t));
    // Compute: what each trial ran (a pruned one to its rung, or as far as
    // it reported), against every trial's whole budget.
    result.set_full_grid_trial_steps(result.full_grid_trial_steps() +
                                     trial.train().steps());
    result.set_trial_steps(result.trial_steps() + trial.steps());
    if (trial.state() == v1::TRIAL_STATE_PRUNED) {
      result.set_trials_pruned(result.trials_pruned() + 1);
      if (trial.steps() == 0 && !trial.rungs().empty()) {
        result.set_trial_steps(result.trial_steps() +
                               trial.rungs(trial.rungs_size() - 1).step());
      }
    }
    if (t.state == TaskState::kSucceeded &&
        trial.state() != v1::TRIAL_STATE_PRUNED) {
      ++succeeded;
    }
    if (trial.has_objective_value()) {
      values.emplace_back(trial.trial_index(), trial.objective_value());
    }
    if (first_failure.empty() && t.state == TaskState::kFailed) {
      first_failure = absl::StrCat("trial ", trial.trial_index(), " (",
                                   trial.label(), "): ", trial.failure());
    }
  }
  if (range_result.has_value()) {
    *result.mutable_bounds() = range_result->recommendation();
  }
  v1::JobEvent ranking;
  for (int32_t index : RankByObjective(layout.spec, values)) {
    result.add_ranking(index);
    ranking.mutable_ranking()->add_ranking(index);
    for (const auto& [i, v] : values) {
      if (i == index) ranking.mutable_ranking()->add_objective_values(v);
    }
  }
  const JobState state =
      succeeded > 0 ? JobState::kSucceeded : JobState::kFailed;
  const std::string error =
      succeeded > 0
          ? std::string()
          : absl::StrCat("no trial succeeded; first failure: ", first_failure);
  LRTUNE_RETURN_IF_ERROR(
      store_->FinishJob(job_id, state, error, result.SerializeAsString(),
                        {{EventType(ranking), ranking.SerializeAsString()}}));
  NotifyJob(job_id);
  return absl::OkStatus();
}

}  // namespace lrtune::server
