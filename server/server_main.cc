// lrtune-server: the coordinator. Serves LrTune (clients) and WorkerHub
// (workers) over gRPC, with its state in one SQLite file.
//
//   lrtune-server --listen 127.0.0.1:50051 --db /var/lib/lrtune/jobs.db
//
// SIGTERM / SIGINT: stop accepting, let calls in flight finish (up to a few
// seconds), stop the sweeper, close the store.
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/strings/match.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "server/coordinator.h"
#include "server/grpc_services.h"
#include "server/job_store.h"

namespace {

struct Options {
  std::string listen = "127.0.0.1:50051";  // host:port
  std::string db = "lrtune.db";            // SQLite file
  std::string lease_ttl = "10s";           // absl duration
  int max_attempts = 3;                    // per task, 1..10
  std::string sweep_interval = "1s";       // lease-expiry sweep
};

bool IsLoopback(const std::string& address) {
  return absl::StartsWith(address, "127.") ||
         absl::StartsWith(address, "localhost:") ||
         absl::StartsWith(address, "[::1]:");
}

volatile std::sig_atomic_t g_signal = 0;

void OnSignal(int signal) { g_signal = signal; }

int Run(const Options& options) {
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

  absl::StatusOr<std::unique_ptr<lrtune::server::JobStore>> store =
      lrtune::server::JobStore::Open(options.db, lrtune::server::SystemClock());
  if (!store.ok()) {
    std::cerr << "lrtune-server: cannot open " << options.db << ": "
              << store.status() << "\n";
    return 1;
  }
  if (!IsLoopback(options.listen)) {
    std::cerr << "lrtune-server: WARNING: listening on " << options.listen
              << " without TLS or authentication\n";
  }
  {
    lrtune::server::Coordinator coordinator(
        store->get(), lrtune::server::SystemClock(), copts);
    lrtune::server::LocalAuthenticator auth;
    lrtune::server::LrTuneService lrtune_service(&coordinator, &auth);
    lrtune::server::WorkerHubService hub_service(&coordinator);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort(options.listen, grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(&lrtune_service);
    builder.RegisterService(&hub_service);
    builder.SetMaxReceiveMessageSize(64 << 20);
    std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
    if (server == nullptr || port == 0) {
      std::cerr << "lrtune-server: cannot listen on " << options.listen << "\n";
      return 1;
    }
    coordinator.StartSweeper();
    std::cerr << "lrtune-server: listening on " << options.listen << " (port "
              << port << "), store " << options.db << "\n";

    std::signal(SIGTERM, OnSignal);
    std::signal(SIGINT, OnSignal);
    while (g_signal == 0) absl::SleepFor(absl::Milliseconds(100));
    std::cerr << "lrtune-server: signal " << g_signal << ", shutting down\n";
    coordinator.StopWaiting();  // long polls answer now, not in 30 s
    server->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    coordinator.StopSweeper();
  }
  store->reset();  // closes the SQLite file
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  CLI::App app{"lrtune-server: the lrtune coordinator (LrTune + WorkerHub)"};
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
  CLI11_PARSE(app, argc, argv);
  return Run(options);
}
