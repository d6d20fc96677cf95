// How the dashboard's API writes jobs and events: JSON, and events as
// Server-Sent Events frames.
//
//   response.body = JobJson(job);
//   FrameWriter frames(&text);  for (e : events) frames.Add(e);
//   frames.Finish();  stream.Write(text);
//
// A job is protobuf's JSON mapping of v1::Job with the .proto field names
// (snake_case): enums by name, 64-bit integers as strings, NaN and
// infinities as "NaN" / "Infinity", unset fields left out. It is written
// without what a client uploaded with the job (inline data sets and
// TorchScript models, up to 64 MiB), which no page shows.
//
// A frame is `id: <seq>`, `event: <kind>` and one `data:` line. Every event
// but a point is a frame of its own: its kind is the JobEvent oneof's field
// name (evaluation, state_changed, ...), its data the JobEvent in the
// mapping above. Points, most of a stream, go compactly: a run of
// consecutive point events is one `points` frame whose id is the last one's
// seq and whose data is {"first":<seq of the first>,"points":[[trial,seed,
// step,lr,loss,smoothed,t],...]} (trial -1: the range test phase; lr,
// loss and smoothed to 7 significant digits, a float's, which is what a
// chart needs and less than half the bytes of an exact double; a
// non-finite one is null; t: when the coordinator stored it, ms since the
// epoch), at most kPointsPerFrame of them. So Last-Event-ID resumes exactly
// after any frame. Pure functions and a value type; thread-compatible.
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

inline constexpr int kPointsPerFrame = 512;

// A point event's element of a `points` frame: [trial,seed,step,lr,loss,
// smoothed,t], the three doubles to 7 significant digits.
std::string PointElement(const v1::JobEvent& event);

// The frame of an event that is not a point, ending in an empty line.
std::string EventFrame(const v1::JobEvent& event);

// Appends the frames of a job's events, given in seq order, to `out`.
class FrameWriter {
 public:
  explicit FrameWriter(std::string* out) : out_(out) {}
  FrameWriter(const FrameWriter&) = delete;
  FrameWriter& operator=(const FrameWriter&) = delete;

  void Add(const v1::JobEvent& event);
  // An event already encoded: a point's PointElement, or another event's
  // EventFrame.
  void AddEncoded(int64_t seq, bool point, absl::string_view encoded);
  // Closes the open `points` frame, if any. Call before using `out`.
  void Finish();

 private:
  std::string* const out_;
  std::string open_;   // the open points frame's elements
  int64_t first_ = 0;  // their first seq
  int64_t last_ = 0;   // and last
  int points_ = 0;     // how many; 0: no frame open
};

}  // namespace lrtune::server

#endif  // LRTUNE_SERVER_DASHBOARD_JSON_H_
