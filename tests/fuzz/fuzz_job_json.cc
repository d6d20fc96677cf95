// lrtune-engine's JSON job files: any text must give a job or a clear
// error, never a crash, a hang or a sanitizer report. Relative paths
// resolve against a directory that does not exist, so nothing is read.
#include <cstddef>
#include <cstdint>
#include <string>

#include "worker/job_json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > (1 << 16)) return 0;
  const std::string text(reinterpret_cast<const char*>(data), size);
  (void)lrtune::engine::ParseJobJson(text, "/nonexistent-lrtune-fuzz");
  return 0;
}
