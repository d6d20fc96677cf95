// What every `lrtune` command that talks to the service shares: the
// connection flags (--server, --token-file, --tls-ca, --tls-server-name),
// the one mapping from a Status to an exit code, and the session that
// either dials --server or starts the embedded service (client/embedded.h)
// and dials that, so range-test, grid and submit run the same code paths.
//
//   ServerFlags flags;  AddServerFlags(cmd, flags, /*embedded_default=*/true);
//   ...
//   absl::StatusOr<std::unique_ptr<Session>> session = Session::Open(
//       flags, {.device = "auto", .db_path = ""}, std::cerr);
//   if (!session.ok()) return ExitCodeOf(session.status());
//   (*session)->client().RangeTest(...);  (*session)->Stop();
//
// Not thread-safe except where a method says so.
#ifndef LRTUNE_CLIENT_CLI_SESSION_H_
#define LRTUNE_CLIENT_CLI_SESSION_H_

#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/commands.h"
#include "client/lrtune_client.h"

namespace lrtune {

// The exit code of a failed command (commands.h: 2 usage, 4 unreachable or
// refused, 1 anything else). FAILED_PRECONDITION is 2: the request does not
// fit the job's state (cancelling a job that already ended), which the user
// can see and change.
int ExitCodeOf(const absl::Status& status);

// The bearer token: the first line of `path`, without surrounding blanks.
// InvalidArgument naming --token-file and the file when it cannot be read
// or its first line is empty.
absl::StatusOr<std::string> ReadTokenFile(const std::string& path);

// Registers --server, --token-file, --tls-ca and --tls-server-name on
// `cmd`. `embedded_default`: the help says that without a server the
// command runs embedded.
void AddServerFlags(CLI::App* cmd, ServerFlags& flags, bool embedded_default);

// --server, else $LRTUNE_SERVER, else "" (embedded or an error).
std::string ResolveServer(const ServerFlags& flags);

// The client options for dialling `flags` at a remote server: the token
// file read, the CA bundle read from --tls-ca or else $LRTUNE_TLS_CA.
// InvalidArgument naming the flag (or the variable) and the file when one
// cannot be read, or --tls-server-name is given without a CA.
absl::StatusOr<client::ClientOptions> RemoteClientOptions(
    const ServerFlags& flags);

// Where the embedded service runs, when there is no server.
struct EmbeddedSettings {
  std::string device = "auto";  // cpu|cuda|cuda:<i>|auto
  int threads = 0;              // CPU threads; 0: all cores
  std::string db_path;          // empty: client::DefaultDbPath()
  bool ui = false;              // serve the dashboard on 127.0.0.1
  // The job store and its coordinator alone (no worker, no LibTorch), for
  // commands that read jobs (`jobs`, `get`, `watch`, `cancel`). While
  // another lrtune uses the store, the session is a client of its service
  // (client::LiveServiceTarget); it does not wait for the store.
  bool store_only = false;
};

// A connection to the service for one command: the remote --server, or an
// embedded coordinator and worker started for it (where `lrtune serve`
// holds the store: a worker started for it, registered at serve's service,
// which the command's job goes to; client/embedded.h Join). While an
// embedded service runs, fd 2 goes to its log file and term() is the
// terminal.
class Session {
 public:
  // Errors: bad flags or unreadable files (InvalidArgument naming the
  // flag), no server in a build without the engine (InvalidArgument),
  // EmbeddedSettings::ui with a server (InvalidArgument naming --ui), the
  // embedded service cannot start (Internal, with its reason), a
  // store_only store in use by a process that does not answer
  // (FailedPrecondition naming it).
  static absl::StatusOr<std::unique_ptr<Session>> Open(
      const ServerFlags& flags, const EmbeddedSettings& embedded,
      std::ostream& err);
  ~Session();  // Stop()
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  client::Client& client() { return *client_; }
  bool embedded() const;
  // Whether the job trains here for another process's `lrtune serve`,
  // which holds the store (client/embedded.h Join).
  bool guest() const;
  // `status`, or for a session attached to another process's embedded
  // service (EmbeddedSettings::store_only while another lrtune held the
  // store) that could not be reached, why: that process ended.
  absl::Status Explain(absl::Status status) const;
  // Whether `status`, a call's failure, says that the other process's
  // embedded service this session reaches (EmbeddedSettings::store_only
  // while another lrtune held the store) went away: unreachable, or a call
  // its server's shutdown cancelled; false for a session of its own. What
  // Explain explains.
  bool HolderGone(const absl::Status& status) const;
  // Where lines for the user go (stderr, or while an embedded session runs
  // and stderr goes to the log, the terminal it was).
  std::ostream& term() { return *term_; }
  // The embedded worker's device ("cpu", "cuda:0"); empty when remote.
  const std::string& device_hint() const { return device_hint_; }
  // " (log: PATH)" for an embedded session that logs to a file; else "".
  std::string LogHint() const;
  // The embedded dashboard's address for a browser (with its token), at
  // `job_id`'s page or the job list; empty without EmbeddedSettings::ui.
  std::string DashboardUrl(const std::string& job_id = "") const;

  // Embedded: Ctrl-C (SIGINT, SIGTERM) cancels `job_id` from now on, and a
  // second one leaves at once (exit 130). Remote: nothing (the job runs on
  // the server). Thread-safe.
  void CancelOnInterrupt(const std::string& job_id);
  // Whether an interrupt came (also after Stop). Thread-safe until Stop.
  bool interrupted() const;
  // Embedded: waits for Ctrl-C (SIGINT, SIGTERM); at once if one came.
  // Remote: returns at once.
  void WaitForInterrupt();

  // Stops the embedded service and gives fd 2 back; idempotent.
  void Stop();
  // Gives fd 2 back, leaving the embedded service running (its log lines
  // reach the terminal from now on); term() is then the terminal.
  void RestoreStderr();

 private:
  struct Embedded;
  class Interrupts;
  Session() = default;

  std::unique_ptr<Embedded> embedded_;
  std::unique_ptr<Interrupts> interrupts_;
  std::unique_ptr<client::Client> client_;
  std::ostream* err_ = nullptr;
  std::ostream* term_ = nullptr;
  std::string device_hint_;
  std::string attached_db_;  // the store whose owner this session reaches
  std::string log_path_;
  bool interrupted_ = false;  // as it was at Stop()
};

// --ui: the embedded dashboard stays up for a look at the result. Built
// once the job has ended: with `session` it gives fd 2 back and leaves the
// service running; at the end of its scope (after the command has printed
// all it prints to `out`) it says on the terminal that the dashboard stays
// up and waits for Ctrl-C. With a null session it stops nothing and waits
// for nothing; with a guest's (Session::guest) it only says where the job
// is (the host's dashboard stays up with the host).
class KeepDashboard {
 public:
  KeepDashboard(Session* session, std::string cmd, std::ostream& out);
  ~KeepDashboard();
  KeepDashboard(const KeepDashboard&) = delete;
  KeepDashboard& operator=(const KeepDashboard&) = delete;
  // Whether it keeps a dashboard of this session's up (and the caller
  // must not stop the session).
  bool active() const;

 private:
  Session* session_;
  std::string cmd_;
  std::ostream& out_;
};

}  // namespace lrtune

#endif  // LRTUNE_CLIENT_CLI_SESSION_H_
