// HubClient over gRPC: the one place the worker converts grpc::Status.
#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "core/sync.h"
#include "grpcpp/alarm.h"
#include "grpcpp/grpcpp.h"
#include "lrtune/v1/worker.grpc.pb.h"
#include "proto/status_details.h"
#include "worker/hub_client.h"

namespace lrtune::worker {
namespace {

constexpr std::chrono::seconds kCallDeadline(10);

// gRPC's default reconnect backoff (1 s growing by 1.6x up to 120 s) means
// a coordinator that was down for ten seconds is found again only seconds
// after it is back, and every call until then fails at once with
// UNAVAILABLE: the lease lapses although both sides are up. Workers are few
// per coordinator, so retrying the connection every second at most is
// cheap. The minimum reconnect backoff is left alone: gRPC uses it as the
// connect timeout (20 s), which slow networks need.
constexpr int kInitialReconnectBackoffMs = 100;
constexpr int kMaxReconnectBackoffMs = 1000;
// The largest task the worker takes: a model and inline data at the
// spec's limits (core/spec.h) with room to spare.
constexpr int kMaxTaskBytes = 256 << 20;

// How long the connection watcher waits on the channel at a time before it
// asks again for a connection (GetState(true)).
constexpr std::chrono::milliseconds kWatchSlice(1000);

std::shared_ptr<grpc::Channel> NewChannel(const std::string& target,
                                          const std::string& tls_ca_pem) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
              kInitialReconnectBackoffMs);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, kMaxReconnectBackoffMs);
  // A task carries the client's TorchScript model and inline data, which
  // the coordinator accepted within its own request limit (64 MiB by
  // default): gRPC's default 4 MiB would refuse to deliver it.
  args.SetMaxReceiveMessageSize(kMaxTaskBytes);
  std::shared_ptr<grpc::ChannelCredentials> credentials =
      grpc::InsecureChannelCredentials();
  if (!tls_ca_pem.empty()) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = tls_ca_pem;
    credentials = grpc::SslCredentials(ssl);
  }
  return grpc::CreateCustomChannel(target, credentials, args);
}

absl::Status FromGrpc(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  absl::Status out(static_cast<absl::StatusCode>(s.error_code()),
                   s.error_message());
  AddStatusDetails(s.error_details(), out);  // e.g. WorkerNotRegistered
  return out;
}

class GrpcHubClient final : public HubClient {
 public:
  GrpcHubClient(const std::string& target, std::string token,
                const std::string& tls_ca_pem)
      : channel_(NewChannel(target, tls_ca_pem)),
        stub_(v1::WorkerHub::NewStub(channel_)),
        token_(std::move(token)),
        watcher_([this] { WatchConnection(); }) {}

  // Wakes the watcher at once (the alarm), and once it has left the
  // channel alone, destroys the channel, which ends the state watch still
  // pending on the watcher's queue: no waiting out a slice.
  ~GrpcHubClient() override {
    stop_.Notify();
    wake_.Set(&watch_queue_, std::chrono::system_clock::now(), &wake_);
    watcher_done_.WaitForNotification();
    stub_.reset();
    channel_.reset();
    watcher_.join();
  }

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
        &v1::WorkerHub::Stub::AcquireTask, /*cancellable=*/true);
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

  void CancelWaits() override {
    lrtune::MutexLock lock(&mu_);
    waits_cancelled_ = true;
    for (grpc::ClientContext* context : waits_) context->TryCancel();
  }

 private:
  template <typename Req, typename Resp>
  absl::StatusOr<Resp> Call(const Req& request, std::chrono::seconds deadline,
                            grpc::Status (v1::WorkerHub::Stub::*method)(
                                grpc::ClientContext*, const Req&, Resp*),
                            bool cancellable = false) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + deadline);
    if (!token_.empty()) {
      context.AddMetadata("authorization", "Bearer " + token_);
    }
    if (cancellable) {
      lrtune::MutexLock lock(&mu_);
      if (waits_cancelled_) return absl::CancelledError("worker stopping");
      waits_.insert(&context);
    }
    Resp response;
    grpc::Status status = (stub_.get()->*method)(&context, request, &response);
    if (cancellable) {
      lrtune::MutexLock lock(&mu_);
      waits_.erase(&context);
    }
    if (!status.ok()) return FromGrpc(status);
    return response;
  }

  // Keeps the channel connecting while the coordinator is away. Calls fail
  // fast (they are not wait_for_ready), so no thread of ours is inside gRPC
  // polling the connection attempt, and gRPC then notices its outcome only
  // from its backup poller, every 5 s: a restarted coordinator stayed
  // unseen for seconds. Waiting on the channel's state polls the attempt;
  // asking for the state with try_to_connect starts one when idle.
  void WatchConnection() {
    grpc_connectivity_state state = channel_->GetState(true);
    for (;;) {
      channel_->NotifyOnStateChange(
          state, std::chrono::system_clock::now() + kWatchSlice, &watch_queue_,
          /*tag=*/this);
      void* tag = nullptr;
      bool ok = false;
      (void)watch_queue_.Next(&tag, &ok);  // the watch, or the alarm
      if (stop_.HasBeenNotified()) break;
      state = channel_->GetState(true);
    }
    watcher_done_.Notify();
    // What is left (the watch until the channel goes, the alarm) drains.
    watch_queue_.Shutdown();
    void* tag = nullptr;
    bool ok = false;
    while (watch_queue_.Next(&tag, &ok)) {
    }
  }

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::WorkerHub::Stub> stub_;
  const std::string token_;
  lrtune::Mutex mu_;
  bool waits_cancelled_ ABSL_GUARDED_BY(mu_) = false;
  std::set<grpc::ClientContext*> waits_ ABSL_GUARDED_BY(mu_);  // in flight
  lrtune::Notification stop_;
  grpc::CompletionQueue watch_queue_;  // the watcher's, and wake_'s
  grpc::Alarm wake_;
  lrtune::Notification watcher_done_;  // it no longer touches channel_
  std::thread watcher_;                // last: starts once the rest is built
};

}  // namespace

std::unique_ptr<HubClient> NewGrpcHubClient(const std::string& target,
                                            const std::string& token,
                                            const std::string& tls_ca_pem) {
  return std::make_unique<GrpcHubClient>(target, token, tls_ca_pem);
}

}  // namespace lrtune::worker
