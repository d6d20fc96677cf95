// The embedded service: the objects lrtune-server and lrtune-worker build
// in their main()s, built here in one process around a unix socket.
#include "client/embedded.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/status_macros.h"
#include "grpcpp/grpcpp.h"
#include "server/auth.h"
#include "server/clock.h"
#include "server/coordinator.h"
#include "server/dashboard.h"
#include "server/event_codec.h"
#include "server/grpc_services.h"
#include "server/job_store.h"
#include "server/listen_policy.h"
#include "worker/agent.h"
#include "worker/engine.h"
#include "worker/engine_loader.h"
#include "worker/hub_client.h"

namespace lrtune::client {
namespace {

// Creates `dir` and its parents (mode 0700 for new ones).
absl::Status MakeDirs(const std::string& dir) {
  if (dir.empty()) return absl::OkStatus();
  std::string path;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = dir.find('/', pos + 1);
    path = dir.substr(0, pos);
    if (path.empty()) continue;
    if (mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
      return absl::PermissionDeniedError(absl::StrCat(
          "cannot create directory ", path, ": ", std::strerror(errno)));
    }
  }
  return absl::OkStatus();
}

std::string DirName(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return "";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// Cancels every queued or running job: in a store this process holds the
// lock of, they were left by an embedded run that was killed.
void CancelLeftovers(server::Coordinator& coordinator, std::ostream* log) {
  v1::ListJobsRequest list;
  list.add_states(v1::JOB_STATE_QUEUED);
  list.add_states(v1::JOB_STATE_RUNNING);
  for (int page = 0; page < 100; ++page) {
    absl::StatusOr<v1::ListJobsResponse> jobs =
        coordinator.ListJobs("local", list);
    if (!jobs.ok()) return;
    for (const v1::Job& job : jobs->jobs()) {
      v1::CancelJobRequest cancel;
      cancel.set_job_id(job.job_id());
      cancel.set_reason(
          "abandoned: the embedded lrtune that ran it stopped before the end");
      absl::StatusOr<v1::Job> cancelled =
          coordinator.CancelJob("local", cancel);
      if (cancelled.ok() && log != nullptr) {
        *log << "lrtune: cancelled job " << job.job_id()
             << " left unfinished by an earlier run\n";
      }
    }
    if (jobs->next_page_token().empty()) return;
    list.set_page_token(jobs->next_page_token());
  }
}

// The lock file of the store a service holds names it (FindLiveService
// reads it): its target on the first line, then "hosts-guests" where it
// hosts guests and "dashboard BASE TOKEN" where it serves a dashboard.
constexpr absl::string_view kHostsGuests = "hosts-guests";
constexpr absl::string_view kDashboard = "dashboard ";

// Writes `service` as the content of the lock file this process holds, or
// empties it (an empty target).
void Publish(int lock_fd, const LiveService& service) {
  if (ftruncate(lock_fd, 0) != 0 || service.target.empty()) return;
  std::string text = absl::StrCat(service.target, "\n");
  if (service.hosts_guests) absl::StrAppend(&text, kHostsGuests, "\n");
  if (!service.dashboard.empty()) {
    absl::StrAppend(&text, kDashboard, service.dashboard, " ",
                    service.dashboard_token, "\n");
  }
  // One short write; a reader that finds no whole line counts no live
  // service, so a failed write costs only the readers' way in.
  const ssize_t written = pwrite(lock_fd, text.data(), text.size(), 0);
  (void)written;
}

// 128 random bits as hex: the embedded dashboard's token.
absl::StatusOr<std::string> RandomToken() {
  unsigned char bytes[16];
  if (getrandom(bytes, sizeof(bytes), 0) !=
      static_cast<ssize_t>(sizeof(bytes))) {
    return absl::InternalError(
        absl::StrCat("getrandom: ", std::strerror(errno)));
  }
  std::string token;
  for (unsigned char b : bytes)
    absl::StrAppend(&token, absl::Hex(b, absl::kZeroPad2));
  return token;
}

}  // namespace

// Destroyed in reverse order of declaration: the agent's thread is joined
// and the server stopped (Shutdown) before the coordinator and store go.
struct EmbeddedService::State {
  EmbeddedOptions options;
  int lock_fd = -1;  // the store's lock file, once this process holds it
  std::string socket_dir;
  std::string target;
  std::unique_ptr<server::JobStore> store;
  std::unique_ptr<server::Coordinator> coordinator;
  server::LocalAuthenticator auth;
  std::unique_ptr<server::LrTuneService> lrtune_service;
  std::unique_ptr<server::WorkerHubService> hub_service;
  std::unique_ptr<grpc::Server> server;
  // The dashboard, with the one token it accepts (an admin: it shows this
  // store's jobs, all of them "local"'s).
  std::unique_ptr<server::TokenAuthenticator> dashboard_auth;
  std::unique_ptr<server::DashboardServer> dashboard;
  std::string dashboard_token;
  // The dashboard's "http://HOST:PORT": this one's, or a guest's host's
  // (which shows the guest's jobs); empty without one.
  std::string dashboard_base;
  std::unique_ptr<worker::Agent> agent;
  std::thread agent_thread;
  bool stopped = false;
};

absl::StatusOr<std::unique_ptr<EmbeddedService>> EmbeddedService::Start(
    const EmbeddedOptions& options) {
  if (options.db_path.empty()) {
    return absl::InvalidArgumentError("embedded service: db_path is empty");
  }
  // LibTorch (~0.3 s of the process here): loaded now, not at exec, and
  // before any thread: its first load sets OPENBLAS_CORETYPE
  // (engine_loader.h), and the store and server, on threads beside it,
  // would stall on the dynamic loader's lock for as long. The coordinator
  // alone (no device: lrtune serve) trains nothing and never loads it.
  if (!options.devices.empty()) {
    LRTUNE_RETURN_IF_ERROR(engine::LoadTorchEngine());
    engine::TuneAllocatorForTraining();
  }
  auto state = std::make_unique<State>();
  state->options = options;
  // From here on, ~EmbeddedService cleans up whatever was started.
  std::unique_ptr<EmbeddedService> service(
      new EmbeddedService(std::move(state)));
  State& s = *service->state_;

  LRTUNE_RETURN_IF_ERROR(CreateParentDirs(options.db_path));
  const std::string lock_path = options.db_path + ".lock";
  const int lock_fd =
      open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd < 0) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot open ", lock_path, ": ", std::strerror(errno)));
  }
  if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    if (!options.wait_for_lock) {
      close(lock_fd);  // the holder's: not this one's to touch
      return absl::FailedPreconditionError(absl::StrCat(
          "another lrtune (an embedded range-test, grid, submit or serve) "
          "is using ",
          options.db_path));
    }
    if (options.log != nullptr) {
      *options.log << "lrtune: waiting for another embedded lrtune using "
                   << options.db_path << "\n";
    }
    while (flock(lock_fd, LOCK_EX) != 0 && errno == EINTR) {
    }
  }
  s.lock_fd = lock_fd;  // held from here on

  absl::StatusOr<std::unique_ptr<server::JobStore>> store =
      server::JobStore::Open(options.db_path, server::SystemClock(),
                             server::JobEventEncoder());
  if (!store.ok()) {
    return absl::Status(
        store.status().code(),
        absl::StrCat("cannot open the job store ", options.db_path, ": ",
                     store.status().message()));
  }
  s.store = std::move(*store);
  server::CoordinatorOptions copts;
  // The worker polls instead of long-polling (see acquire_wait below), so
  // it asks again soon after an empty answer (a poll on the unix socket
  // costs ~0.1 ms; the job waits at most 10 ms for its worker).
  copts.acquire_retry = absl::Milliseconds(10);
  s.coordinator = std::make_unique<server::Coordinator>(
      s.store.get(), server::SystemClock(), copts);
  CancelLeftovers(*s.coordinator, options.log);

  // A private directory keeps the socket out of other users' reach.
  const char* runtime = std::getenv("XDG_RUNTIME_DIR");
  std::string templ = absl::StrCat(
      runtime != nullptr && *runtime != '\0' && std::strlen(runtime) < 60
          ? runtime
          : "/tmp",
      "/lrtune-XXXXXX");
  if (mkdtemp(templ.data()) == nullptr) {
    return absl::InternalError(absl::StrCat("cannot create a socket directory ",
                                            templ, ": ", std::strerror(errno)));
  }
  s.socket_dir = templ;
  s.target = absl::StrCat("unix:", s.socket_dir, "/grpc.sock");

  s.lrtune_service =
      std::make_unique<server::LrTuneService>(s.coordinator.get(), &s.auth);
  s.hub_service =
      std::make_unique<server::WorkerHubService>(s.coordinator.get());
  grpc::ServerBuilder builder;
  builder.AddListeningPort(s.target, grpc::InsecureServerCredentials());
  builder.RegisterService(s.lrtune_service.get());
  builder.RegisterService(s.hub_service.get());
  builder.SetMaxReceiveMessageSize(64 << 20);
  s.server = builder.BuildAndStart();
  if (s.server == nullptr) {
    return absl::InternalError(absl::StrCat("cannot serve on ", s.target));
  }
  s.coordinator->StartSweeper();

  if (!options.dashboard_listen.empty()) {
    if (!server::IsLoopback(options.dashboard_listen)) {
      return absl::InvalidArgumentError(
          absl::StrCat("the embedded dashboard listens on loopback only, not ",
                       options.dashboard_listen));
    }
    LRTUNE_ASSIGN_OR_RETURN(s.dashboard_token, RandomToken());
    LRTUNE_ASSIGN_OR_RETURN(server::TokenTable table,
                            server::TokenTable::Parse(absl::StrCat(
                                "admin local ", s.dashboard_token, "\n")));
    s.dashboard_auth =
        std::make_unique<server::TokenAuthenticator>(std::move(table));
    server::DashboardOptions dopts;
    dopts.http.address = options.dashboard_listen;
    if (!options.dashboard_chart_js.empty()) {
      dopts.chart_js = options.dashboard_chart_js;
    }
    s.dashboard = std::make_unique<server::DashboardServer>(
        s.coordinator.get(), s.dashboard_auth.get(), dopts);
    LRTUNE_RETURN_IF_ERROR(s.dashboard->Start());
    const std::string& address = options.dashboard_listen;
    s.dashboard_base =
        absl::StrCat("http://", address.substr(0, address.rfind(':')), ":",
                     s.dashboard->port());
  }
  Publish(s.lock_fd, LiveService{s.target, options.host_guests,
                                 s.dashboard_base, s.dashboard_token});
  if (options.devices.empty()) return service;  // the coordinator alone

  LRTUNE_RETURN_IF_ERROR(StartWorker(s, "embedded"));
  return service;
}

absl::StatusOr<std::unique_ptr<EmbeddedService>> EmbeddedService::Join(
    const LiveService& host, const EmbeddedOptions& options) {
  if (options.devices.empty()) {
    return absl::InvalidArgumentError(
        "a guest of an embedded service trains: it needs a device");
  }
  LRTUNE_RETURN_IF_ERROR(engine::LoadTorchEngine());
  engine::TuneAllocatorForTraining();
  auto state = std::make_unique<State>();
  state->options = options;
  state->target = host.target;
  state->dashboard_base = host.dashboard;
  state->dashboard_token = host.dashboard_token;
  std::unique_ptr<EmbeddedService> service(
      new EmbeddedService(std::move(state)));
  LRTUNE_RETURN_IF_ERROR(
      StartWorker(*service->state_, absl::StrCat("embedded-guest-", getpid())));
  return service;
}

absl::Status EmbeddedService::StartWorker(State& s,
                                          const std::string& hostname) {
  worker::AgentOptions aopts;
  aopts.server = s.target;
  aopts.devices = s.options.devices;
  aopts.slots = static_cast<int>(s.options.devices.size());
  aopts.threads = s.options.threads;
  aopts.data_dir = s.options.data_dir;
  aopts.hostname = hostname;
  // No long poll: cancelling a pending one at shutdown races in the
  // server's AcquireReactor (Finish under its mutex, then OnDone deletes it
  // on another thread: "Mutex unlocked when destroyed"). Plain polls every
  // acquire_retry cost nothing on a unix socket.
  aopts.acquire_wait = absl::ZeroDuration();
  s.agent = std::make_unique<worker::Agent>(
      aopts, worker::NewGrpcHubClient(s.target, ""));
  s.agent_thread = std::thread([&s] {
    absl::Status status = s.agent->Run();
    if (status.ok()) return;
    if (s.options.log != nullptr) {
      *s.options.log << "lrtune: the embedded worker stopped: "
                     << status.message() << "\n";
    }
    // Nobody would run this service's jobs: end them, so that clients do
    // not wait. (A guest's host goes on serving its other clients; the
    // guest's own job fails when its host stops answering.)
    if (s.coordinator != nullptr) CancelLeftovers(*s.coordinator, nullptr);
  });
  // The worker's data sets by reference are known once it registered (a
  // few ms on the socket): a job naming one, submitted next, finds it.
  // Without a registration within the wait the job is refused as it would
  // be by a coordinator without workers.
  s.agent->WaitRegistered(absl::Seconds(10));
  return absl::OkStatus();
}

EmbeddedService::EmbeddedService(std::unique_ptr<State> state)
    : state_(std::move(state)) {}

EmbeddedService::~EmbeddedService() { Shutdown(); }

const std::string& EmbeddedService::target() const { return state_->target; }

std::string EmbeddedService::DashboardUrl(const std::string& job_id) const {
  const State& s = *state_;
  if (s.dashboard_base.empty()) return "";
  return DashboardLink(s.dashboard_base, s.dashboard_token, job_id);
}

void EmbeddedService::Shutdown() {
  State& s = *state_;
  if (s.stopped) return;
  s.stopped = true;
  if (s.lock_fd >= 0) Publish(s.lock_fd, LiveService());  // no new readers
  if (s.agent != nullptr) s.agent->Shutdown();
  if (s.agent_thread.joinable()) s.agent_thread.join();
  s.agent.reset();
  if (s.dashboard != nullptr) s.dashboard->Stop();
  if (s.server != nullptr) {
    s.server->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
    s.server->Wait();
  }
  if (s.coordinator != nullptr) s.coordinator->StopSweeper();
  s.server.reset();
  s.coordinator.reset();
  s.store.reset();  // closes the SQLite file
  if (!s.socket_dir.empty()) {
    unlink((s.socket_dir + "/grpc.sock").c_str());
    rmdir(s.socket_dir.c_str());
  }
  if (s.lock_fd >= 0) {
    close(s.lock_fd);  // releases the lock
    s.lock_fd = -1;
  }
}

LiveService FindLiveService(const std::string& db_path) {
  const std::string lock_path = db_path + ".lock";
  const int fd = open(lock_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  char buf[512];
  const ssize_t n = pread(fd, buf, sizeof(buf), 0);
  close(fd);
  if (n <= 0) return {};
  // Whole lines only: a reader racing the holder's write sees none yet.
  std::string content(buf, static_cast<size_t>(n));
  const size_t last = content.rfind('\n');
  content.erase(last == std::string::npos ? 0 : last + 1);
  std::vector<std::string> lines =
      absl::StrSplit(content, '\n', absl::SkipEmpty());
  if (lines.empty()) return {};
  LiveService found;
  for (size_t i = 1; i < lines.size(); ++i) {
    if (lines[i] == kHostsGuests) found.hosts_guests = true;
    if (absl::StartsWith(lines[i], kDashboard)) {
      std::vector<std::string> parts = absl::StrSplit(
          absl::string_view(lines[i]).substr(kDashboard.size()), ' ');
      if (parts.size() == 2) {
        found.dashboard = parts[0];
        found.dashboard_token = parts[1];
      }
    }
  }
  const std::string& target = lines[0];
  constexpr absl::string_view kUnix = "unix:";
  if (!absl::StartsWith(target, kUnix)) return {};
  const std::string path = target.substr(kUnix.size());
  sockaddr_un addr{};
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) return {};
  // Something accepts there: the owner has not been killed since.
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  const int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (sock < 0) return {};
  const bool live = connect(sock, reinterpret_cast<const sockaddr*>(&addr),
                            sizeof(addr)) == 0;
  close(sock);
  if (!live) return {};
  found.target = target;
  return found;
}

std::string LiveServiceTarget(const std::string& db_path) {
  return FindLiveService(db_path).target;
}

std::string DashboardLink(const std::string& base, const std::string& token,
                          const std::string& job_id) {
  return absl::StrCat(base, "/#/",
                      job_id.empty() ? "" : absl::StrCat("jobs/", job_id),
                      "?token=", token);
}

absl::StatusOr<StartedOrHeld> StartOrFindHolder(EmbeddedOptions options,
                                                HolderWanted want,
                                                OtherHost other_host) {
  const bool wait = options.wait_for_lock;
  options.wait_for_lock = false;
  for (int tries = 0;; ++tries) {
    absl::StatusOr<std::unique_ptr<EmbeddedService>> started =
        EmbeddedService::Start(options);
    if (started.ok()) return StartedOrHeld{*std::move(started), {}};
    if (!absl::IsFailedPrecondition(started.status())) return started.status();
    LiveService holder = FindLiveService(options.db_path);
    const bool wanted =
        want == HolderWanted::kAny ||
        (holder.hosts_guests &&
         (want == HolderWanted::kGuestHost || !holder.dashboard.empty()));
    if (!holder.target.empty() && wanted) {
      return StartedOrHeld{nullptr, std::move(holder)};
    }
    if (holder.hosts_guests && other_host == OtherHost::kFail) {
      return absl::FailedPreconditionError(absl::StrCat(
          options.db_path,
          " is served without a dashboard by another process's `lrtune "
          "serve` (as a Python session runs it), which keeps it until its "
          "client ends: without --ui (ui=True) jobs run through it; for the "
          "dashboard, start `lrtune dashboard` before that session"));
    }
    // A holder that serves, but not as wanted, or a second gone by.
    if (!holder.target.empty() || tries == 50) {
      if (!wait) return started.status();
      options.wait_for_lock = true;  // until the holder ends
      LRTUNE_ASSIGN_OR_RETURN(std::unique_ptr<EmbeddedService> service,
                              EmbeddedService::Start(options));
      return StartedOrHeld{std::move(service), {}};
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
}

std::string EmbeddedLogPath(const std::string& db_path) {
  const std::string dir = DirName(db_path);
  return dir.empty() ? "embedded.log" : absl::StrCat(dir, "/embedded.log");
}

absl::Status CreateParentDirs(const std::string& file) {
  return MakeDirs(DirName(file));
}

std::string DefaultDbPath() {
  const char* xdg = std::getenv("XDG_DATA_HOME");
  if (xdg != nullptr && xdg[0] == '/') {
    return absl::StrCat(xdg, "/lrtune/jobs.db");
  }
  const char* home = std::getenv("HOME");
  if (home != nullptr && home[0] != '\0') {
    return absl::StrCat(home, "/.local/share/lrtune/jobs.db");
  }
  return "lrtune-jobs.db";
}

absl::StatusOr<std::vector<std::string>> EmbeddedDevices(
    const std::string& device) {
  if (device == "cpu") return std::vector<std::string>{"cpu"};
  const bool gpu = !engine::DescribeDevice("cuda:0").gpu_name.empty();
  if (device.empty() || device == "auto") {
    return std::vector<std::string>{gpu ? "cuda:0" : "cpu"};
  }
  if (device == "cuda" || device.rfind("cuda:", 0) == 0) {
    const std::string name = device == "cuda" ? "cuda:0" : device;
    if (engine::DescribeDevice(name).gpu_name.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--device ", device, ": no such CUDA GPU visible to LibTorch ",
          engine::TorchVersion()));
    }
    return std::vector<std::string>{name};
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "--device must be cpu, cuda, cuda:<i> or auto, got '", device, "'"));
}

}  // namespace lrtune::client
