#include "server/event_codec.h"

#include "absl/strings/str_cat.h"
#include "server/spec_convert.h"

namespace lrtune::server {
namespace {

class ProtoEventEncoder final : public EventEncoder {
 public:
  std::string Accepted() const override {
    v1::JobEvent event;
    event.mutable_accepted();
    return event.SerializeAsString();
  }

  std::string StateChanged(JobState state,
                           absl::string_view reason) const override {
    v1::JobEvent event;
    v1::StateChanged* changed = event.mutable_state_changed();
    changed->set_state(JobStateToProto(state));
    changed->set_reason(std::string(reason));
    return event.SerializeAsString();
  }

  std::string AttemptEnded(const AttemptRecord& attempt,
                           bool will_retry) const override {
    v1::JobEvent event;
    v1::AttemptEnded* ended = event.mutable_attempt_ended();
    *ended->mutable_attempt() = AttemptToProto(attempt);
    ended->set_will_retry(will_retry);
    return event.SerializeAsString();
  }
};

}  // namespace

std::string EventType(const v1::JobEvent& event) {
  switch (event.event_case()) {
    case v1::JobEvent::kPoint:
      return "point";
    case v1::JobEvent::kEvaluation:
      return "evaluation";
    case v1::JobEvent::kTrialStarted:
      return "trial_started";
    case v1::JobEvent::kTrialFinished:
      return "trial_finished";
    case v1::JobEvent::kAttemptEnded:
      return std::string(kAttemptEndedEventType);
    case v1::JobEvent::kRecommendation:
      return "recommendation";
    case v1::JobEvent::kRanking:
      return "ranking";
    case v1::JobEvent::kRungDecision:
      return "rung_decision";
    case v1::JobEvent::kAccepted:
      return std::string(kAcceptedEventType);
    case v1::JobEvent::kStateChanged:
      return std::string(kStateEventType);
    case v1::JobEvent::EVENT_NOT_SET:
      break;
  }
  return "unknown";
}

const EventEncoder* JobEventEncoder() {
  static const ProtoEventEncoder* const encoder = new ProtoEventEncoder;
  return encoder;
}

absl::StatusOr<v1::JobEvent> StoredEventToProto(const StoredEvent& event) {
  v1::JobEvent out;
  if (!out.ParseFromString(event.payload)) {
    return absl::DataLossError(absl::StrCat("event ", event.seq, " (",
                                            event.type, ") does not parse"));
  }
  if (EventType(out) != event.type) {
    return absl::DataLossError(absl::StrCat("event ", event.seq,
                                            " is stored as ", event.type,
                                            " but holds ", EventType(out)));
  }
  out.set_seq(static_cast<uint64_t>(event.seq));
  out.set_job_id(event.job_id);
  SetTimestamp(event.time, out.mutable_time());
  return out;
}

bool IsTerminalEvent(const v1::JobEvent& event) {
  if (!event.has_state_changed()) return false;
  const v1::JobState s = event.state_changed().state();
  return s == v1::JOB_STATE_SUCCEEDED || s == v1::JOB_STATE_FAILED ||
         s == v1::JOB_STATE_CANCELLED;
}

}  // namespace lrtune::server
