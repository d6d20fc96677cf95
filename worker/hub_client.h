// HubClient: the worker's view of the coordinator's WorkerHub service, one
// method per RPC, with errors as absl::Status (the gRPC status converted at
// this edge, code for code).
//
//   std::unique_ptr<HubClient> hub = NewGrpcHubClient("localhost:7070", "");
//   absl::StatusOr<v1::RegisterResponse> r = hub->Register(request);
//
// The agent talks to the coordinator only through this interface, so its
// reporting and retry logic can be tested against an in-process fake.
// Implementations must be thread-safe: every slot thread, the heartbeat
// thread and the reporters call concurrently.
#ifndef LRTUNE_WORKER_HUB_CLIENT_H_
#define LRTUNE_WORKER_HUB_CLIENT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "lrtune/v1/worker.pb.h"

namespace lrtune::worker {

class HubClient {
 public:
  virtual ~HubClient() = default;
  virtual absl::StatusOr<v1::RegisterResponse> Register(
      const v1::RegisterRequest& request) = 0;
  virtual absl::StatusOr<v1::AcquireTaskResponse> AcquireTask(
      const v1::AcquireTaskRequest& request) = 0;
  virtual absl::StatusOr<v1::HeartbeatResponse> Heartbeat(
      const v1::HeartbeatRequest& request) = 0;
  virtual absl::StatusOr<v1::ReportPointsResponse> ReportPoints(
      const v1::ReportPointsRequest& request) = 0;
  virtual absl::StatusOr<v1::CompleteTaskResponse> CompleteTask(
      const v1::CompleteTaskRequest& request) = 0;
  virtual absl::StatusOr<v1::FailTaskResponse> FailTask(
      const v1::FailTaskRequest& request) = 0;

  // Makes AcquireTask calls in flight, and every later one, return
  // CANCELLED at once: a long poll would otherwise hold a stopping worker
  // for its whole wait. Other calls are unaffected (a stopping worker still
  // releases its tasks). A task the coordinator leased to a cancelled poll
  // is requeued when its lease lapses. Thread-safe.
  virtual void CancelWaits() {}
};

// A client over a gRPC channel to `target` ("host:port"): plaintext, or TLS
// when `tls_ca_pem` (PEM certificates the coordinator's certificate must
// chain to) is not empty. A non-empty `token` is sent as
// "authorization: Bearer <token>" on every call. Every call has a deadline
// (AcquireTask: its wait plus 10 s; others 10 s). Calls fail fast with
// UNAVAILABLE while the coordinator is away (the caller backs off); meanwhile a
// thread of the client keeps the channel reconnecting at least once a second,
// so a restarted coordinator is found again within about a second.
std::unique_ptr<HubClient> NewGrpcHubClient(const std::string& target,
                                            const std::string& token,
                                            const std::string& tls_ca_pem = "");

}  // namespace lrtune::worker

#endif  // LRTUNE_WORKER_HUB_CLIENT_H_
