// Facts an error carries for the program that receives it, not in its text:
// absl::Status payloads in process, the gRPC status details (worker.proto
// StatusDetails, google.rpc.Status's layout) on the wire. The coordinator
// builds them, grpc_services.cc and the worker's hub client carry them, and
// the worker asks for them instead of reading a message:
//
//   return WorkerNotRegisteredError(worker_id);    // coordinator
//   if (IsWorkerNotRegistered(status)) Register();  // worker
//
// Protobuf only (no gRPC); pure and thread-safe.
#ifndef LRTUNE_PROTO_STATUS_DETAILS_H_
#define LRTUNE_PROTO_STATUS_DETAILS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace lrtune {

// NOT_FOUND "worker <id> is not registered; Register first", with a
// WorkerNotRegistered payload.
absl::Status WorkerNotRegisteredError(absl::string_view worker_id);
// Whether `status` carries a WorkerNotRegistered (not its text).
bool IsWorkerNotRegistered(const absl::Status& status);

// The status's payloads as a serialized StatusDetails; empty when it has
// none (then gRPC sends no details).
std::string StatusDetailsOf(const absl::Status& status);
// Adds the payloads of a serialized StatusDetails to `status`; ignores
// details that do not parse (an older or foreign server's).
void AddStatusDetails(absl::string_view details, absl::Status& status);

}  // namespace lrtune

#endif  // LRTUNE_PROTO_STATUS_DETAILS_H_
