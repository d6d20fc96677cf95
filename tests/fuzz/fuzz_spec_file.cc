// Job spec files as `lrtune grid --spec` and `lrtune submit --spec` read
// them (client/job_spec.h), YAML and JSON, then the coordinator's
// validation of what they parse to. Any input must be parsed or refused
// with INVALID_ARGUMENT (the file's name in the message), and a parsed
// request accepted or refused as fuzz_submit_job expects: never a crash, an
// uncaught exception (the first run of this target found one: a string
// that is not UTF-8), or a sanitizer report.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/match.h"
#include "client/job_spec.h"
#include "server/spec_convert.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using lrtune::fuzz::CheckAcceptedOrRefused;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > (1 << 14)) return 0;
  const std::string text(reinterpret_cast<const char*>(data), size);
  for (bool json : {false, true}) {
    auto request = lrtune::ParseJobSpec(text, json, "spec");
    if (!request.ok()) {
      if (!absl::IsInvalidArgument(request.status()) ||
          !absl::StartsWith(request.status().message(), "spec")) {
        std::abort();
      }
      continue;
    }
    lrtune::server::SpecLimits limits;
    limits.max_trials = 64;
    CheckAcceptedOrRefused(lrtune::server::ValidateSubmitJob(*request, limits));
  }
  return 0;
}
