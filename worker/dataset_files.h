// Reading the engine's on-disk datasets, torch-free: IDX files (MNIST and
// Fashion-MNIST, gzipped or not) and scikit-learn's CSVs (gzipped or not).
//
//   LRTUNE_ASSIGN_OR_RETURN(std::string dir, FindDatasetDir("", "sklearn"));
//   LRTUNE_ASSIGN_OR_RETURN(CsvTable t, ReadSklearnCsv(dir + "/iris.csv"));
//
// Every function is thread-safe (no shared state) and returns NotFound for a
// missing file and DataLoss for a malformed one, naming the file.
#ifndef LRTUNE_WORKER_DATASET_FILES_H_
#define LRTUNE_WORKER_DATASET_FILES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace lrtune::engine {

// An IDX array: dims (e.g. {60000, 28, 28}) and its unsigned bytes, row-major.
struct IdxArray {
  std::vector<int64_t> dims;
  std::vector<uint8_t> data;
};

// Reads an IDX file of unsigned bytes (type 0x08), gzipped or plain.
absl::StatusOr<IdxArray> ReadIdx(const std::string& path);

// A labelled table: rows x cols features (row-major) and a label per row.
struct CsvTable {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<float> x;
  std::vector<int64_t> labels;
};

// Reads scikit-learn's CSV layout: an optional header line
// "n_samples,n_features,class names..." (recognised by a non-numeric field),
// then rows of features followed by an integer label in the last column.
absl::StatusOr<CsvTable> ReadSklearnCsv(const std::string& path);

// The data directories, in the order they are searched: those of
// `data_dir` when it is set, else of $LRTUNE_DATA_DIR (when set) and
// /usr/local/share/lrtune/datasets. Either may list several, separated by
// ':' as in PATH ("/datasets:/usr/local/share/lrtune/datasets": a shared
// volume, then the image's built-in sets); empty entries are skipped. They
// need not exist.
std::vector<std::string> DataDirs(const std::string& data_dir);

// Returns the directory holding `subdir` (e.g. "fashion-mnist", "sklearn",
// a data set by reference's name): the first of DataDirs(data_dir)/subdir
// that exists, and for fashion-mnist also /usr/share/datasets/fashion-mnist.
// NotFound lists the places tried.
absl::StatusOr<std::string> FindDatasetDir(const std::string& data_dir,
                                           const std::string& subdir);

}  // namespace lrtune::engine

#endif  // LRTUNE_WORKER_DATASET_FILES_H_
