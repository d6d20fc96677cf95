// Spec files take the CLI's names for every enum the CLI names (core's
// tables), as well as the protos' own.
#include "client/job_spec.h"

#include <string>

#include "absl/strings/str_split.h"
#include "core/schedule.h"
#include "core/spec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lrtune {
namespace {

absl::StatusOr<v1::SubmitJobRequest> Yaml(const std::string& text) {
  return ParseJobSpec(text, /*json=*/false, "spec.yaml");
}

TEST(JobSpec, EveryCliNameReadsAsTheProtosEnum) {
  for (absl::string_view name : absl::StrSplit(ModelKindNames(","), ',')) {
    auto r =
        Yaml(absl::StrCat("range_test: {run: {model: {kind: ", name, "}}}"));
    ASSERT_TRUE(r.ok()) << name << ": " << r.status();
    EXPECT_NE(r->range_test().run().model().kind(), v1::MODEL_KIND_UNSPECIFIED)
        << name;
  }
  for (absl::string_view name : absl::StrSplit(OptimizerKindNames(","), ',')) {
    auto r = Yaml(
        absl::StrCat("range_test: {run: {optimizer: {kind: ", name, "}}}"));
    ASSERT_TRUE(r.ok()) << name << ": " << r.status();
    EXPECT_NE(r->range_test().run().optimizer().kind(),
              v1::OPTIMIZER_KIND_UNSPECIFIED);
  }
  for (absl::string_view name : absl::StrSplit(LossKindNames(","), ',')) {
    auto r = Yaml(absl::StrCat("range_test: {run: {loss: ", name, "}}"));
    ASSERT_TRUE(r.ok()) << name << ": " << r.status();
    EXPECT_NE(r->range_test().run().loss(), v1::LOSS_KIND_UNSPECIFIED);
  }
  for (int k = 0; k <= static_cast<int>(ScheduleKind::kSequential); ++k) {
    const auto kind = static_cast<ScheduleKind>(k);
    auto r = Yaml(absl::StrCat(
        "grid: {train: {schedule: {kind: ", ScheduleKindName(kind), "}}}"));
    ASSERT_TRUE(r.ok()) << ScheduleKindName(kind) << ": " << r.status();
    EXPECT_EQ(r->grid().train().schedule().kind(), k + 1)
        << ScheduleKindName(kind);
  }
}

TEST(JobSpec, CliAndProtoNamesGiveTheSameRequest) {
  auto cli = Yaml(
      "grid:\n"
      "  run: {model: {kind: cnn}, data: {name: digits}, loss: mse}\n"
      "  train: {schedule: {kind: 1cycle, anneal: linear}}\n"
      "  range_test: {shape: linear}\n"
      "  grid: {objective: {metric: val_loss}, axes: [{schedules: {values: "
      "[{kind: exp_range}, {kind: multistep}]}}]}\n");
  auto proto = Yaml(
      "grid:\n"
      "  run: {model: {kind: MODEL_KIND_CNN}, data: {name: digits}, loss: "
      "LOSS_KIND_MSE}\n"
      "  train: {schedule: {kind: SCHEDULE_KIND_ONE_CYCLE, anneal: "
      "ANNEAL_LINEAR}}\n"
      "  range_test: {shape: RAMP_SHAPE_LINEAR}\n"
      "  grid: {objective: {metric: OBJECTIVE_METRIC_VAL_LOSS}, axes: "
      "[{schedules: {values: [{kind: SCHEDULE_KIND_EXP_RANGE}, {kind: "
      "SCHEDULE_KIND_MULTI_STEP}]}}]}\n");
  ASSERT_TRUE(cli.ok()) << cli.status();
  ASSERT_TRUE(proto.ok()) << proto.status();
  EXPECT_EQ(cli->SerializeAsString(), proto->SerializeAsString());
  // JSON too, with protobuf's camelCase keys.
  auto json =
      ParseJobSpec(R"({"rangeTest": {"run": {"model": {"kind": "resnet20"}}}})",
                   /*json=*/true, "spec.json");
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_EQ(json->range_test().run().model().kind(), v1::MODEL_KIND_RESNET20);
}

TEST(JobSpec, AnUnknownNameIsRefusedWithTheFieldAndTheNames) {
  auto r = Yaml("range_test: {run: {optimizer: {kind: lbfgs}}}");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "spec.yaml: range_test.run.optimizer.kind must be one of sgd, "
            "adam, adamw, rmsprop; got \"lbfgs\"");
  auto bad_json = ParseJobSpec("{\"range_test\": ", /*json=*/true, "spec.json");
  EXPECT_FALSE(bad_json.ok());
}

TEST(JobSpec, AnUnknownNameInAListNamesItsIndex) {
  auto r = Yaml(
      "grid: {grid: {axes: [{budgets: {values: [{epochs: 1}]}},"
      " {schedules: {values: [{kind: cosine}, {kind: one_cyle}]}}]}}");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()),
              testing::StartsWith("spec.yaml: grid.grid.axes[1].schedules."
                                  "values[1].kind must be one of "));
}

TEST(JobSpec, AKeyThatIsNoFieldIsNamedWithTheFieldsThere) {
  // A level left out: `axes` belongs to grid.grid.
  auto r = Yaml("grid: {axes: [{budgets: {values: [{epochs: 1}]}}]}");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()),
              testing::MatchesRegex("spec.yaml: grid.axes is not a field; the "
                                    "fields of grid: run, .*grid.*"));
  auto top = Yaml("range_tset: {steps: 10}");
  ASSERT_FALSE(top.ok());
  EXPECT_THAT(
      std::string(top.status().message()),
      testing::MatchesRegex("spec.yaml: range_tset is not a field; "
                            "the fields of a job spec: .*range_test.*"));
  // JSON's camelCase names are fields too.
  EXPECT_TRUE(ParseJobSpec(R"({"rangeTest": {"rangeTest": {"steps": 10}}})",
                           /*json=*/true, "spec.json")
                  .ok());
}

}  // namespace
}  // namespace lrtune
