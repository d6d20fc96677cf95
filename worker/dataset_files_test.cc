#include "worker/dataset_files.h"

#include <cstdio>
#include <fstream>

#include "gtest/gtest.h"

namespace lrtune::engine {
namespace {

TEST(DatasetFilesTest, ReadsSklearnCsvWithHeader) {
  const std::string path = testing::TempDir() + "/tiny_iris.csv";
  std::ofstream(path) << "3,2,a,b\n1.5,2,0\n3,4.25,1\n-1,0,1\n";
  absl::StatusOr<CsvTable> t = ReadSklearnCsv(path);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->rows, 3);
  EXPECT_EQ(t->cols, 2);
  EXPECT_FLOAT_EQ(t->x[3], 4.25f);
  EXPECT_EQ(t->labels, (std::vector<int64_t>{0, 1, 1}));
  std::remove(path.c_str());
}

TEST(DatasetFilesTest, MalformedCsvNamesTheLine) {
  const std::string path = testing::TempDir() + "/bad.csv";
  std::ofstream(path) << "1,2,0\n1,2,3,0\n";
  absl::StatusOr<CsvTable> t = ReadSklearnCsv(path);
  EXPECT_EQ(t.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(t.status().message().find(":2:"), std::string::npos);
  std::remove(path.c_str());
}

TEST(DatasetFilesTest, MissingFileIsNotFound) {
  EXPECT_EQ(ReadIdx("/nonexistent/x.gz").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(FindDatasetDir("/nonexistent", "sklearn").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(DatasetFilesTest, DataDirsAreAPathList) {
  EXPECT_EQ(DataDirs("/a"), std::vector<std::string>{"/a"});
  EXPECT_EQ(DataDirs("/datasets::/usr/local/share/lrtune/datasets:"),
            (std::vector<std::string>{"/datasets",
                                      "/usr/local/share/lrtune/datasets"}));
  // The built-in sets are found in a later entry of the list.
  absl::StatusOr<std::string> dir = FindDatasetDir(
      "/nonexistent:/usr/local/share/lrtune/datasets", "sklearn");
  ASSERT_TRUE(dir.ok()) << dir.status();
  EXPECT_EQ(*dir, "/usr/local/share/lrtune/datasets/sklearn");
}

TEST(DatasetFilesTest, ReadsInstalledDatasets) {
  absl::StatusOr<std::string> dir = FindDatasetDir("", "sklearn");
  ASSERT_TRUE(dir.ok()) << dir.status();
  absl::StatusOr<CsvTable> iris = ReadSklearnCsv(*dir + "/iris.csv");
  ASSERT_TRUE(iris.ok()) << iris.status();
  EXPECT_EQ(iris->rows, 150);
  EXPECT_EQ(iris->cols, 4);
  absl::StatusOr<CsvTable> digits = ReadSklearnCsv(*dir + "/digits.csv.gz");
  ASSERT_TRUE(digits.ok()) << digits.status();
  EXPECT_EQ(digits->rows, 1797);
  EXPECT_EQ(digits->cols, 64);
  absl::StatusOr<std::string> fm = FindDatasetDir("", "fashion-mnist");
  ASSERT_TRUE(fm.ok()) << fm.status();
  absl::StatusOr<IdxArray> labels = ReadIdx(*fm + "/t10k-labels-idx1-ubyte.gz");
  ASSERT_TRUE(labels.ok()) << labels.status();
  EXPECT_EQ(labels->dims, (std::vector<int64_t>{10000}));
}

}  // namespace
}  // namespace lrtune::engine
