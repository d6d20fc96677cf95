// Early-return helpers for absl::Status and absl::StatusOr.
//
// Abseil 20220623 (Debian 12) ships no RETURN_IF_ERROR, so lrtune defines its
// two macros here, once, for every module.
//
//   LRTUNE_RETURN_IF_ERROR(store.Open(path));
//   LRTUNE_ASSIGN_OR_RETURN(Schedule s, Schedule::Create(spec));
#ifndef LRTUNE_CORE_STATUS_MACROS_H_
#define LRTUNE_CORE_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define LRTUNE_RETURN_IF_ERROR(expr)                 \
  do {                                               \
    ::absl::Status lrtune_status_ = (expr);          \
    if (!lrtune_status_.ok()) return lrtune_status_; \
  } while (0)

#define LRTUNE_STATUS_CONCAT_INNER_(a, b) a##b
#define LRTUNE_STATUS_CONCAT_(a, b) LRTUNE_STATUS_CONCAT_INNER_(a, b)

// Evaluates `rexpr` (a StatusOr<T>); returns its status on error, otherwise
// moves the value into `lhs` (which may be a declaration).
#define LRTUNE_ASSIGN_OR_RETURN(lhs, rexpr) \
  LRTUNE_ASSIGN_OR_RETURN_IMPL_(            \
      LRTUNE_STATUS_CONCAT_(lrtune_statusor_, __LINE__), lhs, rexpr)

#define LRTUNE_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                  \
  if (!statusor.ok()) return statusor.status();             \
  lhs = std::move(statusor).value()

#endif  // LRTUNE_CORE_STATUS_MACROS_H_
