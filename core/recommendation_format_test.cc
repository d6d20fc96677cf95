#include "core/recommendation_format.h"

#include <cmath>
#include <limits>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace lrtune {
namespace {

Recommendation Sample() {
  Recommendation r;
  r.min_lr = 0.1 / 3;
  r.max_lr = 0.1;
  r.stepsize_iterations = 1876;
  r.stepsize_epochs = 4;
  r.lr_steepest = 0.021;
  r.lr_valley = 0.012;
  r.lr_minimum = 0.015;
  r.lr_slide = std::numeric_limits<double>::quiet_NaN();
  r.one_cycle.max_lr = 0.1;
  r.one_cycle.div_factor = 3;
  r.diverged_at = 181;
  r.points_used = 181;
  r.seeds = 3;
  r.spread_decades = 0.25;
  r.max_lr_low = 0.08;
  r.max_lr_high = 0.125;
  r.warnings.push_back({"too_noisy", "seeds \"disagree\"\nby 0.7 decades"});
  return r;
}

TEST(RecommendationFormatTest, JsonParsesAndRoundTripsNumbers) {
  const Recommendation r = Sample();
  const nlohmann::json j = nlohmann::json::parse(RecommendationToJson(r));
  EXPECT_EQ(j["min_lr"].get<double>(), r.min_lr);  // exact round trip
  EXPECT_EQ(j["max_lr"].get<double>(), 0.1);
  EXPECT_EQ(j["stepsize_iterations"].get<int64_t>(), 1876);
  EXPECT_TRUE(j["lr_slide"].is_null());
  EXPECT_EQ(j["one_cycle"]["div_factor"].get<double>(), 3);
  EXPECT_EQ(j["diverged_at"].get<int64_t>(), 181);
  EXPECT_EQ(j["seeds"].get<int>(), 3);
  EXPECT_EQ(j["max_lr_low"].get<double>(), 0.08);
  EXPECT_EQ(j["max_lr_high"].get<double>(), 0.125);
  ASSERT_EQ(j["warnings"].size(), 1u);
  EXPECT_EQ(j["warnings"][0]["message"].get<std::string>(),
            "seeds \"disagree\"\nby 0.7 decades");
}

TEST(RecommendationFormatTest, JsonNumberIsShortestRoundTrip) {
  EXPECT_EQ(JsonNumber(0.1), "0.1");
  EXPECT_EQ(JsonNumber(1e-7), "1e-07");
  EXPECT_EQ(JsonNumber(std::numeric_limits<double>::infinity()), "null");
  const double third = 1.0 / 3;
  EXPECT_EQ(std::strtod(JsonNumber(third).c_str(), nullptr), third);
}

TEST(RecommendationFormatTest, TextNamesBoundsSeedsAndWarnings) {
  const std::string text = FormatRecommendation(Sample());
  EXPECT_NE(text.find("min_lr 0.0333   max_lr 0.1"), std::string::npos) << text;
  EXPECT_NE(text.find("slide -"), std::string::npos) << text;
  EXPECT_NE(text.find("3, spread 0.25 decades, max_lr 0.08..0.125"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("[too_noisy]"), std::string::npos) << text;
}

}  // namespace
}  // namespace lrtune
