// Data sets by reference through the engine's torch-free API: range tests
// and training on a set in a data directory, its splits (validation files,
// or validation_fraction as the built-in sets), the errors a set can give,
// and the point of mapping: a set much bigger than what the process adds
// to its memory while training on it.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "worker/engine.h"
#include "worker/npy_testing.h"

namespace lrtune::engine {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kFeatures = 16;
constexpr int64_t kClasses = 4;

// Writes `path` as np.save writes a C-order array with this header.
std::ofstream NpyWriter(const std::filesystem::path& path,
                        const std::string& descr,
                        const std::vector<int64_t>& shape) {
  std::ofstream out(path, std::ios::binary);
  out << NpySaveHeader(descr, shape);
  return out;
}

// Gaussian blobs: `rows` samples of `features` floats around one of
// kClasses centers (a learnable set), labels as `label_descr`, written a
// row at a time so that a big set costs no memory to make.
void WriteBlobs(const std::filesystem::path& dir, const std::string& prefix,
                int64_t rows, int64_t features = kFeatures,
                const std::string& label_descr = "<i8", uint32_t seed = 1) {
  std::filesystem::create_directories(dir);
  std::mt19937 gen(seed);
  std::normal_distribution<float> noise(0.0f, 1.0f);
  std::vector<float> centers(kClasses * features);
  std::mt19937 center_gen(99);  // the same centers in every file
  for (float& c : centers)
    c = 2.0f * std::normal_distribution<float>()(center_gen);
  std::ofstream x =
      NpyWriter(dir / (prefix + "x.npy"), "<f4", {rows, features});
  std::ofstream y = NpyWriter(dir / (prefix + "y.npy"), label_descr, {rows});
  std::vector<float> row(features);
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t label = i % kClasses;
    for (int64_t f = 0; f < features; ++f) {
      row[f] = centers[label * features + f] + noise(gen);
    }
    x.write(reinterpret_cast<const char*>(row.data()),
            static_cast<std::streamsize>(row.size() * sizeof(float)));
    if (label_descr == "<i8") {
      y.write(reinterpret_cast<const char*>(&label), sizeof(label));
    } else {
      const int32_t l32 = static_cast<int32_t>(label);
      y.write(reinterpret_cast<const char*>(&l32), sizeof(l32));
    }
  }
}

void WriteManifest(const std::filesystem::path& dir, const std::string& text) {
  std::ofstream(dir / "manifest.json") << text;
}

std::string BlobsManifest(int64_t features = kFeatures,
                          bool validation = false) {
  return absl::StrCat(
      R"({"shape": [)", features, R"(], "dtype": "float32", "classes": )",
      kClasses,
      validation ? R"(, "split": {"train": {"x": "x.npy", "y": "y.npy"},
                    "validation": {"x": "val_x.npy", "y": "val_y.npy"}}})"
                 : "}");
}

// This process's resident anonymous memory (what a copy would add), kB.
int64_t RssAnonKb() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("RssAnon:", 0) == 0) {
      int64_t kb = 0;
      std::string digits = line.substr(8);
      digits.erase(0, digits.find_first_not_of(" \t"));
      digits = digits.substr(0, digits.find(' '));
      if (absl::SimpleAtoi(digits, &kb)) return kb;
    }
  }
  return -1;
}

class ReferencedDataTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = std::filesystem::temp_directory_path() /
            ("lrtune_referenced_data_test_" + std::to_string(getpid()));
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_);
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  JobSpec Job(const std::string& name) const {
    JobSpec job;
    job.model.hidden = {32};
    job.data.name = name;
    job.data.data_dir = root_.string();
    job.batch_size = 32;
    job.seed = 1;
    job.device.device = "cpu";
    job.device.threads = 1;
    return job;
  }

  std::filesystem::path root_;
};

TEST_F(ReferencedDataTest, TrainsWithTheFractionSplitOfTheBuiltInSets) {
  WriteBlobs(root_ / "blobs-ref", "", 1000);
  WriteManifest(root_ / "blobs-ref", BlobsManifest());
  JobSpec job = Job("blobs-ref");
  job.data.validation_fraction = 0.25;
  std::vector<std::string> progress;
  Callbacks cb;
  cb.on_progress = [&](const std::string& m) { progress.push_back(m); };
  TrainSpec spec;
  spec.schedule.kind = ScheduleKind::kConstant;
  spec.schedule.base_lr = 0.05;
  spec.epochs = 2;
  absl::StatusOr<TrainResult> r = RunTraining(job, spec, cb);
  ASSERT_TRUE(r.ok()) << r.status();
  // 750 train rows (as core's TrainSamples says), 250 validation rows.
  EXPECT_THAT(absl::StrJoin(progress, "\n"),
              HasSubstr("loaded blobs-ref: 750 train, 250 validation samples"));
  EXPECT_EQ(r->steps, 2 * (750 / 32));
  EXPECT_EQ(StepsPerEpoch(job), 0);  // core cannot know without the manifest
  // Well-separated blobs: learned, on rows it did not train on.
  EXPECT_GT(r->final_eval.val_accuracy, 0.9);
}

TEST_F(ReferencedDataTest, UsesItsValidationFilesAndInt32Labels) {
  WriteBlobs(root_ / "split", "", 400, kFeatures, "<i4");
  WriteBlobs(root_ / "split", "val_", 120, kFeatures, "<i4", 2);
  WriteManifest(root_ / "split", BlobsManifest(kFeatures, true));
  JobSpec job = Job("split");
  job.data.subset = 320;
  std::vector<std::string> progress;
  Callbacks cb;
  cb.on_progress = [&](const std::string& m) { progress.push_back(m); };
  RangeTestSpec spec;
  spec.start_lr = 1e-4;
  spec.end_lr = 1.0;
  spec.steps = 40;
  absl::StatusOr<RangeTestResult> r = RunRangeTest(job, spec, cb);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(absl::StrJoin(progress, "\n"),
              HasSubstr("loaded split: 320 train, 120 validation samples"));
  EXPECT_GT(r->recommendation.max_lr, r->recommendation.min_lr);
}

TEST_F(ReferencedDataTest, ErrorsNameTheSetTheFileAndTheRule) {
  RangeTestSpec spec;
  spec.steps = 5;
  // Not in the data directory.
  absl::StatusOr<RangeTestResult> r = RunRangeTest(Job("nowhere"), spec, {});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(r.status().message(),
              HasSubstr("data.name \"nowhere\" is not a data set of this "
                        "worker"));
  // A label outside [0, classes).
  WriteBlobs(root_ / "bad", "", 100);
  WriteManifest(root_ / "bad", R"({"shape": [16], "dtype": "float32",
                                   "classes": 3})");
  r = RunRangeTest(Job("bad"), spec, {});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(r.status().message(),
              HasSubstr((root_ / "bad" / "y.npy").string() +
                        ": row 3 has label 3, outside [0, 3)"));
  // A set that is not the one the job was planned with.
  WriteBlobs(root_ / "changed", "", 100);
  WriteManifest(root_ / "changed", BlobsManifest());
  JobSpec job = Job("changed");
  DatasetDescription& planned = job.data.description.emplace();
  planned.name = "changed";
  planned.sample_shape = {kFeatures};
  planned.train_samples = 200;
  planned.classes = kClasses;
  r = RunRangeTest(job, spec, {});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(r.status().message(),
              HasSubstr("differs from the one the job was planned with "
                        "(another worker's copy, or changed since): "
                        "train_samples 100, planned 200"));
  // The loss must fit the labels (core's rule, with the description).
  planned.train_samples = 100;
  job.loss = LossKind::kMse;
  r = RunRangeTest(job, spec, {});
  EXPECT_THAT(r.status().message(), HasSubstr("loss mse needs float targets"));
}

// The point of mapping: training on a 64 MiB set adds far less than 64 MiB
// of the process's own memory (the pages of the file it touches are the
// page cache's, counted as RssFile, and dropped under pressure).
TEST_F(ReferencedDataTest, ASetIsMappedNotCopied) {
  constexpr int64_t kWide = 1024;  // 4 KiB rows: 16384 rows are 64 MiB
  constexpr int64_t kRows = 16384;
  WriteBlobs(root_ / "wide", "", kRows, kWide);
  WriteManifest(root_ / "wide", BlobsManifest(kWide));
  JobSpec job = Job("wide");
  job.model.hidden = {8};
  const int64_t before = RssAnonKb();
  ASSERT_GT(before, 0);
  int64_t peak = before;
  Callbacks cb;
  cb.on_point = [&](const StepPoint&) { peak = std::max(peak, RssAnonKb()); };
  RangeTestSpec spec;
  spec.steps = 60;
  spec.end_lr = 0.1;
  absl::StatusOr<RangeTestResult> r = RunRangeTest(job, spec, cb);
  ASSERT_TRUE(r.ok()) << r.status();
  const int64_t set_kb = kRows * kWide * 4 / 1024;
  std::fprintf(stderr, "RssAnon %lld kB before, %lld kB peak, set %lld kB\n",
               static_cast<long long>(before), static_cast<long long>(peak),
               static_cast<long long>(set_kb));
  EXPECT_LT(peak - before, set_kb / 4)
      << "RssAnon grew by " << (peak - before) << " kB training on a " << set_kb
      << " kB set";
}

}  // namespace
}  // namespace lrtune::engine
