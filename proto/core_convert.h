// Conversions between core's values (recommendations, schedules) and their
// lrtune.v1 messages, shared by the coordinator (which aggregates seeds and
// fills grid trials' schedules) and the worker agent.
//
//   v1::Recommendation p = RecommendationToProto(rec);
//   Recommendation back = RecommendationFromProto(p);  // == rec
//
// A suggestion a curve does not give is NaN in core and an unset optional in
// the proto; diverged_at -1 is unset. Pure functions; thread-compatible.
#ifndef LRTUNE_PROTO_CORE_CONVERT_H_
#define LRTUNE_PROTO_CORE_CONVERT_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/curve_analysis.h"
#include "core/schedule.h"
#include "lrtune/v1/results.pb.h"
#include "lrtune/v1/schedule.pb.h"

namespace lrtune {

v1::Recommendation RecommendationToProto(const Recommendation& rec);
// seeds below 1 (unset) read as 1: every recommendation comes from a curve.
Recommendation RecommendationFromProto(const v1::Recommendation& rec);

// A schedule, validated with Schedule::Create; `path` prefixes field names
// in errors (e.g. "train.schedule"). A cosine schedule without t_max takes
// total_steps. Unset optionals take the kind's defaults (schedule.proto).
absl::StatusOr<ScheduleSpec> ScheduleSpecFromProto(const v1::ScheduleSpec& spec,
                                                   absl::string_view path);
// Every value set explicitly: ScheduleSpecFromProto(ScheduleSpecToProto(s))
// gives s back for any valid s.
v1::ScheduleSpec ScheduleSpecToProto(const ScheduleSpec& spec);

// The range test's ramp shape; `path` names the field in errors.
absl::StatusOr<RampShape> RampFromProto(v1::RampShape shape,
                                        absl::string_view path);
v1::RampShape RampToProto(RampShape shape);

}  // namespace lrtune

#endif  // LRTUNE_PROTO_CORE_CONVERT_H_
