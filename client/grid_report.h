// What `lrtune grid`, `submit` and `get` print about a grid search: a row
// per trial as it finishes, a one-line account of a pruned search as it
// runs, and the ranked table at the end with the rung where each pruned
// trial stopped and the compute spent against the full grid's.
//
//   GridProgress progress;
//   ... for each event: progress.Add(event);
//       if (event.has_trial_finished()) out << TrialRow(trial)
//                                           << progress.SummaryLine();
//   out << GridTable(final_job);
//
// Thread-compatible; the functions are pure.
#ifndef LRTUNE_CLIENT_GRID_REPORT_H_
#define LRTUNE_CLIENT_GRID_REPORT_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "lrtune/v1/jobs.pb.h"

namespace lrtune {

// A grid's progress from its event stream.
class GridProgress {
 public:
  void Add(const v1::JobEvent& event);

  // Whether the grid prunes (known from its accepted event).
  bool pruned_search() const { return pruned_search_; }
  // "search: 2 running, 3 pruned, 4 done of 10; best 0.8145 (trial 6);
  // 471 of 960 trial-steps (49% of the full grid)\n".
  std::string SummaryLine() const;

 private:
  bool pruned_search_ = false;
  bool loss_objective_ = false;  // lower is better
  int trials_ = 0;
  int64_t full_steps_ = 0;
  std::map<int32_t, int64_t> steps_;  // per trial: updates reported
  std::map<int32_t, v1::TrialState> state_;
  std::optional<std::pair<int32_t, double>> best_;
};

// A finished trial's row: index, state (done, pruned), validation loss and
// accuracy, label, and what its training did ("[pruned at rung 1, step
// 234: 0.6445]", early stopping, snapshots).
std::string TrialRow(const v1::Trial& trial);

// The end of a grid: the ranking ("  1. trial 6  0.8145  label"), the
// pruned trials with their rung, the failed ones with their reason, and
// the compute line of a pruned search.
std::string GridTable(const v1::Job& job);

}  // namespace lrtune

#endif  // LRTUNE_CLIENT_GRID_REPORT_H_
