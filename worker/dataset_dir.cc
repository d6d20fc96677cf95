// Data sets by reference: manifests, descriptions, mapping and listing; see
// dataset_dir.h.
#include "worker/dataset_dir.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/status_macros.h"
#include "nlohmann/json.hpp"
#include "worker/dataset_files.h"

namespace lrtune::engine {
namespace {

using json = nlohmann::json;

absl::Status Bad(absl::string_view key, absl::string_view rule) {
  return absl::InvalidArgumentError(absl::StrCat("\"", key, "\" ", rule));
}

// A manifest's integer: a JSON integer in [lo, int64 max].
absl::StatusOr<int64_t> Integer(const json& v, absl::string_view key,
                                int64_t lo) {
  if (!v.is_number_integer() ||
      (v.is_number_unsigned() &&
       v.get<uint64_t>() >
           static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))) {
    return Bad(key, absl::StrCat("must be an integer, got ", v.dump()));
  }
  const int64_t i = v.get<int64_t>();
  if (i < lo) return Bad(key, absl::StrCat("must be >= ", lo, ", got ", i));
  return i;
}

// A file of the data set: a plain name in its directory ending in .npy.
absl::StatusOr<std::string> FileName(const json& v, absl::string_view key) {
  if (!v.is_string()) {
    return Bad(key, absl::StrCat("must be a file name, got ", v.dump()));
  }
  const std::string name = v.get<std::string>();
  const bool plain =
      !name.empty() && name[0] != '.' && name.size() <= 255 &&
      std::all_of(name.begin(), name.end(), [](char c) {
        return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' ||
               c == '_' || c == '-';
      });
  if (!plain || !absl::EndsWith(name, ".npy")) {
    return Bad(key, absl::StrCat("must be a .npy file in the data set's "
                                 "directory (A-Z a-z 0-9 . _ -, not "
                                 "starting with '.'), got ",
                                 v.dump()));
  }
  return name;
}

// Checks that `obj` is an object whose keys are all in `known`.
absl::Status Keys(const json& obj, absl::string_view where,
                  std::initializer_list<const char*> known) {
  if (!obj.is_object()) {
    if (where.empty()) {
      return absl::InvalidArgumentError("the manifest must be a JSON object");
    }
    return Bad(where, absl::StrCat("must be an object, got ", obj.dump()));
  }
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    if (std::none_of(known.begin(), known.end(),
                     [&](const char* k) { return it.key() == k; })) {
      return absl::InvalidArgumentError(
          absl::StrCat(where.empty() ? "" : absl::StrCat("\"", where, "\": "),
                       "unknown key \"", it.key(),
                       "\" (known: ", absl::StrJoin(known, ", "), ")"));
    }
  }
  return absl::OkStatus();
}

// x and y of one part of the split.
absl::Status Part(const json& obj, const std::string& where, std::string* x,
                  std::string* y) {
  LRTUNE_RETURN_IF_ERROR(Keys(obj, where, {"x", "y"}));
  if (!obj.contains("x") || !obj.contains("y")) {
    return Bad(where, "must name both files, x and y");
  }
  LRTUNE_ASSIGN_OR_RETURN(*x, FileName(obj["x"], where + ".x"));
  LRTUNE_ASSIGN_OR_RETURN(*y, FileName(obj["y"], where + ".y"));
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadManifest(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat("cannot open ", path));
  }
  if (static_cast<uint64_t>(st.st_size) > kMaxManifestBytes) {
    return absl::DataLossError(absl::StrCat(path, ": ", st.st_size,
                                            " bytes, over the limit of ",
                                            kMaxManifestBytes));
  }
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  if (!in || !(text << in.rdbuf())) {
    return absl::DataLossError(absl::StrCat("cannot read ", path));
  }
  return text.str();
}

// The description of the manifest's arrays, from their headers, after
// checking every rule that relates them: DataLoss naming the file.
struct Arrays {
  NpyHeader train_x, train_y;
  std::optional<NpyHeader> validation_x, validation_y;
};

absl::Status CheckPair(const DatasetManifest& m, const std::string& dir,
                       const std::string& x_file, const NpyHeader& x,
                       const std::string& y_file, const NpyHeader& y) {
  const std::string xp = absl::StrCat(dir, "/", x_file);
  const std::string yp = absl::StrCat(dir, "/", y_file);
  auto shape = [](const std::vector<int64_t>& s) {
    return absl::StrCat("(", absl::StrJoin(s, ", "), ")");
  };
  if (x.dtype != NpyDType::kFloat32) {
    return absl::DataLossError(
        absl::StrCat(xp, ": features must be float32 (dtype in ", kManifestFile,
                     "), got ", NpyDTypeName(x.dtype)));
  }
  std::vector<int64_t> want = {-1};
  want.insert(want.end(), m.shape.begin(), m.shape.end());
  if (x.shape.size() != want.size() ||
      !std::equal(x.shape.begin() + 1, x.shape.end(), want.begin() + 1)) {
    return absl::DataLossError(
        absl::StrCat(xp, ": shape ", shape(x.shape), " is not (N, ",
                     absl::StrJoin(m.shape, ", "),
                     "): rows of the \"shape\" in ", kManifestFile));
  }
  const int64_t n = x.shape[0];
  if (m.classes > 0) {
    if (y.dtype == NpyDType::kFloat32) {
      return absl::DataLossError(absl::StrCat(
          yp,
          ": labels must be int64 or int32 for \"classes\", got float32 "
          "(float targets need \"targets\" instead of \"classes\")"));
    }
    if (y.shape != std::vector<int64_t>{n}) {
      return absl::DataLossError(
          absl::StrCat(yp, ": shape ", shape(y.shape), " is not (", n,
                       ",): one label per row of ", x_file));
    }
  } else {
    if (y.dtype != NpyDType::kFloat32) {
      return absl::DataLossError(absl::StrCat(
          yp, ": targets must be float32 for \"targets\", got ",
          NpyDTypeName(y.dtype),
          " (class labels need \"classes\" instead of \"targets\")"));
    }
    const bool flat = y.shape == std::vector<int64_t>{n} && m.targets == 1;
    if (!flat && y.shape != std::vector<int64_t>{n, m.targets}) {
      return absl::DataLossError(absl::StrCat(
          yp, ": shape ", shape(y.shape), " is not (", n, ", ", m.targets, ")",
          m.targets == 1 ? absl::StrCat(" or (", n, ",)") : "",
          ": \"targets\" values per row of ", x_file));
    }
  }
  return absl::OkStatus();
}

// What core's rules call a description's fields, in the manifest's words.
FieldNamer ManifestNames(const std::string& dir, const DatasetManifest& m) {
  return [dir, m](absl::string_view path) -> std::string {
    const std::string manifest = absl::StrCat(dir, "/", kManifestFile);
    if (absl::StartsWith(path, "sample_shape")) {
      return absl::StrCat(manifest, ": \"shape\"", path.substr(12));
    }
    if (path == "train_samples") {
      return absl::StrCat(dir, "/", m.train_x, ": the rows (N)");
    }
    if (path == "validation_samples") {
      return absl::StrCat(dir, "/", m.validation_x, ": the rows (N)");
    }
    if (path == "target_width") return absl::StrCat(manifest, ": \"targets\"");
    if (path == "name") return absl::StrCat(dir, ": the directory's name");
    return absl::StrCat(manifest, ": \"", path, "\"");
  };
}

absl::StatusOr<std::pair<DatasetManifest, DatasetDescription>> Describe(
    const std::string& dir, const std::string& name, Arrays* arrays,
    const std::function<absl::StatusOr<NpyHeader>(const std::string&)>&
        header_of) {
  const std::string manifest_path = absl::StrCat(dir, "/", kManifestFile);
  LRTUNE_ASSIGN_OR_RETURN(std::string text, ReadManifest(manifest_path));
  absl::StatusOr<DatasetManifest> parsed = ParseDatasetManifest(text);
  if (!parsed.ok()) {
    return absl::DataLossError(
        absl::StrCat(manifest_path, ": ", parsed.status().message()));
  }
  const DatasetManifest& m = *parsed;
  LRTUNE_ASSIGN_OR_RETURN(arrays->train_x,
                          header_of(absl::StrCat(dir, "/", m.train_x)));
  LRTUNE_ASSIGN_OR_RETURN(arrays->train_y,
                          header_of(absl::StrCat(dir, "/", m.train_y)));
  LRTUNE_RETURN_IF_ERROR(CheckPair(m, dir, m.train_x, arrays->train_x,
                                   m.train_y, arrays->train_y));
  DatasetDescription d;
  d.name = name;
  d.sample_shape = m.shape;
  d.train_samples = arrays->train_x.shape[0];
  d.classes = m.classes;
  d.target_width = m.classes > 0 ? 0 : m.targets;
  auto file_bytes = [](const NpyHeader& h) {
    return static_cast<int64_t>(h.data_offset + h.data_bytes);
  };
  d.bytes = file_bytes(arrays->train_x) + file_bytes(arrays->train_y);
  if (!m.validation_x.empty()) {
    LRTUNE_ASSIGN_OR_RETURN(arrays->validation_x,
                            header_of(absl::StrCat(dir, "/", m.validation_x)));
    LRTUNE_ASSIGN_OR_RETURN(arrays->validation_y,
                            header_of(absl::StrCat(dir, "/", m.validation_y)));
    LRTUNE_RETURN_IF_ERROR(CheckPair(m, dir, m.validation_x,
                                     *arrays->validation_x, m.validation_y,
                                     *arrays->validation_y));
    d.validation_samples = arrays->validation_x->shape[0];
    if (d.validation_samples < 1) {
      return absl::DataLossError(absl::StrCat(
          dir, "/", m.validation_x,
          ": has no rows; leave \"validation\" out of \"split\" instead"));
    }
    d.bytes +=
        file_bytes(*arrays->validation_x) + file_bytes(*arrays->validation_y);
  }
  absl::Status valid = ValidateDatasetDescription(d, ManifestNames(dir, m));
  if (!valid.ok()) return absl::DataLossError(valid.message());
  return std::make_pair(*std::move(parsed), std::move(d));
}

// A parsed manifest's keys and values, checked.
absl::StatusOr<DatasetManifest> ParseManifestJson(const json& j) {
  LRTUNE_RETURN_IF_ERROR(Keys(j, "",
                              {"format", "shape", "dtype", "classes", "targets",
                               "split", "description"}));
  DatasetManifest m;
  if (j.contains("format")) {
    LRTUNE_ASSIGN_OR_RETURN(int64_t format, Integer(j["format"], "format", 1));
    if (format != 1) {
      return Bad("format", absl::StrCat("must be 1, got ", format,
                                        " (a newer lrtune's manifest?)"));
    }
  }
  if (!j.contains("shape")) {
    return Bad("shape", "is required: the dims of one sample, e.g. [784]");
  }
  const json& shape = j["shape"];
  if (!shape.is_array() || shape.empty() ||
      shape.size() > static_cast<size_t>(kMaxSampleDims)) {
    return Bad("shape", absl::StrCat("must be a list of 1 to ", kMaxSampleDims,
                                     " dims, got ", shape.dump()));
  }
  for (size_t i = 0; i < shape.size(); ++i) {
    LRTUNE_ASSIGN_OR_RETURN(
        int64_t dim, Integer(shape[i], absl::StrCat("shape[", i, "]"), 1));
    m.shape.push_back(dim);
  }
  if (!j.contains("dtype")) {
    return Bad("dtype", "is required: \"float32\", the features' dtype");
  }
  if (!j["dtype"].is_string() || j["dtype"].get<std::string>() != "float32") {
    return Bad("dtype", absl::StrCat("must be \"float32\" (features are read "
                                     "in place), got ",
                                     j["dtype"].dump()));
  }
  m.dtype = "float32";
  if (j.contains("classes") == j.contains("targets")) {
    return Bad("classes",
               "or \"targets\": exactly one is required (classes: labels in "
               "[0, classes); targets: float values per sample)");
  }
  if (j.contains("classes")) {
    LRTUNE_ASSIGN_OR_RETURN(m.classes, Integer(j["classes"], "classes", 2));
  } else {
    LRTUNE_ASSIGN_OR_RETURN(m.targets, Integer(j["targets"], "targets", 1));
  }
  if (j.contains("split")) {
    const json& split = j["split"];
    LRTUNE_RETURN_IF_ERROR(Keys(split, "split", {"train", "validation"}));
    if (split.contains("train")) {
      LRTUNE_RETURN_IF_ERROR(
          Part(split["train"], "split.train", &m.train_x, &m.train_y));
    }
    if (split.contains("validation")) {
      LRTUNE_RETURN_IF_ERROR(Part(split["validation"], "split.validation",
                                  &m.validation_x, &m.validation_y));
    }
  }
  const std::set<std::string> files = {m.train_x, m.train_y, m.validation_x,
                                       m.validation_y};
  if (files.size() != (m.validation_x.empty() ? 3u : 4u)) {
    return Bad("split",
               "must name four different files (two without "
               "validation)");
  }
  if (j.contains("description")) {
    if (!j["description"].is_string()) {
      return Bad("description", "must be a string");
    }
    m.description = j["description"].get<std::string>();
  }
  return m;
}

bool IsDir(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace

absl::StatusOr<DatasetManifest> ParseDatasetManifest(absl::string_view text) {
  // nlohmann throws for text that is not JSON and for a number beyond a
  // double (out_of_range): either way not a manifest we can read.
  try {
    return ParseManifestJson(json::parse(text.begin(), text.end()));
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("not JSON: ", e.what()));
  }
}

absl::StatusOr<DatasetDescription> DescribeDataset(const std::string& dir,
                                                   const std::string& name) {
  Arrays arrays;
  LRTUNE_ASSIGN_OR_RETURN(auto described,
                          Describe(dir, name, &arrays, ReadNpyHeader));
  return std::move(described.second);
}

absl::StatusOr<MappedDataset> OpenDataset(const std::string& data_dir,
                                          const std::string& name) {
  // The first data directory with the set's manifest, as ListDatasets
  // finds it.
  std::optional<std::string> dir;
  std::vector<std::string> tried;
  for (const std::string& d : DataDirs(data_dir)) {
    const std::string path = absl::StrCat(d, "/", name);
    tried.push_back(absl::StrCat(path, "/", kManifestFile));
    struct stat st;
    if (::stat(tried.back().c_str(), &st) == 0) {
      dir = path;
      break;
    }
  }
  if (!dir.has_value()) {
    return absl::NotFoundError(absl::StrCat(
        "data.name \"", name, "\" is not a data set of this worker: no ",
        absl::StrJoin(tried, " or ")));
  }
  // Map each file once; Describe checks the mapped headers.
  MappedDataset out;
  out.dir = *dir;
  std::map<std::string, std::shared_ptr<const MappedNpy>> mapped;
  auto map = [&mapped](const std::string& path) -> absl::StatusOr<NpyHeader> {
    LRTUNE_ASSIGN_OR_RETURN(std::shared_ptr<const MappedNpy> file,
                            MappedNpy::Open(path));
    mapped[path] = file;
    return file->header();
  };
  Arrays arrays;
  LRTUNE_ASSIGN_OR_RETURN(auto described, Describe(*dir, name, &arrays, map));
  const DatasetManifest& m = described.first;
  out.description = std::move(described.second);
  out.train_x = mapped[absl::StrCat(*dir, "/", m.train_x)];
  out.train_y = mapped[absl::StrCat(*dir, "/", m.train_y)];
  if (!m.validation_x.empty()) {
    out.validation_x = mapped[absl::StrCat(*dir, "/", m.validation_x)];
    out.validation_y = mapped[absl::StrCat(*dir, "/", m.validation_y)];
  }
  return out;
}

DatasetListing ListDatasets(const std::vector<std::string>& dirs) {
  DatasetListing out;
  std::set<std::string> seen;
  for (const std::string& dir : dirs) {
    if (!IsDir(dir)) continue;
    std::error_code error;
    std::vector<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
      std::error_code e;
      if (entry.is_directory(e) &&
          std::filesystem::exists(entry.path() / kManifestFile, e)) {
        names.push_back(entry.path().filename().string());
      }
    }
    if (error) {
      out.problems.push_back(
          absl::StrCat("cannot list ", dir, ": ", error.message()));
      continue;
    }
    std::sort(names.begin(), names.end());
    for (const std::string& name : names) {
      const std::string path = absl::StrCat(dir, "/", name);
      if (!IsDatasetName(name)) {
        out.problems.push_back(absl::StrCat(
            path, ": left out: a data set's name is 1 to ",
            kMaxDatasetNameLength,
            " characters of A-Z a-z 0-9 . _ -, starting with a letter or a "
            "digit"));
        continue;
      }
      if (!IsReferencedDataset(name)) {
        out.problems.push_back(
            absl::StrCat(path, ": left out: \"", name,
                         "\" is a built-in data set's name (or inline)"));
        continue;
      }
      if (!seen.insert(name).second) continue;  // an earlier dir has it
      if (out.datasets.size() >= static_cast<size_t>(kMaxDatasetsPerWorker)) {
        out.problems.push_back(absl::StrCat(
            path, ": left out: over ", kMaxDatasetsPerWorker, " data sets"));
        continue;
      }
      absl::StatusOr<DatasetDescription> d = DescribeDataset(path, name);
      if (!d.ok()) {
        out.problems.push_back(
            absl::StrCat("left out ", name, ": ", d.status().message()));
        continue;
      }
      out.datasets.push_back(*std::move(d));
    }
  }
  std::sort(out.datasets.begin(), out.datasets.end(),
            [](const DatasetDescription& a, const DatasetDescription& b) {
              return a.name < b.name;
            });
  return out;
}

}  // namespace lrtune::engine
