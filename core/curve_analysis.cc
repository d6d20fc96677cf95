#include "core/curve_analysis.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <map>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/grid.h"
#include "core/status_macros.h"
#include "core/suggestions.h"

namespace lrtune {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
// Fewer points than this before divergence cannot place a valley or a slide.
constexpr int64_t kMinPoints = 20;
// fastai's slide window (lr_diff) and threshold.
constexpr int kSlideWindow = 15;
constexpr double kSlideThreshold = 0.005;
// CLR bounds, as fractions of the descent depth D (docs/analysis.md).
constexpr double kClearDropFraction = 0.10;  // min_lr: dropped by 10% of D
constexpr double kPlateauFraction = 0.05;    // the floor: within 5% of D of min
// DivergenceMargin's range (docs/analysis.md section 4).
constexpr double kMinDivergenceMargin = 2.0;
// At the least margin (momentum <= 0.5, plain SGD and RMSprop in the study)
// max_lr reads the floor's right end x 1.2 (docs/analysis.md section 4).
constexpr double kLightMomentumRightEnd = 1.2;
constexpr double kMaxDivergenceMargin = 10.0;
// Adam's and AdamW's max_lr is scaled by sqrt(batch / this) (AdamBatchScale).
constexpr double kAdamReferenceBatch = 128.0;
constexpr double kMinBoundsRatio = 3.0;
constexpr double kMaxBoundsRatio = 10.0;
// A curve whose per-step noise exceeds this share of D gets "noisy_curve".
constexpr double kNoisyCurveFraction = 0.25;
constexpr double kTooNoisyDecades = 0.5;
// The running median before the zero-lag smoothing spans 2 x 2 + 1 points.
constexpr int kSpikeHalfWidth = 2;
// A drop smaller than this share of the loss's magnitude is rounding.
constexpr double kRoundingFraction = 1e-9;
// Divergence by return (docs/analysis.md section 1): once the smoothed loss
// has dropped by at least kReturnMinDrop of its starting level, it has
// diverged when it climbs back kReturnFraction of the way to that level.
constexpr double kReturnMinDrop = 0.1;
constexpr double kReturnFraction = 0.9;
// The zero-lag smoothing spans this many decades of LR, whatever the number
// of points per decade, widened on a noisy curve: x sigma / (kWideningNoise
// x D), at most kMaxWidening (docs/analysis.md section 2).
constexpr double kPositionSmoothingDecades = 0.1;
constexpr double kWideningNoise = 0.005;
constexpr double kMaxWidening = 3.0;

// The zero-lag EMA's beta for a curve over lrs: a span 1 / (1 - beta) of
// widening x kPositionSmoothingDecades x the points per decade (at least
// one point).
double PositionBeta(const std::vector<double>& lrs, double widening) {
  if (lrs.size() < 2) return 0.0;
  const double decades = std::log10(lrs.back() / lrs.front());
  if (!(decades > 0.0)) return 0.0;
  const double per_decade = static_cast<double>(lrs.size() - 1) / decades;
  const double span =
      std::max(1.0, widening * kPositionSmoothingDecades * per_decade);
  return 1.0 - 1.0 / span;
}

// Per-step noise of the raw losses: a robust (MAD) standard deviation of the
// first differences, divided by sqrt(2); a smooth trend barely moves it.
double EstimateNoise(const std::vector<double>& losses) {
  if (losses.size() < 3) return 0.0;
  std::vector<double> diffs(losses.size() - 1);
  for (size_t i = 0; i + 1 < losses.size(); ++i) {
    diffs[i] = losses[i + 1] - losses[i];
  }
  auto median = [](std::vector<double> v) {
    const size_t mid = v.size() / 2;
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid),
                     v.end());
    return v[mid];
  };
  const double center = median(diffs);
  for (double& d : diffs) d = std::abs(d - center);
  return 1.4826 * median(diffs) / std::sqrt(2.0);
}

// The drop on z: its first minimum and the first maximum before it.
struct Drop {
  size_t i_peak = 0, i_min = 0;
  double depth = 0.0;  // z[i_peak] - z[i_min]
};
Drop DropOf(const std::vector<double>& z) {
  Drop d;
  if (z.empty()) return d;
  d.i_min =
      static_cast<size_t>(std::min_element(z.begin(), z.end()) - z.begin());
  d.i_peak = static_cast<size_t>(
      std::max_element(z.begin(), z.begin() + d.i_min + 1) - z.begin());
  d.depth = z[d.i_peak] - z[d.i_min];
  return d;
}

// z: the running median's zero-lag EMA over a tenth of a decade, or over
// up to three tenths where the per-step noise is over 0.5% of the drop.
// The study's seeds read max_lr from the floor's right end, which moved
// with the noise: over 0.3 decade apart in 12 of its 48 range tests, 2
// with the wider smoothing, and the six-seed gap to the oracle went from
// 0.26 to 0.22 points (choose rows 0.25 -> 0.24, holdout 0.29 -> 0.19;
// bench/quality/pooled_screen.md). `noise`: EstimateNoise(losses).
std::vector<double> ZeroLagOf(const std::vector<double>& lrs,
                              const std::vector<double>& losses, double noise) {
  const std::vector<double> median = RunningMedian(losses, kSpikeHalfWidth);
  std::vector<double> z = SmoothZeroLag(median, PositionBeta(lrs, 1.0));
  const double depth = DropOf(z).depth;
  if (depth > 0.0 && noise > kWideningNoise * depth) {
    const double widening =
        std::min(kMaxWidening, noise / (kWideningNoise * depth));
    z = SmoothZeroLag(median, PositionBeta(lrs, widening));
  }
  return z;
}

// Where the zero-lag curve z is back kReturnFraction of the way from its
// lowest point to its start (DivergenceMonitor's return rule, read without
// the causal EMA's lag), or -1. On a curve that never diverged, this is the
// divergence the lagging average missed.
int64_t ReturnIndex(const std::vector<double>& z) {
  if (z.empty()) return -1;
  const auto i_min =
      static_cast<size_t>(std::min_element(z.begin(), z.end()) - z.begin());
  const double drop = z.front() - z[i_min];
  if (!(drop > kReturnMinDrop * std::abs(z.front()))) return -1;
  for (size_t i = i_min + 1; i < z.size(); ++i) {
    if (z[i] - z[i_min] >= kReturnFraction * drop) {
      return static_cast<int64_t>(i);
    }
  }
  return -1;
}

absl::Status ValidatePoints(const std::vector<CurvePoint>& points) {
  if (points.empty()) {
    return absl::InvalidArgumentError(
        "points is empty: a range test needs at least one (lr, loss) point");
  }
  for (size_t i = 0; i < points.size(); ++i) {
    const double lr = points[i].lr;
    if (!(std::isfinite(lr) && lr > 0.0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("points[", i, "].lr must be finite and > 0, got ", lr));
    }
    if (i > 0 && !(lr > points[i - 1].lr)) {
      return absl::InvalidArgumentError(
          absl::StrCat("points[", i, "].lr must be greater than points[", i - 1,
                       "].lr (a range test's LR increases), got ", lr,
                       " after ", points[i - 1].lr));
    }
  }
  return absl::OkStatus();
}

void AddWarning(Recommendation& r, std::string code, std::string message) {
  r.warnings.push_back({std::move(code), std::move(message)});
}

// Keeps max_lr and moves min_lr so that max_lr / min_lr is in [3, 10].
void ClampBoundsRatio(Recommendation& r) {
  if (!(r.max_lr > 0.0 && r.min_lr > 0.0)) return;
  r.min_lr = std::clamp(r.min_lr, r.max_lr / kMaxBoundsRatio,
                        r.max_lr / kMinBoundsRatio);
}

void FillOneCycle(Recommendation& r) {
  r.one_cycle.max_lr = r.max_lr;
  if (r.max_lr > 0.0 && r.min_lr > 0.0) {
    r.one_cycle.div_factor = BoundsRatio(r.max_lr, r.min_lr);
  }
  r.one_cycle.base_momentum = 0.85;
  r.one_cycle.max_momentum = 0.95;
}

// CLR bounds on the zero-lag curve z (docs/analysis.md, "CLR bounds").
void FillBounds(const std::vector<double>& lrs, const std::vector<double>& z,
                double noise, double margin, double scale, Recommendation& r) {
  const auto [i_peak, i_min, depth] = DropOf(z);
  const double magnitude = std::max(std::abs(z[i_peak]), std::abs(z[i_min]));
  if (!(depth > noise && depth > kRoundingFraction * magnitude)) {
    AddWarning(r, "never_decreased",
               absl::StrFormat(
                   "the smoothed loss never dropped by more than its per-step "
                   "noise (drop %g, noise %g) between lr %g and %g: restart "
                   "the range test from a start lr at least 100x lower, or "
                   "check the model, data and loss for a bug",
                   depth, noise, lrs.front(), lrs.back()));
    return;
  }
  size_t i_base = i_peak;
  while (z[i_base] > z[i_peak] - kClearDropFraction * depth) ++i_base;
  // max_lr: the right end of the loss's floor (the last point of the run
  // from the minimum that stays within 5% of D above it), x 1.2 without
  // momentum, capped at the last LR before divergence / margin
  // (DivergenceMargin). bench/quality shows why: the floor's left end (the
  // rule before) was 0.5 decade low on average, 1.3 under Adam; the right
  // end alone overshoots where accuracy falls off a cliff past the floor
  // (cnn-fmnist-sgdm-b128); a tenth of the divergence LR is 3-5x low
  // without momentum (mlp-fmnist-sgd-b128); and without momentum the best
  // LR sits past the floor's right end: x 1.2 with the cap at / 2 took the
  // 12 choose rows of SGD and RMSprop from 0.29 to 0.16 points behind on
  // average (cnn-fmnist-sgd-b128 3 epochs: 0.65 -> 0.09), and the 4
  // holdout rows from 0.32 to 0.04 (mlp-fmnist-sgd-b512 3 epochs: 0.53 ->
  // 0.05; bench/quality/rule_screen.md section 5). Under Adam and AdamW
  // that is then scaled by the batch (AdamBatchScale), never above the cap:
  // on both replicates of the study, 0.22 -> 0.18 points behind the oracle
  // on average, 9 -> 6 rows over 0.5 (bench/quality/pooled_screen.md).
  const double floor_level = z[i_min] + kPlateauFraction * depth;
  size_t i_right = i_min;
  while (i_right + 1 < z.size() && z[i_right + 1] <= floor_level) ++i_right;
  const double right_end =
      lrs[i_right] *
      (margin <= kMinDivergenceMargin ? kLightMomentumRightEnd : 1.0);
  r.min_lr = lrs[i_base];
  const double cap = lrs.back() / margin;
  r.max_lr = std::min(std::min(right_end, cap) * scale, cap);
  ClampBoundsRatio(r);
  if (noise > kNoisyCurveFraction * depth) {
    AddWarning(r, "noisy_curve",
               absl::StrFormat(
                   "the per-step loss noise (%g) is more than a quarter of "
                   "the loss drop (%g): the suggestions may move between "
                   "runs; use a larger batch or run several seeds and "
                   "aggregate them",
                   noise, depth));
  }
}

}  // namespace

double AdamBatchScale(const AnalysisOptions& options) {
  if (!options.adam_family || options.batch_size <= 0) return 1.0;
  return std::sqrt(static_cast<double>(options.batch_size) /
                   kAdamReferenceBatch);
}

double DivergenceMargin(std::optional<double> momentum) {
  const double beta = momentum.value_or(0.9);
  return std::clamp(1.0 / (1.0 - beta), kMinDivergenceMargin,
                    kMaxDivergenceMargin);
}

double EmaSmoother::Add(double x) {
  if (!std::isfinite(x)) return value();
  avg_ = beta_ * avg_ + (1.0 - beta_) * x;
  beta_pow_ *= beta_;
  ++count_;
  return value();
}

double EmaSmoother::value() const {
  if (count_ == 0) return kNaN;
  return avg_ / (1.0 - beta_pow_);
}

DivergenceMonitor::DivergenceMonitor(double beta, double factor)
    : smoother_(beta), factor_(factor) {}

bool DivergenceMonitor::Add(double loss) {
  if (diverged_) return true;
  if (!std::isfinite(loss)) {
    diverged_ = true;
    return true;
  }
  const double s = smoother_.Add(loss);
  if (smoother_.count() == 1) {
    first_ = s;
    best_ = s;
    return false;
  }
  best_ = std::min(best_, s);
  const double drop = first_ - best_;
  if (best_ > 0.0) {
    diverged_ = s > factor_ * best_;
  } else {
    diverged_ = drop > 0.0 && s - best_ > (factor_ - 1.0) * drop;
  }
  // Back at its starting level: a network knocked to chance (Adam's curves
  // return to ln 10 = 2.30, below 4 x their best) has diverged too.
  if (drop > kReturnMinDrop * std::abs(first_) &&
      s - best_ >= kReturnFraction * drop) {
    diverged_ = true;
  }
  return diverged_;
}

namespace {

// fastai's four suggestions, as lr_find computes them on these points: the
// recorder's curve (its EMA, its stop at 4 x best, [num_it / 10, n - 5)),
// then valley, slide, minimum / 10 and steep. NaN where fastai would have
// too few points to read.
void FillFastaiSuggestions(const std::vector<CurvePoint>& points,
                           const AnalysisOptions& options, Recommendation& r) {
  std::vector<double> lrs, losses;
  lrs.reserve(points.size());
  losses.reserve(points.size());
  for (const CurvePoint& p : points) {
    lrs.push_back(p.lr);
    losses.push_back(p.loss);
  }
  const int64_t num_it = options.planned_steps > 0
                             ? options.planned_steps
                             : static_cast<int64_t>(points.size());
  const AnchorCurve fa = FastaiRecorderCurve(lrs, losses, num_it);
  auto lr_at = [&fa](const absl::StatusOr<int64_t>& idx) {
    return idx.ok() ? fa.lrs[static_cast<size_t>(*idx)] : kNaN;
  };
  if (fa.losses.empty()) return;
  r.lr_valley = lr_at(ComputeValleyIndex(fa.losses));
  r.lr_slide =
      lr_at(ComputeSlideIndex(fa.losses, kSlideWindow, kSlideThreshold));
  r.lr_minimum = lr_at(ComputeMinimumIndex(fa.losses)) / 10.0;
  r.lr_steep = lr_at(ComputeSteepIndex(fa.lrs, fa.losses));
}

}  // namespace

absl::StatusOr<Recommendation> AnalyzeCurve(
    const std::vector<CurvePoint>& points, const AnalysisOptions& options) {
  LRTUNE_RETURN_IF_ERROR(ValidateAnalysisOptions(options, PrefixNames("")));
  LRTUNE_RETURN_IF_ERROR(ValidatePoints(points));
  Recommendation r;
  const int64_t n = static_cast<int64_t>(points.size());

  // Causal pass: the online divergence decision, exactly as the engine's.
  DivergenceMonitor monitor(options.smoothing_beta, options.divergence_factor);
  r.smoothed.assign(points.size(), kNaN);
  for (int64_t i = 0; i < n; ++i) {
    const bool diverged = monitor.Add(points[static_cast<size_t>(i)].loss);
    r.smoothed[static_cast<size_t>(i)] = monitor.smoothed();
    if (diverged) {
      r.diverged_at = i;
      break;
    }
  }
  const int64_t used = r.diverged_at < 0 ? n : r.diverged_at;
  r.points_used = used;

  std::vector<double> lrs(static_cast<size_t>(used));
  std::vector<double> losses(static_cast<size_t>(used));
  for (int64_t i = 0; i < used; ++i) {
    lrs[static_cast<size_t>(i)] = points[static_cast<size_t>(i)].lr;
    losses[static_cast<size_t>(i)] = points[static_cast<size_t>(i)].loss;
  }
  // Positions are read from the zero-lag curve (the causal one is late),
  // after a 5-point running median has removed isolated spikes.
  const double noise = EstimateNoise(losses);
  if (used > 0) r.position = ZeroLagOf(lrs, losses, noise);
  const std::vector<double>& z = r.position;  // also carried for plots

  r.stepsize_iterations = int64_t{options.stepsize_k} *
                          std::max<int64_t>(options.iters_per_epoch, 1);
  r.stepsize_epochs = options.iters_per_epoch > 0 ? options.stepsize_k : 0.0;

  if (r.diverged_at >= 0) {
    const CurvePoint& p = points[static_cast<size_t>(r.diverged_at)];
    if (!std::isfinite(p.loss)) {
      AddWarning(
          r, "nonfinite_loss",
          absl::StrFormat("the loss was %g at step %d (lr %g), which ended the "
                          "curve there; if that is below the LR you expect to "
                          "train at, look for a numerical bug (log of 0, "
                          "overflow in fp16) before trusting the result",
                          p.loss, p.step, p.lr));
    }
  } else if (const int64_t back = ReturnIndex(z); back >= 0) {
    // The loss did come back (bench/quality: cnn-fmnist-sgdm-b128 seed 0
    // returned to chance by lr ~0.3 and read max_lr 0.11, where the seeds
    // that diverged read 0.03-0.04 and 1cycle at 0.1 lost a seed).
    const double lr_back = lrs[static_cast<size_t>(back)];
    const double margin = DivergenceMargin(options.momentum);
    AddWarning(r, "never_diverged",
               absl::StrFormat(
                   "the loss came back to its starting level by lr %g, but "
                   "the divergence rule's running average (EMA beta %g) lags "
                   "and never crossed it up to lr %g, so max_lr has no "
                   "divergence cap and may be too high: counting lr %g as "
                   "the divergence, max_lr would be at most %g (that lr / %g, "
                   "the divergence margin)",
                   lr_back, options.smoothing_beta, points.back().lr, lr_back,
                   lr_back / margin, margin));
  } else {
    AddWarning(r, "never_diverged",
               absl::StrFormat(
                   "the loss never rose above %g x its best up to lr %g: "
                   "raise end_lr (e.g. 10x) so the test reaches divergence; "
                   "until then max_lr may be underestimated",
                   options.divergence_factor, points.back().lr));
  }
  if (used < kMinPoints) {
    AddWarning(
        r, "too_few_points",
        absl::StrFormat("only %d point(s) before divergence (at least %d "
                        "needed to place the suggestions): run more steps (100 "
                        "or more) or lower end_lr",
                        used, kMinPoints));
  }
  FillFastaiSuggestions(points, options, r);
  if (used == 0) {
    FillOneCycle(r);
    return r;
  }

  auto lr_at = [&lrs](const absl::StatusOr<int64_t>& idx) {
    return idx.ok() ? lrs[static_cast<size_t>(*idx)] : kNaN;
  };
  const absl::StatusOr<int64_t> lowest = ComputeMinimumIndex(z);
  r.lr_lowest = lr_at(lowest);
  if (lowest.ok()) {
    // The steepest descent on the way down to the lowest point. Past it z
    // rises, and a drop there is the recovery from a blow-up: read over the
    // whole curve, 43 of the quality study's 144 seed curves (Adam, RMSprop,
    // ResNet-20) put "steepest" past the lowest point, at 3-100x max_lr.
    const auto end = static_cast<std::ptrdiff_t>(
        std::min<size_t>(z.size(), static_cast<size_t>(*lowest) + 2));
    const auto skip_head = static_cast<int64_t>(
        std::floor(options.skip_head_fraction * static_cast<double>(used)));
    r.lr_steepest = lr_at(ComputeSteepestIndex(
        std::vector<double>(lrs.begin(), lrs.begin() + end),
        std::vector<double>(z.begin(), z.begin() + end), skip_head));
  }

  FillBounds(lrs, z, noise, DivergenceMargin(options.momentum),
             AdamBatchScale(options), r);
  FillOneCycle(r);
  r.max_lr_low = r.max_lr_high = r.max_lr;
  return r;
}

std::vector<double> PositionCurve(const std::vector<double>& lrs,
                                  const std::vector<double>& losses,
                                  const AnalysisOptions& options) {
  DivergenceMonitor monitor(options.smoothing_beta, options.divergence_factor);
  size_t used = 0;
  const size_t n = std::min(lrs.size(), losses.size());
  while (used < n && !monitor.Add(losses[used])) ++used;
  const auto end = [used](const std::vector<double>& v) {
    return v.begin() + static_cast<std::ptrdiff_t>(used);
  };
  const std::vector<double> kept(losses.begin(), end(losses));
  return ZeroLagOf(std::vector<double>(lrs.begin(), end(lrs)), kept,
                   EstimateNoise(kept));
}

absl::StatusOr<Recommendation> AggregateSeeds(
    const std::vector<Recommendation>& per_seed) {
  if (per_seed.empty()) {
    return absl::InvalidArgumentError(
        "per_seed is empty: aggregate at least one seed's recommendation");
  }
  // Median of log(value) over the positive, finite values; NaN if none.
  auto log_median = [&per_seed](double Recommendation::*field) {
    std::vector<double> logs;
    for (const Recommendation& r : per_seed) {
      const double v = r.*field;
      if (std::isfinite(v) && v > 0.0) logs.push_back(std::log(v));
    }
    if (logs.empty()) return kNaN;
    std::sort(logs.begin(), logs.end());
    const size_t mid = logs.size() / 2;
    const double m =
        logs.size() % 2 == 1 ? logs[mid] : 0.5 * (logs[mid - 1] + logs[mid]);
    return std::exp(m);
  };
  // Smallest and largest positive, finite value across seeds; NaN if none.
  auto range = [&per_seed](double Recommendation::*field) {
    double lo = kNaN, hi = kNaN;
    for (const Recommendation& r : per_seed) {
      const double v = r.*field;
      if (!(std::isfinite(v) && v > 0.0)) continue;
      lo = std::isnan(lo) ? v : std::min(lo, v);
      hi = std::isnan(hi) ? v : std::max(hi, v);
    }
    return std::make_pair(lo, hi);
  };
  auto spread = [&range](double Recommendation::*field) {
    const auto [lo, hi] = range(field);
    return std::isnan(lo) ? 0.0 : std::log10(hi / lo);
  };

  Recommendation out;
  out.seeds = 0;
  out.points_used = per_seed.front().points_used;
  for (const Recommendation& r : per_seed) {
    out.seeds += r.seeds;
    out.points_used = std::min(out.points_used, r.points_used);
    if (r.diverged_at >= 0 &&
        (out.diverged_at < 0 || r.diverged_at < out.diverged_at)) {
      out.diverged_at = r.diverged_at;
    }
  }
  out.stepsize_iterations = per_seed.front().stepsize_iterations;
  out.stepsize_epochs = per_seed.front().stepsize_epochs;
  out.one_cycle = per_seed.front().one_cycle;
  const double max_lr = log_median(&Recommendation::max_lr);
  const double min_lr = log_median(&Recommendation::min_lr);
  out.max_lr = std::isnan(max_lr) ? 0.0 : max_lr;
  out.min_lr = std::isnan(min_lr) ? 0.0 : min_lr;
  ClampBoundsRatio(out);
  out.lr_valley = log_median(&Recommendation::lr_valley);
  out.lr_slide = log_median(&Recommendation::lr_slide);
  out.lr_minimum = log_median(&Recommendation::lr_minimum);
  out.lr_steep = log_median(&Recommendation::lr_steep);
  out.lr_steepest = log_median(&Recommendation::lr_steepest);
  out.lr_lowest = log_median(&Recommendation::lr_lowest);
  FillOneCycle(out);
  out.spread_decades = std::max(spread(&Recommendation::min_lr),
                                spread(&Recommendation::max_lr));
  if (const auto [lo, hi] = range(&Recommendation::max_lr); !std::isnan(lo)) {
    out.max_lr_low = lo;
    out.max_lr_high = hi;
  }

  // Merge warnings by code, in first-seen order.
  std::vector<std::string> order;
  std::map<std::string, std::pair<int, std::string>> by_code;
  for (const Recommendation& r : per_seed) {
    for (const AnalysisWarning& w : r.warnings) {
      auto [it, inserted] = by_code.try_emplace(w.code, 0, w.message);
      if (inserted) order.push_back(w.code);
      ++it->second.first;
    }
  }
  for (const std::string& code : order) {
    const auto& [count, message] = by_code[code];
    out.warnings.push_back(
        {code, per_seed.size() == 1
                   ? message
                   : absl::StrCat(count, " of ", per_seed.size(),
                                  " seeds: ", message)});
  }
  if (out.spread_decades > kTooNoisyDecades) {
    AddWarning(out, "too_noisy",
               absl::StrFormat(
                   "min_lr/max_lr differ by %.2f decades across %d seeds "
                   "(more than %.1f): one run cannot be trusted; use a "
                   "larger batch, more steps per decade, or more seeds, and "
                   "train at the median",
                   out.spread_decades, per_seed.size(), kTooNoisyDecades));
  }
  return out;
}

absl::Status ValidateAnalysisOptions(const AnalysisOptions& o,
                                     const FieldNamer& names) {
  if (!(o.smoothing_beta >= 0.0 && o.smoothing_beta < 1.0)) {
    return FieldError(
        names, "smoothing_beta",
        absl::StrCat("must be in [0, 1), got ", o.smoothing_beta));
  }
  if (!(std::isfinite(o.divergence_factor) && o.divergence_factor > 1.0)) {
    return FieldError(
        names, "divergence_factor",
        absl::StrCat("must be finite and > 1, got ", o.divergence_factor));
  }
  if (!(o.skip_head_fraction >= 0.0 && o.skip_head_fraction < 0.5)) {
    return FieldError(
        names, "skip_head_fraction",
        absl::StrCat("must be in [0, 0.5), got ", o.skip_head_fraction));
  }
  if (o.iters_per_epoch < 0) {
    return FieldError(
        names, "iters_per_epoch",
        absl::StrCat("must be >= 0 (0 = unknown), got ", o.iters_per_epoch));
  }
  if (o.planned_steps < 0) {
    return FieldError(names, "planned_steps",
                      absl::StrCat("must be >= 0 (0 = the points given), got ",
                                   o.planned_steps));
  }
  if (o.momentum.has_value() && !(*o.momentum >= 0.0 && *o.momentum < 1.0)) {
    return FieldError(names, "momentum",
                      absl::StrCat("must be in [0, 1), got ", *o.momentum));
  }
  if (o.batch_size < 0) {
    return FieldError(
        names, "batch_size",
        absl::StrCat("must be >= 0 (0 = unknown), got ", o.batch_size));
  }
  if (o.stepsize_k < 2 || o.stepsize_k > 10) {
    return FieldError(names, "stepsize_k",
                      absl::StrCat("must be in [2, 10] (Smith: 2-10 epochs "
                                   "per half cycle), got ",
                                   o.stepsize_k));
  }
  return absl::OkStatus();
}

std::optional<RecommendedSchedules> RecommendSchedules(
    const Recommendation& rec, int64_t budget_steps) {
  const int64_t stepsize = rec.stepsize_iterations;
  if (!(rec.min_lr > 0) || !(rec.max_lr >= rec.min_lr) || stepsize < 1) {
    return std::nullopt;
  }
  const bool budget = budget_steps > 0;
  RecommendedSchedules out;
  out.total_steps = budget ? budget_steps : 8 * stepsize;
  ScheduleSpec& tri = out.triangular;
  tri.kind = ScheduleKind::kTriangular;
  tri.base_lr = rec.min_lr;
  tri.max_lr = rec.max_lr;
  tri.step_size_up =
      budget ? CyclicStepSizeUp(out.total_steps, stepsize) : stepsize;
  const OneCycleSettings& s = rec.one_cycle;
  ScheduleSpec& oc = out.one_cycle;
  oc = ScheduleSpec::OneCycle(s.max_lr > 0 ? s.max_lr : rec.max_lr,
                              out.total_steps);
  if (s.div_factor > 0) oc.div_factor = s.div_factor;
  if (s.final_div_factor > 0) oc.final_div_factor = s.final_div_factor;
  if (s.pct_start > 0 && s.pct_start < 1) oc.pct_start = s.pct_start;
  if (s.max_momentum > 0 && s.max_momentum >= s.base_momentum) {
    oc.base_momentum = s.base_momentum;
    oc.max_momentum = s.max_momentum;
  }
  ScheduleSpec& sgdr = out.sgdr;
  sgdr.kind = ScheduleKind::kSgdr;
  sgdr.base_lr = rec.max_lr;
  sgdr.eta_min = rec.min_lr;
  sgdr.t_mult = 2;
  sgdr.t0 = budget ? SgdrFirstPeriod(out.total_steps, 2 * stepsize, sgdr.t_mult)
                   : 2 * stepsize;
  ScheduleSpec& rex = out.rex;
  rex.kind = ScheduleKind::kRex;
  rex.base_lr = rec.max_lr;
  rex.eta_min = 0;
  rex.total_steps = out.total_steps;
  return out;
}

}  // namespace lrtune
