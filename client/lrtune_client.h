// A small C++ client of the coordinator's LrTune service: range tests with a
// callback per event, jobs submitted, watched (resuming after a
// disconnect), read, listed and cancelled, with errors as absl::Status.
//
//   LRTUNE_ASSIGN_OR_RETURN(std::unique_ptr<Client> client,
//                           Client::Connect("127.0.0.1:50051", {}));
//   LRTUNE_ASSIGN_OR_RETURN(v1::Job job, client->RangeTest(request,
//       [](const v1::JobEvent& e) { if (e.has_point()) Plot(e.point()); }));
//   // job.range_test_result().recommendation() holds the bounds.
//
// Errors keep gRPC's code; the message says what failed in words a user can
// act on:
//   UNAVAILABLE        "server 127.0.0.1:7070 unreachable: <gRPC's reason>"
//                      (over TLS a failed handshake says so and names
//                      --tls-ca and --tls-server-name)
//   DEADLINE_EXCEEDED  "server ... did not answer GetJob within 30s"
//   INVALID_ARGUMENT   the server's message as is, naming the field path
//                      ("run.batch_size must be >= 1, got 0")
//   others             "<Rpc>: <the server's message>"
// A job that ran and failed is not an error: the returned Job says FAILED.
//
// Thread-safe: one Client may serve calls from several threads; callbacks
// run on the calling thread, in seq order, and may block (the stream waits).
#ifndef LRTUNE_CLIENT_LRTUNE_CLIENT_H_
#define LRTUNE_CLIENT_LRTUNE_CLIENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lrtune/v1/client_run.pb.h"
#include "lrtune/v1/jobs.pb.h"
#include "lrtune/v1/lrtune.pb.h"

namespace grpc {
class Channel;
}  // namespace grpc

namespace lrtune::client {

struct ClientOptions {
  // Deadline of each unary call (SubmitJob, GetJob, ListJobs, CancelJob).
  absl::Duration rpc_deadline = absl::Seconds(30);  // default 30 s
  // A stream (RangeTest, WatchJob) has no deadline: jobs run for hours.
  // After a disconnect (UNAVAILABLE) the stream is resumed from the last
  // seq received, with delays growing from initial_backoff by 2x up to
  // max_backoff; after reconnect_timeout without an answer the call fails
  // with UNAVAILABLE. Any event received resets the backoff.
  absl::Duration initial_backoff = absl::Milliseconds(100);  // default 0.1 s
  absl::Duration max_backoff = absl::Seconds(5);             // default 5 s
  absl::Duration reconnect_timeout = absl::Minutes(2);       // default 2 min
  // Sent as "authorization: Bearer <token>" on every call; empty: none.
  std::string token;
  // PEM CA certificates the server's certificate must chain to; non-empty:
  // the channel is TLS (grpc::SslCredentials), empty: plaintext.
  std::string tls_ca_pem;
  // With TLS: the name checked against the server's certificate instead of
  // the host of `target` (for an address the certificate does not list).
  // Empty: the target's host.
  std::string tls_server_name;
  // Largest message sent or received (a TorchScript model or inline data
  // travels in one request).
  int max_message_bytes = 64 << 20;  // default 64 MiB
  // The attempts a job submitted by RangeTest or SubmitJob gets where its
  // request names none (max_attempts); 0: the coordinator's default.
  int max_attempts = 0;
};

// Called for every event of a stream, in seq order.
using EventCallback = std::function<void(const v1::JobEvent& event)>;

class Client {
 public:
  // A client of the LrTune service at `target`: "host:port" or
  // "unix:/path/to/socket". Does not contact the server (the first call
  // does, and reports it unreachable). InvalidArgument for an empty target.
  static absl::StatusOr<std::unique_ptr<Client>> Connect(
      const std::string& target, const ClientOptions& options);

  // As Connect, over an existing channel (tests, in-process servers).
  static std::unique_ptr<Client> FromChannel(
      std::shared_ptr<grpc::Channel> channel, const std::string& target,
      const ClientOptions& options);

  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  const std::string& target() const { return target_; }

  // Submits a range test and calls `on_event` for each of its events, from
  // the accepted one (seq 1) to the terminal state change; returns the job
  // as GetJob gives it at the end (state SUCCEEDED with
  // range_test_result, FAILED with failure, or CANCELLED). A disconnect
  // after acceptance resumes with WatchJob; one before it is an error.
  // An empty request_id is replaced by a random one, so the request is
  // never submitted twice.
  absl::StatusOr<v1::Job> RangeTest(const v1::RangeTestRequest& request,
                                    const EventCallback& on_event);

  // Submits a job and returns it once durable (QUEUED).
  absl::StatusOr<v1::Job> SubmitJob(const v1::SubmitJobRequest& request);

  // Calls `on_event` for every event of `job_id` with seq > after_seq until
  // the terminal one, resuming after disconnects from the last seq
  // received; returns the job as GetJob gives it at the end. NotFound,
  // OutOfRange (after_seq beyond the job's last event) from the server.
  absl::StatusOr<v1::Job> WatchJob(const std::string& job_id,
                                   uint64_t after_seq,
                                   const EventCallback& on_event,
                                   bool skip_points = false);

  absl::StatusOr<v1::Job> GetJob(const std::string& job_id);
  absl::StatusOr<v1::ListJobsResponse> ListJobs(
      const v1::ListJobsRequest& request);
  // `reason` is recorded on the job; empty: the server's default.
  absl::StatusOr<v1::Job> CancelJob(const std::string& job_id,
                                    const std::string& reason = "");

  // Client-driven range tests, the RPCs as they are (client_run.proto);
  // ClientRangeTest (client_range_test.h) runs them for a training loop.
  absl::StatusOr<v1::RangeTestRun> JoinRangeTest(
      const v1::JoinRangeTestRequest& request);
  absl::StatusOr<v1::ReportLossesResponse> ReportLosses(
      const v1::ReportLossesRequest& request);
  absl::StatusOr<v1::EndRunResponse> EndRun(const v1::EndRunRequest& request);

 private:
  struct Stubs;
  Client(std::shared_ptr<grpc::Channel> channel, std::string target,
         ClientOptions options);

  // Reads WatchJob streams from *last_seq on until the stream ends OK,
  // resuming after UNAVAILABLE; updates *last_seq.
  absl::Status Follow(const std::string& job_id, uint64_t* last_seq,
                      const EventCallback& on_event, bool skip_points);

  const std::string target_;
  const ClientOptions options_;
  std::unique_ptr<Stubs> stubs_;
};

// True for the codes that mean "the server could not be reached or did not
// answer" (UNAVAILABLE, DEADLINE_EXCEEDED).
bool IsUnreachable(const absl::Status& status);

}  // namespace lrtune::client

#endif  // LRTUNE_CLIENT_LRTUNE_CLIENT_H_
