// The live web dashboard: lrtune-server's jobs, a range test's curves as
// they stream in, its recommendation with copy-paste PyTorch code, a grid's
// trials ranked, and cancelling a job, served over HTTP(S) on a listener of
// its own (--dashboard-listen) and by `lrtune range-test --ui`.
//
//   DashboardOptions options;  options.http.address = "127.0.0.1:8080";
//   DashboardServer dashboard(&coordinator, &authenticator, options);
//   LRTUNE_RETURN_IF_ERROR(dashboard.Start());
//   ...
//   dashboard.Stop();
//
// The page and its scripts (server/dashboard/, compiled in) and Chart.js
// (read from Debian's libjs-chart.js at Start) are public: they hold no
// data. Every /api/ call is authenticated by the gRPC side's Authenticator
// from an `Authorization: Bearer <token>` header, and authorized as LrTune
// is (role client or admin; 401, 403). A client sees and cancels only its
// own jobs (another owner's is 404, as over gRPC); an admin sees and
// cancels every owner's. Live events come from the coordinator's EventHub
// through JobFeeds (dashboard_feed.h) as Server-Sent Events, resuming after
// Last-Event-ID. The URLs, the JSON and the security rules:
// docs/dashboard.md. Thread-safe.
#ifndef LRTUNE_SERVER_DASHBOARD_H_
#define LRTUNE_SERVER_DASHBOARD_H_

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/sync.h"
#include "server/auth.h"
#include "server/coordinator.h"
#include "server/dashboard_feed.h"
#include "server/dashboard_routes.h"
#include "server/http_server.h"
#include "server/metrics.h"

namespace lrtune::server {

// Chart.js as Debian's libjs-chart.js installs it (the UMD build).
inline constexpr char kDefaultChartJs[] =
    "/usr/share/javascript/chart.js/chart.min.js";

struct DashboardOptions {
  // The listener: address, TLS files, limits. Its threads run at nice +10:
  // with the CPU short, ingestion and gRPC go first and viewers wait a
  // little (bench/dashboard_bench.md).
  DashboardOptions() { http.nice = 10; }
  HttpServerOptions http;
  std::string chart_js = kDefaultChartJs;  // served as /static/chart.js
  int max_streams = 128;  // event streams open at once; beyond: 503
  // An idle event stream gets a comment line this often (proxies and the
  // page see that it is alive).
  absl::Duration keepalive = absl::Seconds(15);
  // A job list answered within this long is answered again from memory
  // for the same caller scope and query: every open list page re-reads it
  // every 5 s, and the store serves ingestion too. 0: always read.
  absl::Duration list_cache = absl::Seconds(2);
  // An event stream that has caught up writes at most this often, what
  // arrived meanwhile in one write: a page redraws no faster, and 50
  // viewers of a busy job then cost the server 50 wake-ups per interval
  // instead of per report (bench/dashboard_bench.md). 0: every report.
  absl::Duration min_write_interval = absl::Milliseconds(25);
  // Called with one line per refused call and per cancelled job (never a
  // token); unset: silent.
  std::function<void(absl::string_view)> log;
};

// The HTTP status of an API error (the one mapping from absl::Status).
int HttpStatusOf(const absl::Status& status);

class DashboardServer {
 public:
  // Not owned; each must outlive the server. `metrics` may be null (else
  // refused calls count in lrtune_auth_failures_total).
  DashboardServer(Coordinator* coordinator, Authenticator* auth,
                  DashboardOptions options, Metrics* metrics = nullptr);
  ~DashboardServer();  // Stop()
  DashboardServer(const DashboardServer&) = delete;
  DashboardServer& operator=(const DashboardServer&) = delete;

  // Reads Chart.js and starts the listener. FAILED_PRECONDITION naming
  // the Chart.js file (and its Debian package) when it cannot be read;
  // HttpServer::Start's errors otherwise.
  absl::Status Start();
  int port() const { return http_->port(); }

  // Ends every event stream and stops the listener; idempotent.
  void Stop();

  // For tests: event streams open now.
  int streams() const;

 private:
  HttpResponse Handle(const HttpRequest& request);
  HttpResponse Api(const HttpRequest& request, const DashboardRoute& route);
  HttpResponse Events(const Principal& caller, const std::string& job_id,
                      const HttpRequest& request);
  // The owner a call about `job_id` acts as: the caller's own name, or for
  // an admin the job's owner.
  absl::StatusOr<std::string> ActingOwner(const Principal& caller,
                                          const std::string& job_id);
  void Log(absl::string_view line);
  bool TakeStream();
  void ReleaseStream();

  Coordinator* const coordinator_;
  Authenticator* const auth_;
  Metrics* const metrics_;
  const DashboardOptions options_;
  const bool loopback_;   // listening on loopback: only loopback Hosts
  std::string chart_js_;  // read by Start
  JobFeeds feeds_;
  std::unique_ptr<HttpServer> http_;

  // The job list's answers from memory (options_.list_cache), by caller
  // scope ("*" for an admin, else the owner) and query string.
  std::string CachedList(const std::string& key);
  void CacheList(const std::string& key, const std::string& body);

  struct CachedAnswer {
    absl::Time at;
    std::string body;
  };

  mutable lrtune::Mutex mu_;
  int streams_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, CachedAnswer> lists_ ABSL_GUARDED_BY(mu_);
};

}  // namespace lrtune::server

#endif  // LRTUNE_SERVER_DASHBOARD_H_
