#include "worker/dataset_files.h"

#include <sys/stat.h>
#include <zlib.h>

#include <cstdlib>
#include <memory>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace lrtune::engine {
namespace {

struct GzCloser {
  void operator()(gzFile_s* f) const { gzclose(f); }
};
using GzFile = std::unique_ptr<gzFile_s, GzCloser>;

// Reads a whole file through zlib (which also reads uncompressed files).
absl::StatusOr<std::string> ReadMaybeGzipped(const std::string& path) {
  GzFile f(gzopen(path.c_str(), "rb"));
  if (f == nullptr) {
    return absl::NotFoundError(absl::StrCat("cannot open ", path));
  }
  std::string out;
  char buf[1 << 16];
  for (;;) {
    int n = gzread(f.get(), buf, sizeof(buf));
    if (n < 0) {
      int err = 0;
      return absl::DataLossError(
          absl::StrCat(path, ": ", gzerror(f.get(), &err)));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

bool IsDir(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace

absl::StatusOr<IdxArray> ReadIdx(const std::string& path) {
  absl::StatusOr<std::string> bytes = ReadMaybeGzipped(path);
  if (!bytes.ok()) return bytes.status();
  const std::string& b = *bytes;
  auto u8 = [&](size_t i) { return static_cast<uint8_t>(b[i]); };
  if (b.size() < 4 || u8(0) != 0 || u8(1) != 0 || u8(2) != 0x08) {
    return absl::DataLossError(
        absl::StrCat(path, ": not an IDX file of unsigned bytes"));
  }
  const size_t ndims = u8(3);
  if (ndims == 0 || b.size() < 4 + 4 * ndims) {
    return absl::DataLossError(absl::StrCat(path, ": truncated IDX header"));
  }
  IdxArray out;
  size_t total = 1;
  for (size_t d = 0; d < ndims; ++d) {
    size_t o = 4 + 4 * d;
    int64_t dim = (int64_t{u8(o)} << 24) | (int64_t{u8(o + 1)} << 16) |
                  (int64_t{u8(o + 2)} << 8) | int64_t{u8(o + 3)};
    out.dims.push_back(dim);
    total *= static_cast<size_t>(dim);
  }
  const size_t header = 4 + 4 * ndims;
  if (b.size() != header + total) {
    return absl::DataLossError(absl::StrCat(
        path, ": expected ", total, " data bytes, got ", b.size() - header));
  }
  out.data.assign(b.begin() + static_cast<std::ptrdiff_t>(header), b.end());
  return out;
}

absl::StatusOr<CsvTable> ReadSklearnCsv(const std::string& path) {
  absl::StatusOr<std::string> text = ReadMaybeGzipped(path);
  if (!text.ok()) return text.status();
  CsvTable t;
  int64_t line_no = 0;
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    ++line_no;
    line = absl::StripTrailingAsciiWhitespace(line);
    if (line.empty()) continue;
    std::vector<absl::string_view> fields = absl::StrSplit(line, ',');
    std::vector<float> row;
    row.reserve(fields.size());
    bool numeric = true;
    for (absl::string_view f : fields) {
      float v = 0;
      if (!absl::SimpleAtof(absl::StripAsciiWhitespace(f), &v)) {
        numeric = false;
        break;
      }
      row.push_back(v);
    }
    if (!numeric) {
      if (line_no == 1) continue;  // the "n_samples,n_features,names" header
      return absl::DataLossError(
          absl::StrCat(path, ":", line_no, ": non-numeric field"));
    }
    if (row.size() < 2) {
      return absl::DataLossError(
          absl::StrCat(path, ":", line_no, ": need features and a label"));
    }
    const int64_t cols = static_cast<int64_t>(row.size()) - 1;
    if (t.rows == 0) t.cols = cols;
    if (cols != t.cols) {
      return absl::DataLossError(absl::StrCat(path, ":", line_no, ": ", cols,
                                              " features, expected ", t.cols));
    }
    const float label = row.back();
    if (label < 0 || label != static_cast<float>(static_cast<int64_t>(label))) {
      return absl::DataLossError(absl::StrCat(
          path, ":", line_no, ": label must be a non-negative integer"));
    }
    t.labels.push_back(static_cast<int64_t>(label));
    t.x.insert(t.x.end(), row.begin(), row.end() - 1);
    ++t.rows;
  }
  if (t.rows == 0) return absl::DataLossError(absl::StrCat(path, ": no rows"));
  return t;
}

std::vector<std::string> DataDirs(const std::string& data_dir) {
  std::vector<std::string> dirs;
  auto add = [&dirs](absl::string_view list) {
    for (absl::string_view d : absl::StrSplit(list, ':', absl::SkipEmpty())) {
      dirs.emplace_back(d);
    }
  };
  if (!data_dir.empty()) {
    add(data_dir);
    return dirs;
  }
  if (const char* env = std::getenv("LRTUNE_DATA_DIR"); env && *env) add(env);
  dirs.push_back("/usr/local/share/lrtune/datasets");
  return dirs;
}

absl::StatusOr<std::string> FindDatasetDir(const std::string& data_dir,
                                           const std::string& subdir) {
  std::vector<std::string> tried;
  for (const std::string& dir : DataDirs(data_dir)) {
    tried.push_back(absl::StrCat(dir, "/", subdir));
  }
  if (data_dir.empty() && subdir == "fashion-mnist") {
    tried.push_back("/usr/share/datasets/fashion-mnist");
  }
  for (const std::string& dir : tried) {
    if (IsDir(dir)) return dir;
  }
  return absl::NotFoundError(absl::StrCat("dataset directory ", subdir,
                                          " not found; tried ",
                                          absl::StrJoin(tried, ", ")));
}

}  // namespace lrtune::engine
