// The connection flags, the exit codes and the embedded-or-remote session
// every service command of `lrtune` shares.
#include "client/cli_session.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/stderr_redirect.h"
#include "core/sync.h"
#include "grpc/support/log.h"
#ifdef LRTUNE_EMBEDDED
#include "client/embedded.h"
#endif

namespace lrtune {

int ExitCodeOf(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return kExitOk;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kFailedPrecondition:
      return kExitUsage;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kResourceExhausted:
      return kExitUnreachable;
    default:
      return kExitInternal;
  }
}

namespace {

// The whole of `path`; InvalidArgument "<what>: cannot read 'path': why".
absl::StatusOr<std::string> ReadWhole(const std::string& path,
                                      const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  if (in) text << in.rdbuf();
  if (!in || in.bad()) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": cannot read '", path, "': ", std::strerror(errno)));
  }
  return text.str();
}

// The CLI says what failed in one line; gRPC's own log lines (e.g. a failed
// TLS handshake) would say it again in its words. GRPC_VERBOSITY set by the
// user keeps them.
void SilenceGrpcLog() {
  if (std::getenv("GRPC_VERBOSITY") == nullptr) {
    gpr_set_log_function([](gpr_log_func_args*) {});
  }
}

}  // namespace

absl::StatusOr<std::string> ReadTokenFile(const std::string& path) {
  absl::StatusOr<std::string> text = ReadWhole(path, "--token-file");
  if (!text.ok()) return text.status();
  const std::string token(
      absl::StripAsciiWhitespace(text->substr(0, text->find('\n'))));
  if (token.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--token-file '", path, "': the first line is empty"));
  }
  return token;
}

void AddServerFlags(CLI::App* cmd, ServerFlags& flags, bool embedded_default) {
  cmd->add_option("--server", flags.server,
                  embedded_default
                      ? "coordinator HOST:PORT (default $LRTUNE_SERVER; "
                        "unset: embedded)"
                      : "coordinator HOST:PORT (default $LRTUNE_SERVER)");
  cmd->add_option("--token-file", flags.token_file,
                  "file whose first line is the bearer token (with --server)");
  cmd->add_option("--tls-ca", flags.tls_ca,
                  "dial --server over TLS, trusting the PEM CA bundle FILE "
                  "(default $LRTUNE_TLS_CA; unset: plaintext)");
  cmd->add_option("--tls-server-name", flags.tls_server_name,
                  "name to check the server's certificate against when the "
                  "address is not in it (with --tls-ca)");
}

std::string ResolveServer(const ServerFlags& flags) {
  if (!flags.server.empty()) return flags.server;
  const char* env = std::getenv("LRTUNE_SERVER");
  return env != nullptr ? env : "";
}

absl::StatusOr<client::ClientOptions> RemoteClientOptions(
    const ServerFlags& flags) {
  client::ClientOptions options;
  if (!flags.token_file.empty()) {
    absl::StatusOr<std::string> token = ReadTokenFile(flags.token_file);
    if (!token.ok()) return token.status();
    options.token = *std::move(token);
  }
  std::string ca_path = flags.tls_ca;
  std::string ca_source = "--tls-ca";
  if (ca_path.empty()) {
    const char* env = std::getenv("LRTUNE_TLS_CA");
    if (env != nullptr) ca_path = env;
    ca_source = "LRTUNE_TLS_CA";
  }
  if (!ca_path.empty()) {
    absl::StatusOr<std::string> pem = ReadWhole(ca_path, ca_source);
    if (!pem.ok()) return pem.status();
    if (pem->find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat(ca_source, " '", ca_path,
                       "': not a PEM certificate bundle (no BEGIN "
                       "CERTIFICATE line)"));
    }
    options.tls_ca_pem = *std::move(pem);
  }
  if (!flags.tls_server_name.empty() && options.tls_ca_pem.empty()) {
    return absl::InvalidArgumentError(
        "--tls-server-name needs --tls-ca FILE (or LRTUNE_TLS_CA)");
  }
  options.tls_server_name = flags.tls_server_name;
  return options;
}

// Ctrl-C while an embedded job runs cancels it (nobody else would). The
// handler only writes to a pipe; a thread of ours does the rest, as in
// lrtune-worker (LibTorch may own threads that would take a sigwait).
class Session::Interrupts {
 public:
  Interrupts() {
    if (pipe(fds_) != 0) return;
    write_fd_ = fds_[1];
    struct sigaction action = {};
    action.sa_handler = [](int) {
      static volatile sig_atomic_t count = 0;
      if (++count > 1) _exit(130);  // a second Ctrl-C: leave at once
      const char byte = 's';
      (void)!write(write_fd_, &byte, 1);
    };
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, &old_int_);
    sigaction(SIGTERM, &action, &old_term_);
    thread_ = std::thread([this] {
      char byte = 0;
      while (read(fds_[0], &byte, 1) < 0 && errno == EINTR) {
      }
      if (byte != 's') return;
      lrtune::MutexLock lock(&mu_);
      interrupted_ = true;
      if (on_interrupt_) on_interrupt_();
    });
  }
  ~Interrupts() {
    if (!thread_.joinable()) return;
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
    const char done = 'x';
    (void)!write(fds_[1], &done, 1);
    thread_.join();
    close(fds_[0]);
    close(fds_[1]);
  }
  Interrupts(const Interrupts&) = delete;
  Interrupts& operator=(const Interrupts&) = delete;

  // Runs `f` on an interrupt (now, if one came already).
  void OnInterrupt(std::function<void()> f) {
    lrtune::MutexLock lock(&mu_);
    on_interrupt_ = std::move(f);
    if (interrupted_) on_interrupt_();
  }
  bool interrupted() const {
    lrtune::MutexLock lock(&mu_);
    return interrupted_;
  }
  void Wait() {
    lrtune::MutexLock lock(&mu_);
    mu_.Await(lrtune::Condition(&interrupted_));
  }

 private:
  static inline int write_fd_ = -1;
  int fds_[2] = {-1, -1};
  struct sigaction old_int_ = {};
  struct sigaction old_term_ = {};
  std::thread thread_;
  mutable lrtune::Mutex mu_;
  bool interrupted_ ABSL_GUARDED_BY(mu_) = false;
  std::function<void()> on_interrupt_ ABSL_GUARDED_BY(mu_);
};

struct Session::Embedded {
#ifdef LRTUNE_EMBEDDED
  std::unique_ptr<client::EmbeddedService> service;
#endif
  std::unique_ptr<client::StderrRedirect> redirect;
};

absl::StatusOr<std::unique_ptr<Session>> Session::Open(
    const ServerFlags& flags, const EmbeddedSettings& settings,
    std::ostream& err) {
  std::unique_ptr<Session> session(new Session);
  session->err_ = &err;
  session->term_ = &err;
  std::string server = ResolveServer(flags);
  if (!server.empty() && settings.ui) {
    return absl::InvalidArgumentError(
        "--ui serves the embedded service's dashboard; with --server, open "
        "the coordinator's (lrtune-server --dashboard-listen)");
  }
  if (!server.empty()) {
    SilenceGrpcLog();
    absl::StatusOr<client::ClientOptions> options = RemoteClientOptions(flags);
    if (!options.ok()) return options.status();
    absl::StatusOr<std::unique_ptr<client::Client>> connected =
        client::Client::Connect(server, *options);
    if (!connected.ok()) return connected.status();
    session->client_ = *std::move(connected);
    return session;
  }
  // The unix socket of the embedded service is private: TLS has no place.
  for (const auto& [flag, value] :
       {std::pair<const char*, const std::string*>{"--tls-ca", &flags.tls_ca},
        {"--tls-server-name", &flags.tls_server_name}}) {
    if (!value->empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag,
                       " applies to --server HOST:PORT (or "
                       "LRTUNE_SERVER); without one the service runs "
                       "embedded"));
    }
  }
#ifdef LRTUNE_EMBEDDED
  client::EmbeddedOptions options;
  options.db_path =
      settings.db_path.empty() ? client::DefaultDbPath() : settings.db_path;
  if (settings.store_only) {
    if (access(options.db_path.c_str(), F_OK) != 0) {  // read, not create
      return absl::NotFoundError(absl::StrCat(
          "no job store at ", options.db_path,
          ": no embedded job has run with it (a coordinator's jobs: "
          "--server HOST:PORT)"));
    }
    options.devices.clear();  // nothing trains: LibTorch stays unloaded
    options.wait_for_lock = false;
  } else {
    absl::StatusOr<std::vector<std::string>> devices =
        client::EmbeddedDevices(settings.device);
    if (!devices.ok()) return devices.status();
    options.devices = *devices;
    options.threads = settings.threads;
    session->device_hint_ = devices->front();
  }
  session->embedded_ = std::make_unique<Embedded>();
  if (settings.store_only) {
    // Nothing trains, so nothing writes to fd 2 but gRPC, silenced as for
    // a remote server; the command's errors reach the terminal.
    SilenceGrpcLog();
  } else if (&err == &std::cerr &&
             client::CreateParentDirs(options.db_path).ok()) {
    absl::StatusOr<std::unique_ptr<client::StderrRedirect>> redirect =
        client::StderrRedirect::To(client::EmbeddedLogPath(options.db_path));
    if (redirect.ok()) {
      session->embedded_->redirect = *std::move(redirect);
      session->term_ = &session->embedded_->redirect->original();
      session->log_path_ = session->embedded_->redirect->path();
    }
  }
  options.log = session->term_;
  if (settings.ui) options.dashboard_listen = "127.0.0.1:0";
  // Another lrtune holds the store: a command that reads jobs asks its
  // service (`watch` follows the running job live, `cancel` stops it); one
  // that trains runs its job there where that is `lrtune serve` (a Python
  // session's, kept for hours; with --ui, one serving a dashboard, which
  // shows the job), training it here as a guest, and otherwise waits for
  // the holder's command to end; with --ui, a host without a dashboard
  // (it serves until its Python session ends) is an error to report, not
  // one to wait out.
  absl::StatusOr<client::StartedOrHeld> started = client::StartOrFindHolder(
      options,
      settings.store_only ? client::HolderWanted::kAny
      : settings.ui       ? client::HolderWanted::kGuestHostWithDashboard
                          : client::HolderWanted::kGuestHost,
      client::OtherHost::kFail);
  const client::LiveService& holder =
      started.ok() ? started->holder : client::LiveService();
  const std::string& host = holder.target;
  if (!host.empty()) {
    // An owner that ends does not come back at its socket: no waiting for
    // it to (a remote server's two minutes).
    client::ClientOptions attached;
    attached.reconnect_timeout = absl::Seconds(1);
    if (settings.store_only) {
      session->embedded_.reset();
    } else {
      absl::StatusOr<std::unique_ptr<client::EmbeddedService>> joined =
          client::EmbeddedService::Join(holder, options);
      if (!joined.ok()) {
        session->embedded_->redirect.reset();
        return absl::InternalError(
            absl::StrCat("cannot start a worker for the embedded service at ",
                         host, ": ", joined.status().message()));
      }
      session->embedded_->service = *std::move(joined);
      // One attempt: a guest killed mid-job (its worker's lease lapses)
      // fails its job, rather than leaving it queued for the next guest,
      // whose worker would run it before that guest's own job.
      attached.max_attempts = 1;
      *session->term_ << "lrtune: " << options.db_path
                      << " is in use by `lrtune serve` or `lrtune dashboard`: "
                         "the job goes to its service and trains in this "
                         "process\n";
      session->interrupts_ = std::make_unique<Interrupts>();
    }
    absl::StatusOr<std::unique_ptr<client::Client>> connected =
        client::Client::Connect(host, attached);
    if (!connected.ok()) return connected.status();
    session->client_ = *std::move(connected);
    session->attached_db_ = options.db_path;
    return session;
  }
  if (!started.ok()) {
    session->embedded_->redirect.reset();
    if (settings.store_only && absl::IsFailedPrecondition(started.status())) {
      return absl::FailedPreconditionError(
          absl::StrCat(started.status().message(),
                       ", and its service did not answer within a second "
                       "(an older lrtune serves no other process): read its "
                       "jobs once it ends"));
    }
    return absl::InternalError(absl::StrCat(
        "cannot start the embedded service: ", started.status().message()));
  }
  session->embedded_->service = std::move(started->service);
  absl::StatusOr<std::unique_ptr<client::Client>> connected =
      client::Client::Connect(session->embedded_->service->target(), {});
  if (!connected.ok()) return connected.status();
  session->client_ = *std::move(connected);
  // A job that trains here is cancelled on Ctrl-C; reading the store is
  // left to the default action (the process ends).
  if (!settings.store_only)
    session->interrupts_ = std::make_unique<Interrupts>();
  return session;
#else
  (void)settings;
  return absl::InvalidArgumentError(
      "this lrtune was built without the training engine: give --server "
      "HOST:PORT (or LRTUNE_SERVER)");
#endif
}

Session::~Session() { Stop(); }

bool Session::embedded() const { return embedded_ != nullptr; }

bool Session::guest() const {
  return embedded_ != nullptr && !attached_db_.empty();
}

bool Session::HolderGone(const absl::Status& status) const {
  // A call in flight when that process's server shut down is CANCELLED.
  return !attached_db_.empty() &&
         (client::IsUnreachable(status) || absl::IsCancelled(status));
}

absl::Status Session::Explain(absl::Status status) const {
  if (!HolderGone(status)) return status;
  return absl::UnavailableError(absl::StrCat(
      "the lrtune that was using ", attached_db_,
      " stopped answering (it ended, or was killed); the next embedded run "
      "marks the jobs it left unfinished cancelled (",
      status.message(), ")"));
}

std::string Session::LogHint() const {
  return log_path_.empty() ? "" : " (log: " + log_path_ + ")";
}

void Session::CancelOnInterrupt(const std::string& job_id) {
  if (interrupts_ == nullptr) return;
  client::Client* client = client_.get();
  interrupts_->OnInterrupt([client, job_id] {
    (void)client->CancelJob(job_id, "interrupted (Ctrl-C)");
  });
}

std::string Session::DashboardUrl(const std::string& job_id) const {
#ifdef LRTUNE_EMBEDDED
  if (embedded_ != nullptr && embedded_->service != nullptr) {
    return embedded_->service->DashboardUrl(job_id);
  }
#endif
  (void)job_id;
  return "";
}

void Session::WaitForInterrupt() {
  if (interrupts_ != nullptr) interrupts_->Wait();
}

bool Session::interrupted() const {
  return interrupted_ || (interrupts_ != nullptr && interrupts_->interrupted());
}

KeepDashboard::KeepDashboard(Session* session, std::string cmd,
                             std::ostream& out)
    : session_(session), cmd_(std::move(cmd)), out_(out) {
  if (active()) session_->RestoreStderr();
}

bool KeepDashboard::active() const {
  // A guest's is its host's dashboard: it stays up with the host.
  return session_ != nullptr && !session_->guest();
}

KeepDashboard::~KeepDashboard() {
  if (session_ == nullptr) return;
  out_.flush();
  if (session_->guest()) {
    session_->term() << "lrtune " << cmd_ << ": the job stays on the "
                     << "dashboard " << session_->DashboardUrl()
                     << " of the lrtune serve that holds the store\n";
    return;
  }
  session_->term() << "lrtune " << cmd_ << ": the dashboard stays up at "
                   << session_->DashboardUrl() << " until Ctrl-C\n";
  session_->WaitForInterrupt();
}

void Session::RestoreStderr() {
  if (embedded_ == nullptr) return;
  term_ = err_;
  embedded_->redirect.reset();
}

void Session::Stop() {
  if (interrupts_ != nullptr) interrupted_ = interrupts_->interrupted();
  interrupts_.reset();
  if (embedded_ == nullptr) return;
#ifdef LRTUNE_EMBEDDED
  if (embedded_->service != nullptr) embedded_->service->Shutdown();
#endif
  term_ = err_;
  embedded_->redirect.reset();  // fd 2 is the terminal again
}

}  // namespace lrtune
