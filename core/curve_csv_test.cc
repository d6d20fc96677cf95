#include "core/curve_csv.h"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace lrtune {
namespace {

std::string ErrorOf(absl::string_view text) {
  absl::StatusOr<std::vector<CurvePoint>> r = ParseCurveCsv(text);
  EXPECT_FALSE(r.ok()) << "parsed: " << text;
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(r.status().message());
}

TEST(ParseCurveCsvTest, ColumnsAreFoundByHeaderInAnyOrder) {
  absl::StatusOr<std::vector<CurvePoint>> r = ParseCurveCsv(
      "# exported by torch-lr-finder\n"
      "loss, epoch ,LR,step\r\n"
      "\n"
      "2.5,0,1e-7,10\r\n"
      "\"2.25\",0,2e-7,11\n");
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].step, 10);
  EXPECT_EQ((*r)[0].lr, 1e-7);
  EXPECT_EQ((*r)[0].loss, 2.5);
  EXPECT_EQ((*r)[1].step, 11);
  EXPECT_EQ((*r)[1].loss, 2.25);
}

TEST(ParseCurveCsvTest, StepDefaultsToRowIndex) {
  absl::StatusOr<std::vector<CurvePoint>> r =
      ParseCurveCsv("lr,loss\n0.001,1\n0.01,0.5\n");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].step, 0);
  EXPECT_EQ((*r)[1].step, 1);
}

TEST(ParseCurveCsvTest, NonFiniteLossesAreAccepted) {
  absl::StatusOr<std::vector<CurvePoint>> r = ParseCurveCsv(
      "lr,loss\n1e-3,nan\n2e-3,inf\n3e-3,-inf\n4e-3,NaN\n"
      "5e-3,-nan\n6e-3,Infinity\n");
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->size(), 6u);
  EXPECT_TRUE(std::isnan((*r)[0].loss));
  EXPECT_EQ((*r)[1].loss, std::numeric_limits<double>::infinity());
  EXPECT_EQ((*r)[2].loss, -std::numeric_limits<double>::infinity());
  EXPECT_TRUE(std::isnan((*r)[3].loss));
  EXPECT_TRUE(std::isnan((*r)[4].loss));
  EXPECT_EQ((*r)[5].loss, std::numeric_limits<double>::infinity());
}

TEST(ParseCurveCsvTest, ErrorsNameLineAndColumn) {
  EXPECT_EQ(ErrorOf("step,lr,loss\n0,1e-3,1\n1,1e-2,abc\n"),
            "line 3, column 'loss': 'abc' is not a number");
  EXPECT_EQ(ErrorOf("lr,loss\n# comment\n0.1x,1\n"),
            "line 3, column 'lr': '0.1x' is not a number");
  EXPECT_EQ(ErrorOf("step,lr,loss\n1.5,1e-3,1\n"),
            "line 2, column 'step': '1.5' is not an integer");
  EXPECT_EQ(ErrorOf("lr,loss\n-1,2\n"),
            "line 2: lr must be finite and > 0, got -1");
  EXPECT_EQ(ErrorOf("lr,loss\nnan,2\n"),
            "line 2: lr must be finite and > 0, got nan");
  EXPECT_EQ(ErrorOf("lr,loss\n1e-3,2,3\n"),
            "line 2: expected 2 columns as in the header, got 3");
}

TEST(ParseCurveCsvTest, HeaderProblems) {
  EXPECT_EQ(ErrorOf("step,loss\n0,1\n").rfind("missing column 'lr'", 0), 0u);
  EXPECT_EQ(ErrorOf("lr,lr,loss\n").find("duplicate column 'lr'") !=
                std::string::npos,
            true);
  EXPECT_NE(ErrorOf("").find("missing header"), std::string::npos);
  EXPECT_NE(ErrorOf("# only a comment\n\n").find("missing header"),
            std::string::npos);
}

TEST(FormatCurveCsvTest, RoundTripsExactly) {
  std::vector<CurvePoint> points = {
      {0, 1e-7, 2.302585092994046},
      {1, 1.2345678901234567e-6, -0.1},
      {2, 0.1 + 0.2, std::numeric_limits<double>::quiet_NaN()},
      {7, 10.0, std::numeric_limits<double>::infinity()},
      {8, 11.0, -std::numeric_limits<double>::infinity()},
      {9, 12.0, 5e-324}};
  const std::string text = FormatCurveCsv(points);
  EXPECT_EQ(text.substr(0, 13), "step,lr,loss\n");
  absl::StatusOr<std::vector<CurvePoint>> back = ParseCurveCsv(text);
  ASSERT_TRUE(back.ok()) << back.status() << "\n" << text;
  ASSERT_EQ(back->size(), points.size());
  for (size_t i = 0; i < points.size(); ++i) {
    EXPECT_EQ((*back)[i].step, points[i].step);
    EXPECT_EQ((*back)[i].lr, points[i].lr);
    if (std::isnan(points[i].loss)) {
      EXPECT_TRUE(std::isnan((*back)[i].loss));
    } else {
      EXPECT_EQ((*back)[i].loss, points[i].loss);
    }
  }
  absl::StatusOr<std::vector<CurvePoint>> empty =
      ParseCurveCsv(FormatCurveCsv({}));
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

}  // namespace
}  // namespace lrtune
