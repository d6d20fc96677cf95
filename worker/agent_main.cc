// lrtune-worker: the worker agent. Flags are read here, once, into
// AgentOptions; SIGTERM and SIGINT stop it cleanly (exit 0).
#include <errno.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include "CLI/CLI.hpp"
#include "core/flag_errors.h"
#include "worker/agent.h"
#include "worker/blas_core.h"
#include "worker/engine.h"
#include "worker/hub_client.h"

namespace {

int g_signal_pipe[2] = {-1, -1};

void OnSignal(int) {
  const char byte = 's';
  (void)!write(g_signal_pipe[1], &byte, 1);
}

}  // namespace

int main(int argc, char** argv) {
  // OpenBLAS came with LibTorch and read OPENBLAS_CORETYPE before main:
  // choose its kernels, then start again with them (worker/blas_core.h).
  lrtune::engine::ReexecWithBlasCore(argv);
  lrtune::worker::AgentOptions options;
  std::string devices = "cpu";
  std::string token_file;
  std::string tls_ca_file;
  CLI::App app{"lrtune-worker: runs lrtune training tasks for a coordinator"};
  app.name("lrtune-worker");  // not argv[0]'s path in the usage line
  app.add_option("--server", options.server, "Coordinator address HOST:PORT")
      ->required();
  app.add_option("--devices", devices,
                 "Devices to train on: cpu or cuda:0,cuda:1,...")
      ->capture_default_str();
  app.add_option("--slots", options.slots,
                 "Tasks run at once (1..64), spread over the devices")
      ->capture_default_str();
  app.add_option("--threads", options.threads,
                 "CPU threads in total (0 = all cores), shared by the slots")
      ->capture_default_str();
  app.add_option("--worker-id", options.worker_id,
                 "Keep this worker id across restarts (empty: assigned)")
      ->capture_default_str();
  app.add_option("--data-dir", options.data_dir,
                 "Data set directories, ':'-separated, searched in order: "
                 "the built-in sets' files and data sets by reference "
                 "(NAME/manifest.json and .npy arrays, reported to the "
                 "coordinator at registration; docs/engine.md). Empty: "
                 "$LRTUNE_DATA_DIR, then /usr/local/share/lrtune/datasets")
      ->capture_default_str();
  app.add_option("--checkpoint-dir", options.checkpoint_dir,
                 "Directory for grid trials' checkpoints, written at every "
                 "epoch end (empty: none). A trial whose worker dies resumes "
                 "from its last checkpoint on any worker that sees the same "
                 "directory (share it: a volume on one host, a "
                 "ReadWriteMany volume on Kubernetes); elsewhere it starts "
                 "over from step 0")
      ->capture_default_str();
  app.add_option("--token-file", token_file,
                 "File holding the bearer token (empty: no token)")
      ->capture_default_str();
  app.add_option("--tls-ca", tls_ca_file,
                 "PEM CA certificates to verify the coordinator's TLS "
                 "certificate with (empty: plaintext)")
      ->capture_default_str();
  if (std::optional<int> exit = lrtune::ParseFlags(app, argc, argv)) {
    return *exit;
  }

  absl::StatusOr<std::vector<std::string>> parsed =
      lrtune::worker::ParseDevices(devices);
  if (!parsed.ok()) {
    std::fprintf(stderr, "lrtune-worker: %s\n",
                 std::string(parsed.status().message()).c_str());
    return 2;
  }
  options.devices = *parsed;
  if (!options.checkpoint_dir.empty()) {
    std::error_code error;
    std::filesystem::create_directories(options.checkpoint_dir, error);
    if (error || !std::filesystem::is_directory(options.checkpoint_dir)) {
      std::fprintf(stderr,
                   "lrtune-worker: --checkpoint-dir %s is not a directory "
                   "this worker can create: %s\n",
                   options.checkpoint_dir.c_str(),
                   error ? error.message().c_str() : "not a directory");
      return 2;
    }
  }
  std::string token;
  if (!token_file.empty()) {
    std::ifstream in(token_file);
    if (!in) {
      std::fprintf(stderr, "lrtune-worker: cannot read --token-file %s\n",
                   token_file.c_str());
      return 2;
    }
    std::getline(in, token);
    // A file written on Windows or by `echo` may end the line with '\r'.
    while (!token.empty() && (token.back() == '\r' || token.back() == ' ')) {
      token.pop_back();
    }
  }
  std::string tls_ca;
  if (!tls_ca_file.empty()) {
    std::ifstream in(tls_ca_file);
    std::stringstream pem;
    if (!in || !(pem << in.rdbuf())) {
      std::fprintf(stderr, "lrtune-worker: cannot read --tls-ca %s\n",
                   tls_ca_file.c_str());
      return 2;
    }
    tls_ca = pem.str();
  }
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) == 0) options.hostname = host;

  lrtune::engine::TuneAllocatorForTraining();

  // LibTorch may start threads before main, so a blocked-signal sigwait
  // would not see SIGTERM: the handler only writes to a pipe, and a thread
  // of ours reads it and shuts the agent down outside the handler.
  if (pipe(g_signal_pipe) != 0) {
    std::perror("lrtune-worker: pipe");
    return 1;
  }
  struct sigaction action = {};
  action.sa_handler = OnSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);

  lrtune::worker::Agent agent(
      options, lrtune::worker::NewGrpcHubClient(options.server, token, tls_ca));
  std::thread signal_thread([&] {
    char byte = 0;
    while (read(g_signal_pipe[0], &byte, 1) < 0 && errno == EINTR) {
    }
    if (byte == 's') {
      std::fprintf(stderr, "lrtune-worker: signal, shutting down\n");
      agent.Shutdown();
    }
  });
  absl::Status status = agent.Run();
  if (!status.ok()) {
    std::fprintf(stderr, "lrtune-worker: %s\n", status.ToString().c_str());
  }
  // Wake the signal thread if Run ended without a signal.
  const char done = 'x';
  (void)!write(g_signal_pipe[1], &done, 1);
  signal_thread.join();
  return status.ok() ? 0 : 1;
}
