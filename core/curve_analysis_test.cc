#include "core/curve_analysis.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "core/suggestions.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace lrtune {
namespace {

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// The test curve: a plateau at 2.3, a sigmoid drop whose steepest point in
// ln(lr) is at log10 lr = -4, a minimum near log10 lr = -2.6 and an
// exponential blow-up. On 100 points from 1e-7 to 10 the raw curve's
// steepest point is index 37 and its minimum index 60.
double UCurve(double lr) {
  const double x = std::log10(lr);
  return 2.3 - 2.0 / (1.0 + std::exp(-(x + 4.0) * 2.5)) +
         0.02 * std::exp((x + 2.0) * 4.0);
}
constexpr int64_t kTrueSteepest = 37;
constexpr int64_t kTrueMinimum = 60;

std::vector<CurvePoint> MakeCurve(const std::function<double(double)>& f,
                                  int n = 100, double noise = 0.0,
                                  uint64_t seed = 1) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.0, noise);
  std::vector<CurvePoint> points;
  for (int i = 0; i < n; ++i) {
    const double lr = 1e-7 * std::pow(1e8, static_cast<double>(i) / (n - 1));
    points.push_back({i, lr, f(lr) + (noise > 0 ? normal(rng) : 0.0)});
  }
  return points;
}

// The points' lrs and losses, as PositionCurve takes them.
std::pair<std::vector<double>, std::vector<double>> Split(
    const std::vector<CurvePoint>& points) {
  std::pair<std::vector<double>, std::vector<double>> out;
  for (const CurvePoint& p : points) {
    out.first.push_back(p.lr);
    out.second.push_back(p.loss);
  }
  return out;
}

// Index of the point whose lr is `lr` (suggestions are points' lrs).
int64_t IndexOf(const std::vector<CurvePoint>& points, double lr) {
  for (size_t i = 0; i < points.size(); ++i) {
    if (points[i].lr == lr) return static_cast<int64_t>(i);
  }
  return -1;
}

bool HasWarning(const Recommendation& r, const std::string& code) {
  return std::any_of(r.warnings.begin(), r.warnings.end(),
                     [&](const AnalysisWarning& w) { return w.code == code; });
}

Recommendation Analyze(const std::vector<CurvePoint>& points,
                       const AnalysisOptions& options = {}) {
  absl::StatusOr<Recommendation> r = AnalyzeCurve(points, options);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : Recommendation{};
}

// tests/golden/analysis_fastai.json (scripts/gen_golden_analysis.py).
nlohmann::json GoldenAnalysis() {
  std::ifstream in(std::string(LRTUNE_SOURCE_DIR) +
                   "/tests/golden/analysis_fastai.json");
  EXPECT_TRUE(in.good());
  std::stringstream buf;
  buf << in.rdbuf();
  return nlohmann::json::parse(buf.str());
}

// The points of one of its recorded range tests (a null loss: not finite).
std::vector<CurvePoint> RecordedPoints(const nlohmann::json& c) {
  std::vector<CurvePoint> points;
  const auto lrs = c.at("lrs").get<std::vector<double>>();
  const nlohmann::json& losses = c.at("losses");
  for (size_t i = 0; i < lrs.size(); ++i) {
    points.push_back(
        {static_cast<int64_t>(i), lrs[i],
         losses[i].is_null() ? std::nan("") : losses[i].get<double>()});
  }
  return points;
}

TEST(EmaSmootherTest, BiasCorrectedAndSkipsNonFinite) {
  EmaSmoother ema(0.98);
  EXPECT_TRUE(std::isnan(ema.value()));
  EXPECT_DOUBLE_EQ(ema.Add(5.0), 5.0);  // bias correction: no pull to 0
  EXPECT_DOUBLE_EQ(ema.Add(NAN), 5.0);
  EXPECT_EQ(ema.count(), 1);
  EXPECT_NEAR(ema.Add(7.0), (0.98 * 0.02 * 5 + 0.02 * 7) / (1 - 0.98 * 0.98),
              1e-12);
}

TEST(DivergenceMonitorTest, FactorTimesBestForPositiveLosses) {
  // Starts at 10 so that the loss stays far below its starting level (the
  // return rule, tested below, would otherwise fire at 2.0 too).
  DivergenceMonitor m(0.0, 4.0);  // beta 0: smoothed == raw
  EXPECT_FALSE(m.Add(10.0));
  EXPECT_FALSE(m.Add(0.5));
  EXPECT_FALSE(m.Add(2.0));  // 2.0 == 4 x 0.5 is not above it
  EXPECT_TRUE(m.Add(2.01));
  EXPECT_TRUE(m.Add(0.1));  // stays diverged
}

TEST(DivergenceMonitorTest, NegativeLossesUseTheDropNotARatio) {
  // fastai's rule (s > 4 x best) fires at once on negative losses; here the
  // loss must rise above its best by 3x the drop it made (-100 -> -100.5:
  // 0.5). The drop is under 10% of |first|, so the return rule is off.
  DivergenceMonitor m(0.0, 4.0);
  EXPECT_FALSE(m.Add(-100.0));
  EXPECT_FALSE(m.Add(-100.5));
  EXPECT_FALSE(m.Add(-99.01));  // best + 1.49 <= best + 1.5
  EXPECT_TRUE(m.Add(-98.99));
}

// A loss that climbs back to its starting level has diverged, whatever its
// ratio to the best. Study row mlp-fmnist-adam-b128 (docs/analysis.md): Adam
// knocked the MLP back to chance (2.30) at lr ~0.06, below 4 x its best
// (0.6), so the 4x rule never fired and 2 of 3 seeds ran on to lr 10.
TEST(DivergenceMonitorTest, ReturnToTheStartingLevelDiverges) {
  DivergenceMonitor m(0.0, 4.0);
  EXPECT_FALSE(m.Add(2.30));
  EXPECT_FALSE(m.Add(0.60));  // dropped 1.70
  EXPECT_FALSE(m.Add(2.10));  // back 1.50 < 0.9 x 1.70 = 1.53
  EXPECT_TRUE(m.Add(2.14));   // back 1.54: at its starting level
  // Negative losses: -1 -> -3 is a drop of 2; back 1.8 of it diverges.
  DivergenceMonitor n(0.0, 4.0);
  EXPECT_FALSE(n.Add(-1.0));
  EXPECT_FALSE(n.Add(-3.0));
  EXPECT_FALSE(n.Add(-1.3));
  EXPECT_TRUE(n.Add(-1.1));
  // A start whose noise makes a drop under 10% of the level is not a
  // return: the plateau at the start of every range test.
  DivergenceMonitor p(0.0, 4.0);
  EXPECT_FALSE(p.Add(2.30));
  EXPECT_FALSE(p.Add(2.10));
  EXPECT_FALSE(p.Add(2.31));
}

TEST(DivergenceMonitorTest, FirstNonFiniteLossDiverges) {
  DivergenceMonitor m(0.98, 4.0);
  EXPECT_FALSE(m.Add(1.0));
  EXPECT_TRUE(m.Add(INFINITY));
  EXPECT_TRUE(m.diverged());
}

TEST(AnalyzeCurveTest, CleanUCurveSuggestionsLandOnTheTrueFeatures) {
  const auto points = MakeCurve(UCurve);
  const Recommendation r = Analyze(points);
  ASSERT_GT(r.diverged_at, kTrueMinimum);
  EXPECT_EQ(r.points_used, r.diverged_at);
  EXPECT_TRUE(r.warnings.empty()) << r.warnings.front().message;
  // Zero-lag smoothing puts the positions within 4 points (0.3 decade)
  // of the raw curve's.
  EXPECT_NEAR(IndexOf(points, r.lr_steepest), kTrueSteepest, 4);
  EXPECT_NEAR(IndexOf(points, r.lr_lowest), kTrueMinimum, 4);
  // The causal EMA alone would have put the minimum > 10 points late.
  const auto causal_min =
      std::min_element(r.smoothed.begin(), r.smoothed.begin() + r.points_used);
  EXPECT_GT(causal_min - r.smoothed.begin(), kTrueMinimum + 10);
  // fastai's suggestions read fastai's own causal curve: its minimum sits
  // as late as the causal EMA's, its valley before it.
  EXPECT_GT(r.lr_minimum * 10, points[kTrueMinimum + 10].lr * (1 - 1e-12));
  EXPECT_LT(r.lr_valley, r.lr_minimum * 10);
  EXPECT_FALSE(std::isnan(r.lr_steep));
  // max_lr: the right end of the loss's floor, past the minimum but before
  // the rise (and at most a tenth of the last LR before divergence). It
  // was the floor's left end, up to 12 points below the minimum, until the
  // quality study (docs/analysis.md, "The quality study": the left end was
  // 0.5 decade low on average, rows mlp-fmnist-adamw-b128 and
  // mlp-fmnist-rmsprop-b128 1 to 1.5 decades).
  const int64_t max_at = IndexOf(points, r.max_lr);
  EXPECT_GE(max_at, kTrueMinimum);
  EXPECT_LE(max_at, kTrueMinimum + 8);
  EXPECT_LE(r.max_lr, points[static_cast<size_t>(r.points_used - 1)].lr / 10);
  EXPECT_GE(r.max_lr / r.min_lr, 3.0 - 1e-12);
  EXPECT_LE(r.max_lr / r.min_lr, 10.0 + 1e-12);
  EXPECT_DOUBLE_EQ(r.one_cycle.max_lr, r.max_lr);
  EXPECT_DOUBLE_EQ(r.max_lr_low, r.max_lr);  // one curve: no interval
  EXPECT_DOUBLE_EQ(r.max_lr_high, r.max_lr);
  EXPECT_NEAR(r.one_cycle.div_factor, r.max_lr / r.min_lr,
              1e-11 * r.one_cycle.div_factor);
  EXPECT_EQ(r.one_cycle.base_momentum, 0.85);
  EXPECT_EQ(r.one_cycle.max_momentum, 0.95);
  EXPECT_FALSE(std::isnan(r.lr_slide));
}

TEST(DivergenceMarginTest, OneOverOneMinusMomentumWithinTwoAndTen) {
  EXPECT_DOUBLE_EQ(DivergenceMargin(std::nullopt), 10.0);  // read as 0.9
  EXPECT_DOUBLE_EQ(DivergenceMargin(0.9), 10.0);
  EXPECT_DOUBLE_EQ(DivergenceMargin(0.99), 10.0);
  EXPECT_DOUBLE_EQ(DivergenceMargin(0.8), 5.0);
  EXPECT_DOUBLE_EQ(DivergenceMargin(0.6), 2.5);
  EXPECT_DOUBLE_EQ(DivergenceMargin(0.5), 2.0);
  EXPECT_DOUBLE_EQ(DivergenceMargin(0.0), 2.0);
}

// Adam's and AdamW's max_lr scales as sqrt(batch / 128), never above the
// divergence cap (quality study, both replicates: 0.22 -> 0.18 points
// behind the oracle on average; mlp-digits-adamw-b32 and
// mlp-fmnist-adam-b32 read 2.5-3.5x the best LR at batch 32 before it).
TEST(AdamBatchScaleTest, SquareRootOfTheBatchOver128UnderAdamOnly) {
  AnalysisOptions o;
  o.batch_size = 32;
  EXPECT_EQ(AdamBatchScale(o), 1.0);  // not Adam
  o.adam_family = true;
  EXPECT_DOUBLE_EQ(AdamBatchScale(o), 0.5);
  o.batch_size = 512;
  EXPECT_DOUBLE_EQ(AdamBatchScale(o), 2.0);
  o.batch_size = 0;
  EXPECT_EQ(AdamBatchScale(o), 1.0);  // unknown

  const auto points = MakeCurve(UCurve);
  AnalysisOptions adam;
  adam.momentum = 0.9;
  adam.adam_family = true;
  const Recommendation base = Analyze(points, adam);
  adam.batch_size = 32;
  const Recommendation small = Analyze(points, adam);
  EXPECT_DOUBLE_EQ(small.max_lr, 0.5 * base.max_lr);
  EXPECT_DOUBLE_EQ(small.one_cycle.max_lr, small.max_lr);
  EXPECT_LE(small.min_lr, small.max_lr / 3);
  // Large batches stop at the cap: the last LR before divergence / 10.
  adam.batch_size = 1 << 20;
  const Recommendation huge = Analyze(points, adam);
  EXPECT_DOUBLE_EQ(huge.max_lr,
                   points[static_cast<size_t>(huge.diverged_at - 1)].lr / 10);
  adam.batch_size = -1;
  EXPECT_FALSE(AnalyzeCurve(points, adam).ok());
}

// The same curve read under momentum 0.9 and under none.
std::pair<Recommendation, Recommendation> AnalyzeHeavyAndPlain(
    const std::vector<CurvePoint>& points) {
  AnalysisOptions heavy;
  heavy.momentum = 0.9;
  AnalysisOptions plain;
  plain.momentum = 0.0;
  return {Analyze(points, heavy), Analyze(points, plain)};
}

// A floor that runs flat almost to the blow-up: max_lr is the divergence
// cap, a tenth of the last LR before divergence under momentum 0.9 and a
// half without. The quality study's rows without momentum chose the half
// (docs/analysis.md section 4; bench/quality/rule_screen.md section 5:
// cnn-fmnist-sgd-b128 3 epochs 0.65 -> 0.09 points behind the oracle,
// mlp-fmnist-sgd-b512 3 epochs 0.53 -> 0.05; a third before 2026-12-07).
TEST(AnalyzeCurveTest, WithoutMomentumMaxLrStaysHalfBelowDivergence) {
  const auto points = MakeCurve([](double lr) {
    const double x = std::log10(lr);
    return 2.3 - 2.0 / (1.0 + std::exp(-(x + 4.0) * 4.0)) +
           std::exp((x - 0.6) * 25.0);
  });
  const auto [h, p] = AnalyzeHeavyAndPlain(points);
  ASSERT_GT(h.diverged_at, 0);
  ASSERT_EQ(p.diverged_at, h.diverged_at);  // the same curve, read again
  const double last = points[static_cast<size_t>(h.points_used - 1)].lr;
  EXPECT_DOUBLE_EQ(h.max_lr, last / 10);
  EXPECT_DOUBLE_EQ(p.max_lr, last / 2);
  EXPECT_DOUBLE_EQ(Analyze(points).max_lr, h.max_lr);  // unset: 0.9
}

// A floor that ends long before the divergence cap: without momentum
// max_lr reads its right end x 1.2, with momentum the right end itself
// (the same study rows as above: without momentum the best LR sits past
// the floor's right end).
TEST(AnalyzeCurveTest, WithoutMomentumMaxLrReadsPastTheFloor) {
  const auto points = MakeCurve([](double lr) {
    const double x = std::log10(lr);
    return 2.3 - 2.0 / (1.0 + std::exp(-(x + 4.0) * 4.0)) +
           0.5 / (1.0 + std::exp(-(x + 2.0) * 6.0)) +
           std::exp((x - 0.6) * 25.0);
  });
  const auto [h, p] = AnalyzeHeavyAndPlain(points);
  ASSERT_GT(h.diverged_at, 0);
  const double last = points[static_cast<size_t>(h.points_used - 1)].lr;
  ASSERT_LT(h.max_lr, last / 10);  // the floor's right end, not the cap
  EXPECT_GT(h.max_lr, 1e-3);
  EXPECT_LT(h.max_lr, 1e-2);
  EXPECT_NEAR(p.max_lr, 1.2 * h.max_lr, 1e-12 * h.max_lr);
}

// PositionCurve is the curve the suggestions were read from: it ends where
// the analysis stopped and its minimum is the minimum suggestion's point.
TEST(PositionCurveTest, IsWhatTheAnalysisRead) {
  const auto points = MakeCurve(UCurve, 100, 0.05, 5);
  const Recommendation r = Analyze(points);
  auto [lrs, losses] = Split(points);
  const std::vector<double> z = PositionCurve(lrs, losses, AnalysisOptions{});
  ASSERT_EQ(static_cast<int64_t>(z.size()), r.points_used);
  ASSERT_LT(r.points_used, static_cast<int64_t>(points.size()));
  EXPECT_EQ(r.position, z);  // carried for plots (Recommendation.position)
  EXPECT_EQ(std::min_element(z.begin(), z.end()) - z.begin(),
            IndexOf(points, r.lr_lowest));
  // A curve that never diverges is used whole.
  losses.resize(static_cast<size_t>(kTrueMinimum));
  EXPECT_EQ(PositionCurve(lrs, losses, AnalysisOptions{}).size(),
            losses.size());
}

// The zero-lag span is a tenth of a decade, times clamp(sigma / (0.005 D),
// 1, 3) (docs/analysis.md section 2): a straight, noiseless descent keeps
// the tenth; noise 0.1 on a drop of 2 gets three tenths. Quality study:
// with the tenth alone, the seeds of 12 of 48 range tests read max_lr over
// 0.3 decade apart; with the widening, 2.
TEST(PositionCurveTest, SpanIsATenthOfADecadeWidenedByTheNoise) {
  auto zero_lag = [](const std::vector<double>& lrs,
                     const std::vector<double>& losses, double tenths) {
    const double per_decade = static_cast<double>(lrs.size() - 1) /
                              std::log10(lrs.back() / lrs.front());
    return SmoothZeroLag(RunningMedian(losses, 2),
                         1.0 - 1.0 / std::max(1.0, 0.1 * tenths * per_decade));
  };
  // Never diverges (cut at the minimum), so the whole curve is read.
  auto noisy = MakeCurve(UCurve, 100, 0.1, 7);
  noisy.resize(static_cast<size_t>(kTrueMinimum));
  const auto [lrs, losses] = Split(noisy);
  const std::vector<double> z = PositionCurve(lrs, losses, AnalysisOptions{});
  EXPECT_EQ(z, zero_lag(lrs, losses, 3.0));
  EXPECT_NE(z, zero_lag(lrs, losses, 1.0));

  std::vector<CurvePoint> line = MakeCurve(UCurve, 60);
  for (size_t i = 0; i < line.size(); ++i) {
    line[i].loss = 2.3 - 0.01 * static_cast<double>(i);
  }
  const auto [line_lrs, line_losses] = Split(line);
  EXPECT_EQ(PositionCurve(line_lrs, line_losses, AnalysisOptions{}),
            zero_lag(line_lrs, line_losses, 1.0));
}

TEST(AnalyzeCurveTest, SeededNoiseMovesSuggestionsLittle) {
  const auto points = MakeCurve(UCurve, 100, 0.1, 7);
  const Recommendation r = Analyze(points);
  EXPECT_NEAR(IndexOf(points, r.lr_steepest), kTrueSteepest, 6);
  EXPECT_NEAR(IndexOf(points, r.lr_lowest), kTrueMinimum, 6);
  // The floor's right end (see the clean test above; it was
  // kTrueMinimum - 5 under the floor's-left-end rule).
  EXPECT_NEAR(IndexOf(points, r.max_lr), kTrueMinimum + 7, 8);
  EXPECT_FALSE(HasWarning(r, "never_decreased"));
  EXPECT_FALSE(HasWarning(r, "noisy_curve"));  // noise 0.1 vs a 2.0 drop
}

TEST(AnalyzeCurveTest, HeavyNoiseIsFlagged) {
  const Recommendation r = Analyze(MakeCurve(UCurve, 100, 1.0, 3));
  EXPECT_TRUE(HasWarning(r, "noisy_curve") || HasWarning(r, "never_decreased"));
}

TEST(AnalyzeCurveTest, EarlySpikeNeitherDivergesNorMovesTheBounds) {
  const auto clean = MakeCurve(UCurve);
  auto spiky = clean;
  spiky[5].loss += 5.0;  // 7.3: a bad batch at the start
  const Recommendation a = Analyze(clean);
  const Recommendation b = Analyze(spiky);
  EXPECT_EQ(b.diverged_at, a.diverged_at);
  EXPECT_NEAR(IndexOf(spiky, b.max_lr), IndexOf(clean, a.max_lr), 1);
  EXPECT_NEAR(IndexOf(spiky, b.lr_steepest), kTrueSteepest, 4);
  EXPECT_NEAR(IndexOf(spiky, b.lr_lowest), kTrueMinimum, 4);
}

// lrtune's steepest is the descent to the lowest point: a blow-up past the
// floor and the drop back from it (below the divergence rule) do not move
// it. Read over the whole curve, the drop won: 43 of the quality study's
// 144 seed curves put steepest past the lowest point.
TEST(AnalyzeCurveTest, SteepestIsOnTheWayDownNotTheRecoveryFromABlowUp) {
  auto points = MakeCurve(UCurve);
  for (int i = 66; i <= 69; ++i) points[static_cast<size_t>(i)].loss += 3.0;
  const Recommendation r = Analyze(points);
  ASSERT_GT(r.diverged_at, 72);  // the bump is too short to end the curve
  EXPECT_NEAR(IndexOf(points, r.lr_steepest), kTrueSteepest, 4);
  EXPECT_NEAR(IndexOf(points, r.lr_lowest), kTrueMinimum, 4);
}

// The same on a real curve: Adam on the MLP (quality study row
// mlp-fmnist-adam-b128, seed 0) blows up near lr 0.04 and falls back to
// chance before the divergence rule fires; its steepest read 0.078 there,
// 30x its lowest point (0.0024).
TEST(AnalyzeCurveTest, SteepestOfARecordedAdamCurveIsBelowItsLowest) {
  const nlohmann::json golden = GoldenAnalysis();
  bool found = false;
  for (const nlohmann::json& c : golden.at("recorder_cases")) {
    if (c.at("name") != "mlp-fmnist-adam-b128-seed0") continue;
    found = true;
    const Recommendation r = Analyze(RecordedPoints(c));
    ASSERT_TRUE(std::isfinite(r.lr_steepest));
    EXPECT_LT(r.lr_steepest, r.lr_lowest);
    EXPECT_LT(r.lr_steepest, r.max_lr);
    EXPECT_GT(r.lr_steepest, 1e-5);  // on the descent, not the plateau
  }
  EXPECT_TRUE(found);
}

TEST(AnalyzeCurveTest, NanInTheMiddleEndsTheCurveThere) {
  auto points = MakeCurve(UCurve);
  points[50].loss = NAN;
  const Recommendation r = Analyze(points);
  EXPECT_EQ(r.diverged_at, 50);
  EXPECT_EQ(r.points_used, 50);
  EXPECT_TRUE(HasWarning(r, "nonfinite_loss"));
  EXPECT_FALSE(HasWarning(r, "never_diverged"));
  EXPECT_TRUE(std::isfinite(r.smoothed[50]));  // the value before the NaN
  EXPECT_TRUE(std::isnan(r.smoothed[51]));
  EXPECT_LE(IndexOf(points, r.lr_lowest), 49);
  EXPECT_LE(IndexOf(points, r.max_lr), 49);
  // Cut 13 points after the steepest point, the curve's right edge (where
  // no smoother has points on both sides) pulls it 0.4 decade right.
  EXPECT_NEAR(IndexOf(points, r.lr_steepest), kTrueSteepest, 6);
}

TEST(AnalyzeCurveTest, NeverDecreasingCurveGivesNoBounds) {
  const Recommendation r =
      Analyze(MakeCurve([](double lr) { return 1.0 + std::log10(lr) / 20; }));
  EXPECT_TRUE(HasWarning(r, "never_decreased"));
  EXPECT_EQ(r.max_lr, 0.0);
  EXPECT_EQ(r.min_lr, 0.0);
  EXPECT_EQ(r.one_cycle.max_lr, 0.0);
}

TEST(AnalyzeCurveTest, MonotoneDecreaseWarnsNeverDiverged) {
  const Recommendation r =
      Analyze(MakeCurve([](double lr) { return 3.0 - std::log10(lr) / 10; }));
  EXPECT_EQ(r.diverged_at, -1);
  EXPECT_EQ(r.points_used, 100);
  EXPECT_TRUE(HasWarning(r, "never_diverged"));
  EXPECT_FALSE(HasWarning(r, "never_decreased"));
  EXPECT_TRUE(Contains(r.warnings[0].message, "raise end_lr"));
}

// bench/quality, cnn-fmnist-sgdm-b128 seed 0: the loss went back to chance
// late in the ramp, but the divergence rule's lagging EMA never crossed, so
// its max_lr had no cap (0.11, where the seeds that diverged read 0.03-0.04
// and 1cycle at 0.1 lost a seed). The warning says so and gives the cap.
TEST(AnalyzeCurveTest, AReturnTheRuleMissedIsNamedWithItsCap) {
  const auto points = MakeCurve(
      [](double lr) {
        const double x = std::log10(lr);
        return 2.3 - 1.8 / (1.0 + std::exp(-(x + 4.0) * 2.5)) +
               2.0 * std::clamp((x - 0.75) / 0.15, 0.0, 1.0);
      },
      300);
  AnalysisOptions options;
  options.momentum = 0.9;
  const Recommendation r = Analyze(points, options);
  EXPECT_EQ(r.diverged_at, -1);
  ASSERT_TRUE(HasWarning(r, "never_diverged"));
  const std::string& message = r.warnings[0].message;
  EXPECT_TRUE(Contains(message, "came back to its starting level by lr"))
      << message;
  const size_t at = message.find("at most ");
  ASSERT_NE(at, std::string::npos) << message;
  const double cap = std::stod(message.substr(at + 8));
  // The loss is back up from log10 lr 0.75 on: the cap is a tenth of that.
  EXPECT_GT(cap, std::pow(10.0, 0.75) / 10);
  EXPECT_LT(cap, 1.0);
  EXPECT_GT(r.max_lr, cap);  // the rule itself is unchanged: uncapped
}

TEST(AnalyzeCurveTest, DivergesAtStep3) {
  auto points = MakeCurve([](double) { return 1.0; }, 30);
  for (size_t i = 3; i < points.size(); ++i) points[i].loss = 100.0;
  const Recommendation r = Analyze(points);
  EXPECT_EQ(r.diverged_at, 3);
  EXPECT_EQ(r.points_used, 3);
  EXPECT_TRUE(HasWarning(r, "too_few_points"));
  EXPECT_TRUE(HasWarning(r, "never_decreased"));
  EXPECT_TRUE(std::isnan(r.lr_slide));  // needs 16 points
  EXPECT_TRUE(std::isnan(r.smoothed[4]));
}

TEST(AnalyzeCurveTest, NonFiniteFirstLossLeavesNothingToRead) {
  auto points = MakeCurve(UCurve, 10);
  points[0].loss = INFINITY;
  const Recommendation r = Analyze(points);
  EXPECT_EQ(r.diverged_at, 0);
  EXPECT_EQ(r.points_used, 0);
  EXPECT_TRUE(HasWarning(r, "nonfinite_loss"));
  EXPECT_TRUE(std::isnan(r.lr_valley));
}

TEST(AnalyzeCurveTest, NegativeLossesGiveTheSamePositions) {
  const auto positive = MakeCurve(UCurve);
  const auto negative = MakeCurve([](double lr) { return UCurve(lr) - 5.0; });
  const Recommendation a = Analyze(positive);
  const Recommendation b = Analyze(negative);
  ASSERT_GE(b.diverged_at, 0) << "the negative curve must diverge too";
  EXPECT_GT(b.diverged_at, kTrueMinimum);
  EXPECT_FALSE(HasWarning(b, "never_decreased"));
  EXPECT_NEAR(IndexOf(negative, b.lr_steepest), kTrueSteepest, 4);
  EXPECT_NEAR(IndexOf(negative, b.lr_lowest), kTrueMinimum, 4);
  EXPECT_NEAR(IndexOf(negative, b.max_lr), IndexOf(positive, a.max_lr), 2);
  // fastai stops its test at once on a negative loss (4 x a negative best
  // is below it), so it has no suggestions to give, and neither does lrtune
  // under fastai's names.
  EXPECT_FALSE(std::isnan(a.lr_valley));
  EXPECT_TRUE(std::isnan(b.lr_valley));
  EXPECT_TRUE(std::isnan(b.lr_steep));
}

TEST(AnalyzeCurveTest, StepsizeInIterationsAndEpochs) {
  AnalysisOptions o;
  o.iters_per_epoch = 500;
  o.stepsize_k = 6;
  Recommendation r = Analyze(MakeCurve(UCurve), o);
  EXPECT_EQ(r.stepsize_iterations, 3000);
  EXPECT_DOUBLE_EQ(r.stepsize_epochs, 6.0);
  r = Analyze(MakeCurve(UCurve));  // unknown epoch length
  EXPECT_EQ(r.stepsize_iterations, 4);
  EXPECT_EQ(r.stepsize_epochs, 0.0);
}

TEST(AnalyzeCurveTest, BadInputNamesTheFieldAndRule) {
  auto status_of = [](std::vector<CurvePoint> p, AnalysisOptions o) {
    return AnalyzeCurve(p, o).status();
  };
  const auto good = MakeCurve(UCurve, 30);
  EXPECT_PRED2(Contains, std::string(status_of({}, {}).message()), "empty");
  auto bad = good;
  bad[4].lr = -1.0;
  EXPECT_PRED2(Contains, std::string(status_of(bad, {}).message()),
               "points[4].lr");
  bad = good;
  bad[7].lr = NAN;
  EXPECT_PRED2(Contains, std::string(status_of(bad, {}).message()),
               "finite and > 0");
  bad = good;
  bad[9].lr = bad[8].lr;
  EXPECT_PRED2(Contains, std::string(status_of(bad, {}).message()),
               "greater than");
  AnalysisOptions o;
  o.stepsize_k = 11;
  EXPECT_PRED2(Contains, std::string(status_of(good, o).message()),
               "stepsize_k");
  o.stepsize_k = 1;
  EXPECT_EQ(status_of(good, o).code(), absl::StatusCode::kInvalidArgument);
  o = {};
  o.smoothing_beta = 1.0;
  EXPECT_PRED2(Contains, std::string(status_of(good, o).message()),
               "smoothing_beta");
  o = {};
  o.divergence_factor = 1.0;
  EXPECT_PRED2(Contains, std::string(status_of(good, o).message()),
               "divergence_factor");
  o = {};
  o.skip_head_fraction = 1.0;
  EXPECT_PRED2(Contains, std::string(status_of(good, o).message()),
               "skip_head_fraction");
  o = {};
  o.momentum = 1.0;
  EXPECT_PRED2(Contains, std::string(status_of(good, o).message()), "momentum");
  o = {};
  o.iters_per_epoch = -1;
  EXPECT_PRED2(Contains, std::string(status_of(good, o).message()),
               "iters_per_epoch");
}

// fastai parity: on whole recorded range tests (two real ones from the
// quality study, one synthetic), the fastai-named suggestions are what
// fastai's lr_find pipeline gives, as scripts/gen_golden_analysis.py runs
// it (recorder EMA, stop at 4 x best, [num_it // 10 : -5], the four
// functions), to the last bit of the LR they pick.
TEST(AnalyzeCurveTest, FastaiNamedSuggestionsAreFastaisOnTheSameCurve) {
  const nlohmann::json golden = GoldenAnalysis();
  ASSERT_GE(golden.at("recorder_cases").size(), 3u);
  for (const nlohmann::json& c : golden.at("recorder_cases")) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    AnalysisOptions o;
    o.planned_steps = c.at("num_it").get<int64_t>();
    const Recommendation r = Analyze(RecordedPoints(c), o);
    auto expect_lr = [](const nlohmann::json& want, double got,
                        const char* name) {
      if (want.is_null()) {
        EXPECT_TRUE(std::isnan(got)) << name;
      } else {
        EXPECT_EQ(got, want.get<double>()) << name;
      }
    };
    expect_lr(c.at("valley_lr"), r.lr_valley, "valley");
    expect_lr(c.at("slide_lr"), r.lr_slide, "slide");
    expect_lr(c.at("minimum_lr"), r.lr_minimum, "minimum");
    expect_lr(c.at("steep_lr"), r.lr_steep, "steep");
  }
}

// The ready-to-use schedules: four CLR cycles without a budget; with one,
// they span it, the cyclical ones in whole cycles ending at a trough.
TEST(RecommendSchedulesTest, SpanTheBudgetWhenGiven) {
  Recommendation rec;
  rec.min_lr = 0.005;
  rec.max_lr = 0.05;
  rec.stepsize_iterations = 400;
  rec.one_cycle.max_lr = 0.05;
  rec.one_cycle.div_factor = 10;
  std::optional<RecommendedSchedules> four = RecommendSchedules(rec);
  ASSERT_TRUE(four.has_value());
  EXPECT_EQ(four->total_steps, 3200);
  EXPECT_EQ(four->triangular.step_size_up, 400);
  EXPECT_EQ(four->sgdr.t0, 800);
  EXPECT_EQ(four->one_cycle.total_steps, 3200);
  // 3 epochs of 469 steps: 1407 steps.
  std::optional<RecommendedSchedules> budget = RecommendSchedules(rec, 1407);
  ASSERT_TRUE(budget.has_value());
  EXPECT_EQ(budget->total_steps, 1407);
  EXPECT_EQ(budget->one_cycle.total_steps, 1407);
  EXPECT_EQ(budget->rex.total_steps, 1407);
  // floor(1407 / 800) = 1 cycle: step_size_up = ceil(1407 / 2) = 704.
  EXPECT_EQ(budget->triangular.step_size_up, 704);
  // Periods t0 + 2 t0 >= 800 each is too many (3 x 800 > 1407): one period.
  EXPECT_EQ(budget->sgdr.t0, 1407);
  std::optional<RecommendedSchedules> long_budget =
      RecommendSchedules(rec, 10 * 469);
  ASSERT_TRUE(long_budget.has_value());
  // 4690 / 800 = 5 cycles of 2 x 469.
  EXPECT_EQ(long_budget->triangular.step_size_up, 469);
  // 1 + 2 + 4 = 7 periods of >= 800 would need 5600: two (3 x 800 <= 4690).
  EXPECT_EQ(long_budget->sgdr.t0, 1564);
}

Recommendation Rec(double min_lr, double max_lr, double valley) {
  Recommendation r;
  r.min_lr = min_lr;
  r.max_lr = max_lr;
  r.lr_valley = valley;
  r.points_used = 90;
  return r;
}

TEST(AggregateSeedsTest, MedianInLogSpaceAndSpreadInDecades) {
  std::vector<Recommendation> seeds = {
      Rec(1e-3, 1e-2, 1e-3), Rec(2e-3, 1.2e-2, 1e-1), Rec(1.5e-3, 0.9e-2, NAN)};
  seeds[1].warnings.push_back({"never_diverged", "raise end_lr"});
  seeds[2].warnings.push_back({"never_diverged", "raise end_lr"});
  absl::StatusOr<Recommendation> r = AggregateSeeds(seeds);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_DOUBLE_EQ(r->max_lr, 1e-2);
  EXPECT_DOUBLE_EQ(r->min_lr, 1.5e-3);
  EXPECT_NEAR(r->lr_valley, 1e-2, 1e-15);  // even count: geometric mean
  EXPECT_NEAR(r->spread_decades, std::log10(2.0), 1e-12);
  EXPECT_DOUBLE_EQ(r->max_lr_low, 0.9e-2);  // the interval across seeds
  EXPECT_DOUBLE_EQ(r->max_lr_high, 1.2e-2);
  EXPECT_EQ(r->seeds, 3);
  ASSERT_EQ(r->warnings.size(), 1u);
  EXPECT_EQ(r->warnings[0].code, "never_diverged");
  EXPECT_PRED2(Contains, std::string(r->warnings[0].message), "2 of 3 seeds");
  EXPECT_FALSE(HasWarning(*r, "too_noisy"));
}

TEST(AggregateSeedsTest, SpreadOverHalfADecadeIsTooNoisy) {
  absl::StatusOr<Recommendation> r =
      AggregateSeeds({Rec(1e-3, 1e-2, 1e-3), Rec(1e-3, 4e-2, 1e-3)});
  ASSERT_TRUE(r.ok());
  EXPECT_NEAR(r->spread_decades, std::log10(4.0), 1e-12);
  EXPECT_TRUE(HasWarning(*r, "too_noisy"));
  EXPECT_LE(r->max_lr / r->min_lr, 10.0 + 1e-9);  // bounds re-clamped
}

TEST(AggregateSeedsTest, DivergenceIsTheEarliestAmongSeedsThatDiverged) {
  std::vector<Recommendation> seeds = {
      Rec(1e-3, 1e-2, 1e-3), Rec(1e-3, 1e-2, 1e-3), Rec(1e-3, 1e-2, 1e-3)};
  seeds[0].diverged_at = 240;
  seeds[1].diverged_at = -1;
  seeds[2].diverged_at = 231;
  absl::StatusOr<Recommendation> r = AggregateSeeds(seeds);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->diverged_at, 231);
  seeds[0].diverged_at = seeds[2].diverged_at = -1;
  r = AggregateSeeds(seeds);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->diverged_at, -1);
}

TEST(AggregateSeedsTest, EmptyListIsAnError) {
  EXPECT_EQ(AggregateSeeds({}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace lrtune
