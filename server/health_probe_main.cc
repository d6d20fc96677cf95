// lrtune-health: asks a gRPC server's grpc.health.v1.Health/Check whether it
// is SERVING. The images' HEALTHCHECK, the Compose health checks and the
// Kubernetes exec probes run it (docs/deploy.md, "Health checks"); it links
// gRPC, protobuf and Abseil only, so no image needs a Go build stage for a
// probe.
//
//   lrtune-health --addr 127.0.0.1:50051
//   lrtune-health --addr coordinator:50051 --tls-ca ca.pem
//
// Exit status: 0 SERVING; 1 the server answered but is not SERVING
// (NOT_SERVING, UNKNOWN, an unknown --service, no health service); 2 a usage
// error (bad flag, unreadable CA file); 3 no answer (refused, unreachable,
// TLS handshake failed, timed out). It prints one line: on stdout when
// SERVING, on stderr otherwise.
//
// The health messages are tiny and stable (grpc/health/v1/health.proto:
// HealthCheckRequest{string service = 1}, HealthCheckResponse{ServingStatus
// status = 1}) and Debian ships no generated code for them, so they are
// encoded here with protobuf's wire-format primitives over gRPC's generic
// stub.
#include <cstdint>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/flag_errors.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/wire_format_lite.h"
#include "grpc/support/log.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"

namespace {

using google::protobuf::internal::WireFormatLite;

constexpr int kServing = 0;
constexpr int kNotServing = 1;
constexpr int kUsage = lrtune::kFlagUsageExit;
constexpr int kNoAnswer = 3;

constexpr char kCheckMethod[] = "/grpc.health.v1.Health/Check";

struct Options {
  std::string addr = "127.0.0.1:50051";  // host:port of the server
  std::string service;                   // "" = the server as a whole
  std::string tls_ca;                    // PEM CA bundle; "" = plaintext
  std::string tls_server_name;  // name to verify; "" = the host in addr
  double timeout = 5;           // seconds for connecting and answering
};

// HealthCheckResponse.ServingStatus, as numbered in health.proto.
const char* StatusName(uint32_t status) {
  switch (status) {
    case 0:
      return "UNKNOWN";
    case 1:
      return "SERVING";
    case 2:
      return "NOT_SERVING";
    case 3:
      return "SERVICE_UNKNOWN";
    default:
      return "an undefined status";
  }
}

// HealthCheckRequest{service}: field 1, length-delimited; empty when
// `service` is "" (proto3 omits default values).
std::string EncodeRequest(const std::string& service) {
  std::string bytes;
  if (service.empty()) return bytes;
  google::protobuf::io::StringOutputStream raw(&bytes);
  google::protobuf::io::CodedOutputStream out(&raw);
  WireFormatLite::WriteString(1, service, &out);
  return bytes;
}

// HealthCheckResponse.status (field 1, varint); 0 (UNKNOWN) when absent.
absl::StatusOr<uint32_t> DecodeStatus(const std::string& bytes) {
  google::protobuf::io::CodedInputStream in(
      reinterpret_cast<const uint8_t*>(bytes.data()),
      static_cast<int>(bytes.size()));
  uint32_t status = 0;
  while (uint32_t tag = in.ReadTag()) {
    if (tag == WireFormatLite::MakeTag(1, WireFormatLite::WIRETYPE_VARINT)) {
      if (!in.ReadVarint32(&status)) break;
    } else if (!WireFormatLite::SkipField(&in, tag)) {
      return absl::DataLossError("malformed HealthCheckResponse");
    }
  }
  if (!in.ConsumedEntireMessage()) {
    return absl::DataLossError("malformed HealthCheckResponse");
  }
  return status;
}

absl::StatusOr<std::string> ReadPem(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::ostringstream text;
  text << in.rdbuf();
  if (!absl::StrContains(text.str(), "-----BEGIN CERTIFICATE-----")) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " holds no PEM certificate"));
  }
  return text.str();
}

// gRPC logs a failed TLS handshake or connection itself; the status message
// carries the same reason, and this tool prints one line.
void DropGrpcLog(gpr_log_func_args* /*args*/) {}

int Fail(int code, const std::string& line) {
  std::cerr << "lrtune-health: " << line << "\n";
  return code;
}

int Run(const Options& options) {
  if (options.addr.empty() || !absl::StrContains(options.addr, ':')) {
    return Fail(kUsage, absl::StrCat("--addr must be HOST:PORT, got \"",
                                     options.addr, "\""));
  }
  gpr_set_log_function(DropGrpcLog);

  std::shared_ptr<grpc::ChannelCredentials> credentials;
  grpc::ChannelArguments args;
  if (options.tls_ca.empty()) {
    if (!options.tls_server_name.empty()) {
      return Fail(kUsage, "--tls-server-name needs --tls-ca");
    }
    credentials = grpc::InsecureChannelCredentials();
  } else {
    absl::StatusOr<std::string> ca = ReadPem(options.tls_ca);
    if (!ca.ok())
      return Fail(kUsage, absl::StrCat("--tls-ca: ", ca.status().message()));
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = *ca;
    credentials = grpc::SslCredentials(ssl);
    if (!options.tls_server_name.empty()) {
      args.SetSslTargetNameOverride(options.tls_server_name);
    }
  }
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateCustomChannel(options.addr, credentials, args);
  grpc::GenericStub stub(channel);

  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(
      absl::Now() + absl::Milliseconds(options.timeout * 1000)));
  grpc::Slice request_slice(EncodeRequest(options.service));
  grpc::ByteBuffer request(&request_slice, 1);
  grpc::ByteBuffer response;
  grpc::Status rpc_status;
  absl::Notification done;
  stub.UnaryCall(&context, kCheckMethod, grpc::StubOptions(), &request,
                 &response, [&rpc_status, &done](grpc::Status status) {
                   rpc_status = std::move(status);
                   done.Notify();
                 });
  done.WaitForNotification();

  const std::string what =
      options.service.empty()
          ? options.addr
          : absl::StrCat(options.addr, " service \"", options.service, "\"");
  switch (rpc_status.error_code()) {
    case grpc::StatusCode::OK:
      break;
    case grpc::StatusCode::UNAVAILABLE:
      return Fail(kNoAnswer,
                  absl::StrCat(options.addr, " unreachable (",
                               options.tls_ca.empty() ? "plaintext" : "TLS",
                               "): ", rpc_status.error_message()));
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return Fail(kNoAnswer,
                  absl::StrCat(options.addr, " did not answer within ",
                               options.timeout, " s"));
    case grpc::StatusCode::NOT_FOUND:
      return Fail(
          kNotServing,
          absl::StrCat(what, ": the server does not know this service"));
    case grpc::StatusCode::UNIMPLEMENTED:
      return Fail(kNotServing,
                  absl::StrCat(options.addr,
                               " answers but serves no grpc.health.v1.Health"));
    default:
      return Fail(kNotServing,
                  absl::StrCat(what, ": Health/Check failed with code ",
                               static_cast<int>(rpc_status.error_code()), ": ",
                               rpc_status.error_message()));
  }

  grpc::Slice response_slice;
  if (!response.DumpToSingleSlice(&response_slice).ok()) {
    return Fail(kNotServing, absl::StrCat(what, ": unreadable response"));
  }
  absl::StatusOr<uint32_t> status = DecodeStatus(
      std::string(reinterpret_cast<const char*>(response_slice.begin()),
                  response_slice.size()));
  if (!status.ok()) {
    return Fail(kNotServing,
                absl::StrCat(what, ": ", status.status().message()));
  }
  if (*status != 1) {
    return Fail(kNotServing, absl::StrCat(what, ": ", StatusName(*status)));
  }
  std::cout << "lrtune-health: " << what << ": SERVING\n";
  return kServing;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  CLI::App app{
      "lrtune-health: asks a gRPC server's grpc.health.v1.Health/Check "
      "whether it is SERVING (container health checks, Kubernetes exec "
      "probes).\n\n"
      "  lrtune-health --addr 127.0.0.1:50051\n"
      "  lrtune-health --addr coordinator:50051 --tls-ca ca.pem "
      "--tls-server-name coordinator\n\n"
      "Exit status: 0 SERVING; 1 answered but not SERVING (NOT_SERVING, "
      "UNKNOWN, unknown --service, no health service); 2 usage error; 3 no "
      "answer (refused, unreachable, TLS handshake failed, timed out).\n"
      "No token is needed: lrtune-server answers health checks without one."};
  app.name("lrtune-health");  // not argv[0]'s path in the usage line
  app.add_option("--addr", options.addr, "HOST:PORT of the server to ask")
      ->capture_default_str();
  app.add_option("--service", options.service,
                 "service name to ask about, e.g. lrtune.v1.LrTune. Default: "
                 "\"\", the server as a whole");
  app.add_option("--tls-ca", options.tls_ca,
                 "PEM CA bundle: dial over TLS and verify the server's "
                 "certificate against it. Default: none, plaintext");
  app.add_option("--tls-server-name", options.tls_server_name,
                 "name the certificate must carry (when --addr is an IP or a "
                 "name not in its SANs; needs --tls-ca). Default: the host "
                 "in --addr");
  app.add_option("--timeout", options.timeout,
                 "seconds to connect and get an answer")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  if (std::optional<int> exit = lrtune::ParseFlags(app, argc, argv)) {
    return *exit;
  }
  return Run(options);
}
