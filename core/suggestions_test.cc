#include "core/suggestions.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace lrtune {
namespace {

// fastai's valley as written there: O(n^2), kept as the reference the fast
// version must match.
int64_t QuadraticValleyIndex(const std::vector<double>& losses) {
  const int64_t n = static_cast<int64_t>(losses.size());
  std::vector<int64_t> lds(losses.size(), 1);
  int64_t start = 0, end = 0;
  for (int64_t i = 1; i < n; ++i) {
    for (int64_t j = 0; j < i; ++j) {
      if (losses[i] < losses[j] && lds[i] < lds[j] + 1) lds[i] = lds[j] + 1;
      if (lds[end] < lds[i]) {
        end = i;
        start = end - lds[end];
      }
    }
  }
  const double sections = static_cast<double>(end - start) / 3.0;
  int64_t idx = start + static_cast<int64_t>(sections) +
                static_cast<int64_t>(sections / 2.0);
  return idx < 0 ? idx + n : idx;
}

nlohmann::json LoadGolden() {
  std::ifstream in(std::string(LRTUNE_SOURCE_DIR) +
                   "/tests/golden/analysis_fastai.json");
  EXPECT_TRUE(in.good()) << "run scripts/gen_golden_analysis.py";
  std::stringstream text;
  text << in.rdbuf();
  return nlohmann::json::parse(text.str());
}

TEST(FastaiParityTest, MatchesGoldenVectorsIndexForIndex) {
  const nlohmann::json golden = LoadGolden();
  ASSERT_GE(golden["cases"].size(), 10u);
  for (const nlohmann::json& c : golden["cases"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    const auto lrs = c["lrs"].get<std::vector<double>>();
    const auto losses = c["losses"].get<std::vector<double>>();

    absl::StatusOr<int64_t> valley = ComputeValleyIndex(losses);
    ASSERT_TRUE(valley.ok()) << valley.status();
    EXPECT_EQ(*valley, c["valley_index"].get<int64_t>());
    EXPECT_EQ(lrs[*valley], c["valley_lr"].get<double>());

    absl::StatusOr<int64_t> minimum = ComputeMinimumIndex(losses);
    ASSERT_TRUE(minimum.ok());
    EXPECT_EQ(*minimum, c["minimum_index"].get<int64_t>());
    EXPECT_EQ(lrs[*minimum] / 10.0, c["minimum_lr"].get<double>());

    absl::StatusOr<int64_t> slide = ComputeSlideIndex(losses);
    if (c["slide_index"].is_null()) {
      EXPECT_FALSE(slide.ok()) << "fastai raises on this vector";
    } else {
      ASSERT_TRUE(slide.ok()) << slide.status();
      EXPECT_EQ(*slide, c["slide_index"].get<int64_t>());
      EXPECT_EQ(lrs[*slide], c["slide_lr"].get<double>());
    }

    if (!c["steep_index"].is_null()) {
      absl::StatusOr<int64_t> steep = ComputeSteepIndex(lrs, losses);
      ASSERT_TRUE(steep.ok()) << steep.status();
      EXPECT_EQ(*steep, c["steep_index"].get<int64_t>());
    }
  }
}

TEST(ValleyTest, FastVersionEqualsQuadraticOnRandomVectors) {
  std::mt19937_64 rng(12345);
  for (int trial = 0; trial < 2000; ++trial) {
    const int n = 1 + static_cast<int>(rng() % 120);
    std::vector<double> losses(static_cast<size_t>(n));
    const bool with_ties = trial % 2 == 0;
    std::uniform_real_distribution<double> uniform(-3.0, 3.0);
    for (double& v : losses) {
      v = with_ties ? static_cast<double>(rng() % 6) : uniform(rng);
    }
    if (trial % 5 == 0) {  // a trend, so long runs exist
      for (int i = 0; i < n; ++i) losses[static_cast<size_t>(i)] -= 0.05 * i;
    }
    absl::StatusOr<int64_t> fast = ComputeValleyIndex(losses);
    ASSERT_TRUE(fast.ok());
    ASSERT_EQ(*fast, QuadraticValleyIndex(losses)) << "trial " << trial;
  }
}

TEST(ValleyTest, PicksTheFirstLongestRunAndWrapsLikePython) {
  // Two runs of length 3: fastai keeps the first.
  EXPECT_EQ(*ComputeValleyIndex({3, 2, 1, 5, 4, 3}),
            QuadraticValleyIndex({3, 2, 1, 5, 4, 3}));
  // Longest run (0, 1) of length 2: start = -1, index -1 = the last point.
  EXPECT_EQ(*ComputeValleyIndex({5, 4, 6, 7, 8}), 4);
  // No decrease at all: fastai's initial (0, 0) stays.
  EXPECT_EQ(*ComputeValleyIndex({1, 2, 3}), 0);
  EXPECT_FALSE(ComputeValleyIndex({}).ok());
}

TEST(SlideTest, RejectsTooShortCurvesAndBadWindow) {
  EXPECT_FALSE(ComputeSlideIndex(std::vector<double>(15, 1.0)).ok());
  EXPECT_TRUE(ComputeSlideIndex(std::vector<double>(16, 1.0)).ok());
  EXPECT_FALSE(ComputeSlideIndex(std::vector<double>(16, 1.0), 0).ok());
  // Flat gradient: the window's first test fails, so its left point stays.
  EXPECT_EQ(*ComputeSlideIndex(std::vector<double>(30, 1.0)), 14);
}

TEST(SteepestTest, CentralDifferencesSkipHeadAndLastPoint) {
  std::vector<double> lrs, losses;
  for (int i = 0; i < 10; ++i) {
    lrs.push_back(std::pow(10.0, -5 + 0.5 * i));
    losses.push_back(1.0);
  }
  losses[3] = 0.0;  // steepest central difference is at index 2
  losses[9] = -50;  // the last point: skipped even though it drops most
  absl::StatusOr<int64_t> i = ComputeSteepestIndex(lrs, losses, 0);
  ASSERT_TRUE(i.ok());
  EXPECT_EQ(*i, 2);
  // Head 0..2 skipped: index 3 is now an end (one-sided, rising), 4 rises
  // too, 5..8 are flat; the first flat one wins.
  EXPECT_EQ(*ComputeSteepestIndex(lrs, losses, 3), 5);
  EXPECT_TRUE(ComputeSteepestIndex(lrs, losses, 7).ok());
  EXPECT_FALSE(ComputeSteepestIndex(lrs, losses, 8).ok());
  EXPECT_FALSE(ComputeSteepestIndex({1e-3}, {1.0, 2.0}, 0).ok());
  EXPECT_FALSE(ComputeSteepIndex({1e-3, -1.0}, {1.0, 2.0}).ok());
}

TEST(SmoothZeroLagTest, KeepsASymmetricBumpInPlace) {
  // A Gaussian dip centred at 150 of 300: the causal EMA's minimum is late,
  // the zero-lag one is not.
  std::vector<double> v(300);
  for (int i = 0; i < 300; ++i) {
    v[static_cast<size_t>(i)] = -std::exp(-std::pow((i - 150) / 20.0, 2));
  }
  const std::vector<double> z = SmoothZeroLag(v, 0.98);
  const auto argmin = [](const std::vector<double>& x) {
    return std::min_element(x.begin(), x.end()) - x.begin();
  };
  EXPECT_NEAR(argmin(z), 150, 2);
  std::vector<double> causal(300);
  double avg = 0, pow = 1;
  for (size_t i = 0; i < v.size(); ++i) {
    avg = 0.98 * avg + 0.02 * v[i];
    pow *= 0.98;
    causal[i] = avg / (1 - pow);
  }
  EXPECT_GT(argmin(causal), 165);
  EXPECT_EQ(SmoothZeroLag(v, 0.0), v);
}

}  // namespace
}  // namespace lrtune
