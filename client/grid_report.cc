#include "client/grid_report.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace lrtune {
namespace {

// Where a pruned trial stopped: its last rung, which did not promote it.
const v1::RungResult* PrunedAt(const v1::Trial& trial) {
  for (const v1::RungResult& r : trial.rungs()) {
    if (!r.promoted()) return &r;
  }
  return nullptr;
}

std::string Percent(int64_t part, int64_t whole) {
  return whole > 0
             ? absl::StrFormat("%.0f%%", 100.0 * static_cast<double>(part) /
                                             static_cast<double>(whole))
             : std::string("-");
}

// What a trial's training did besides its final evaluation.
std::string OutcomeNote(const v1::Trial& trial) {
  std::vector<std::string> parts;
  if (const v1::RungResult* r = PrunedAt(trial)) {
    parts.push_back(absl::StrFormat("pruned at rung %d, step %d: %.4f",
                                    r->rung(), r->step(), r->metric()));
  }
  const v1::TrainingOutcome& o = trial.outcome();
  if (o.stopped_early()) {
    parts.push_back(absl::StrFormat("stopped early, best at step %d%s",
                                    o.early_stopping_best().step(),
                                    o.restored_best() ? " (restored)" : ""));
  }
  if (o.ensemble_size() > 0 && o.snapshots_size() > 0) {
    parts.push_back(absl::StrFormat(
        "ensemble of %d snapshots: acc %.4f (last %.4f)", o.ensemble_size(),
        o.ensemble_eval().val_accuracy(),
        o.snapshots(o.snapshots_size() - 1).eval().val_accuracy()));
  }
  if (o.skipped_updates() > 0) {
    parts.push_back(absl::StrFormat("%d updates skipped (loss scaling)",
                                    o.skipped_updates()));
  }
  if (parts.empty()) return "";
  return absl::StrCat("  [", absl::StrJoin(parts, "; "), "]");
}

}  // namespace

void GridProgress::Add(const v1::JobEvent& event) {
  if (event.has_accepted()) {
    const v1::Job& job = event.accepted().job();
    pruned_search_ =
        job.grid().grid().pruning().kind() != v1::PRUNING_KIND_UNSPECIFIED;
    trials_ = job.trials_size();
    full_steps_ = 0;
    for (const v1::Trial& t : job.trials()) full_steps_ += t.train().steps();
  } else if (event.has_trial_started()) {
    state_[event.trial_started().trial().trial_index()] =
        v1::TRIAL_STATE_RUNNING;
  } else if (event.has_trial_finished()) {
    const v1::Trial& t = event.trial_finished().trial();
    state_[t.trial_index()] = t.state();
  } else if (event.has_rung_decision()) {
    const v1::RungDecision& d = event.rung_decision();
    if (!d.result().promoted()) {
      state_[d.trial_index()] = v1::TRIAL_STATE_PRUNED;
    }
  } else if (event.has_point() && event.point().origin().has_trial_index()) {
    int64_t& steps = steps_[event.point().origin().trial_index()];
    steps = std::max(steps, event.point().point().step() + 1);
  } else if (event.has_ranking() && event.ranking().ranking_size() > 0 &&
             event.ranking().objective_values_size() > 0) {
    best_ = {event.ranking().ranking(0), event.ranking().objective_values(0)};
  }
}

std::string GridProgress::SummaryLine() const {
  int running = 0, pruned = 0, done = 0;
  for (const auto& [trial, state] : state_) {
    if (state == v1::TRIAL_STATE_RUNNING) ++running;
    if (state == v1::TRIAL_STATE_PRUNED) ++pruned;
    if (state == v1::TRIAL_STATE_SUCCEEDED) ++done;
  }
  int64_t steps = 0;
  for (const auto& [trial, s] : steps_) steps += s;
  return absl::StrFormat(
      "search: %d running, %d pruned, %d done of %d; best %s; %d of %d "
      "trial-steps (%s of the full grid)\n",
      running, pruned, done, trials_,
      best_.has_value()
          ? absl::StrFormat("%.4f (trial %d)", best_->second, best_->first)
          : std::string("-"),
      steps, full_steps_, Percent(steps, full_steps_));
}

std::string TrialRow(const v1::Trial& t) {
  const char* state = t.state() == v1::TRIAL_STATE_PRUNED ? "pruned" : "done";
  return absl::StrFormat(
      "%-5d %-10s %9.4f %9s  %s%s\n", t.trial_index(), state,
      t.final_eval().val_loss(),
      t.final_eval().has_val_accuracy()
          ? absl::StrFormat("%.4f", t.final_eval().val_accuracy())
          : std::string("-"),
      t.label(), OutcomeNote(t));
}

std::string GridTable(const v1::Job& job) {
  std::string out = "ranking:\n";
  for (int index : job.grid_result().ranking()) {
    for (const v1::Trial& t : job.trials()) {
      if (t.trial_index() != index) continue;
      absl::StrAppendFormat(&out, "  %2d. trial %-3d %9.4f  %s\n", t.rank(),
                            index, t.objective_value(), t.label());
    }
  }
  std::vector<const v1::Trial*> pruned;
  for (const v1::Trial& t : job.trials()) {
    if (t.state() == v1::TRIAL_STATE_PRUNED) pruned.push_back(&t);
  }
  // The pruned trials, from the last rung reached down.
  std::stable_sort(pruned.begin(), pruned.end(),
                   [](const v1::Trial* a, const v1::Trial* b) {
                     return PrunedAt(*a)->rung() > PrunedAt(*b)->rung();
                   });
  for (const v1::Trial* t : pruned) {
    const v1::RungResult* r = PrunedAt(*t);
    absl::StrAppendFormat(&out,
                          "      trial %-3d pruned at rung %d (step %d of "
                          "%d): %.4f  %s\n",
                          t->trial_index(), r->rung(), r->step(),
                          t->train().steps(), r->metric(), t->label());
  }
  for (const v1::Trial& t : job.trials()) {
    if (t.state() == v1::TRIAL_STATE_FAILED) {
      absl::StrAppendFormat(&out, "  failed: trial %d (%s): %s\n",
                            t.trial_index(), t.label(), t.failure());
    }
  }
  const v1::GridResult& g = job.grid_result();
  if (g.full_grid_trial_steps() > 0 &&
      job.grid().grid().pruning().kind() != v1::PRUNING_KIND_UNSPECIFIED) {
    absl::StrAppendFormat(
        &out,
        "compute: %d of %d trial-steps (%s of the full grid); %d of %d "
        "trials pruned\n",
        g.trial_steps(), g.full_grid_trial_steps(),
        Percent(g.trial_steps(), g.full_grid_trial_steps()), g.trials_pruned(),
        job.trials_size());
  }
  return out;
}

}  // namespace lrtune
