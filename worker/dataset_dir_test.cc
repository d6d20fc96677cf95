// Data sets by reference on disk: manifests, the rules that relate them to
// their arrays, mapping one by name and listing a data directory.
#include "worker/dataset_dir.h"

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "worker/npy_testing.h"

namespace lrtune::engine {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Writes an array as np.save does: the header, then product(shape) x
// `elem_bytes` bytes of `fill`.
void WriteNpy(const std::filesystem::path& path, const std::string& descr,
              const std::vector<int64_t>& shape, size_t elem_bytes,
              char fill = 0) {
  size_t n = elem_bytes;
  for (int64_t d : shape) n *= static_cast<size_t>(d);
  std::ofstream out(path, std::ios::binary);
  out << NpySaveHeader(descr, shape) << std::string(n, fill);
}

class DatasetDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = std::filesystem::temp_directory_path() /
            ("lrtune_dataset_dir_test_" + std::to_string(getpid()));
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_);
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  // A classification set: x [n, 4] float32, y [n] int64, a manifest.
  std::filesystem::path MakeSet(const std::string& name, int64_t n = 20,
                                const std::string& manifest = "") {
    const std::filesystem::path dir = root_ / name;
    std::filesystem::create_directories(dir);
    WriteNpy(dir / "x.npy", "<f4", {n, 4}, 4);
    WriteNpy(dir / "y.npy", "<i8", {n}, 8);
    Manifest(dir, manifest.empty()
                      ? R"({"shape": [4], "dtype": "float32", "classes": 3})"
                      : manifest);
    return dir;
  }
  void Manifest(const std::filesystem::path& dir, const std::string& text) {
    std::ofstream(dir / kManifestFile) << text;
  }

  std::filesystem::path root_;
};

TEST(DatasetManifest, DefaultsAndSplit) {
  absl::StatusOr<DatasetManifest> m = ParseDatasetManifest(
      R"({"shape": [1, 28, 28], "dtype": "float32", "classes": 10})");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->shape, (std::vector<int64_t>{1, 28, 28}));
  EXPECT_EQ(m->classes, 10);
  EXPECT_EQ(m->train_x, "x.npy");
  EXPECT_EQ(m->train_y, "y.npy");
  EXPECT_TRUE(m->validation_x.empty());

  m = ParseDatasetManifest(R"({"format": 1, "shape": [8], "dtype": "float32",
      "targets": 2, "description": "sensor readings",
      "split": {"train": {"x": "tx.npy", "y": "ty.npy"},
                "validation": {"x": "vx.npy", "y": "vy.npy"}}})");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->targets, 2);
  EXPECT_EQ(m->train_x, "tx.npy");
  EXPECT_EQ(m->validation_y, "vy.npy");
  EXPECT_EQ(m->description, "sensor readings");
}

TEST(DatasetManifest, RefusalsNameTheKeyAndTheRule) {
  const std::pair<const char*, const char*> cases[] = {
      {"not json", "not JSON"},
      // A number beyond a double: nlohmann's out_of_range, not parse_error
      // (the fuzzer's find).
      {"7777e773", "not JSON"},
      {R"({"shape": [1e999], "dtype": "float32", "classes": 2})", "not JSON"},
      {"[1]", "the manifest must be a JSON object"},
      {R"({"dtype": "float32", "classes": 2})", "\"shape\" is required"},
      {R"({"shape": [], "dtype": "float32", "classes": 2})",
       "\"shape\" must be a list of 1 to 4 dims"},
      {R"({"shape": [0], "dtype": "float32", "classes": 2})",
       "\"shape[0]\" must be >= 1"},
      {R"({"shape": [2.5], "dtype": "float32", "classes": 2})",
       "\"shape[0]\" must be an integer"},
      {R"({"shape": [4], "classes": 2})", "\"dtype\" is required"},
      {R"({"shape": [4], "dtype": "float64", "classes": 2})",
       "\"dtype\" must be \"float32\""},
      {R"({"shape": [4], "dtype": "float32"})",
       "\"classes\" or \"targets\": exactly one"},
      {R"({"shape": [4], "dtype": "float32", "classes": 2, "targets": 1})",
       "exactly one"},
      {R"({"shape": [4], "dtype": "float32", "classes": 1})",
       "\"classes\" must be >= 2"},
      {R"({"shape": [4], "dtype": "float32", "classes": 2, "clases": 3})",
       "unknown key \"clases\""},
      {R"({"shape": [4], "dtype": "float32", "classes": 2, "format": 2})",
       "\"format\" must be 1"},
      {R"({"shape": [4], "dtype": "float32", "classes": 2,
           "split": {"train": {"x": "../x.npy", "y": "y.npy"}}})",
       "\"split.train.x\" must be a .npy file in the data set's directory"},
      {R"({"shape": [4], "dtype": "float32", "classes": 2,
           "split": {"train": {"x": "x.csv", "y": "y.npy"}}})",
       "\"split.train.x\" must be a .npy file"},
      {R"({"shape": [4], "dtype": "float32", "classes": 2,
           "split": {"train": {"x": "x.npy"}}})",
       "\"split.train\" must name both files"},
      {R"({"shape": [4], "dtype": "float32", "classes": 2,
           "split": {"validation": {"x": "x.npy", "y": "vy.npy"}}})",
       "\"split\" must name four different files"},
      {R"({"shape": [4], "dtype": "float32", "classes": 2,
           "split": {"test": {}}})",
       "\"split\": unknown key \"test\""},
  };
  for (const auto& [text, message] : cases) {
    absl::StatusOr<DatasetManifest> m = ParseDatasetManifest(text);
    EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(m.status().message(), HasSubstr(message)) << text;
  }
}

TEST_F(DatasetDirTest, DescribesFromTheHeaders) {
  const std::filesystem::path dir = MakeSet("mine", 20);
  absl::StatusOr<DatasetDescription> d = DescribeDataset(dir.string(), "mine");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->name, "mine");
  EXPECT_EQ(d->sample_shape, std::vector<int64_t>{4});
  EXPECT_EQ(d->train_samples, 20);
  EXPECT_EQ(d->validation_samples, 0);
  EXPECT_EQ(d->classes, 3);
  EXPECT_EQ(d->target_width, 0);
  EXPECT_EQ(d->bytes, (128 + 20 * 16) + (128 + 20 * 8));  // headers + data

  // Validation files and float targets of width 2.
  WriteNpy(dir / "vx.npy", "<f4", {7, 4}, 4);
  WriteNpy(dir / "ty.npy", "<f4", {20, 2}, 4);
  WriteNpy(dir / "vy.npy", "<f4", {7, 2}, 4);
  Manifest(dir, R"({"shape": [4], "dtype": "float32", "targets": 2,
      "split": {"train": {"x": "x.npy", "y": "ty.npy"},
                "validation": {"x": "vx.npy", "y": "vy.npy"}}})");
  d = DescribeDataset(dir.string(), "mine");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->validation_samples, 7);
  EXPECT_EQ(d->classes, 0);
  EXPECT_EQ(d->target_width, 2);
}

TEST_F(DatasetDirTest, ArraysMustAgreeWithTheManifest) {
  const std::filesystem::path dir = MakeSet("mine", 20);
  const std::string x = (dir / "x.npy").string();
  const std::string y = (dir / "y.npy").string();
  struct Case {
    std::function<void()> change;
    std::string message;
  };
  const std::vector<Case> cases = {
      {[&] {
         WriteNpy(x, "<i8", {20, 4}, 8);
       },
       x + ": features must be float32"},
      {[&] {
         WriteNpy(x, "<f4", {20, 5}, 4);
       },
       x + ": shape (20, 5) is not (N, 4)"},
      {[&] {
         WriteNpy(x, "<f4", {20, 2, 2}, 4);
       },
       "is not (N, 4)"},
      {[&] { WriteNpy(y, "<i8", {19}, 8); },
       y + ": shape (19) is not (20,): one label per row of x.npy"},
      {[&] { WriteNpy(y, "<f4", {20}, 4); },
       y + ": labels must be int64 or int32 for \"classes\", got float32"},
      {[&] { WriteNpy(y, "<f8", {20}, 8); },
       y + ": dtype '<f8' is not supported"},
      {[&] {
         WriteNpy(x, "<f4", {5, 4}, 4);
         WriteNpy(y, "<i8", {5}, 8);
       },
       x + ": the rows (N) must be >= 10, got 5"},
      {[&] { std::filesystem::remove(y); }, "cannot open " + y},
      {[&] {
         Manifest(dir, R"({"shape": [4], "dtype": "float32",
                               "targets": 1})");
       },
       y + ": targets must be float32 for \"targets\", got int64"},
  };
  for (const Case& c : cases) {
    MakeSet("mine", 20);
    c.change();
    absl::StatusOr<DatasetDescription> d =
        DescribeDataset(dir.string(), "mine");
    EXPECT_FALSE(d.ok()) << c.message;
    EXPECT_THAT(d.status().message(), HasSubstr(c.message));
  }
}

TEST_F(DatasetDirTest, OpensByNameInTheDataDirectory) {
  MakeSet("mine", 30);
  absl::StatusOr<MappedDataset> m = OpenDataset(root_.string(), "mine");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->dir, (root_ / "mine").string());
  EXPECT_EQ(m->description.train_samples, 30);
  ASSERT_NE(m->train_x, nullptr);
  EXPECT_EQ(m->train_x->shape(), (std::vector<int64_t>{30, 4}));
  EXPECT_EQ(m->train_y->dtype(), NpyDType::kInt64);
  EXPECT_EQ(m->validation_x, nullptr);

  absl::StatusOr<MappedDataset> none = OpenDataset(root_.string(), "other");
  EXPECT_EQ(none.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(none.status().message(),
              HasSubstr("data.name \"other\" is not a data set of this "
                        "worker: no " +
                        (root_ / "other" / kManifestFile).string()));
}

TEST_F(DatasetDirTest, ListsWhatCanBeUsedAndSaysWhyNotTheRest) {
  MakeSet("b-set", 20);
  MakeSet("a-set", 40);
  MakeSet("iris", 20);                                       // a built-in name
  MakeSet("broken", 20, R"({"shape": [4]})");                // no dtype
  std::filesystem::create_directories(root_ / "not-a-set");  // no manifest
  const std::filesystem::path other = root_ / "second";
  std::filesystem::create_directories(other);
  std::filesystem::create_directories(other / "a-set");  // hidden by root_'s
  std::filesystem::copy(root_ / "b-set", other / "c-set");

  DatasetListing found = ListDatasets(
      {root_.string(), other.string(), (root_ / "missing").string()});
  std::vector<std::string> names;
  for (const DatasetDescription& d : found.datasets) names.push_back(d.name);
  EXPECT_THAT(names, ElementsAre("a-set", "b-set", "c-set"));
  EXPECT_EQ(found.datasets[0].train_samples, 40);
  const std::string problems = absl::StrJoin(found.problems, "\n");
  EXPECT_THAT(problems, HasSubstr("left out broken: "));
  EXPECT_THAT(problems, HasSubstr("\"dtype\" is required"));
  EXPECT_THAT(problems, HasSubstr("\"iris\" is a built-in data set's name"));
  EXPECT_EQ(found.problems.size(), 2u) << problems;
}

}  // namespace
}  // namespace lrtune::engine
