#include "server/dashboard_routes.h"

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace lrtune::server {
namespace {

constexpr int kDefaultPageSize = 50;
constexpr int kMaxPageSize = 200;
constexpr size_t kMaxPageTokenBytes = 256;

// The states `state=` takes, by their lowercase names.
constexpr std::pair<absl::string_view, v1::JobState> kStateNames[] = {
    {"queued", v1::JOB_STATE_QUEUED},       {"running", v1::JOB_STATE_RUNNING},
    {"succeeded", v1::JOB_STATE_SUCCEEDED}, {"failed", v1::JOB_STATE_FAILED},
    {"cancelled", v1::JOB_STATE_CANCELLED},
};

bool IsAssetName(absl::string_view name) {
  if (name.empty() || name.size() > 64 || name[0] == '.') return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(c) && c != '.' && c != '-' && c != '_') {
      return false;
    }
  }
  return true;
}

DashboardRoute Expecting(absl::string_view method, absl::string_view wanted,
                         DashboardRoute route) {
  if (method == wanted) return route;
  DashboardRoute refused;
  refused.kind = DashboardRoute::kMethodNotAllowed;
  refused.allowed = std::string(wanted);
  return refused;
}

absl::StatusOr<uint64_t> ParseSeq(absl::string_view text,
                                  absl::string_view what) {
  uint64_t seq = 0;
  if (text.empty() || text.size() > 19 ||
      !std::all_of(text.begin(), text.end(), absl::ascii_isdigit) ||
      !absl::SimpleAtoi(text, &seq) || seq > static_cast<uint64_t>(INT64_MAX)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " must be an event seq (a decimal number)"));
  }
  return seq;
}

}  // namespace

bool IsJobIdSyntax(absl::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    if (!absl::ascii_isalnum(c) && c != '-' && c != '_') return false;
  }
  return true;
}

DashboardRoute RouteOf(absl::string_view method, absl::string_view path) {
  DashboardRoute route;
  if (path == "/" || path == "/index.html") {
    route.kind = DashboardRoute::kPage;
    return Expecting(method, "GET", route);
  }
  absl::string_view rest = path;
  if (absl::ConsumePrefix(&rest, "/static/")) {
    if (!IsAssetName(rest)) return route;
    route.kind = DashboardRoute::kAsset;
    route.asset = std::string(rest);
    return Expecting(method, "GET", route);
  }
  if (path == "/api/whoami") {
    route.kind = DashboardRoute::kWhoAmI;
    return Expecting(method, "GET", route);
  }
  if (path == "/api/jobs" || path == "/api/jobs/") {
    route.kind = DashboardRoute::kJobs;
    return Expecting(method, "GET", route);
  }
  if (!absl::ConsumePrefix(&rest, "/api/jobs/")) return route;
  const std::vector<absl::string_view> parts = absl::StrSplit(rest, '/');
  if (parts.empty() || parts.size() > 2 || !IsJobIdSyntax(parts[0])) {
    return route;
  }
  route.job_id = std::string(parts[0]);
  if (parts.size() == 1) {
    route.kind = DashboardRoute::kJob;
    return Expecting(method, "GET", route);
  }
  if (parts[1] == "events") {
    route.kind = DashboardRoute::kEvents;
    return Expecting(method, "GET", route);
  }
  if (parts[1] == "cancel") {
    route.kind = DashboardRoute::kCancel;
    return Expecting(method, "POST", route);
  }
  route.job_id.clear();
  return route;
}

absl::StatusOr<uint64_t> ResumeSeq(const HttpRequest& request) {
  if (std::optional<absl::string_view> id = request.Header("last-event-id")) {
    return ParseSeq(*id, "Last-Event-ID");
  }
  if (std::optional<absl::string_view> after = request.Query("after_seq")) {
    return ParseSeq(*after, "after_seq");
  }
  return 0;
}

bool HostIsLoopback(const HttpRequest& request) {
  std::optional<absl::string_view> host = request.Header("host");
  if (!host.has_value()) return false;
  absl::string_view name = *host;
  if (absl::ConsumePrefix(&name, "[")) {
    const size_t close = name.find(']');
    if (close == absl::string_view::npos) return false;
    absl::string_view port = name.substr(close + 1);
    if (!port.empty() &&
        (port[0] != ':' || port.size() == 1 ||
         !std::all_of(port.begin() + 1, port.end(), absl::ascii_isdigit))) {
      return false;
    }
    return name.substr(0, close) == "::1";
  }
  const size_t colon = name.find(':');
  if (colon != absl::string_view::npos) {
    absl::string_view port = name.substr(colon + 1);
    if (port.empty() ||
        !std::all_of(port.begin(), port.end(), absl::ascii_isdigit)) {
      return false;
    }
    name = name.substr(0, colon);
  }
  if (absl::EqualsIgnoreCase(name, "localhost")) return true;
  // 127.a.b.c, four decimal parts.
  const std::vector<absl::string_view> parts = absl::StrSplit(name, '.');
  if (parts.size() != 4 || parts[0] != "127") return false;
  for (absl::string_view part : parts) {
    int value = 0;
    if (part.empty() || part.size() > 3 ||
        !std::all_of(part.begin(), part.end(), absl::ascii_isdigit) ||
        !absl::SimpleAtoi(part, &value) || value > 255) {
      return false;
    }
  }
  return true;
}

bool SameOrigin(const HttpRequest& request, bool tls) {
  std::optional<absl::string_view> origin = request.Header("origin");
  if (!origin.has_value()) return true;
  std::optional<absl::string_view> host = request.Header("host");
  return host.has_value() &&
         *origin == absl::StrCat(tls ? "https://" : "http://", *host);
}

absl::StatusOr<v1::ListJobsRequest> ListRequestOf(const HttpRequest& request) {
  v1::ListJobsRequest list;
  list.set_page_size(kDefaultPageSize);
  for (const auto& [name, value] : request.query) {
    if (name == "state") {
      for (absl::string_view state :
           absl::StrSplit(value, ',', absl::SkipEmpty())) {
        bool known = false;
        for (const auto& [text, proto] : kStateNames) {
          if (state == text) {
            list.add_states(proto);
            known = true;
          }
        }
        if (!known) {
          return absl::InvalidArgumentError(
              "state must be queued, running, succeeded, failed or "
              "cancelled");
        }
      }
    } else if (name == "page_size") {
      int size = 0;
      if (!absl::SimpleAtoi(value, &size) || size < 1 || size > kMaxPageSize) {
        return absl::InvalidArgumentError(absl::StrCat(
            "page_size must be a number in [1, ", kMaxPageSize, "]"));
      }
      list.set_page_size(size);
    } else if (name == "page_token") {
      if (value.size() > kMaxPageTokenBytes) {
        return absl::InvalidArgumentError("page_token is too long");
      }
      list.set_page_token(value);
    }
    // Other parameters (a cache buster, say) are ignored.
  }
  return list;
}

}  // namespace lrtune::server
