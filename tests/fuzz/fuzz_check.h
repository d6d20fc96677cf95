// What the fuzz targets accept from validation: OK, or a refusal a client
// is told about (INVALID_ARGUMENT, RESOURCE_EXHAUSTED); anything else
// aborts, so the fuzzer reports it with its input.
#ifndef LRTUNE_TESTS_FUZZ_FUZZ_CHECK_H_
#define LRTUNE_TESTS_FUZZ_FUZZ_CHECK_H_

#include <cstdlib>

#include "absl/status/status.h"

namespace lrtune::fuzz {

inline void CheckAcceptedOrRefused(const absl::Status& status) {
  if (status.ok() || absl::IsInvalidArgument(status) ||
      absl::IsResourceExhausted(status)) {
    return;
  }
  std::abort();
}

}  // namespace lrtune::fuzz

#endif  // LRTUNE_TESTS_FUZZ_FUZZ_CHECK_H_
