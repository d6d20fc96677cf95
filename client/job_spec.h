// Job spec files: a SubmitJobRequest written as protobuf JSON or as the
// same structure in YAML (`lrtune grid --spec`, `lrtune submit --spec`;
// docs/cli.md, docs/examples/grid.yaml). Torch-free and without gRPC
// calls, so tests/fuzz/ can feed it anything.
//
//   absl::StatusOr<v1::SubmitJobRequest> r =
//       ParseJobSpec(text, /*json=*/false, "grid.yaml");
#ifndef LRTUNE_CLIENT_JOB_SPEC_H_
#define LRTUNE_CLIENT_JOB_SPEC_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "lrtune/v1/lrtune.pb.h"

namespace lrtune {

// YAML nested deeper than this is refused (a spec is a few levels deep;
// the limit keeps the conversion's recursion bounded).
inline constexpr int kMaxSpecDepth = 64;

// Parses `text` (protobuf JSON when `json`, else YAML: field names as in
// the protos; enums by the proto's name, MODEL_KIND_MLP, or the CLI's,
// mlp: kind: one_cycle, loss: cross_entropy, metric: val_loss). InvalidArgument
// names `name` and the line and column (YAML syntax), the field (unknown names,
// wrong types), or the rule (nesting, text that is not UTF-8).
absl::StatusOr<v1::SubmitJobRequest> ParseJobSpec(absl::string_view text,
                                                  bool json,
                                                  const std::string& name);

// Reads the file `path` (JSON when it ends in .json, else YAML) and parses
// it; errors start with "--spec PATH".
absl::StatusOr<v1::SubmitJobRequest> ReadJobSpec(const std::string& path);

}  // namespace lrtune

#endif  // LRTUNE_CLIENT_JOB_SPEC_H_
