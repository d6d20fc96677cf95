// The embedded service: a coordinator with its gRPC services on a private
// unix socket and a worker agent, inside the calling process. It is what
// `lrtune range-test` runs when no --server is given: the same code paths
// as the distributed mode (lrtune-server + lrtune-worker), reached through
// the same client library.
//
//   EmbeddedOptions options;  options.db_path = DefaultDbPath();
//   LRTUNE_ASSIGN_OR_RETURN(auto service, EmbeddedService::Start(options));
//   auto client = Client::Connect(service->target(), {});  ...
//   service->Shutdown();  // or let it go out of scope
//
// One process at a time uses a store: Start waits on a lock file beside it
// (saying so on `log`; EmbeddedOptions::wait_for_lock false: it fails),
// then cancels the jobs an earlier embedded run left unfinished (it was
// killed), so they are not resumed by this one. While it serves, the lock
// file holds its socket's target, so that another process of the same
// user reads and cancels its jobs through it (LiveServiceTarget), and,
// where the holder is one that lives on (`lrtune serve`, which the Python
// package keeps for a whole session: EmbeddedOptions::host_guests), runs
// its own jobs there with a worker of its own (Join, FindLiveService).
//
// This header is torch- and server-free; the .cc links the coordinator and
// the worker agent, whose engine opens LibTorch in Start
// (worker/engine_loader.h), not when the process starts.
#ifndef LRTUNE_CLIENT_EMBEDDED_H_
#define LRTUNE_CLIENT_EMBEDDED_H_

#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace lrtune::client {

struct EmbeddedOptions {
  // SQLite file of the job store; its directory is created. Required.
  std::string db_path;
  // The worker's devices: "cpu" or "cuda:<i>"; one slot per device. Empty:
  // no worker and no LibTorch, only the coordinator (`lrtune serve`, for
  // client-driven range tests, where the client trains).
  std::vector<std::string> devices{"cpu"};
  int threads = 0;       // CPU threads for training; 0 = all cores
  std::string data_dir;  // empty: $LRTUNE_DATA_DIR or the engine's default
  // Where the service says it is waiting for the store's lock, and why the
  // worker stopped if it does. Not owned; may be null (silent).
  std::ostream* log = nullptr;
  // The web dashboard (server/dashboard.h) on this loopback address, e.g.
  // "127.0.0.1:0" for any free port; empty: none. Its one token is made
  // up at start and lives only in dashboard_url().
  std::string dashboard_listen;
  std::string dashboard_chart_js;  // empty: Debian's libjs-chart.js
  // Whether Start waits while another process uses the store. false: it
  // fails at once (FailedPrecondition naming the store), for commands that
  // only read it (`lrtune jobs`, `get`).
  bool wait_for_lock = true;
  // Whether other processes' commands may run their jobs on this service,
  // each training them with a worker of its own (Join): for a service
  // that serves as long as its user keeps it (`lrtune serve`), not for one
  // that ends with its command (they wait for that one to end instead).
  bool host_guests = false;
};

// The embedded service that holds a store and serves now, as the store's
// lock file names it (the socket's directory is its owner's alone, mode
// 0700, and the lock file 0600: only the same user gets through).
struct LiveService {
  std::string target;         // "unix:PATH"; empty: none serves
  bool hosts_guests = false;  // EmbeddedOptions::host_guests
  // Its dashboard, "http://127.0.0.1:PORT", and the token it accepts;
  // empty without one.
  std::string dashboard;
  std::string dashboard_token;
};

class EmbeddedService {
 public:
  // Opens the store, serves on a fresh unix socket, loads the training
  // engine (LibTorch) and starts the worker (with devices). Errors: the store
  // cannot be created or opened (the message names the path), the socket
  // cannot be served (Internal), the engine cannot be loaded
  // (FailedPrecondition naming the paths tried), the dashboard cannot
  // start (its error: Chart.js missing, the address taken), bad options
  // (InvalidArgument).
  static absl::StatusOr<std::unique_ptr<EmbeddedService>> Start(
      const EmbeddedOptions& options);
  // A guest of `host` (FindLiveService, hosts_guests), which holds the
  // store: LibTorch loaded here and a worker on `options.devices`
  // registered there, so that the jobs this process submits to
  // host.target train here (the host has no worker, or its own). No
  // store, coordinator or dashboard of its own: target() is host.target,
  // DashboardUrl() the host's dashboard's (empty without one). Errors:
  // the engine cannot be loaded (FailedPrecondition), no devices
  // (InvalidArgument).
  static absl::StatusOr<std::unique_ptr<EmbeddedService>> Join(
      const LiveService& host, const EmbeddedOptions& options);

  ~EmbeddedService();  // Shutdown()
  EmbeddedService(const EmbeddedService&) = delete;
  EmbeddedService& operator=(const EmbeddedService&) = delete;

  // The gRPC target of the LrTune service, "unix:/tmp/lrtune-XXXXXX/sock".
  const std::string& target() const;

  // The dashboard's address for a browser, holding its token in the
  // fragment (never sent to the server; the page keeps it for the tab):
  // "http://127.0.0.1:PORT/#/jobs/<job_id>?token=..." or, without a job,
  // the job list. Empty when the service has no dashboard.
  std::string DashboardUrl(const std::string& job_id = "") const;

  // Stops the worker (releasing a running task), then the server and the
  // sweeper, closes the store, removes the socket and releases the lock.
  // Idempotent; not thread-safe.
  void Shutdown();

 private:
  struct State;
  explicit EmbeddedService(std::unique_ptr<State> state);
  // Starts the worker agent on s.options.devices, registered at s.target.
  static absl::Status StartWorker(State& s, const std::string& hostname);
  std::unique_ptr<State> state_;
};

// The service holding the store at `db_path`; an empty target when none
// does (no lock file, none written yet, or a process that was killed left
// it: nothing accepts on its socket).
LiveService FindLiveService(const std::string& db_path);
// FindLiveService(db_path).target.
std::string LiveServiceTarget(const std::string& db_path);

// The address of `job_id`'s page (the job list for "") on the dashboard at
// `base` ("http://HOST:PORT") that accepts `token`, which travels in the
// fragment (never sent to the server; the page keeps it for the tab).
std::string DashboardLink(const std::string& base, const std::string& token,
                          const std::string& job_id);

// EmbeddedService::Start on a store that may be in use: this process's
// service, or the holder's where `want` accepts it.
enum class HolderWanted {
  kAny,                    // any live service on the store
  kGuestHost,              // one that hosts guests
  kGuestHostWithDashboard  // one that hosts guests and serves a dashboard
};
// A holder that hosts guests but not as `want` asks (no dashboard): it
// serves until its client ends, which may be hours away.
enum class OtherHost {
  kWait,  // wait for it to end where options.wait_for_lock
  kFail   // FailedPrecondition saying so, at once
};
struct StartedOrHeld {
  std::unique_ptr<EmbeddedService> service;  // this process's, or null
  LiveService holder;                        // else the holder's
};
// Start; while another process holds the store, tried again for up to a
// second without waiting, since the holder publishes itself a few ms after
// it takes the lock and one that ends meanwhile frees the store. A holder
// `want` does not accept (or none published): Start waiting for the store
// where options.wait_for_lock (and, for a host, `other_host` is kWait),
// else FailedPrecondition naming it. Errors: Start's.
absl::StatusOr<StartedOrHeld> StartOrFindHolder(EmbeddedOptions options,
                                                HolderWanted want,
                                                OtherHost other_host);

// The store of the embedded mode: $XDG_DATA_HOME/lrtune/jobs.db, else
// $HOME/.local/share/lrtune/jobs.db, else ./lrtune-jobs.db.
std::string DefaultDbPath();

// Where `lrtune range-test` keeps the embedded service's log (the worker's,
// gRPC's and LibTorch's stderr) for a store at `db_path`: embedded.log
// beside it.
std::string EmbeddedLogPath(const std::string& db_path);

// Creates the directories above `file` (mode 0700 for new ones);
// PermissionDenied naming the one that cannot be made.
absl::Status CreateParentDirs(const std::string& file);

// The devices an embedded worker trains on for a run asking for `device`
// ("cpu", "cuda", "cuda:<i>", "auto" or empty): auto takes cuda:0 when
// LibTorch sees a GPU. InvalidArgument naming --device when CUDA is asked
// for and none is visible.
absl::StatusOr<std::vector<std::string>> EmbeddedDevices(
    const std::string& device);

}  // namespace lrtune::client

#endif  // LRTUNE_CLIENT_EMBEDDED_H_
