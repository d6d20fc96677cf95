// The one converter between core's values (the spec model, schedules,
// recommendations) and their lrtune.v1 messages: the coordinator validates
// requests with it, the worker agent turns tasks into engine runs with it,
// the CLI checks its flags with it.
//
//   LRTUNE_ASSIGN_OR_RETURN(JobSpec job, RunSpecFromProto(task.run()));
//   v1::Recommendation p = RecommendationToProto(rec);
//   Recommendation back = RecommendationFromProto(p);  // == rec
//
// Spec conversions (proto -> core) apply the defaults documented on every
// `optional` field and then run core/spec.h's validators: an error names
// the field through `names` (by default the proto path from the request:
// "run.batch_size must be >= 1, got 0").
//
// A suggestion a curve does not give is NaN in core and an unset optional in
// the proto; diverged_at -1 is unset. Pure functions; thread-compatible.
#ifndef LRTUNE_PROTO_CORE_CONVERT_H_
#define LRTUNE_PROTO_CORE_CONVERT_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/curve_analysis.h"
#include "core/schedule.h"
#include "core/spec.h"
#include "lrtune/v1/results.pb.h"
#include "lrtune/v1/schedule.pb.h"
#include "lrtune/v1/spec.pb.h"

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

// Core's schedule kind as the proto's (SCHEDULE_KIND_<NAME>), and back
// (INVALID_ARGUMENT naming `path` for UNSPECIFIED or a value this build
// does not know).
v1::ScheduleKind ScheduleKindToProto(ScheduleKind kind);
absl::StatusOr<ScheduleKind> ScheduleKindFromProto(v1::ScheduleKind kind,
                                                   const std::string& path);

// The range test's ramp shape; `path` names the field in errors.
absl::StatusOr<RampShape> RampFromProto(v1::RampShape shape,
                                        absl::string_view path);
v1::RampShape RampToProto(RampShape shape);

// The range test's analysed curve as the proto's (RANGE_METRIC_<NAME>).
v1::RangeMetric RangeMetricToProto(RangeMetric metric);
v1::Precision PrecisionToProto(Precision precision);

// --- Specs: proto -> core (validated) ------------------------------------

// A RunSpec; names default to "run." + the path. data_dir stays empty (the
// worker's configuration).
absl::StatusOr<JobSpec> RunSpecFromProto(const v1::RunSpec& run,
                                         const FieldNamer& names);
absl::StatusOr<JobSpec> RunSpecFromProto(const v1::RunSpec& run);
// A RangeTestSpec; names default to "range_test." + the path.
absl::StatusOr<RangeTestSpec> RangeTestSpecFromProto(
    const v1::RangeTestSpec& spec, const FieldNamer& names);
absl::StatusOr<RangeTestSpec> RangeTestSpecFromProto(
    const v1::RangeTestSpec& spec);
// A TrainSpec; names default to "train." + the path. checkpoint_path stays
// empty (the worker chooses it); the schedule is checked by Schedule::Create.
absl::StatusOr<TrainSpec> TrainSpecFromProto(const v1::TrainSpec& spec,
                                             const FieldNamer& names);
absl::StatusOr<TrainSpec> TrainSpecFromProto(const v1::TrainSpec& spec);

// --- Specs: core -> proto (every value set explicitly) --------------------
// Inverse of the above for valid values: X -> proto -> X is the identity.

v1::RunSpec RunSpecToProto(const JobSpec& job);
v1::RangeTestSpec RangeTestSpecToProto(const RangeTestSpec& spec);
v1::TrainSpec TrainSpecToProto(const TrainSpec& spec);

v1::ModelKind ModelKindToProto(ModelKind kind);
v1::OptimizerKind OptimizerKindToProto(OptimizerKind kind);

// A data set by reference's description (RunSpecFromProto converts and
// checks the one in a DataSpec): FromProto runs core's
// ValidateDatasetDescription, naming the fields through `names` (e.g.
// PrefixNames("capabilities.datasets[3].")). ToProto sets every field.
absl::StatusOr<DatasetDescription> DatasetDescriptionFromProto(
    const v1::DatasetDescription& d, const FieldNamer& names);
v1::DatasetDescription DatasetDescriptionToProto(const DatasetDescription& d);

// The ready-to-use schedules (core/curve_analysis.h RecommendSchedules).
v1::RecommendedSchedules RecommendedSchedulesToProto(
    const RecommendedSchedules& schedules);

}  // namespace lrtune

#endif  // LRTUNE_PROTO_CORE_CONVERT_H_
