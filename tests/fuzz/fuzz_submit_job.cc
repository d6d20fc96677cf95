// The coordinator's request validation and grid planning, fed a
// SubmitJobRequest in protobuf text format (the seed corpus is readable and
// the fuzzer mutates text). Any request must be accepted or refused with
// INVALID_ARGUMENT / RESOURCE_EXHAUSTED naming a field -- never a crash, a
// sanitizer report (overflow in budgets x steps per epoch, say), or another
// status code.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"
#include "lrtune/v1/lrtune.pb.h"
#include "server/grid_plan.h"
#include "server/spec_convert.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

// Text the fuzzer mutates rarely parses; protobuf's own error log would
// drown the fuzzer's output.
class Quiet final : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int, int, const std::string&) override {}
};

using lrtune::fuzz::CheckAcceptedOrRefused;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > (1 << 14)) return 0;
  const std::string text(reinterpret_cast<const char*>(data), size);
  lrtune::v1::SubmitJobRequest request;
  google::protobuf::TextFormat::Parser parser;
  parser.AllowPartialMessage(true);
  Quiet quiet;
  parser.RecordErrorsTo(&quiet);
  if (!parser.ParseFromString(text, &request)) return 0;
  lrtune::server::SpecLimits limits;
  limits.max_trials = 64;  // keeps one input's expansion small
  const absl::Status valid = lrtune::server::ValidateSubmitJob(request, limits);
  CheckAcceptedOrRefused(valid);
  if (!valid.ok() || !request.has_grid()) return 0;
  auto trials = lrtune::server::PlanGrid(request.grid(), limits);
  CheckAcceptedOrRefused(trials.status());
  if (!trials.ok()) return 0;
  lrtune::v1::Recommendation rec;
  rec.set_min_lr(1e-3);
  rec.set_max_lr(1e-1);
  for (lrtune::server::PlannedTrial& t : *trials) {
    if (!t.needs_bounds) continue;
    CheckAcceptedOrRefused(
        lrtune::server::FillRecommendedBounds(request.grid(), rec, t.trial));
  }
  return 0;
}
