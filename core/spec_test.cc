// The spec model's rules for data sets by reference: names, descriptions,
// what a job's size and widths are with one, and the loss that fits it.
#include "core/spec.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lrtune {
namespace {

using ::testing::HasSubstr;

DatasetDescription Mine() {
  DatasetDescription d;
  d.name = "mine";
  d.sample_shape = {1, 28, 28};
  d.train_samples = 1000;
  d.classes = 10;
  d.bytes = 1000 * 784 * 4 + 1000 * 8;
  return d;
}

TEST(DatasetName, FollowsTheRule) {
  for (const char* ok : {"mine", "a", "A9", "cifar-10", "my_set.v2", "0abc"}) {
    EXPECT_TRUE(IsDatasetName(ok)) << ok;
  }
  for (const char* bad :
       {"", ".", "..", ".hidden", "-x", "_x", "a/b", "a b", "ü", "a\n"}) {
    EXPECT_FALSE(IsDatasetName(bad)) << bad;
  }
  EXPECT_TRUE(IsDatasetName(std::string(kMaxDatasetNameLength, 'a')));
  EXPECT_FALSE(IsDatasetName(std::string(kMaxDatasetNameLength + 1, 'a')));
}

TEST(DatasetName, BuiltInAndInlineAreNotByReference) {
  EXPECT_FALSE(IsReferencedDataset("fashion-mnist"));
  EXPECT_FALSE(IsReferencedDataset("iris"));
  EXPECT_FALSE(IsReferencedDataset("inline"));
  EXPECT_FALSE(IsReferencedDataset("a/b"));
  EXPECT_TRUE(IsReferencedDataset("mine"));
}

TEST(DatasetDescription, ValidOnesPass) {
  EXPECT_TRUE(ValidateDatasetDescription(Mine(), PrefixNames("")).ok());
  DatasetDescription regression = Mine();
  regression.classes = 0;
  regression.target_width = 3;
  EXPECT_TRUE(ValidateDatasetDescription(regression, PrefixNames("")).ok());
}

TEST(DatasetDescription, EachRuleNamesItsField) {
  struct Case {
    const char* what;
    void (*change)(DatasetDescription&);
    const char* field;
  };
  const Case cases[] = {
      {"built-in name", [](DatasetDescription& d) { d.name = "iris"; },
       "d.name must be"},
      {"no sample dims", [](DatasetDescription& d) { d.sample_shape = {}; },
       "d.sample_shape must have 1..4 dims"},
      {"five sample dims",
       [](DatasetDescription& d) {
         d.sample_shape = {1, 1, 1, 1, 1};
       },
       "d.sample_shape must have 1..4 dims"},
      {"zero dim",
       [](DatasetDescription& d) {
         d.sample_shape = {3, 0};
       },
       "d.sample_shape[1] must be >= 1, got 0"},
      {"9 samples", [](DatasetDescription& d) { d.train_samples = 9; },
       "d.train_samples must be >= 10, got 9"},
      {"negative validation",
       [](DatasetDescription& d) { d.validation_samples = -1; },
       "d.validation_samples must be >= 0"},
      {"one class", [](DatasetDescription& d) { d.classes = 1; },
       "d.classes must be 0 (regression) or in [2, 100001], got 1"},
      {"labels with targets", [](DatasetDescription& d) { d.target_width = 2; },
       "d.target_width must be 0 for class labels"},
      {"regression without targets",
       [](DatasetDescription& d) { d.classes = 0; },
       "d.target_width must be >= 1 for regression"},
      {"negative bytes", [](DatasetDescription& d) { d.bytes = -1; },
       "d.bytes must be >= 0"},
  };
  for (const Case& c : cases) {
    DatasetDescription d = Mine();
    c.change(d);
    absl::Status s = ValidateDatasetDescription(d, PrefixNames("d."));
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.what;
    EXPECT_THAT(s.message(), HasSubstr(c.field)) << c.what;
  }
}

TEST(DatasetDescription, DifferenceNamesWhatARunDependsOn) {
  DatasetDescription have = Mine();
  EXPECT_EQ(DatasetDifference(have, Mine()), "");
  have.bytes += 64;  // a re-saved file with a longer header: same data
  EXPECT_EQ(DatasetDifference(have, Mine()), "");
  have.train_samples = 2000;
  have.classes = 3;
  EXPECT_EQ(DatasetDifference(have, Mine()),
            "train_samples 2000, planned 1000; classes 3, planned 10");
  have = Mine();
  have.sample_shape = {784};
  EXPECT_EQ(DatasetDifference(have, Mine()),
            "sample_shape [784], planned [1,28,28]");
}

TEST(DataSpecByReference, NameAloneIsValidSizesUnknown) {
  JobSpec job;
  job.data.name = "mine";
  EXPECT_TRUE(ValidateJob(job).ok());
  EXPECT_EQ(TrainSamples(job.data), std::nullopt);
  EXPECT_EQ(InputWidth(job.data), std::nullopt);
  EXPECT_EQ(StepsPerEpoch(job), 0);
}

TEST(DataSpecByReference, DescriptionGivesSizesAndWidths) {
  JobSpec job;
  job.data.name = "mine";
  job.data.description = Mine();
  job.batch_size = 100;
  ASSERT_TRUE(ValidateJob(job).ok());
  // No validation arrays: split by validation_fraction as the engine does.
  EXPECT_EQ(TrainSamples(job.data), 800);
  EXPECT_EQ(StepsPerEpoch(job), 8);
  EXPECT_EQ(InputWidth(job.data), 784);
  EXPECT_EQ(OutputWidth(job.data), 10);
  // Validation arrays of its own: all training rows train.
  job.data.description->validation_samples = 200;
  EXPECT_EQ(TrainSamples(job.data), 1000);
  job.data.subset = 300;
  EXPECT_EQ(TrainSamples(job.data), 300);
  // Regression: the output is the targets' width.
  job.data.description->classes = 0;
  job.data.description->target_width = 3;
  job.loss = LossKind::kMse;
  ASSERT_TRUE(ValidateJob(job).ok());
  EXPECT_EQ(OutputWidth(job.data), 3);
}

TEST(DataSpecByReference, RefusesBadNamesAndMisplacedDescriptions) {
  JobSpec job;
  job.data.name = "../etc";
  absl::Status s = ValidateJob(job, PrefixNames("run."));
  EXPECT_THAT(s.message(), HasSubstr("run.data.name must be one of "
                                     "fashion-mnist"));
  EXPECT_THAT(s.message(), HasSubstr("or the name of a data set by reference"));

  job.data.name = "iris";
  job.data.description = Mine();
  s = ValidateJob(job, PrefixNames("run."));
  EXPECT_THAT(s.message(), HasSubstr("run.data.description must be unset for "
                                     "the built-in data set \"iris\""));

  job.data.name = "other";
  s = ValidateJob(job, PrefixNames("run."));
  EXPECT_THAT(s.message(),
              HasSubstr("run.data.description.name must be data.name"));

  job.data.name = "mine";
  job.data.description->train_samples = 3;
  s = ValidateJob(job, PrefixNames("run."));
  EXPECT_THAT(s.message(),
              HasSubstr("run.data.description.train_samples must be >= 10"));
}

TEST(DataSpecByReference, LossMustFitLabelsOrTargets) {
  JobSpec job;
  job.data.name = "mine";
  job.data.description = Mine();
  job.loss = LossKind::kMse;
  absl::Status s = ValidateJob(job, PrefixNames("run."));
  EXPECT_THAT(s.message(), HasSubstr("run.loss mse needs float targets, but "
                                     "data set \"mine\" holds class labels"));
  job.loss = LossKind::kCrossEntropy;
  job.data.description->classes = 0;
  job.data.description->target_width = 1;
  s = ValidateJob(job, PrefixNames("run."));
  EXPECT_THAT(s.message(), HasSubstr("run.loss cross_entropy needs class "
                                     "labels"));
}

}  // namespace
}  // namespace lrtune
