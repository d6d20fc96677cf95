#include "server/dashboard_json.h"

#include <cmath>
#include <cstdint>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/recommendation_format.h"
#include "google/protobuf/util/json_util.h"

namespace lrtune::server {
namespace {

void StripRun(v1::RunSpec& run) {
  if (run.data().has_inline_data()) {
    v1::InlineData* data = run.mutable_data()->mutable_inline_data();
    data->clear_x();  // x_shape stays: it says what was sent
    data->clear_y_labels();
    data->clear_y_targets();
  }
  run.mutable_model()->clear_torchscript();
}

int64_t UnixMillis(const google::protobuf::Timestamp& t) {
  return t.seconds() * 1000 + t.nanos() / 1000000;
}

}  // namespace

void StripUploads(v1::Job& job) {
  if (job.has_range_test()) StripRun(*job.mutable_range_test()->mutable_run());
  if (job.has_grid()) StripRun(*job.mutable_grid()->mutable_run());
  for (v1::Trial& trial : *job.mutable_trials()) {
    if (trial.has_run()) StripRun(*trial.mutable_run());
  }
}

std::string ProtoJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string out;
  if (!google::protobuf::util::MessageToJsonString(message, &out, options)
           .ok()) {
    return "{}";  // cannot happen for our messages
  }
  return out;
}

std::string JobJson(v1::Job job) {
  StripUploads(job);
  return ProtoJson(job);
}

std::string JobListJson(v1::ListJobsResponse list) {
  for (v1::Job& job : *list.mutable_jobs()) {
    job.clear_attempts();
    job.clear_trials();
    StripUploads(job);
  }
  return ProtoJson(list);
}

absl::string_view EventKind(const v1::JobEvent& event) {
  const google::protobuf::FieldDescriptor* field =
      v1::JobEvent::descriptor()->FindFieldByNumber(event.event_case());
  if (field == nullptr) return "unknown";
  return field->name();
}

std::string EventFrame(const v1::JobEvent& event) {
  std::string data;
  if (event.has_point()) {
    const v1::PointEvent& p = event.point();
    const v1::CurvePoint& point = p.point();
    data = absl::StrCat(
        "{\"seq\":", event.seq(), ",\"t\":", UnixMillis(event.time()),
        ",\"trial\":",
        p.origin().has_trial_index() ? p.origin().trial_index() : -1,
        ",\"seed\":", point.seed_index(), ",\"step\":", point.step(),
        ",\"lr\":", JsonNumber(point.lr()),
        ",\"loss\":", JsonNumber(point.loss()),
        ",\"smoothed\":", JsonNumber(point.smoothed()), "}");
  } else if (event.has_accepted()) {
    v1::JobEvent copy = event;
    StripUploads(*copy.mutable_accepted()->mutable_job());
    data = ProtoJson(copy);
  } else if (event.has_trial_started() || event.has_trial_finished()) {
    v1::JobEvent copy = event;
    v1::Trial* trial = copy.has_trial_started()
                           ? copy.mutable_trial_started()->mutable_trial()
                           : copy.mutable_trial_finished()->mutable_trial();
    if (trial->has_run()) StripRun(*trial->mutable_run());
    data = ProtoJson(copy);
  } else {
    data = ProtoJson(event);
  }
  return absl::StrCat("id: ", event.seq(), "\nevent: ", EventKind(event),
                      "\ndata: ", data, "\n\n");
}

}  // namespace lrtune::server
