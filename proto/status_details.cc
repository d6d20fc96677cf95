#include "proto/status_details.h"

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "lrtune/v1/worker.pb.h"

namespace lrtune {
namespace {

constexpr absl::string_view kTypePrefix = "type.googleapis.com/";

std::string TypeUrl(const google::protobuf::Message& m) {
  return absl::StrCat(kTypePrefix, m.GetDescriptor()->full_name());
}

}  // namespace

absl::Status WorkerNotRegisteredError(absl::string_view worker_id) {
  absl::Status status = absl::NotFoundError(
      absl::StrCat("worker ", worker_id, " is not registered; Register first"));
  v1::WorkerNotRegistered fact;
  fact.set_worker_id(std::string(worker_id));
  status.SetPayload(TypeUrl(fact), absl::Cord(fact.SerializeAsString()));
  return status;
}

bool IsWorkerNotRegistered(const absl::Status& status) {
  return absl::IsNotFound(status) &&
         status.GetPayload(TypeUrl(v1::WorkerNotRegistered())).has_value();
}

std::string StatusDetailsOf(const absl::Status& status) {
  v1::StatusDetails details;
  status.ForEachPayload(
      [&](absl::string_view type_url, const absl::Cord& payload) {
        google::protobuf::Any* any = details.add_details();
        any->set_type_url(std::string(type_url));
        any->set_value(std::string(payload));
      });
  if (details.details_size() == 0) return std::string();
  details.set_code(static_cast<int>(status.code()));
  details.set_message(std::string(status.message()));
  return details.SerializeAsString();
}

void AddStatusDetails(absl::string_view serialized, absl::Status& status) {
  v1::StatusDetails details;
  if (status.ok() || serialized.empty() ||
      !details.ParseFromArray(serialized.data(),
                              static_cast<int>(serialized.size()))) {
    return;
  }
  for (const google::protobuf::Any& any : details.details()) {
    status.SetPayload(any.type_url(), absl::Cord(any.value()));
  }
}

}  // namespace lrtune
