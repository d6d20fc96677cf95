// How a rule names the field it checks, in the caller's vocabulary.
//
// Every validator in core/ states a rule once and names the field by its
// path in the spec model ("batch_size", "data.subset", "analysis.
// smoothing_beta"); a FieldNamer turns that path into what the caller knows:
// the RPC's field path ("run.batch_size"), the CLI's flag ("--batch-size"),
// or the engine's JSON key. So one rule gives one message everywhere:
//
//   FieldNamer rpc = PrefixNames("range_test.");
//   return FieldError(rpc, "end_lr", "must be > start_lr");
//   // INVALID_ARGUMENT "range_test.end_lr must be > start_lr"
//
// Header-only; every function is pure and thread-safe.
#ifndef LRTUNE_CORE_FIELD_NAMES_H_
#define LRTUNE_CORE_FIELD_NAMES_H_

#include <functional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace lrtune {

// Maps a field's path in the spec model to the name an error shows.
using FieldNamer = std::function<std::string(absl::string_view path)>;

// prefix + path: PrefixNames("run.")("batch_size") is "run.batch_size".
inline FieldNamer PrefixNames(std::string prefix) {
  return [prefix = std::move(prefix)](absl::string_view path) {
    return absl::StrCat(prefix, path);
  };
}

// The names of a nested message's fields: Nested(outer, "analysis.") names
// "stepsize_k" as outer("analysis.stepsize_k").
inline FieldNamer Nested(FieldNamer outer, std::string prefix) {
  return [outer = std::move(outer),
          prefix = std::move(prefix)](absl::string_view path) {
    return outer(absl::StrCat(prefix, path));
  };
}

// INVALID_ARGUMENT "<name of path> <rule>".
inline absl::Status FieldError(const FieldNamer& names, absl::string_view path,
                               absl::string_view rule) {
  return absl::InvalidArgumentError(absl::StrCat(names(path), " ", rule));
}

}  // namespace lrtune

#endif  // LRTUNE_CORE_FIELD_NAMES_H_
