// The coordinator's side of a pruned search (core/pruning.h has the
// rules): when a trial reports its evaluation at one of its rungs, decide
// whether it goes on, store the decision with the trial and as a job event
// in one transaction, and tell the worker. Members of Coordinator
// (coordinator.h), called under the trial's job lock.
//
// Decisions are durable and made once: a trial's stored rungs hold its
// decisions (RungResult), and a report that repeats a decided rung gets the
// stored decision. After a restart the table of results is rebuilt from the
// trials' stored rungs, in the order the decisions were taken, so the next
// decisions weigh exactly what the earlier ones did.
#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/pruning.h"
#include "core/status_macros.h"
#include "server/coordinator.h"
#include "server/grid_plan.h"

namespace lrtune::server {
namespace {

// The objective's metric of an evaluation (the rung compares what the
// ranking will).
double RungMetric(const v1::GridSearchJob& grid, const v1::Evaluation& e) {
  if (EffectiveMetric(grid) == v1::OBJECTIVE_METRIC_VAL_LOSS) {
    return e.val_loss();
  }
  return e.has_val_accuracy() ? e.val_accuracy() : std::nan("");
}

bool HigherIsBetter(const v1::GridSearchJob& grid) {
  return EffectiveMetric(grid) != v1::OBJECTIVE_METRIC_VAL_LOSS;
}

}  // namespace

absl::StatusOr<Coordinator::PruningState*> Coordinator::PruningOf(
    const JobLocks::Held& held, const JobLayout& layout) {
  {
    lrtune::MutexLock lock(&pruning_mu_);
    auto it = pruning_.find(held.job_id());
    if (it != pruning_.end()) return &it->second;
  }
  LRTUNE_ASSIGN_OR_RETURN(std::optional<PruningOptions> options,
                          server::PruningOf(layout.spec.grid()));
  if (!options.has_value()) return nullptr;
  PruningState state{RungTable(options->reduction_factor), 0};
  // The decisions taken so far, replayed in the order they were taken.
  LRTUNE_ASSIGN_OR_RETURN(std::vector<TaskRecord> tasks,
                          store_->ListTasks(held.job_id()));
  struct Stored {
    std::string group;
    int trial;
    v1::RungResult result;
  };
  std::vector<Stored> decided;
  for (const TaskRecord& t : tasks) {
    if (!IsTrial(layout, t)) continue;
    v1::Trial trial;
    if (!trial.ParseFromString(t.spec)) {
      return absl::DataLossError(
          absl::StrCat("task ", t.id, ": stored trial does not parse"));
    }
    for (const v1::RungResult& r : trial.rungs()) {
      decided.push_back({trial.pruning_group(), trial.trial_index(), r});
    }
  }
  std::sort(decided.begin(), decided.end(),
            [](const Stored& a, const Stored& b) {
              return a.result.order() < b.result.order();
            });
  for (const Stored& d : decided) {
    state.table.Record(d.group, d.result.rung(), d.trial, d.result.metric(),
                       d.result.promoted());
    state.decisions = std::max(state.decisions, d.result.order());
  }
  lrtune::MutexLock lock(&pruning_mu_);
  return &pruning_.emplace(held.job_id(), std::move(state)).first->second;
}

absl::Status Coordinator::DecideRungs(const JobLocks::Held& held,
                                      const TaskRecord& task,
                                      const JobLayout& layout,
                                      const v1::ReportPointsRequest& request,
                                      v1::ReportPointsResponse& response) {
  if (!IsTrial(layout, task)) return absl::OkStatus();
  v1::Trial trial;
  if (!trial.ParseFromString(task.spec)) {
    return absl::DataLossError(
        absl::StrCat("task ", task.id, ": stored trial does not parse"));
  }
  if (trial.train().rung_steps().empty()) return absl::OkStatus();
  bool changed = false;
  std::vector<v1::JobEvent> events;
  for (const v1::TaskRecord& r : request.records()) {
    // Only a stored evaluation decides: the report's records up to the
    // acknowledged seq are.
    if (!r.has_evaluation() || r.seq() > response.acked_seq()) continue;
    const auto& steps = trial.train().rung_steps();
    const auto at =
        std::find(steps.begin(), steps.end(), r.evaluation().step());
    if (at == steps.end()) continue;
    const int rung = static_cast<int>(at - steps.begin());
    const bool known = std::any_of(
        trial.rungs().begin(), trial.rungs().end(),
        [rung](const v1::RungResult& x) { return x.rung() == rung; });
    if (known) continue;
    LRTUNE_ASSIGN_OR_RETURN(PruningState * state, PruningOf(held, layout));
    if (state == nullptr) return absl::OkStatus();
    const double metric = RungMetric(layout.spec, r.evaluation());
    v1::RungResult& result = *trial.add_rungs();
    result.set_rung(rung);
    result.set_step(r.evaluation().step());
    result.set_metric(metric);
    result.set_promoted(state->table.Decide(trial.pruning_group(), rung,
                                            trial.trial_index(), metric,
                                            HigherIsBetter(layout.spec)));
    result.set_order(++state->decisions);
    v1::JobEvent& e = events.emplace_back();
    e.mutable_rung_decision()->set_trial_index(trial.trial_index());
    *e.mutable_rung_decision()->mutable_result() = result;
    changed = true;
  }
  if (changed) {
    std::vector<Event> rows;
    for (const v1::JobEvent& e : events) {
      rows.push_back({EventType(e), e.SerializeAsString()});
    }
    absl::Time stored_at;
    absl::StatusOr<int64_t> last = store_->UpdateTaskSpec(
        task.id, task.attempt, trial.SerializeAsString(), rows, &stored_at);
    if (!last.ok()) {
      // Not stored: the table forgets it, and the next report decides again
      // from what the store holds.
      lrtune::MutexLock lock(&pruning_mu_);
      pruning_.erase(held.job_id());
      if (absl::IsAborted(last.status())) return absl::OkStatus();
      return last.status();
    }
    const int64_t first = *last - static_cast<int64_t>(events.size()) + 1;
    for (size_t i = 0; i < events.size(); ++i) {
      events[i].set_seq(static_cast<uint64_t>(first + static_cast<int64_t>(i)));
      events[i].set_job_id(task.job_id);
      SetTimestamp(stored_at, events[i].mutable_time());
    }
    hub_.Publish(task.job_id, events, *last);
  }
  if (IsPruned(trial)) response.set_pruned(true);
  return absl::OkStatus();
}

}  // namespace lrtune::server
