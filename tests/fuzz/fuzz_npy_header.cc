// .npy headers (worker/npy_file.h): the bytes a worker reads from a data
// set's files before it maps them. Beyond "no crash, no sanitizer report":
// a refusal is InvalidArgument; an accepted header lies within the input,
// its data starts aligned for its dtype, and its sizes are what its shape
// and dtype say.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/string_view.h"
#include "worker/npy_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto h = lrtune::engine::ParseNpyHeader(bytes);
  if (!h.ok()) {
    if (!absl::IsInvalidArgument(h.status())) std::abort();
    return 0;
  }
  const size_t elem = lrtune::engine::NpyDTypeSize(h->dtype);
  if (h->data_offset > size || h->data_offset % elem != 0) std::abort();
  if (h->shape.size() > lrtune::engine::kMaxNpyDims) std::abort();
  unsigned __int128 total = elem;
  for (int64_t d : h->shape) {
    if (d < 0) std::abort();
    total *= static_cast<uint64_t>(d);
  }
  if (total != h->data_bytes) std::abort();
  if (h->descr.size() != 3 || h->descr[0] != '<') std::abort();
  return 0;
}
