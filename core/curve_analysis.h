// Reading a learning-rate range test: smoothing, divergence, suggestions and
// the recommendation (CLR bounds, stepsize, 1cycle settings, trust).
//
// The engine feeds loss values online to a DivergenceMonitor to decide when
// to stop; once the curve is complete, AnalyzeCurve turns it into a
// Recommendation, and AggregateSeeds combines several seeds' results:
//
//   LRTUNE_ASSIGN_OR_RETURN(Recommendation r, AnalyzeCurve(points, {}));
//   std::cout << r.min_lr << " .. " << r.max_lr << "\n";
//
// The rules, and where they differ from fastai, torch-lr-finder and
// Lightning, are in docs/analysis.md. Every function here is pure and
// thread-compatible.
#ifndef LRTUNE_CORE_CURVE_ANALYSIS_H_
#define LRTUNE_CORE_CURVE_ANALYSIS_H_

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/field_names.h"
#include "core/schedule.h"

namespace lrtune {

// One point of a loss-versus-LR curve. `loss` may be NaN or Inf (a diverged
// step); lr must be finite and > 0.
struct CurvePoint {
  int64_t step = 0;
  double lr = 0.0;
  double loss = 0.0;
};

// Bias-corrected exponential moving average (fastai's smoothing):
// v_i = beta v_{i-1} + (1 - beta) x_i, smoothed_i = v_i / (1 - beta^i).
// Non-finite inputs are not absorbed: Add returns the previous value.
// value() is NaN before the first finite value.
class EmaSmoother {
 public:
  explicit EmaSmoother(double beta = 0.98) : beta_(beta) {}
  // Adds one value and returns the bias-corrected average so far.
  double Add(double x);
  double value() const;
  int64_t count() const { return count_; }

  // The running sums, to continue a series later (checkpoints).
  struct State {
    double avg = 0.0;
    double beta_pow = 1.0;
    int64_t count = 0;
  };
  State state() const { return {avg_, beta_pow_, count_}; }
  void Restore(const State& s) {
    avg_ = s.avg;
    beta_pow_ = s.beta_pow;
    count_ = s.count;
  }

 private:
  double beta_;
  double avg_ = 0.0;
  double beta_pow_ = 1.0;
  int64_t count_ = 0;
};

// Online divergence test for a running range test, on the causal EMA s
// (checked from the second point on): with best = the lowest s so far,
//  - best > 0: diverged once s > factor x best (fastai's and Lightning's
//    rule);
//  - best <= 0 (negative losses, where a ratio to best means nothing):
//    diverged once s - best > (factor - 1) x (first - best), first being the
//    first smoothed value, i.e. once the loss has risen above its best by
//    (factor - 1) times the drop it made, which only uses differences;
//  - whatever the sign, once the loss has dropped by more than 10% of
//    |first| and climbed back 90% of the way to first
//    (s - best >= 0.9 (first - best)): a network knocked back to its
//    starting level (chance) has diverged, whatever its ratio to best;
//  - at the first non-finite loss, whatever best is.
class DivergenceMonitor {
 public:
  DivergenceMonitor(double beta, double factor);
  // Adds the raw loss of the next step; returns true if the curve has
  // diverged at this point (and stays true afterwards).
  bool Add(double loss);
  double smoothed() const { return smoother_.value(); }
  double best() const { return best_; }
  bool diverged() const { return diverged_; }

 private:
  EmaSmoother smoother_;
  double factor_;
  double best_ = std::numeric_limits<double>::infinity();
  double first_ = 0.0;  // first smoothed value (scale for best <= 0)
  bool diverged_ = false;
};

struct AnalysisOptions {
  // Causal EMA beta in [0, 1): divergence and Recommendation::smoothed.
  // Positions are read from a zero-lag curve whose width follows the points
  // per decade and the noise instead (PositionCurve).
  double smoothing_beta = 0.98;
  double divergence_factor = 4.0;   // > 1
  double skip_head_fraction = 0.1;  // steepest: skip this share of points
  // Iterations per epoch for the stepsize; 0 = unknown (stepsize_epochs is
  // then 0 and stepsize_iterations uses k x 1).
  int64_t iters_per_epoch = 0;
  int stepsize_k = 4;  // stepsize = k x iters_per_epoch, k in [2, 10]
  // The test's planned steps (fastai's num_it): the fastai-named
  // suggestions read the recorded curve from point planned_steps / 10 on,
  // as lr_find does. >= 0; 0 = the number of points given.
  int64_t planned_steps = 0;
  // The optimizer's momentum during the test (SGD's and RMSprop's momentum,
  // Adam's and AdamW's beta1; OptimizerMomentum in core/spec.h), in [0, 1).
  // It sets how far below the divergence LR max_lr stays: at most
  // 1 / DivergenceMargin(momentum) of it. Unset: unknown, read as 0.9
  // (the engine fills it in from the run's optimizer).
  std::optional<double> momentum;
  // Whether the optimizer is Adam or AdamW, and the batch of one optimizer
  // update (batch size x gradient accumulation; 0 = unknown). Under Adam
  // and AdamW max_lr is scaled by sqrt(batch_size / 128), never above the
  // divergence cap (AdamBatchScale; docs/analysis.md section 4). The
  // engine fills both in from the run.
  bool adam_family = false;
  int64_t batch_size = 0;
};

// max_lr is at most the last LR before divergence divided by this:
// 1 / (1 - momentum) clamped to [2, 10], so 10 under momentum 0.9 (SGD with
// momentum, Adam's beta1) and 2 without, where max_lr also reads the
// floor's right end x 1.2 (docs/analysis.md section 4 and the quality
// study's rows that chose them). Unset momentum: 10.
double DivergenceMargin(std::optional<double> momentum);

// The factor on Adam's and AdamW's max_lr: sqrt(batch_size / 128) with
// options.adam_family and a known batch_size, else 1. Their best 1cycle LR
// grows with the batch about as the square root (the scaling rule for
// adaptive optimizers) while their range test's floor barely moves: in
// the quality study the floor's right end reads 0.0056, 0.0069 and 0.0101
// at batch 32, 128 and 512, the best LR 0.00215, 0.0046-0.01 and
// 0.01-0.0215.
double AdamBatchScale(const AnalysisOptions& options);

// Smith's 1cycle settings derived from the bounds.
struct OneCycleSettings {
  double max_lr = 0.0;
  double div_factor = 25.0;  // so that max_lr / div_factor == min_lr
  double final_div_factor = 1e4;
  double pct_start = 0.3;
  double base_momentum = 0.85;
  double max_momentum = 0.95;
};

// Machine-readable warning codes with a human sentence.
struct AnalysisWarning {
  std::string code;  // "never_decreased", "never_diverged", "too_few_points",
                     // "too_noisy", "nonfinite_loss", ...
  std::string message;  // what happened and what to do
};

struct Recommendation {
  // CLR bounds (docs/analysis.md states the rule).
  double min_lr = 0.0;
  double max_lr = 0.0;
  int64_t stepsize_iterations = 0;
  double stepsize_epochs = 0.0;
  // Suggestions (NaN where a curve gives none). fastai's four, named as
  // fastai names them, are what fastai's lr_find returns on the same
  // points: its causal smoothing, stop and slice (FastaiRecorderCurve in
  // suggestions.h), then valley, slide, minimum (its LR / 10) and steep.
  double lr_valley = std::numeric_limits<double>::quiet_NaN();
  double lr_slide = std::numeric_limits<double>::quiet_NaN();
  double lr_minimum = std::numeric_limits<double>::quiet_NaN();  // min / 10
  double lr_steep = std::numeric_limits<double>::quiet_NaN();
  // lrtune's own positions, read from the zero-lag curve (PositionCurve):
  // the steepest descent and the lowest loss (its LR, not divided).
  double lr_steepest = std::numeric_limits<double>::quiet_NaN();
  double lr_lowest = std::numeric_limits<double>::quiet_NaN();
  OneCycleSettings one_cycle;
  // Index of the point where the curve diverged, or -1.
  int64_t diverged_at = -1;
  // Points before divergence that the suggestions were read from.
  int64_t points_used = 0;
  // Spread across seeds in decades (max over the bounds of the
  // log10 range); 0 for a single seed.
  double spread_decades = 0.0;
  // The interval max_lr comes from: the smallest and largest of the seeds'
  // max_lr (one curve: both max_lr; 0 without a recommendation).
  double max_lr_low = 0.0;
  double max_lr_high = 0.0;
  int seeds = 1;
  std::vector<AnalysisWarning> warnings;
  // Causal, bias-corrected EMA of every input point (NaN after divergence).
  std::vector<double> smoothed;
  // The curve the positions were read from (PositionCurve): one value per
  // point up to the divergence, so plots draw what was analyzed. Per curve,
  // as smoothed.
  std::vector<double> position;
};

// Checks the options' ranges (smoothing_beta in [0, 1), divergence_factor
// > 1, skip_head_fraction in [0, 0.5), iters_per_epoch >= 0, stepsize_k in
// [2, 10]); `names` names the fields (field_names.h).
absl::Status ValidateAnalysisOptions(const AnalysisOptions& options,
                                     const FieldNamer& names);

// Analyzes one curve. InvalidArgument if the curve is empty, an lr is not
// finite and positive or not greater than the previous point's, or options
// are out of range (naming the field). Where the loss never decreased,
// min_lr = max_lr = 0 (no recommendation) and a warning says why.
absl::StatusOr<Recommendation> AnalyzeCurve(
    const std::vector<CurvePoint>& points, const AnalysisOptions& options);

// The curve AnalyzeCurve reads the suggestions' positions from, one value
// per loss: the losses up to (not including) the first point where
// DivergenceMonitor(options' beta and factor) says the curve diverged, a
// 5-point running median to remove isolated spikes, then the zero-lag EMA
// (SmoothZeroLag) whose span is a tenth of a decade of LR, up to three
// tenths where the per-step noise is over 0.5% of the drop (its beta
// follows the points per decade of `lrs` and the noise, not
// smoothing_beta; docs/analysis.md section 2), so features are neither
// late nor smeared. Shorter than `losses` when the curve diverged.
// lrs[i] is the LR of losses[i]. For plots of what was analyzed.
std::vector<double> PositionCurve(const std::vector<double>& lrs,
                                  const std::vector<double>& losses,
                                  const AnalysisOptions& options);

// Combines per-seed recommendations: each LR is the median in log space
// (over the seeds that have one; the bounds are then clamped to the same
// [3, 10] ratio as one curve's), spread_decades the largest log10(max/min)
// across seeds among min_lr and max_lr, warnings merged by code ("k of n
// seeds: ..."), plus "too_noisy" when spread > 0.5 decade. The result's
// seeds is the sum of the inputs', points_used their minimum, diverged_at
// the earliest divergence among the seeds that diverged (-1 when none did)
// and smoothed empty (a per-curve fact). InvalidArgument on an empty list.
absl::StatusOr<Recommendation> AggregateSeeds(
    const std::vector<Recommendation>& per_seed);

// The ready-to-use schedules of a recommendation (results.proto
// RecommendedSchedules), over the user's budget of `budget_steps` when it
// is > 0, else over four CLR cycles (8 x stepsize_iterations): total_steps.
// triangular: min_lr to max_lr in whole cycles of about the stepsize
// (CyclicStepSizeUp, core/grid.h; step_size_up = stepsize without a
// budget); one_cycle: the OneCycleSettings over total_steps; sgdr: max_lr
// down to min_lr, t_mult 2, t0 = 2 x stepsize or, with a budget, the
// longest first period of restarts at least 2 x stepsize apart that fills
// it (SgdrFirstPeriod); rex: max_lr down to 0 over total_steps.
struct RecommendedSchedules {
  int64_t total_steps = 0;
  ScheduleSpec triangular;
  ScheduleSpec one_cycle;
  ScheduleSpec sgdr;
  ScheduleSpec rex;
};
// nullopt when there is no recommendation (min_lr 0) or the stepsize is
// unknown (< 1).
std::optional<RecommendedSchedules> RecommendSchedules(
    const Recommendation& rec, int64_t budget_steps = 0);

}  // namespace lrtune

#endif  // LRTUNE_CORE_CURVE_ANALYSIS_H_
