// HubClient over gRPC: the one place the worker converts grpc::Status.
#include <chrono>
#include <memory>
#include <string>

#include "grpcpp/grpcpp.h"
#include "lrtune/v1/worker.grpc.pb.h"
#include "worker/hub_client.h"

namespace lrtune::worker {
namespace {

constexpr std::chrono::seconds kCallDeadline(10);

absl::Status FromGrpc(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      s.error_message());
}

class GrpcHubClient final : public HubClient {
 public:
  GrpcHubClient(const std::string& target, std::string token)
      : stub_(v1::WorkerHub::NewStub(
            grpc::CreateChannel(target, grpc::InsecureChannelCredentials()))),
        token_(std::move(token)) {}

  absl::StatusOr<v1::RegisterResponse> Register(
      const v1::RegisterRequest& request) override {
    return Call(request, kCallDeadline, &v1::WorkerHub::Stub::Register);
  }
  absl::StatusOr<v1::AcquireTaskResponse> AcquireTask(
      const v1::AcquireTaskRequest& request) override {
    const auto wait = std::chrono::seconds(request.wait().seconds()) +
                      std::chrono::nanoseconds(request.wait().nanos());
    return Call(
        request,
        std::chrono::duration_cast<std::chrono::seconds>(wait) + kCallDeadline,
        &v1::WorkerHub::Stub::AcquireTask);
  }
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(
      const v1::HeartbeatRequest& request) override {
    return Call(request, kCallDeadline, &v1::WorkerHub::Stub::Heartbeat);
  }
  absl::StatusOr<v1::ReportPointsResponse> ReportPoints(
      const v1::ReportPointsRequest& request) override {
    return Call(request, kCallDeadline, &v1::WorkerHub::Stub::ReportPoints);
  }
  absl::StatusOr<v1::CompleteTaskResponse> CompleteTask(
      const v1::CompleteTaskRequest& request) override {
    return Call(request, kCallDeadline, &v1::WorkerHub::Stub::CompleteTask);
  }
  absl::StatusOr<v1::FailTaskResponse> FailTask(
      const v1::FailTaskRequest& request) override {
    return Call(request, kCallDeadline, &v1::WorkerHub::Stub::FailTask);
  }

 private:
  template <typename Req, typename Resp>
  absl::StatusOr<Resp> Call(const Req& request, std::chrono::seconds deadline,
                            grpc::Status (v1::WorkerHub::Stub::*method)(
                                grpc::ClientContext*, const Req&, Resp*)) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + deadline);
    if (!token_.empty()) {
      context.AddMetadata("authorization", "Bearer " + token_);
    }
    Resp response;
    grpc::Status status = (stub_.get()->*method)(&context, request, &response);
    if (!status.ok()) return FromGrpc(status);
    return response;
  }

  std::unique_ptr<v1::WorkerHub::Stub> stub_;
  const std::string token_;
};

}  // namespace

std::unique_ptr<HubClient> NewGrpcHubClient(const std::string& target,
                                            const std::string& token) {
  return std::make_unique<GrpcHubClient>(target, token);
}

}  // namespace lrtune::worker
