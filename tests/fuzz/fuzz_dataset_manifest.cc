// Data set manifests (worker/dataset_dir.h): the JSON a worker reads from
// its data directory. Beyond "no crash, no sanitizer report": a refusal is
// InvalidArgument; an accepted manifest has 1..4 dims each >= 1, exactly
// one of classes (>= 2) and targets (>= 1), float32 features, and plain,
// distinct .npy file names in the set's own directory.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "worker/dataset_dir.h"

namespace {

bool Plain(const std::string& name) {
  return !name.empty() && name[0] != '.' && absl::EndsWith(name, ".npy") &&
         name.find('/') == std::string::npos &&
         name.find('\0') == std::string::npos;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > lrtune::engine::kMaxManifestBytes) return 0;
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  auto m = lrtune::engine::ParseDatasetManifest(text);
  if (!m.ok()) {
    if (!absl::IsInvalidArgument(m.status())) std::abort();
    return 0;
  }
  if (m->shape.empty() || m->shape.size() > 4) std::abort();
  for (int64_t d : m->shape) {
    if (d < 1) std::abort();
  }
  if ((m->classes > 0) == (m->targets > 0)) std::abort();
  if (m->classes == 1 || m->classes < 0 || m->targets < 0) std::abort();
  if (m->dtype != "float32") std::abort();
  if (!Plain(m->train_x) || !Plain(m->train_y)) std::abort();
  if (m->validation_x.empty() != m->validation_y.empty()) std::abort();
  std::set<std::string> files = {m->train_x, m->train_y};
  if (!m->validation_x.empty()) {
    if (!Plain(m->validation_x) || !Plain(m->validation_y)) std::abort();
    files.insert(m->validation_x);
    files.insert(m->validation_y);
  }
  if (files.size() != (m->validation_x.empty() ? 2u : 4u)) std::abort();
  return 0;
}
