// How the dashboard's API writes jobs and events: JSON, and each event as a
// Server-Sent Events frame.
//
//   response.body = JobJson(job);
//   stream.Write(EventFrame(event));
//
// A job is protobuf's JSON mapping of v1::Job with the .proto field names
// (snake_case): enums by name, 64-bit integers as strings, NaN and
// infinities as "NaN" / "Infinity", unset fields left out. It is written
// without what a client uploaded with the job (inline data sets and
// TorchScript models, up to 64 MiB), which no page shows.
//
// An event frame is `id: <seq>`, `event: <kind>` (the JobEvent oneof's
// field name: point, evaluation, state_changed, ...) and one `data:` line.
// A point's data is compact, since points are most of a stream:
// {"seq":12,"t":1732800000123,"trial":-1,"seed":0,"step":11,"lr":1.2e-05,
// "loss":2.3,"smoothed":2.31} (t: when the coordinator stored it, ms since
// the epoch; trial -1: the range test phase; a non-finite loss is null).
// Every other event's data is the JobEvent in the mapping above. Pure
// functions; thread-safe.
#ifndef LRTUNE_SERVER_DASHBOARD_JSON_H_
#define LRTUNE_SERVER_DASHBOARD_JSON_H_

#include <string>

#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"
#include "lrtune/v1/jobs.pb.h"
#include "lrtune/v1/lrtune.pb.h"

namespace lrtune::server {

// Clears what a client uploaded (inline data, TorchScript bytes) from the
// job's specs and its trials' runs, noting in their place nothing: a
// dashboard reads the data set's name and shape from what remains.
void StripUploads(v1::Job& job);

// Any message in the mapping above (the caller strips uploads first).
std::string ProtoJson(const google::protobuf::Message& message);

// A job, its uploads stripped.
std::string JobJson(v1::Job job);

// {"jobs":[...],"next_page_token":"..."}, each job stripped of its
// uploads, attempts and trials (GET /api/jobs/<id> has them).
std::string JobListJson(v1::ListJobsResponse list);

// The oneof field name of the event ("point", ...); "unknown" when unset.
absl::string_view EventKind(const v1::JobEvent& event);

// The Server-Sent Events frame of `event`, ending in an empty line.
std::string EventFrame(const v1::JobEvent& event);

}  // namespace lrtune::server

#endif  // LRTUNE_SERVER_DASHBOARD_JSON_H_
