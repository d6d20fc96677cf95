// Data sets by reference: directories in a worker's data directory, each a
// manifest and .npy arrays that the engine maps instead of reading
// (npy_file.h). Torch-free: the agent lists them when it registers, the
// engine opens the one a job names (referenced_data.cc).
//
//   DatasetListing found = ListDatasets(DataDirs(options.data_dir));
//   LRTUNE_ASSIGN_OR_RETURN(MappedDataset d, OpenDataset("", "my-set"));
//
// DIR/NAME/manifest.json, e.g. (docs/engine.md, "Data sets by reference"):
//
//   {"shape": [1, 28, 28], "dtype": "float32", "classes": 10,
//    "split": {"train": {"x": "x.npy", "y": "y.npy"},
//              "validation": {"x": "val_x.npy", "y": "val_y.npy"}}}
//
//   shape       per-sample dims (1 to 4): the features x are [N, *shape]
//   dtype       of x: "float32" (the only one; the engine reads x in place)
//   classes     labels y, int64 or int32 [N], each in [0, classes); or
//   targets     regression: y float32 [N] or [N, targets] (exactly one of
//               classes and targets)
//   split       train: its x and y files (default x.npy and y.npy);
//               validation, optional: files of the same form. Without
//               them a job splits the training rows by its
//               validation_fraction.
//   format      optional, 1; description: optional text for people
//
// File names are plain names in the data set's directory ending in .npy.
// NAME follows core's rule (IsDatasetName). Unknown keys are refused, so
// a typo is not silently ignored.
//
// Errors name the file and the rule: DataLoss for a manifest or array that
// breaks one ("/data/mine/y.npy: labels must be int64 or int32 for
// classes, got float32"), NotFound when the set or a file is missing.
// Every function is thread-safe; values are immutable once returned.
#ifndef LRTUNE_WORKER_DATASET_DIR_H_
#define LRTUNE_WORKER_DATASET_DIR_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/spec.h"
#include "worker/npy_file.h"

namespace lrtune::engine {

inline constexpr char kManifestFile[] = "manifest.json";
inline constexpr size_t kMaxManifestBytes = 1 << 20;

// A manifest as written; ParseDatasetManifest fills in the defaults.
struct DatasetManifest {
  std::vector<int64_t> shape;
  std::string dtype;    // "float32"
  int64_t classes = 0;  // > 0: classification
  int64_t targets = 0;  // > 0: regression
  std::string train_x = "x.npy";
  std::string train_y = "y.npy";
  std::string validation_x;  // both empty: no validation arrays
  std::string validation_y;
  std::string description;
};

// Parses manifest text. InvalidArgument naming the key and the rule: not
// JSON or not an object, an unknown or missing key, a value of the wrong
// type or out of range, a file name that is not a plain *.npy name.
absl::StatusOr<DatasetManifest> ParseDatasetManifest(absl::string_view text);

// A data set by reference, mapped: its description and its arrays (the
// validation ones null when it has none). The arrays' shapes and dtypes
// agree with the description.
struct MappedDataset {
  DatasetDescription description;
  std::string dir;  // the data set's directory
  std::shared_ptr<const MappedNpy> train_x, train_y;
  std::shared_ptr<const MappedNpy> validation_x, validation_y;
};

// Describes the data set in `dir` (DIR/NAME) called `name` from its
// manifest and its arrays' headers, mapping nothing: what a worker reports.
absl::StatusOr<DatasetDescription> DescribeDataset(const std::string& dir,
                                                   const std::string& name);

// Finds `name` in the data directories (DataDirs(data_dir), first match)
// and maps its arrays after DescribeDataset's checks. NotFound naming
// data.name and the places tried when no directory has it.
absl::StatusOr<MappedDataset> OpenDataset(const std::string& data_dir,
                                          const std::string& name);

// The data sets by reference in `dirs` (DataDirs' order; a name found in
// an earlier directory hides later ones): every subdirectory with a
// manifest, sorted by name, at most kMaxDatasetsPerWorker. One that cannot
// be described, whose name breaks the rule or is built in, or beyond the
// limit is left out, with a line saying why in `problems`.
struct DatasetListing {
  std::vector<DatasetDescription> datasets;
  std::vector<std::string> problems;
};
DatasetListing ListDatasets(const std::vector<std::string>& dirs);

}  // namespace lrtune::engine

#endif  // LRTUNE_WORKER_DATASET_DIR_H_
