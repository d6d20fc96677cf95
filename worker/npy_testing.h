// For tests: the bytes np.save writes before a C-order array's data, so a
// test can write .npy files as NumPy does (worker/npy_file.h reads them).
#ifndef LRTUNE_WORKER_NPY_TESTING_H_
#define LRTUNE_WORKER_NPY_TESTING_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace lrtune::engine {

// The magic, version 1.0, the header's length (2 bytes, little-endian) and
// the dict for `descr` and `shape`, padded with spaces and '\n' to a
// multiple of 64 bytes.
inline std::string NpySaveHeader(const std::string& descr,
                                 const std::vector<int64_t>& shape) {
  std::string dims = absl::StrJoin(shape, ", ");
  if (shape.size() == 1) dims += ",";
  std::string header =
      absl::StrCat("{'descr': '", descr,
                   "', 'fortran_order': False, 'shape': (", dims, "), }");
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\0';
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  return out + header;
}

}  // namespace lrtune::engine

#endif  // LRTUNE_WORKER_NPY_TESTING_H_
