// The client's one conversion from grpc::Status, and the resume loop.
#include "client/lrtune_client.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "core/status_macros.h"
#include "grpcpp/grpcpp.h"
#include "lrtune/v1/lrtune.grpc.pb.h"

namespace lrtune::client {

struct Client::Stubs {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::LrTune::Stub> lrtune;
};

namespace {

// gRPC's words for a TLS connection that could not be set up: the
// server's certificate is not signed by the CA, does not name the target,
// or the server does not speak TLS.
bool IsTlsFailure(absl::string_view message) {
  return absl::StrContains(message, "andshake") ||
         absl::StrContains(message, "SSL") ||
         absl::StrContains(message, "ssl") ||
         absl::StrContains(message, "certificate");
}

// The one place a grpc::Status becomes an absl::Status (same codes).
absl::Status FromGrpc(const grpc::Status& s, const std::string& target,
                      absl::string_view rpc, const ClientOptions& options) {
  if (s.ok()) return absl::OkStatus();
  const auto code = static_cast<absl::StatusCode>(s.error_code());
  const absl::Duration deadline = options.rpc_deadline;
  switch (s.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      if (!options.tls_ca_pem.empty() && IsTlsFailure(s.error_message())) {
        return absl::Status(
            code, absl::StrCat("server ", target,
                               " unreachable: TLS handshake failed (check "
                               "--tls-ca and --tls-server-name): ",
                               s.error_message()));
      }
      return absl::Status(
          code,
          absl::StrCat("server ", target, " unreachable: ", s.error_message()));
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return absl::Status(
          code, absl::StrCat("server ", target, " did not answer ", rpc,
                             " within ", absl::FormatDuration(deadline)));
    case grpc::StatusCode::INVALID_ARGUMENT:
      return absl::Status(code, s.error_message());
    case grpc::StatusCode::UNAUTHENTICATED:
      return absl::Status(
          code, absl::StrCat("server ", target, " refused the call (",
                             s.error_message(), "): check --token-file"));
    default:
      return absl::Status(code, absl::StrCat(rpc, ": ", s.error_message()));
  }
}

bool IsTerminal(const v1::JobEvent& event) {
  if (!event.has_state_changed()) return false;
  const v1::JobState state = event.state_changed().state();
  return state == v1::JOB_STATE_SUCCEEDED || state == v1::JOB_STATE_FAILED ||
         state == v1::JOB_STATE_CANCELLED;
}

std::string RandomRequestId() {
  absl::BitGen gen;
  return absl::StrFormat("cli-%016x%016x", absl::Uniform<uint64_t>(gen),
                         absl::Uniform<uint64_t>(gen));
}

}  // namespace

bool IsUnreachable(const absl::Status& status) {
  return absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status);
}

absl::StatusOr<std::unique_ptr<Client>> Client::Connect(
    const std::string& target, const ClientOptions& options) {
  if (target.empty()) {
    return absl::InvalidArgumentError(
        "server address is empty (expected HOST:PORT or unix:PATH)");
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(options.max_message_bytes);
  args.SetMaxSendMessageSize(options.max_message_bytes);
  // A restarted coordinator is found again within max_backoff, not after
  // gRPC's default of up to two minutes.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
              static_cast<int>(absl::ToInt64Milliseconds(
                  std::max(options.initial_backoff, absl::Milliseconds(10)))));
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
              static_cast<int>(absl::ToInt64Milliseconds(
                  std::max(options.max_backoff, absl::Milliseconds(100)))));
  std::shared_ptr<grpc::ChannelCredentials> credentials =
      grpc::InsecureChannelCredentials();
  if (!options.tls_ca_pem.empty()) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = options.tls_ca_pem;
    credentials = grpc::SslCredentials(ssl);
    if (!options.tls_server_name.empty()) {
      args.SetSslTargetNameOverride(options.tls_server_name);
    }
  } else if (!options.tls_server_name.empty()) {
    return absl::InvalidArgumentError(
        "a TLS server name needs a CA (--tls-ca or LRTUNE_TLS_CA)");
  }
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateCustomChannel(target, credentials, args);
  return FromChannel(std::move(channel), target, options);
}

std::unique_ptr<Client> Client::FromChannel(
    std::shared_ptr<grpc::Channel> channel, const std::string& target,
    const ClientOptions& options) {
  return std::unique_ptr<Client>(
      new Client(std::move(channel), target, options));
}

Client::Client(std::shared_ptr<grpc::Channel> channel, std::string target,
               ClientOptions options)
    : target_(std::move(target)),
      options_(std::move(options)),
      stubs_(new Stubs{channel, v1::LrTune::NewStub(channel)}) {}

Client::~Client() = default;

namespace {

void Prepare(grpc::ClientContext& context, const ClientOptions& options,
             bool unary) {
  if (unary) {
    context.set_deadline(
        absl::ToChronoTime(absl::Now() + options.rpc_deadline));
  }
  if (!options.token.empty()) {
    context.AddMetadata("authorization", "Bearer " + options.token);
  }
}

// ClientOptions::max_attempts for a job `request` (RangeTestRequest,
// SubmitJobRequest) that names none.
template <typename Request>
void DefaultAttempts(const ClientOptions& options, Request& request) {
  if (options.max_attempts > 0 && !request.has_max_attempts()) {
    request.set_max_attempts(options.max_attempts);
  }
}

}  // namespace

absl::StatusOr<v1::Job> Client::RangeTest(const v1::RangeTestRequest& request,
                                          const EventCallback& on_event) {
  v1::RangeTestRequest sent = request;
  if (sent.request_id().empty()) sent.set_request_id(RandomRequestId());
  DefaultAttempts(options_, sent);
  grpc::ClientContext context;
  Prepare(context, options_, /*unary=*/false);
  std::unique_ptr<grpc::ClientReader<v1::JobEvent>> reader =
      stubs_->lrtune->RangeTest(&context, sent);
  v1::JobEvent event;
  uint64_t last_seq = 0;
  std::string job_id;
  bool terminal = false;
  while (reader->Read(&event)) {
    if (event.seq() <= last_seq) continue;
    last_seq = event.seq();
    if (job_id.empty()) job_id = event.job_id();
    terminal = IsTerminal(event);
    if (on_event) on_event(event);
    if (terminal) break;
  }
  // The terminal event is the last one we take, whatever follows it.
  if (terminal) context.TryCancel();
  const grpc::Status status = reader->Finish();
  if (terminal) return GetJob(job_id);
  if (job_id.empty() ||
      (!status.ok() && status.error_code() != grpc::StatusCode::UNAVAILABLE)) {
    if (status.ok()) {
      return absl::InternalError(
          "RangeTest: the stream ended before the job was accepted");
    }
    return FromGrpc(status, target_, "RangeTest", options_);
  }
  LRTUNE_RETURN_IF_ERROR(
      Follow(job_id, &last_seq, on_event, sent.skip_points()));
  return GetJob(job_id);
}

absl::Status Client::Follow(const std::string& job_id, uint64_t* last_seq,
                            const EventCallback& on_event, bool skip_points) {
  absl::Duration backoff = options_.initial_backoff;
  absl::Time last_progress = absl::Now();
  while (true) {
    grpc::ClientContext context;
    Prepare(context, options_, /*unary=*/false);
    v1::WatchJobRequest request;
    request.set_job_id(job_id);
    request.set_after_seq(*last_seq);
    request.set_skip_points(skip_points);
    std::unique_ptr<grpc::ClientReader<v1::JobEvent>> reader =
        stubs_->lrtune->WatchJob(&context, request);
    v1::JobEvent event;
    bool terminal = false;
    while (reader->Read(&event)) {
      if (event.seq() <= *last_seq) continue;  // never twice
      *last_seq = event.seq();
      terminal = IsTerminal(event);
      last_progress = absl::Now();
      backoff = options_.initial_backoff;
      if (on_event) on_event(event);
      if (terminal) break;
    }
    if (terminal) {
      // The terminal event is the last one we take, whatever follows it.
      context.TryCancel();
      (void)reader->Finish();
      return absl::OkStatus();
    }
    const grpc::Status status = reader->Finish();
    // An OK end without the terminal event (a coordinator closing streams
    // as it stops) is a disconnect too.
    if (!status.ok() && status.error_code() != grpc::StatusCode::UNAVAILABLE) {
      return FromGrpc(status, target_, "WatchJob", options_);
    }
    if (absl::Now() - last_progress > options_.reconnect_timeout) {
      return absl::UnavailableError(absl::StrCat(
          "server ", target_, " unreachable for ",
          absl::FormatDuration(options_.reconnect_timeout), " while watching ",
          job_id, " (last seq ", *last_seq,
          "): ", status.ok() ? "stream ended early" : status.error_message()));
    }
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

absl::StatusOr<v1::Job> Client::WatchJob(const std::string& job_id,
                                         uint64_t after_seq,
                                         const EventCallback& on_event,
                                         bool skip_points) {
  if (job_id.empty()) return absl::InvalidArgumentError("job_id is empty");
  uint64_t last_seq = after_seq;
  LRTUNE_RETURN_IF_ERROR(Follow(job_id, &last_seq, on_event, skip_points));
  return GetJob(job_id);
}

absl::StatusOr<v1::Job> Client::SubmitJob(const v1::SubmitJobRequest& request) {
  grpc::ClientContext context;
  Prepare(context, options_, /*unary=*/true);
  v1::Job job;
  v1::SubmitJobRequest sent = request;
  DefaultAttempts(options_, sent);
  grpc::Status status = stubs_->lrtune->SubmitJob(&context, sent, &job);
  LRTUNE_RETURN_IF_ERROR(FromGrpc(status, target_, "SubmitJob", options_));
  return job;
}

absl::StatusOr<v1::Job> Client::GetJob(const std::string& job_id) {
  grpc::ClientContext context;
  Prepare(context, options_, /*unary=*/true);
  v1::GetJobRequest request;
  request.set_job_id(job_id);
  v1::Job job;
  grpc::Status status = stubs_->lrtune->GetJob(&context, request, &job);
  LRTUNE_RETURN_IF_ERROR(FromGrpc(status, target_, "GetJob", options_));
  return job;
}

absl::StatusOr<v1::ListJobsResponse> Client::ListJobs(
    const v1::ListJobsRequest& request) {
  grpc::ClientContext context;
  Prepare(context, options_, /*unary=*/true);
  v1::ListJobsResponse response;
  grpc::Status status = stubs_->lrtune->ListJobs(&context, request, &response);
  LRTUNE_RETURN_IF_ERROR(FromGrpc(status, target_, "ListJobs", options_));
  return response;
}

absl::StatusOr<v1::Job> Client::CancelJob(const std::string& job_id,
                                          const std::string& reason) {
  grpc::ClientContext context;
  Prepare(context, options_, /*unary=*/true);
  v1::CancelJobRequest request;
  request.set_job_id(job_id);
  request.set_reason(reason);
  v1::Job job;
  grpc::Status status = stubs_->lrtune->CancelJob(&context, request, &job);
  LRTUNE_RETURN_IF_ERROR(FromGrpc(status, target_, "CancelJob", options_));
  return job;
}

absl::StatusOr<v1::RangeTestRun> Client::JoinRangeTest(
    const v1::JoinRangeTestRequest& request) {
  grpc::ClientContext context;
  Prepare(context, options_, /*unary=*/true);
  v1::RangeTestRun run;
  grpc::Status status = stubs_->lrtune->JoinRangeTest(&context, request, &run);
  LRTUNE_RETURN_IF_ERROR(FromGrpc(status, target_, "JoinRangeTest", options_));
  return run;
}

absl::StatusOr<v1::ReportLossesResponse> Client::ReportLosses(
    const v1::ReportLossesRequest& request) {
  grpc::ClientContext context;
  Prepare(context, options_, /*unary=*/true);
  v1::ReportLossesResponse response;
  grpc::Status status =
      stubs_->lrtune->ReportLosses(&context, request, &response);
  LRTUNE_RETURN_IF_ERROR(FromGrpc(status, target_, "ReportLosses", options_));
  return response;
}

absl::StatusOr<v1::EndRunResponse> Client::EndRun(
    const v1::EndRunRequest& request) {
  grpc::ClientContext context;
  Prepare(context, options_, /*unary=*/true);
  v1::EndRunResponse response;
  grpc::Status status = stubs_->lrtune->EndRun(&context, request, &response);
  LRTUNE_RETURN_IF_ERROR(FromGrpc(status, target_, "EndRun", options_));
  return response;
}

}  // namespace lrtune::client
