// NumPy's .npy files, read-only and memory-mapped: the arrays of a data set
// by reference (dataset_dir.h). Torch-free.
//
//   LRTUNE_ASSIGN_OR_RETURN(std::shared_ptr<const MappedNpy> x,
//                           MappedNpy::Open(dir + "/x.npy"));
//   const float* rows = static_cast<const float*>(x->data());  // shape()
//
// The format (numpy.lib.format, versions 1.0, 2.0 and 3.0): the magic
// "\x93NUMPY", a major and a minor version byte, the header's length (a
// little-endian uint16 in 1.0, uint32 in 2.0 and 3.0), then the header, a
// Python dict literal {'descr': '<f4', 'fortran_order': False, 'shape':
// (N, 784), } padded with spaces and ending in '\n', then the array's bytes.
// NumPy pads the header so the data starts at a multiple of 64 (16 before
// NumPy 1.14); the data is read in place, so it must start at a multiple of
// its element size.
//
// Only what a data set needs is accepted: C order, and the dtypes of
// NpyDType (little-endian). Anything else is refused with a message saying
// what the file holds and what would do, never read.
//
// Errors from a file are DataLoss naming the file ("x.npy: ..."), NotFound
// for a missing file. Every function is thread-safe; a MappedNpy is
// immutable.
#ifndef LRTUNE_WORKER_NPY_FILE_H_
#define LRTUNE_WORKER_NPY_FILE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace lrtune::engine {

// The element types a data set's arrays may have.
enum class NpyDType { kFloat32, kInt64, kInt32 };
// "float32", "int64", "int32".
const char* NpyDTypeName(NpyDType dtype);
size_t NpyDTypeSize(NpyDType dtype);

// A header, parsed and checked for itself (not against a file's size).
struct NpyHeader {
  int major_version = 1;
  std::string descr;  // as written, e.g. "<f4"
  NpyDType dtype = NpyDType::kFloat32;
  std::vector<int64_t> shape;  // () is a scalar: no dims
  // Where the data starts in the file and how many bytes it takes:
  // product(shape) * the element size.
  uint64_t data_offset = 0;
  uint64_t data_bytes = 0;
};

// At most this many header bytes (NumPy itself refuses more than 10000
// unless told otherwise) and dims.
inline constexpr size_t kMaxNpyHeaderBytes = 65536;
inline constexpr size_t kMaxNpyDims = 32;

// Parses the header at the start of `bytes`, which must hold at least the
// whole header (the data may follow or not). InvalidArgument saying what is
// wrong: not .npy, an unknown version, a truncated or malformed header, a
// dtype other than '<f4', '<i8', '<i4' (the message names the one found),
// Fortran order, a shape whose size overflows, data misaligned for its
// element size. Never reads past `bytes`.
absl::StatusOr<NpyHeader> ParseNpyHeader(absl::string_view bytes);

// Reads and parses the header of the file at `path` and checks the file
// holds exactly header + data bytes. NotFound for a missing file, DataLoss
// ("<path>: ...") for anything else.
absl::StatusOr<NpyHeader> ReadNpyHeader(const std::string& path);

// A .npy file mapped read-only (mmap PROT_READ, MAP_SHARED): its pages are
// read from disk when first touched and may be dropped again under memory
// pressure, so an array of any size the disk holds costs address space,
// not memory. Whoever wraps data() (a tensor) keeps a shared_ptr copy alive
// as long as the wrapper; the mapping ends with the last one. Writing
// through data() faults: it is read-only. So does reading a file that
// another process truncates while it is mapped (SIGBUS): replace a data
// set's files by writing new ones and renaming them, never in place.
class MappedNpy {
 public:
  // Maps the file at `path` after ReadNpyHeader's checks. Errors as
  // ReadNpyHeader's; a failed mmap is DataLoss naming the file.
  static absl::StatusOr<std::shared_ptr<const MappedNpy>> Open(
      const std::string& path);

  ~MappedNpy();  // unmaps
  MappedNpy(const MappedNpy&) = delete;
  MappedNpy& operator=(const MappedNpy&) = delete;

  const NpyHeader& header() const { return header_; }
  const std::vector<int64_t>& shape() const { return header_.shape; }
  NpyDType dtype() const { return header_.dtype; }
  // The first element, aligned for the dtype; valid while this lives.
  const void* data() const { return data_; }
  const std::string& path() const { return path_; }

 private:
  MappedNpy(std::string path, NpyHeader header, void* map, size_t map_size);

  const std::string path_;
  const NpyHeader header_;
  void* const map_;
  const size_t map_size_;
  const void* const data_;
};

}  // namespace lrtune::engine

#endif  // LRTUNE_WORKER_NPY_FILE_H_
