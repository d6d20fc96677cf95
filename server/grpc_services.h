// The RPC edge: LrTune and WorkerHub as gRPC callback services over a
// Coordinator, authentication and authorization of every call, the metrics
// the edge counts, and the one absl -> gRPC status conversion.
//
//   LrTuneService lrtune(&coordinator, &authenticator, &metrics);
//   WorkerHubService hub(&coordinator, &authenticator, &metrics);
//   builder.RegisterService(&lrtune); builder.RegisterService(&hub);
//
// Every call is authenticated first (UNAUTHENTICATED without a known
// token), then authorized: LrTune needs role client or admin, WorkerHub
// worker or admin (PERMISSION_DENIED otherwise). The principal's name is
// the owner the coordinator checks jobs against (NOT_FOUND for another
// owner's job).
//
// Unary RPCs finish on DefaultReactor(); WatchJob and RangeTest stream with
// a self-deleting reactor fed by the EventHub (live events, in a bounded
// queue) and by the coordinator's background runner (history from the
// store, and catch-up when the queue overflowed). No reaction blocks.
#ifndef LRTUNE_SERVER_GRPC_SERVICES_H_
#define LRTUNE_SERVER_GRPC_SERVICES_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"
#include "lrtune/v1/lrtune.grpc.pb.h"
#include "lrtune/v1/worker.grpc.pb.h"
#include "server/auth.h"
#include "server/coordinator.h"
#include "server/metrics.h"

namespace lrtune::server {

// Whether the services log one line per job submitted or cancelled,
// worker registered, task leased or ended, and call refused, on stderr
// (never a token). Off by default, so that in-process servers (tests, the
// CLI's embedded mode) stay quiet; lrtune-server turns it on. Thread-safe.
void SetRpcLogging(bool on);

// The single conversion from absl::Status to grpc::Status (same codes).
grpc::Status ToGrpcStatus(const absl::Status& status);

// Watchers keep at most this many live events each (a point event is
// ~100 bytes: ~0.4 MB per watcher); beyond it they catch up from the
// store. Larger than a report batch (default 256 records), so that a
// watcher keeping up never has to read a batch back from the store.
inline constexpr int kWatchQueueLimit = 4096;

class LrTuneService final : public v1::LrTune::CallbackService {
 public:
  // Not owned; each must outlive the service. `metrics` may be null.
  LrTuneService(Coordinator* coordinator, Authenticator* auth,
                Metrics* metrics = nullptr)
      : coordinator_(coordinator), auth_(auth), metrics_(metrics) {}

  grpc::ServerWriteReactor<v1::JobEvent>* RangeTest(
      grpc::CallbackServerContext* context,
      const v1::RangeTestRequest* request) override;
  grpc::ServerUnaryReactor* SubmitJob(grpc::CallbackServerContext* context,
                                      const v1::SubmitJobRequest* request,
                                      v1::Job* response) override;
  grpc::ServerWriteReactor<v1::JobEvent>* WatchJob(
      grpc::CallbackServerContext* context,
      const v1::WatchJobRequest* request) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* context,
                                   const v1::GetJobRequest* request,
                                   v1::Job* response) override;
  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* context,
                                     const v1::ListJobsRequest* request,
                                     v1::ListJobsResponse* response) override;
  grpc::ServerUnaryReactor* CancelJob(grpc::CallbackServerContext* context,
                                      const v1::CancelJobRequest* request,
                                      v1::Job* response) override;
  grpc::ServerUnaryReactor* JoinRangeTest(
      grpc::CallbackServerContext* context,
      const v1::JoinRangeTestRequest* request,
      v1::RangeTestRun* response) override;
  grpc::ServerUnaryReactor* ReportLosses(
      grpc::CallbackServerContext* context,
      const v1::ReportLossesRequest* request,
      v1::ReportLossesResponse* response) override;
  grpc::ServerUnaryReactor* EndRun(grpc::CallbackServerContext* context,
                                   const v1::EndRunRequest* request,
                                   v1::EndRunResponse* response) override;

 private:
  // The caller's name when it may use LrTune.
  absl::StatusOr<std::string> Authorize(
      const grpc::CallbackServerContext& context);

  Coordinator* const coordinator_;
  Authenticator* const auth_;
  Metrics* const metrics_;
};

class WorkerHubService final : public v1::WorkerHub::CallbackService {
 public:
  // Not owned; each must outlive the service. A null `auth` accepts every
  // caller (as LocalAuthenticator); `metrics` may be null.
  explicit WorkerHubService(Coordinator* coordinator,
                            Authenticator* auth = nullptr,
                            Metrics* metrics = nullptr)
      : coordinator_(coordinator), auth_(auth), metrics_(metrics) {}

  grpc::ServerUnaryReactor* Register(grpc::CallbackServerContext* context,
                                     const v1::RegisterRequest* request,
                                     v1::RegisterResponse* response) override;
  grpc::ServerUnaryReactor* AcquireTask(
      grpc::CallbackServerContext* context,
      const v1::AcquireTaskRequest* request,
      v1::AcquireTaskResponse* response) override;
  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* context,
                                      const v1::HeartbeatRequest* request,
                                      v1::HeartbeatResponse* response) override;
  grpc::ServerUnaryReactor* ReportPoints(
      grpc::CallbackServerContext* context,
      const v1::ReportPointsRequest* request,
      v1::ReportPointsResponse* response) override;
  grpc::ServerUnaryReactor* CompleteTask(
      grpc::CallbackServerContext* context,
      const v1::CompleteTaskRequest* request,
      v1::CompleteTaskResponse* response) override;
  grpc::ServerUnaryReactor* FailTask(grpc::CallbackServerContext* context,
                                     const v1::FailTaskRequest* request,
                                     v1::FailTaskResponse* response) override;

 private:
  // OK when the caller may use WorkerHub.
  absl::Status Authorize(const grpc::CallbackServerContext& context);

  Coordinator* const coordinator_;
  Authenticator* const auth_;
  Metrics* const metrics_;
};

}  // namespace lrtune::server

#endif  // LRTUNE_SERVER_GRPC_SERVICES_H_
