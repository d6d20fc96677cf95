#include "server/dashboard.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/recommendation_format.h"
#include "server/dashboard_assets.h"
#include "server/dashboard_json.h"
#include "server/dashboard_snippets.h"
#include "server/event_codec.h"
#include "server/listen_policy.h"

namespace lrtune::server {
namespace {

// The page's own files only, no inline script or style, no framing.
constexpr absl::string_view kContentSecurityPolicy =
    "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'none'";

void SecurityHeaders(HttpResponse& response) {
  response.headers.emplace_back("X-Content-Type-Options", "nosniff");
  response.headers.emplace_back("Referrer-Policy", "no-referrer");
  response.headers.emplace_back("X-Frame-Options", "DENY");
  response.headers.emplace_back("Content-Security-Policy",
                                std::string(kContentSecurityPolicy));
}

HttpResponse Json(int status, std::string body) {
  HttpResponse response;
  response.status = status;
  response.content_type = "application/json";
  response.body = std::move(body);
  response.headers.emplace_back("Cache-Control", "no-store");
  SecurityHeaders(response);
  return response;
}

HttpResponse Error(int status, absl::string_view message) {
  return Json(status, absl::StrCat("{\"error\":", JsonString(message), "}\n"));
}

HttpResponse ErrorOf(const absl::Status& status) {
  HttpResponse response = Error(HttpStatusOf(status), status.message());
  if (response.status == 401) {
    response.headers.emplace_back("WWW-Authenticate",
                                  "Bearer realm=\"lrtune\"");
  }
  return response;
}

HttpResponse File(absl::string_view content, absl::string_view type) {
  HttpResponse response;
  response.content_type = std::string(type);
  response.body = std::string(content);
  // The files change only with the binary; a reload checks again.
  response.headers.emplace_back("Cache-Control", "no-cache");
  SecurityHeaders(response);
  return response;
}

absl::StatusOr<std::string> ReadWhole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot read the chart library ", path, " (", std::strerror(errno),
        "; Debian's package libjs-chart.js installs it)"));
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string SnippetsJson(const v1::Job& job) {
  std::optional<TorchSnippets> snippets = SnippetsFor(job);
  if (!snippets.has_value()) return "null";
  return absl::StrCat("{\"one_cycle\":", JsonString(snippets->one_cycle),
                      ",\"cyclic\":", JsonString(snippets->cyclic),
                      ",\"lrtune_torch\":", JsonString(snippets->lrtune_torch),
                      "}");
}

bool IsTerminalState(v1::JobState state) {
  return state == v1::JOB_STATE_SUCCEEDED || state == v1::JOB_STATE_FAILED ||
         state == v1::JOB_STATE_CANCELLED;
}

}  // namespace

int HttpStatusOf(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kFailedPrecondition:
      return 409;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kCancelled:
      return 503;
    default:
      return 500;
  }
}

DashboardServer::DashboardServer(Coordinator* coordinator, Authenticator* auth,
                                 DashboardOptions options, Metrics* metrics)
    : coordinator_(coordinator),
      auth_(auth),
      metrics_(metrics),
      options_(std::move(options)),
      loopback_(IsLoopback(options_.http.address)),
      feeds_(coordinator->hub(),
             [coordinator](const std::string& job_id, int64_t after_seq,
                           int limit) {
               return coordinator->ReadEvents(job_id, after_seq, limit);
             }),
      http_(std::make_unique<HttpServer>(
          [this](const HttpRequest& request) { return Handle(request); },
          options_.http)) {}

DashboardServer::~DashboardServer() { Stop(); }

absl::Status DashboardServer::Start() {
  absl::StatusOr<std::string> chart_js = ReadWhole(options_.chart_js);
  if (!chart_js.ok()) return chart_js.status();
  chart_js_ = *std::move(chart_js);
  return http_->Start();
}

void DashboardServer::Stop() {
  feeds_.Shutdown();
  http_->Stop();
}

int DashboardServer::streams() const {
  lrtune::MutexLock lock(&mu_);
  return streams_;
}

void DashboardServer::Log(absl::string_view line) {
  if (options_.log) options_.log(line);
}

bool DashboardServer::TakeStream() {
  lrtune::MutexLock lock(&mu_);
  if (streams_ >= options_.max_streams) return false;
  ++streams_;
  return true;
}

void DashboardServer::ReleaseStream() {
  lrtune::MutexLock lock(&mu_);
  --streams_;
}

std::string DashboardServer::CachedList(const std::string& key) {
  lrtune::MutexLock lock(&mu_);
  auto it = lists_.find(key);
  if (it == lists_.end() ||
      absl::Now() - it->second.at >= options_.list_cache) {
    return "";
  }
  return it->second.body;
}

void DashboardServer::CacheList(const std::string& key,
                                const std::string& body) {
  if (options_.list_cache <= absl::ZeroDuration()) return;
  const absl::Time now = absl::Now();
  lrtune::MutexLock lock(&mu_);
  // Bounded: stale answers go first, and at most 256 stay.
  for (auto it = lists_.begin(); it != lists_.end();) {
    it = now - it->second.at >= options_.list_cache ? lists_.erase(it)
                                                    : std::next(it);
  }
  if (lists_.size() >= 256) lists_.erase(lists_.begin());
  lists_[key] = CachedAnswer{now, body};
}

absl::StatusOr<std::string> DashboardServer::ActingOwner(
    const Principal& caller, const std::string& job_id) {
  if (caller.role != Role::kAdmin) return caller.name;
  return coordinator_->JobOwner(job_id);
}

HttpResponse DashboardServer::Handle(const HttpRequest& request) {
  if (loopback_ && !HostIsLoopback(request)) {
    return Error(403,
                 "this dashboard answers only to a loopback Host "
                 "(localhost, 127.0.0.1, [::1])");
  }
  const DashboardRoute route = RouteOf(request.method, request.path);
  switch (route.kind) {
    case DashboardRoute::kNotFound:
      return Error(404, "no such page");
    case DashboardRoute::kMethodNotAllowed: {
      HttpResponse response =
          Error(405, absl::StrCat("this URL takes ", route.allowed));
      response.headers.emplace_back("Allow", route.allowed);
      return response;
    }
    case DashboardRoute::kPage: {
      const DashboardAsset* page = FindDashboardAsset("index.html");
      return page == nullptr ? Error(500, "the page is missing")
                             : File(page->content, page->content_type);
    }
    case DashboardRoute::kAsset: {
      if (route.asset == "chart.js") {
        return File(chart_js_, "text/javascript; charset=utf-8");
      }
      const DashboardAsset* asset = FindDashboardAsset(route.asset);
      if (asset == nullptr || route.asset == "index.html") {
        return Error(404, "no such file");
      }
      return File(asset->content, asset->content_type);
    }
    default:
      return Api(request, route);
  }
}

HttpResponse DashboardServer::Api(const HttpRequest& request,
                                  const DashboardRoute& route) {
  absl::StatusOr<Principal> caller =
      auth_->AuthenticateHeader(request.Header("authorization"));
  absl::Status allowed = caller.status();
  if (allowed.ok()) allowed = CheckRole(*caller, Role::kClient);
  if (!allowed.ok()) {
    if (metrics_ != nullptr) {
      metrics_->OnAuthFailure(allowed.code() ==
                              absl::StatusCode::kPermissionDenied);
    }
    Log(absl::StrCat("dashboard: refused ", request.method, " ", request.path,
                     " from ", request.peer, ": ", allowed.message()));
    return ErrorOf(allowed);
  }
  switch (route.kind) {
    case DashboardRoute::kWhoAmI:
      return Json(
          200,
          absl::StrCat("{\"name\":", JsonString(caller->name), ",\"role\":",
                       JsonString(RoleName(caller->role)), ",\"sees_all\":",
                       caller->role == Role::kAdmin ? "true" : "false", "}\n"));
    case DashboardRoute::kJobs: {
      absl::StatusOr<v1::ListJobsRequest> list = ListRequestOf(request);
      if (!list.ok()) return ErrorOf(list.status());
      const bool all = caller->role == Role::kAdmin;
      // The scope and the normalized query: a name never contains '*'.
      const std::string key = absl::StrCat(all ? "*" : caller->name, "?",
                                           list->SerializeAsString());
      std::string body = CachedList(key);
      if (body.empty()) {
        absl::StatusOr<v1::ListJobsResponse> jobs =
            all ? coordinator_->ListAllJobs(*list)
                : coordinator_->ListJobs(caller->name, *list);
        if (!jobs.ok()) return ErrorOf(jobs.status());
        body = JobListJson(*std::move(jobs));
        CacheList(key, body);
      }
      return Json(200, std::move(body));
    }
    case DashboardRoute::kJob: {
      absl::StatusOr<std::string> owner = ActingOwner(*caller, route.job_id);
      if (!owner.ok()) return ErrorOf(owner.status());
      absl::StatusOr<v1::Job> job = coordinator_->GetJob(*owner, route.job_id);
      if (!job.ok()) return ErrorOf(job.status());
      const std::string snippets = SnippetsJson(*job);
      return Json(200, absl::StrCat("{\"job\":", JobJson(*std::move(job)),
                                    ",\"snippets\":", snippets, "}\n"));
    }
    case DashboardRoute::kEvents:
      return Events(*caller, route.job_id, request);
    case DashboardRoute::kCancel: {
      if (!SameOrigin(request, !options_.http.tls_cert_file.empty())) {
        return Error(403, "a cancel must come from the dashboard's own page");
      }
      absl::StatusOr<std::string> owner = ActingOwner(*caller, route.job_id);
      if (!owner.ok()) return ErrorOf(owner.status());
      v1::CancelJobRequest cancel;
      cancel.set_job_id(route.job_id);
      cancel.set_reason(
          absl::StrCat("cancelled from the dashboard by ", caller->name));
      absl::StatusOr<v1::Job> job = coordinator_->CancelJob(*owner, cancel);
      if (!job.ok()) return ErrorOf(job.status());
      Log(absl::StrCat("dashboard: job ", route.job_id, " cancelled by ",
                       caller->name));
      {
        lrtune::MutexLock lock(&mu_);
        lists_.clear();  // the canceller's next list shows it
      }
      return Json(200, JobJson(*std::move(job)));
    }
    default:
      return Error(404, "no such page");
  }
}

HttpResponse DashboardServer::Events(const Principal& caller,
                                     const std::string& job_id,
                                     const HttpRequest& request) {
  absl::StatusOr<uint64_t> after = ResumeSeq(request);
  if (!after.ok()) return ErrorOf(after.status());
  absl::StatusOr<std::string> owner = ActingOwner(caller, job_id);
  if (!owner.ok()) return ErrorOf(owner.status());
  absl::StatusOr<v1::Job> job =
      coordinator_->CheckWatch(*owner, job_id, *after);
  if (!job.ok()) return ErrorOf(job.status());
  if (IsTerminalState(job->state()) && *after >= job->last_seq()) {
    // Nothing will follow: 204 tells an EventSource not to reconnect.
    HttpResponse done = Json(204, "");
    done.content_type.clear();
    return done;
  }
  if (!TakeStream()) {
    return Error(503, absl::StrCat("too many event streams (",
                                   options_.max_streams, ") are open"));
  }
  // Released with the response, whether or not its stream ever runs.
  auto slot =
      std::shared_ptr<void>(nullptr, [this](void*) { ReleaseStream(); });
  std::shared_ptr<JobFeeds::Viewer> viewer =
      feeds_.Watch(job_id, static_cast<int64_t>(*after));
  HttpResponse response;
  response.content_type = "text/event-stream";
  response.headers.emplace_back("Cache-Control", "no-store");
  response.headers.emplace_back("X-Accel-Buffering", "no");  // nginx
  SecurityHeaders(response);
  const absl::Duration keepalive = options_.keepalive;
  const absl::Duration interval = options_.min_write_interval;
  response.stream = [viewer, slot, keepalive, interval](HttpStream& out) {
    // The comment flushes the head at once: the page knows it is
    // connected before the first event.
    if (!out.Write(": connected\n\n")) return;
    absl::Time last_write = absl::Now();
    for (;;) {
      absl::StatusOr<JobFeeds::Batch> batch = viewer->Next(absl::Seconds(1));
      if (!batch.ok()) {
        if (!absl::IsCancelled(batch.status())) {
          out.Write(absl::StrCat("event: error\ndata: {\"error\":",
                                 JsonString(batch.status().message()),
                                 "}\n\n"));
        }
        return;
      }
      if (batch->events > 0) {
        if (!out.Write(batch->frames) || batch->terminal) return;
        last_write = absl::Now();
        // Caught up: let the next events gather for a moment, until the
        // next multiple of the interval, so that the viewers of a job wake
        // together and share the frames one of them builds.
        if (!batch->more && interval > absl::ZeroDuration()) {
          const int64_t beat = absl::ToInt64Nanoseconds(interval);
          absl::SleepFor(
              absl::Nanoseconds(beat - absl::GetCurrentTimeNanos() % beat));
        }
        continue;
      }
      if (out.Closed()) return;
      if (absl::Now() - last_write >= keepalive) {
        if (!out.Write(": keepalive\n\n")) return;
        last_write = absl::Now();
      }
    }
  };
  return response;
}

}  // namespace lrtune::server
