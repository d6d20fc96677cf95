// One run of a client-driven range test (RangeDriver::kClient), as the
// coordinator follows it: the plan (every step's LR, from the range test's
// ramp), the steps the client reports checked against it, the divergence
// rule applied online as the losses arrive, and at the end the run's
// recommendation. It uses the ramp, the DivergenceMonitor and AnalyzeCurve
// exactly as a worker's run does (worker/engine.cc), so a client-driven
// test reads like a worker-run one.
//
//   LRTUNE_ASSIGN_OR_RETURN(ClientRun run, ClientRun::Create(spec, options));
//   LRTUNE_RETURN_IF_ERROR(run.Check(step, PrefixNames("steps[0].")));
//   ClientRun::Point p = run.Add(step);  // the LR from the plan
//   if (run.ended()) { LRTUNE_ASSIGN_OR_RETURN(auto r, run.Analyze()); }
//
// The coordinator rebuilds a run after a restart by Adding its stored steps
// again: the same steps give the same state. A value type; thread-
// compatible (the coordinator holds the run's job lock).
#ifndef LRTUNE_CORE_CLIENT_RUN_H_
#define LRTUNE_CORE_CLIENT_RUN_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/curve_analysis.h"
#include "core/field_names.h"
#include "core/spec.h"

namespace lrtune {

// What a client reports for one optimizer update of its run.
struct ClientStep {
  int64_t step = 0;  // the plan's step, 0-based
  // The training loss of the update (over its accumulated micro-batches).
  // NaN or Inf means the step diverged: the run ends there.
  double loss = 0.0;
  // Updates AMP's GradScaler skipped (inf gradients) at this step's LR
  // before this one was applied; they did not advance the plan.
  int64_t skipped_updates = 0;
  double elapsed_s = 0.0;  // since the run's first step
};

class ClientRun {
 public:
  // The run of a client-driven range test `spec` (validated here, with
  // `names` naming its fields; driver must be kClient), its curve read with
  // `options` (CurveAnalysisOptions). InvalidArgument naming the field.
  static absl::StatusOr<ClientRun> Create(const RangeTestSpec& spec,
                                          const AnalysisOptions& options,
                                          const FieldNamer& names);

  // The plan: lrs()[k] is the LR of step k, strictly increasing.
  const std::vector<double>& lrs() const { return lrs_; }
  int64_t steps() const { return static_cast<int64_t>(lrs_.size()); }

  // Checks one reported step against the plan, changing nothing; `names`
  // names its fields ("steps[3].elapsed_s"). InvalidArgument: step not in
  // [0, steps()), skipped_updates < 0, elapsed_s not a finite number >= 0.
  // Whether the step is the next one is the caller's business (a report
  // may repeat steps already stored).
  absl::Status Check(const ClientStep& step, const FieldNamer& names) const;

  // A stored step: what the coordinator keeps as the curve point.
  struct Point {
    int64_t step = 0;
    double lr = 0.0;
    double loss = 0.0;
    double smoothed = 0.0;  // the monitor's causal EMA after this step
    int64_t skipped_updates = 0;
    double elapsed_s = 0.0;
  };
  // Adds the next step (step.step == next_step(), Check passed, not
  // ended()). The run ends when this step diverged or was the plan's last.
  Point Add(const ClientStep& step);

  // The step Add takes next: the number of steps added.
  int64_t next_step() const { return static_cast<int64_t>(curve_.size()); }
  // The last added step's elapsed_s: the client's training time so far.
  double elapsed_s() const { return elapsed_s_; }
  // Diverged, or every step of the plan added.
  bool ended() const { return diverged_at_.has_value() || done(); }
  // The step at which the divergence rule fired; nullopt while it has not.
  std::optional<int64_t> diverged_at() const { return diverged_at_; }
  // Why the run ended, for the client ("diverged at step 57 (lr 0.84)",
  // "the plan's 100 steps are done"); empty while it runs.
  std::string EndReason() const;

  // The run's recommendation from the steps added so far (all of them, as
  // the engine reads a curve): AnalyzeCurve with the options. An ended
  // run's, or one the client ended early. InvalidArgument when no step was
  // added.
  absl::StatusOr<Recommendation> Analyze() const;

 private:
  ClientRun(std::vector<double> lrs, AnalysisOptions options);
  bool done() const { return next_step() >= steps(); }

  std::vector<double> lrs_;
  AnalysisOptions options_;
  DivergenceMonitor monitor_;
  std::vector<CurvePoint> curve_;
  std::optional<int64_t> diverged_at_;
  double elapsed_s_ = 0.0;
};

}  // namespace lrtune

#endif  // LRTUNE_CORE_CLIENT_RUN_H_
