// lrtune-server: the coordinator. Serves LrTune (clients) and WorkerHub
// (workers) over gRPC, with its state in one SQLite file, plus standard
// gRPC health checking and server reflection, and optionally Prometheus
// metrics over HTTP, and the web dashboard over HTTP(S).
//
//   lrtune-server --listen 0.0.0.0:50051 --db /var/lib/lrtune/jobs.db
//       --tokens-file /etc/lrtune/tokens --tls-cert server.pem
//       --tls-key server.key --metrics-listen 127.0.0.1:9090
//       --dashboard-listen 0.0.0.0:8443
//
// Secure by default: a non-loopback --listen or --dashboard-listen needs
// --tls-cert/--tls-key and --tokens-file, or --insecure (the one rule of
// listen_policy.h). On loopback without --tokens-file every caller is the
// admin "local" (docs/security.md). The dashboard serves with the same
// certificate and tokens as gRPC (docs/dashboard.md).
//
// SIGHUP: reload the tokens file (a bad file keeps the previous tokens).
// SIGTERM / SIGINT: health goes NOT_SERVING, stop accepting, let calls in
// flight finish (up to 5 s), stop the sweeper, close the store.
#include <sys/stat.h>

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/flag_errors.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "server/auth.h"
#include "server/coordinator.h"
#include "server/dashboard.h"
#include "server/event_codec.h"
#include "server/grpc_services.h"
#include "server/job_store.h"
#include "server/listen_policy.h"
#include "server/metrics.h"
#ifdef LRTUNE_HAVE_GRPC_REFLECTION
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#endif

namespace {

struct Options {
  std::string listen = "127.0.0.1:50051";  // host:port
  std::string db = "lrtune.db";            // SQLite file
  std::string lease_ttl = "10s";           // absl duration
  int max_attempts = 3;                    // per task, 1..10
  std::string sweep_interval = "1s";       // lease-expiry sweep
  std::string tokens_file;       // "<role> <name> <token>" lines; "" = none
  std::string tls_cert;          // PEM certificate chain; "" = plaintext
  std::string tls_key;           // PEM private key of tls_cert
  std::string tls_client_ca;     // PEM CAs; set: clients need a certificate
  bool insecure = false;         // allow non-loopback without TLS / tokens
  std::string metrics_listen;    // host:port of GET /metrics; "" = off
  std::string dashboard_listen;  // host:port of the web dashboard; "" = off
  // Chart.js for the dashboard (Debian's libjs-chart.js).
  std::string dashboard_chart_js = lrtune::server::kDefaultChartJs;
};

volatile std::sig_atomic_t g_signal = 0;
volatile std::sig_atomic_t g_reload = 0;

void OnSignal(int signal) { g_signal = signal; }
void OnHangUp(int) { g_reload = 1; }

bool ReadFile(const std::string& path, std::string* contents) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::stringstream buffer;
  buffer << in.rdbuf();
  *contents = buffer.str();
  return static_cast<bool>(in) || in.eof();
}

// Plaintext, or TLS from the PEM files; nullptr (after a message) when a
// file cannot be read.
std::shared_ptr<grpc::ServerCredentials> MakeCredentials(
    const Options& options) {
  if (options.tls_cert.empty()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  if (!ReadFile(options.tls_cert, &pair.cert_chain)) {
    std::cerr << "lrtune-server: cannot read --tls-cert " << options.tls_cert
              << "\n";
    return nullptr;
  }
  if (!ReadFile(options.tls_key, &pair.private_key)) {
    std::cerr << "lrtune-server: cannot read --tls-key " << options.tls_key
              << "\n";
    return nullptr;
  }
  grpc::SslServerCredentialsOptions ssl(
      options.tls_client_ca.empty()
          ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
          : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  if (!options.tls_client_ca.empty() &&
      !ReadFile(options.tls_client_ca, &ssl.pem_root_certs)) {
    std::cerr << "lrtune-server: cannot read --tls-client-ca "
              << options.tls_client_ca << "\n";
    return nullptr;
  }
  ssl.pem_key_cert_pairs.push_back(std::move(pair));
  return grpc::SslServerCredentials(ssl);
}

// Exit status 2 with a message when the flags contradict each other or
// the listening address is exposed without protection; 0 otherwise.
int CheckSecurityFlags(const Options& options) {
  if (options.tls_cert.empty() != options.tls_key.empty()) {
    std::cerr << "lrtune-server: --tls-cert and --tls-key go together\n";
    return 2;
  }
  if (!options.tls_client_ca.empty() && options.tls_cert.empty()) {
    std::cerr << "lrtune-server: --tls-client-ca needs --tls-cert and "
                 "--tls-key\n";
    return 2;
  }
  lrtune::server::Exposure exposure;
  exposure.tls = !options.tls_cert.empty();
  exposure.tokens = !options.tokens_file.empty();
  exposure.insecure = options.insecure;
  for (const auto& [flag, address] :
       {std::pair<const char*, const std::string*>{"--listen", &options.listen},
        {"--dashboard-listen", &options.dashboard_listen}}) {
    if (address->empty()) continue;
    absl::StatusOr<std::string> warning =
        lrtune::server::CheckExposure(flag, *address, exposure);
    if (!warning.ok()) {
      std::cerr << "lrtune-server: " << warning.status().message() << "\n";
      return 2;
    }
    if (!warning->empty()) std::cerr << "lrtune-server: " << *warning << "\n";
  }
  return 0;
}

int Run(const Options& options) {
  if (int rc = CheckSecurityFlags(options); rc != 0) return rc;
  lrtune::server::CoordinatorOptions copts;
  if (!absl::ParseDuration(options.lease_ttl, &copts.lease_ttl) ||
      copts.lease_ttl <= absl::ZeroDuration()) {
    std::cerr << "lrtune-server: --lease-ttl must be a positive duration "
                 "(e.g. 10s), got \""
              << options.lease_ttl << "\"\n";
    return 2;
  }
  if (!absl::ParseDuration(options.sweep_interval, &copts.sweep_interval) ||
      copts.sweep_interval <= absl::ZeroDuration()) {
    std::cerr << "lrtune-server: --sweep-interval must be a positive "
                 "duration, got \""
              << options.sweep_interval << "\"\n";
    return 2;
  }
  copts.max_attempts = options.max_attempts;

  // Installed before anything can take time, so that an early SIGHUP
  // reloads rather than kills.
  std::signal(SIGHUP, OnHangUp);
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);

  std::unique_ptr<lrtune::server::Authenticator> auth;
  lrtune::server::TokenAuthenticator* tokens = nullptr;
  if (options.tokens_file.empty()) {
    auth = std::make_unique<lrtune::server::LocalAuthenticator>();
  } else {
    auto table = std::make_unique<lrtune::server::TokenAuthenticator>(
        options.tokens_file);
    if (absl::Status loaded = table->Reload(); !loaded.ok()) {
      std::cerr << "lrtune-server: --tokens-file: " << loaded.message() << "\n";
      return 2;
    }
    struct stat st;
    if (stat(options.tokens_file.c_str(), &st) == 0 &&
        (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
      std::cerr << "lrtune-server: WARNING: " << options.tokens_file
                << " is readable by group or others; chmod 600 it\n";
    }
    std::cerr << "lrtune-server: " << table->size() << " tokens from "
              << options.tokens_file << "\n";
    tokens = table.get();
    auth = std::move(table);
  }
  std::shared_ptr<grpc::ServerCredentials> credentials =
      MakeCredentials(options);
  if (credentials == nullptr) return 2;

  absl::StatusOr<std::unique_ptr<lrtune::server::JobStore>> store =
      lrtune::server::JobStore::Open(options.db, lrtune::server::SystemClock(),
                                     lrtune::server::JobEventEncoder());
  if (!store.ok()) {
    std::cerr << "lrtune-server: cannot open " << options.db << ": "
              << store.status() << "\n";
    return 1;
  }
  {
    lrtune::server::Coordinator coordinator(
        store->get(), lrtune::server::SystemClock(), copts);
    lrtune::server::Metrics metrics;
    lrtune::server::JobStore* store_ptr = store->get();
    metrics.SetTaskGauges(
        [store_ptr] { return lrtune::server::CountTasks(store_ptr); });
    lrtune::server::MetricsHttpServer metrics_http(&metrics);
    if (!options.metrics_listen.empty()) {
      int metrics_port = 0;
      absl::Status started =
          metrics_http.Start(options.metrics_listen, &metrics_port);
      if (!started.ok()) {
        std::cerr << "lrtune-server: --metrics-listen: " << started.message()
                  << "\n";
        return 1;
      }
      std::cerr << "lrtune-server: metrics on http://" << options.metrics_listen
                << "/metrics (port " << metrics_port << ")\n";
    }
    lrtune::server::DashboardOptions dashboard_options;
    dashboard_options.http.address = options.dashboard_listen;
    dashboard_options.http.tls_cert_file = options.tls_cert;
    dashboard_options.http.tls_key_file = options.tls_key;
    dashboard_options.http.tls_client_ca_file = options.tls_client_ca;
    dashboard_options.chart_js = options.dashboard_chart_js;
    dashboard_options.log = [](absl::string_view line) {
      std::cerr << absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ ", absl::Now(),
                                    absl::UTCTimeZone())
                << "lrtune-server: " << line << "\n";
    };
    lrtune::server::DashboardServer dashboard(&coordinator, auth.get(),
                                              dashboard_options, &metrics);
    if (!options.dashboard_listen.empty()) {
      if (absl::Status started = dashboard.Start(); !started.ok()) {
        std::cerr << "lrtune-server: --dashboard-listen: " << started.message()
                  << "\n";
        return started.code() == absl::StatusCode::kUnavailable ? 1 : 2;
      }
      std::cerr << "lrtune-server: dashboard on "
                << (options.tls_cert.empty() ? "http" : "https") << "://"
                << options.dashboard_listen << "/ (port " << dashboard.port()
                << ")\n";
    }
    lrtune::server::LrTuneService lrtune_service(&coordinator, auth.get(),
                                                 &metrics);
    lrtune::server::WorkerHubService hub_service(&coordinator, auth.get(),
                                                 &metrics);
    lrtune::server::SetRpcLogging(true);
    grpc::EnableDefaultHealthCheckService(true);
#ifdef LRTUNE_HAVE_GRPC_REFLECTION
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
#endif
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort(options.listen, credentials, &port);
    // gRPC binds with SO_REUSEPORT by default: a second coordinator on the
    // same port started without an error and the kernel split new
    // connections between the two (workers on one, jobs on the other).
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    builder.RegisterService(&lrtune_service);
    builder.RegisterService(&hub_service);
    builder.SetMaxReceiveMessageSize(64 << 20);
    std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
    if (server == nullptr || port == 0) {
      std::cerr << "lrtune-server: cannot listen on " << options.listen
                << " (--listen): the port is in use (another lrtune-server?) "
                   "or the address is not this machine's\n";
      return 1;
    }
    grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
    if (health != nullptr) {
      health->SetServingStatus("lrtune.v1.LrTune", true);
      health->SetServingStatus("lrtune.v1.WorkerHub", true);
    }
    coordinator.StartSweeper();
    std::cerr << "lrtune-server: listening on " << options.listen << " (port "
              << port << ", "
              << (options.tls_cert.empty() ? "plaintext" : "TLS")
              << (options.tls_client_ca.empty() ? "" : ", client certificates")
              << ", " << (tokens == nullptr ? "no tokens" : "tokens")
              << "), store " << options.db << "\n";

    while (g_signal == 0) {
      absl::SleepFor(absl::Milliseconds(100));
      if (g_reload != 0) {
        g_reload = 0;
        if (tokens == nullptr) {
          std::cerr << "lrtune-server: SIGHUP: no --tokens-file to reload\n";
        } else if (absl::Status reloaded = tokens->Reload(); reloaded.ok()) {
          std::cerr << "lrtune-server: SIGHUP: reloaded " << tokens->size()
                    << " tokens from " << options.tokens_file << "\n";
        } else {
          std::cerr << "lrtune-server: SIGHUP: " << reloaded.message()
                    << "; keeping the previous " << tokens->size()
                    << " tokens\n";
        }
      }
    }
    std::cerr << "lrtune-server: signal " << g_signal << ", shutting down\n";
    if (health != nullptr) health->Shutdown();  // probes: NOT_SERVING
    coordinator.work_signal()->Stop();  // long polls answer now, not in 30 s
    dashboard.Stop();  // its event streams end; its handlers are done
    server->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    coordinator.StopSweeper();
    metrics_http.Stop();
  }
  store->reset();  // closes the SQLite file
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  CLI::App app{"lrtune-server: the lrtune coordinator (LrTune + WorkerHub)"};
  app.name("lrtune-server");  // not argv[0]'s path in the usage line
  app.add_option("--listen", options.listen, "host:port to serve on")
      ->capture_default_str();
  app.add_option("--db", options.db, "SQLite file of the job store")
      ->capture_default_str();
  app.add_option("--lease-ttl", options.lease_ttl,
                 "task lease TTL, renewed by heartbeats")
      ->capture_default_str();
  app.add_option("--max-attempts", options.max_attempts,
                 "default attempts per task")
      ->check(CLI::Range(1, 10))
      ->capture_default_str();
  app.add_option("--sweep-interval", options.sweep_interval,
                 "how often lapsed leases are requeued")
      ->capture_default_str();
  app.add_option("--tokens-file", options.tokens_file,
                 "bearer tokens, one `<role> <name> <token>` a line (roles "
                 "client, worker, admin; # comments); reloaded on SIGHUP. "
                 "Default: none, no authentication (loopback only)")
      ->capture_default_str();
  app.add_option("--tls-cert", options.tls_cert,
                 "PEM certificate chain for TLS (with --tls-key). Default: "
                 "none, plaintext (loopback only)")
      ->capture_default_str();
  app.add_option("--tls-key", options.tls_key,
                 "PEM private key for TLS. Default: none")
      ->capture_default_str();
  app.add_option("--tls-client-ca", options.tls_client_ca,
                 "PEM CA bundle; when set, clients must present a "
                 "certificate it signed (mutual TLS). Default: none")
      ->capture_default_str();
  app.add_flag("--insecure", options.insecure,
               "allow a non-loopback --listen or --dashboard-listen without "
               "TLS and tokens. "
               "Default: off")
      ->capture_default_str();
  app.add_option("--metrics-listen", options.metrics_listen,
                 "host:port serving Prometheus text at /metrics. Default: "
                 "none, off")
      ->capture_default_str();
  app.add_option("--dashboard-listen", options.dashboard_listen,
                 "host:port serving the web dashboard (HTTPS with "
                 "--tls-cert, the same tokens as gRPC; docs/dashboard.md). "
                 "Default: none, off")
      ->capture_default_str();
  app.add_option("--dashboard-chart-js", options.dashboard_chart_js,
                 "Chart.js file the dashboard serves (Debian's "
                 "libjs-chart.js)")
      ->capture_default_str();
  if (std::optional<int> exit = lrtune::ParseFlags(app, argc, argv)) {
    return *exit;
  }
  return Run(options);
}
