// A grid search as a figure: `lrtune grid --plot FILE.svg` and `lrtune get
// JOB --plot FILE.svg`. It collects the trials' training curves and
// validation passes from the job's events, then draws them with the final
// job's labels and ranks.
//
//   GridPlot plot;
//   client->WatchJob(job_id, 0, [&](const v1::JobEvent& e) { plot.Add(e); });
//   std::string svg = plot.Svg(job, "grid " + job.job_id());
//
// Pure formatting over value types; thread-compatible.
#ifndef LRTUNE_CLIENT_GRID_PLOT_H_
#define LRTUNE_CLIENT_GRID_PLOT_H_

#include <cstdint>
#include <map>
#include <string>

#include "lrtune/v1/jobs.pb.h"

namespace lrtune {

class GridPlot {
 public:
  // Takes one event of the job's stream: points and evaluations of a trial
  // (with origin.trial_index); the rest, and the range test's points, are
  // ignored. A retried trial's later points replace the earlier ones.
  void Add(const v1::JobEvent& event);

  // Trials with at least one training point.
  int trials() const { return static_cast<int>(loss_.size()); }

  // The SVG document: per trial with points a path (id "trial-<index>",
  // class "trial", the best-ranked one also "best", drawn thicker) of the
  // smoothed training loss against the step, its validation losses as
  // circles (group "val-<index>"), axes with linear ticks, and a legend
  // entry per trial of `job` ("1. trial 3: <label>", unranked ones by
  // their state). `job` gives the labels and ranks (GetJob at the end).
  // Empty when no trial has a point.
  std::string Svg(const v1::Job& job, const std::string& title) const;

 private:
  // trial index -> step -> smoothed training loss / validation loss.
  std::map<int32_t, std::map<int64_t, double>> loss_;
  std::map<int32_t, std::map<int64_t, double>> val_;
};

}  // namespace lrtune

#endif  // LRTUNE_CLIENT_GRID_PLOT_H_
