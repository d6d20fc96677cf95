// Schedule parameters as the CLI and job files give them: one "name=value"
// per line, applied with SetScheduleParam, then Schedule::Create. A
// schedule that validates must give a finite, non-negative LR (and a
// momentum in [0, 1] where it has one) at every sampled step.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/str_split.h"
#include "core/schedule.h"
#include "core/schedule_params.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 4096) return 0;
  const std::string text(reinterpret_cast<const char*>(data), size);
  lrtune::ScheduleSpec spec;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(line, absl::MaxSplits('=', 1));
    if (!lrtune::SetScheduleParam(spec, kv.first, kv.second).ok()) return 0;
  }
  auto schedule = lrtune::Schedule::Create(spec);
  if (!schedule.ok()) return 0;
  const int64_t steps =
      schedule->length() > 0 ? std::min<int64_t>(schedule->length(), 512) : 512;
  auto points = schedule->Sample(steps);
  if (!points.ok()) return 0;
  for (const lrtune::SchedulePoint& p : *points) {
    if (!std::isfinite(p.lr) || p.lr < 0) std::abort();
    if (p.momentum.has_value() && !(*p.momentum >= 0 && *p.momentum <= 1)) {
      std::abort();
    }
  }
  return 0;
}
