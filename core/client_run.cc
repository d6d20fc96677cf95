#include "core/client_run.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/schedule.h"
#include "core/status_macros.h"

namespace lrtune {

absl::StatusOr<ClientRun> ClientRun::Create(const RangeTestSpec& spec,
                                            const AnalysisOptions& options,
                                            const FieldNamer& names) {
  LRTUNE_RETURN_IF_ERROR(ValidateRangeTest(spec, names));
  if (spec.driver != RangeDriver::kClient) {
    return FieldError(names, "driver",
                      absl::StrCat("must be client for a client's run, got ",
                                   RangeDriverName(spec.driver)));
  }
  LRTUNE_RETURN_IF_ERROR(
      ValidateAnalysisOptions(options, Nested(names, "analysis.")));
  // The ramp a worker's run follows (worker/engine.cc), step for step.
  LRTUNE_ASSIGN_OR_RETURN(
      Schedule ramp, Schedule::Create(ScheduleSpec::Ramp(
                         spec.start_lr, spec.end_lr, spec.steps, spec.shape)));
  LRTUNE_ASSIGN_OR_RETURN(std::vector<SchedulePoint> points,
                          ramp.Sample(spec.steps));
  std::vector<double> lrs;
  lrs.reserve(points.size());
  for (const SchedulePoint& p : points) {
    // AnalyzeCurve needs increasing LRs; a ramp so flat that doubles cannot
    // tell two steps apart is no range test.
    if (!lrs.empty() && !(p.lr > lrs.back())) {
      return FieldError(
          names, "steps",
          absl::StrCat("is too many for [start_lr, end_lr]: steps ", p.step - 1,
                       " and ", p.step, " get the same LR ", p.lr));
    }
    lrs.push_back(p.lr);
  }
  return ClientRun(std::move(lrs), options);
}

ClientRun::ClientRun(std::vector<double> lrs, AnalysisOptions options)
    : lrs_(std::move(lrs)),
      options_(std::move(options)),
      monitor_(options_.smoothing_beta, options_.divergence_factor) {
  curve_.reserve(lrs_.size());
}

absl::Status ClientRun::Check(const ClientStep& s,
                              const FieldNamer& names) const {
  if (s.step < 0 || s.step >= steps()) {
    return FieldError(names, "step",
                      absl::StrCat("must be in [0, ", steps(),
                                   ") (the plan's steps), got ", s.step));
  }
  if (s.skipped_updates < 0) {
    return FieldError(names, "skipped_updates",
                      absl::StrCat("must be >= 0, got ", s.skipped_updates));
  }
  if (!std::isfinite(s.elapsed_s) || s.elapsed_s < 0) {
    return FieldError(
        names, "elapsed_s",
        absl::StrCat("must be a finite number >= 0, got ", s.elapsed_s));
  }
  return absl::OkStatus();
}

ClientRun::Point ClientRun::Add(const ClientStep& s) {
  const int64_t step = next_step();
  const double lr = lrs_[static_cast<size_t>(step)];
  if (monitor_.Add(s.loss) && !diverged_at_.has_value()) diverged_at_ = step;
  curve_.push_back({step, lr, s.loss});
  elapsed_s_ = s.elapsed_s;
  return {step,       lr, s.loss, monitor_.smoothed(), s.skipped_updates,
          s.elapsed_s};
}

std::string ClientRun::EndReason() const {
  if (diverged_at_.has_value()) {
    const CurvePoint& p = curve_[static_cast<size_t>(*diverged_at_)];
    return absl::StrCat(
        "diverged at step ", p.step, " (lr ", p.lr, ", ",
        std::isfinite(p.loss)
            ? absl::StrCat("smoothed loss ", monitor_.smoothed(), ", best ",
                           monitor_.best())
            : absl::StrCat("loss ", p.loss),
        ")");
  }
  if (done()) return absl::StrCat("the plan's ", steps(), " steps are done");
  return "";
}

absl::StatusOr<Recommendation> ClientRun::Analyze() const {
  if (curve_.empty()) {
    return absl::InvalidArgumentError(
        "the run reported no step: there is no curve to analyse");
  }
  return AnalyzeCurve(curve_, options_);
}

}  // namespace lrtune
