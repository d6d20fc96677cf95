// `lrtune serve`: the embedded coordinator alone, on a private unix socket,
// for client-driven range tests (the client trains, so no worker and no
// LibTorch start). It prints the socket's gRPC target as its first line on
// stdout (with --ui the dashboard's address as the second) and serves
// until stdin reaches its end (the parent that started it exited, however
// it exited) or a SIGINT, SIGTERM or SIGHUP comes. Commands that train
// run their jobs on it as guests (client/embedded.h); a second serve on
// its store prints its target and ends with it. The Python package's
// embedded mode runs it (client/python/lrtune/embedded.py).
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <iostream>
#include <thread>

#include "absl/time/clock.h"
#include "client/cli_session.h"
#include "client/commands.h"
#include "core/sync.h"
#ifdef LRTUNE_EMBEDDED
#include "client/embedded.h"
#endif

namespace lrtune {

CLI::App* AddServeCommand(CLI::App& app, ServeOptions& opts) {
  CLI::App* cmd = app.add_subcommand(
      "serve",
      "Run the embedded coordinator, without a worker, on a private unix\n"
      "socket for client-driven range tests (a training script trains and\n"
      "reports; the Python package starts this when given no server).\n"
      "Prints the gRPC target (unix:/...) on the first line of stdout and\n"
      "serves until stdin ends or SIGINT/SIGTERM/SIGHUP. While it serves,\n"
      "range-test, grid, submit and advise on its store run their jobs on\n"
      "it (training them in their own process), and a second serve on the\n"
      "store prints this one's target and ends when this one ends.\n"
      "Example: lrtune serve --db /tmp/jobs.db");
  cmd->add_option("--db", opts.db_path,
                  "job store (default $XDG_DATA_HOME/lrtune/jobs.db, as the\n"
                  "other embedded commands; one process uses it at a time)");
  cmd->add_flag("--ui", opts.ui,
                "serve the web dashboard on 127.0.0.1 too, the clients'\n"
                "curves live; its address (token included) is the second\n"
                "line of stdout");
  return cmd;
}

CLI::App* AddDashboardCommand(CLI::App& app, ServeOptions& opts) {
  CLI::App* cmd = app.add_subcommand(
      "dashboard",
      "Serve the web dashboard of the embedded job store on 127.0.0.1 until\n"
      "Ctrl-C: the jobs, their curves and rankings (docs/dashboard.md).\n"
      "While it runs, range-test, grid, submit and advise on the store (and\n"
      "Python sessions) run their jobs through it and show there live.\n"
      "Prints the page's address, with its token. Start it before Python\n"
      "sessions: one that holds the store without a dashboard is waited\n"
      "for (it says so; Ctrl-C ends the wait).\n"
      "Example: lrtune dashboard");
  cmd->add_option("--db", opts.db_path,
                  "job store (default $XDG_DATA_HOME/lrtune/jobs.db, as the\n"
                  "other embedded commands)");
  return cmd;
}

namespace {

// What ends the serve: stdin's end (the parent that started it exited, for
// `serve`), a signal, or the host it stands in for ending. The first to
// come wins; before the service runs (while it waits for the store) it
// ends the process at once, as the signal would have without the mask.
class Stopper {
 public:
  void MarkServing() { state_.store(kServing); }
  // It failed to start, and returns its own exit code.
  void MarkFailed() { state_.store(kFailed); }
  void Stop(int exit_code_if_waiting) {
    const int state = state_.load();
    if (state == kWaiting) _exit(exit_code_if_waiting);
    if (state == kServing && !stopping_.exchange(true)) stopped_.Notify();
  }
  void Wait() const { stopped_.WaitForNotification(); }

 private:
  enum { kWaiting, kServing, kFailed };
  std::atomic<int> state_{kWaiting};
  std::atomic<bool> stopping_{false};
  lrtune::Notification stopped_;
};

}  // namespace

int RunServe(const ServeOptions& opts, std::ostream& out, std::ostream& err) {
#ifndef LRTUNE_EMBEDDED
  (void)opts;
  (void)out;
  err << "lrtune serve: this build has no embedded service\n";
  return kExitUsage;
#else
  // Before any thread starts, so that every thread inherits the mask and
  // the signals wait for sigwait below.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  // The threads that end it start first: a serve that waits for the
  // store (held by an embedded range-test, or by a serve whose dashboard
  // `lrtune dashboard` waits to take over) still ends on Ctrl-C, or when
  // its parent exits. They are left blocked and end with the process.
  static Stopper* const stopper = new Stopper;
  // A person's dashboard stops on Ctrl-C alone: its stdin may be anything
  // (a terminal, /dev/null in the background).
  if (!opts.dashboard) {
    std::thread([] {
      char buffer[256];
      while (true) {
        const ssize_t n = read(STDIN_FILENO, buffer, sizeof(buffer));
        if (n == 0 || (n < 0 && errno != EINTR)) break;
      }
      stopper->Stop(kExitOk);
    }).detach();
  }
  std::thread([signals] {
    int signal = 0;
    sigwait(&signals, &signal);
    stopper->Stop(128 + signal);
  }).detach();

  client::EmbeddedOptions options;
  options.db_path =
      opts.db_path.empty() ? client::DefaultDbPath() : opts.db_path;
  options.devices.clear();  // the coordinator alone: clients train
  // It lives as long as its client: another command wanting the store
  // runs its job here with a worker of its own, not waiting for it.
  options.host_guests = true;
  options.log = &err;
  if (opts.ui) options.dashboard_listen = "127.0.0.1:0";
  // Where another serve holds the store (another Python session's), its
  // service is this one's too: its target is printed (with --ui its
  // dashboard's address too, where it serves one) and this process waits,
  // as if it served, until it is told to stop or that one ends (then the
  // client starts a serve of its own). A host without a dashboard: `lrtune
  // dashboard` waits for it to end, `serve --ui` (a Python session's
  // connect(ui=True)) says so and fails rather than block its script.
  absl::StatusOr<client::StartedOrHeld> found = client::StartOrFindHolder(
      options,
      opts.ui ? client::HolderWanted::kGuestHostWithDashboard
              : client::HolderWanted::kGuestHost,
      opts.dashboard ? client::OtherHost::kWait : client::OtherHost::kFail);
  const char* const name = opts.dashboard ? "dashboard" : "serve";
  if (!found.ok()) {
    stopper->MarkFailed();
    err << "lrtune " << name << ": " << found.status().message() << "\n";
    return ExitCodeOf(found.status());
  }
  stopper->MarkServing();
  const std::unique_ptr<client::EmbeddedService>& service = found->service;
  // Another serve's (`host`), or this one's.
  const std::string& host = found->holder.target;
  const std::string target = host.empty() ? service->target() : host;
  const std::string url =
      !opts.ui       ? ""
      : host.empty() ? service->DashboardUrl()
                     : client::DashboardLink(found->holder.dashboard,
                                             found->holder.dashboard_token, "");
  if (opts.dashboard) {
    out << url << std::endl;
    if (!host.empty()) {
      err << "lrtune dashboard: another lrtune serves " << options.db_path
          << "'s dashboard already, at the address above\n";
      return kExitOk;
    }
    err << "lrtune dashboard: the jobs of " << options.db_path
        << " at the address above (range-test, grid, submit, advise and "
           "Python sessions on this store run through it); Ctrl-C stops it\n";
  } else {
    if (!host.empty()) {
      err << "lrtune serve: " << options.db_path
          << " is served by another lrtune serve; its target is this one's "
             "until it ends\n";
    }
    out << target << std::endl;
    if (opts.ui) out << url << std::endl;
  }

  if (!host.empty()) {
    // The host ending ends this one: nothing answers at its target now.
    const std::string db = options.db_path;
    std::thread([host, db] {
      while (client::LiveServiceTarget(db) == host) {
        absl::SleepFor(absl::Milliseconds(100));
      }
      stopper->Stop(kExitOk);
    }).detach();
  }
  stopper->Wait();
  if (service != nullptr) service->Shutdown();
  return kExitOk;
#endif
}

}  // namespace lrtune
