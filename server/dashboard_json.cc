#include "server/dashboard_json.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
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

std::string PointElement(const v1::JobEvent& event) {
  const v1::PointEvent& p = event.point();
  const v1::CurvePoint& point = p.point();
  std::string out;
  out.reserve(72);
  char buf[48];
  auto append_number = [&](double v) {
    if (!std::isfinite(v)) {
      out += "null,";
      return;
    }
    const int n = std::snprintf(buf, sizeof(buf), "%.7g,", v);
    out.append(buf, static_cast<size_t>(n));
  };
  const int n = std::snprintf(
      buf, sizeof(buf), "[%d,%d,%lld,",
      p.origin().has_trial_index() ? p.origin().trial_index() : -1,
      point.seed_index(), static_cast<long long>(point.step()));
  out.append(buf, static_cast<size_t>(n));
  append_number(point.lr());
  append_number(point.loss());
  append_number(point.smoothed());
  absl::StrAppend(&out, UnixMillis(event.time()), "]");
  return out;
}

std::string EventFrame(const v1::JobEvent& event) {
  std::string data;
  if (event.has_accepted()) {
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

void FrameWriter::Add(const v1::JobEvent& event) {
  const auto seq = static_cast<int64_t>(event.seq());
  if (event.has_point()) {
    AddEncoded(seq, true, PointElement(event));
  } else {
    AddEncoded(seq, false, EventFrame(event));
  }
}

void FrameWriter::AddEncoded(int64_t seq, bool point,
                             absl::string_view encoded) {
  if (points_ > 0 &&
      (!point || seq != last_ + 1 || points_ >= kPointsPerFrame)) {
    Finish();
  }
  if (!point) {
    out_->append(encoded.data(), encoded.size());
    return;
  }
  // The id line comes first but names the last point: the open frame's
  // points gather in open_ until Finish.
  if (points_ == 0) {
    first_ = seq;
    open_.clear();
  } else {
    open_.push_back(',');
  }
  open_.append(encoded.data(), encoded.size());
  last_ = seq;
  ++points_;
}

void FrameWriter::Finish() {
  if (points_ == 0) return;
  absl::StrAppend(out_, "id: ", last_,
                  "\nevent: points\ndata: {\"first\":", first_, ",\"points\":[",
                  open_, "]}\n\n");
  points_ = 0;
}

}  // namespace lrtune::server
