// The dashboard's URLs: which resource a request names, and the parameters
// it carries (the resume point of an event stream, a job list's filters),
// read from untrusted input by rules written once here. Pure functions,
// fuzzed by tests/fuzz/fuzz_dashboard_request.cc; thread-safe.
//
//   DashboardRoute route = RouteOf(request.method, request.path);
//   if (route.kind == DashboardRoute::kEvents) {
//     LRTUNE_ASSIGN_OR_RETURN(uint64_t after, ResumeSeq(request));
//   }
//
// URLs (docs/dashboard.md): GET / (the page), GET /static/<asset>,
// GET /api/whoami, GET /api/jobs, GET /api/jobs/<id>,
// GET /api/jobs/<id>/events (Server-Sent Events), POST /api/jobs/<id>/cancel.
#ifndef LRTUNE_SERVER_DASHBOARD_ROUTES_H_
#define LRTUNE_SERVER_DASHBOARD_ROUTES_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "lrtune/v1/lrtune.pb.h"
#include "server/http_request.h"

namespace lrtune::server {

struct DashboardRoute {
  enum Kind {
    kNotFound,          // no such URL: 404
    kMethodNotAllowed,  // a known URL with another method: 405
    kPage,              // GET /, /index.html
    kAsset,             // GET /static/<asset>
    kWhoAmI,            // GET /api/whoami
    kJobs,              // GET /api/jobs
    kJob,               // GET /api/jobs/<id>
    kEvents,            // GET /api/jobs/<id>/events
    kCancel,            // POST /api/jobs/<id>/cancel
  };
  Kind kind = kNotFound;
  std::string job_id;  // kJob, kEvents, kCancel
  std::string asset;   // kAsset: the file name, e.g. "app.js"
  // kMethodNotAllowed: the method the URL takes ("GET" or "POST").
  std::string allowed;
};

// Whether `id` can be a job id: 1-64 of [A-Za-z0-9_-] (the store makes
// "j-" and 16 hex digits). Anything else is no job: 404 before any lookup.
bool IsJobIdSyntax(absl::string_view id);

// The route of a decoded `path` for `method`.
DashboardRoute RouteOf(absl::string_view method, absl::string_view path);

// Where an event stream resumes: the events after this seq. The
// Last-Event-ID header (what an EventSource sends when it reconnects), else
// the `after_seq` query parameter, else 0 (from the start).
// INVALID_ARGUMENT unless it is a decimal number in [0, 2^63).
absl::StatusOr<uint64_t> ResumeSeq(const HttpRequest& request);

// Whether the request's Host names the loopback interface (localhost,
// 127.*, [::1], with or without a port). A dashboard listening on loopback
// answers nothing else, so that a web page whose name an attacker points
// at 127.0.0.1 (DNS rebinding) cannot read it from a user's browser.
bool HostIsLoopback(const HttpRequest& request);

// Whether a state-changing request comes from the dashboard's own page:
// no Origin header (not a browser: curl, scripts), or an Origin equal to
// http(s)://<Host>. Browsers send Origin with every POST, so a page
// elsewhere cannot cancel a job in a user's name.
bool SameOrigin(const HttpRequest& request, bool tls);

// The ListJobs request of GET /api/jobs: `state` (repeatable, or
// comma-separated: queued, running, succeeded, failed, cancelled),
// `page_size` (1..200; default 50) and `page_token` (opaque, from the
// previous page). INVALID_ARGUMENT naming the parameter.
absl::StatusOr<v1::ListJobsRequest> ListRequestOf(const HttpRequest& request);

}  // namespace lrtune::server

#endif  // LRTUNE_SERVER_DASHBOARD_ROUTES_H_
