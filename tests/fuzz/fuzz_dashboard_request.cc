// The dashboard's parsing of what an unauthenticated client sends: a raw
// HTTP request head (server/http_request.h), then its route, its event
// stream's resume point (Last-Event-ID, after_seq), its job list filters
// and its Host and Origin checks (server/dashboard_routes.h). Beyond "no
// crash, no sanitizer report": a head is parsed or refused with one of the
// codes the server answers by (400, 413, 414, 431, 501), what parses obeys
// the rules the header states, and every route that names a job names a
// well-formed one.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/string_view.h"
#include "server/dashboard_routes.h"
#include "server/http_request.h"

namespace {

void Require(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view head(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<lrtune::server::HttpRequest> request =
      lrtune::server::ParseRequestHead(head);
  if (!request.ok()) {
    const int status = lrtune::server::HttpStatusOfHeadError(request.status());
    Require(status == 400 || status == 413 || status == 414 || status == 431 ||
            status == 501);
    Require(request.status().code() != absl::StatusCode::kDeadlineExceeded);
    return 0;
  }
  Require(size <= lrtune::server::HttpLimits().max_head_bytes);
  Require(!request->path.empty() && request->path[0] == '/');
  for (char c : request->path) {
    const auto u = static_cast<unsigned char>(c);
    Require(u >= 0x20 && u != 0x7f);
  }
  Require(!request->method.empty());
  Require(static_cast<int>(request->headers.size()) <=
          lrtune::server::HttpLimits().max_headers);
  for (const auto& [name, value] : request->headers) {
    Require(!name.empty());
    for (char c : name) Require(!absl::ascii_isupper(c) && c != ':');
    for (char c : value) Require(c != '\r' && c != '\n');
  }
  Require(request->content_length <=
          lrtune::server::HttpLimits().max_body_bytes);

  const lrtune::server::DashboardRoute route =
      lrtune::server::RouteOf(request->method, request->path);
  if (route.kind == lrtune::server::DashboardRoute::kJob ||
      route.kind == lrtune::server::DashboardRoute::kEvents ||
      route.kind == lrtune::server::DashboardRoute::kCancel) {
    Require(lrtune::server::IsJobIdSyntax(route.job_id));
  } else {
    Require(route.job_id.empty());
  }
  if (route.kind == lrtune::server::DashboardRoute::kAsset) {
    Require(route.asset.find('/') == std::string::npos &&
            route.asset[0] != '.');
  }

  absl::StatusOr<uint64_t> seq = lrtune::server::ResumeSeq(*request);
  Require(seq.ok() ? *seq <= static_cast<uint64_t>(INT64_MAX)
                   : absl::IsInvalidArgument(seq.status()));
  absl::StatusOr<lrtune::v1::ListJobsRequest> list =
      lrtune::server::ListRequestOf(*request);
  Require(list.ok() ? list->page_size() >= 1 && list->page_size() <= 200
                    : absl::IsInvalidArgument(list.status()));
  (void)lrtune::server::HostIsLoopback(*request);
  (void)lrtune::server::SameOrigin(*request, true);
  (void)lrtune::server::SameOrigin(*request, false);
  return 0;
}
