// Conversions between core's analysis values and their lrtune.v1 messages,
// shared by the coordinator (which aggregates seeds) and the worker agent
// (which reports each seed's result).
//
//   v1::Recommendation p = RecommendationToProto(rec);
//   Recommendation back = RecommendationFromProto(p);  // == rec
//
// A suggestion a curve does not give is NaN in core and an unset optional in
// the proto; diverged_at -1 is unset. Pure functions; thread-compatible.
#ifndef LRTUNE_PROTO_CORE_CONVERT_H_
#define LRTUNE_PROTO_CORE_CONVERT_H_

#include "core/range_test.h"
#include "lrtune/v1/results.pb.h"

namespace lrtune {

v1::Recommendation RecommendationToProto(const Recommendation& rec);
// seeds below 1 (unset) read as 1: every recommendation comes from a curve.
Recommendation RecommendationFromProto(const v1::Recommendation& rec);

}  // namespace lrtune

#endif  // LRTUNE_PROTO_CORE_CONVERT_H_
