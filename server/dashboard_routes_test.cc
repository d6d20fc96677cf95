#include "server/dashboard_routes.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lrtune::server {
namespace {

HttpRequest Request(
    std::vector<std::pair<std::string, std::string>> headers,
    std::vector<std::pair<std::string, std::string>> query = {}) {
  HttpRequest request;
  request.headers = std::move(headers);
  request.query = std::move(query);
  return request;
}

TEST(DashboardRoutesTest, Routes) {
  EXPECT_EQ(RouteOf("GET", "/").kind, DashboardRoute::kPage);
  EXPECT_EQ(RouteOf("GET", "/index.html").kind, DashboardRoute::kPage);
  DashboardRoute asset = RouteOf("GET", "/static/app.js");
  EXPECT_EQ(asset.kind, DashboardRoute::kAsset);
  EXPECT_EQ(asset.asset, "app.js");
  EXPECT_EQ(RouteOf("GET", "/api/whoami").kind, DashboardRoute::kWhoAmI);
  EXPECT_EQ(RouteOf("GET", "/api/jobs").kind, DashboardRoute::kJobs);
  DashboardRoute job = RouteOf("GET", "/api/jobs/j-0123456789abcdef");
  EXPECT_EQ(job.kind, DashboardRoute::kJob);
  EXPECT_EQ(job.job_id, "j-0123456789abcdef");
  DashboardRoute events = RouteOf("GET", "/api/jobs/j-1/events");
  EXPECT_EQ(events.kind, DashboardRoute::kEvents);
  EXPECT_EQ(events.job_id, "j-1");
  DashboardRoute cancel = RouteOf("POST", "/api/jobs/j-1/cancel");
  EXPECT_EQ(cancel.kind, DashboardRoute::kCancel);
  EXPECT_EQ(cancel.job_id, "j-1");
}

TEST(DashboardRoutesTest, WrongMethods) {
  DashboardRoute get_cancel = RouteOf("GET", "/api/jobs/j-1/cancel");
  EXPECT_EQ(get_cancel.kind, DashboardRoute::kMethodNotAllowed);
  EXPECT_EQ(get_cancel.allowed, "POST");
  DashboardRoute post_jobs = RouteOf("POST", "/api/jobs");
  EXPECT_EQ(post_jobs.kind, DashboardRoute::kMethodNotAllowed);
  EXPECT_EQ(post_jobs.allowed, "GET");
  EXPECT_EQ(RouteOf("DELETE", "/").kind, DashboardRoute::kMethodNotAllowed);
}

TEST(DashboardRoutesTest, MalformedPathsAreNotFound) {
  for (absl::string_view path :
       {"", "/api", "/api/", "/api/job", "/api/jobs//events", "/api/jobs/j-1/",
        "/api/jobs/j-1/events/", "/api/jobs/j-1/other",
        "/api/jobs/j-1/events/x", "/api/jobs/../whoami", "/api/jobs/a b",
        "/api/jobs/j%1", "/static/", "/static/../etc/passwd", "/static/.hidden",
        "/static/a/b.js", "/api/jobs/j\xc3\xa9", "/favicon.ico"}) {
    EXPECT_EQ(RouteOf("GET", path).kind, DashboardRoute::kNotFound) << path;
  }
  EXPECT_EQ(
      RouteOf("GET", absl::StrCat("/api/jobs/", std::string(65, 'a'))).kind,
      DashboardRoute::kNotFound);
  EXPECT_EQ(
      RouteOf("GET", absl::StrCat("/api/jobs/", std::string(64, 'a'))).kind,
      DashboardRoute::kJob);
}

TEST(DashboardRoutesTest, ResumeSeq) {
  EXPECT_EQ(*ResumeSeq(Request({})), 0u);
  EXPECT_EQ(*ResumeSeq(Request({{"last-event-id", "17"}})), 17u);
  EXPECT_EQ(*ResumeSeq(Request({}, {{"after_seq", "9"}})), 9u);
  // The header wins: it is what a reconnecting stream sends.
  EXPECT_EQ(
      *ResumeSeq(Request({{"last-event-id", "17"}}, {{"after_seq", "9"}})),
      17u);
  EXPECT_EQ(*ResumeSeq(Request({{"last-event-id", "9223372036854775807"}})),
            9223372036854775807u);
  for (absl::string_view bad :
       {"", "-1", "+1", "1.0", "0x10", " 1", "1 ", "9223372036854775808",
        "99999999999999999999", "abc"}) {
    absl::StatusOr<uint64_t> seq =
        ResumeSeq(Request({{"last-event-id", std::string(bad)}}));
    EXPECT_FALSE(seq.ok()) << bad;
    EXPECT_EQ(seq.status().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(DashboardRoutesTest, ListRequest) {
  absl::StatusOr<v1::ListJobsRequest> list =
      ListRequestOf(Request({}, {{"state", "running,failed"},
                                 {"state", "queued"},
                                 {"page_size", "20"},
                                 {"page_token", "abc"},
                                 {"_", "123"}}));
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_THAT(list->states(), ::testing::ElementsAre(v1::JOB_STATE_RUNNING,
                                                     v1::JOB_STATE_FAILED,
                                                     v1::JOB_STATE_QUEUED));
  EXPECT_EQ(list->page_size(), 20);
  EXPECT_EQ(list->page_token(), "abc");
  EXPECT_EQ(ListRequestOf(Request({}))->page_size(), 50);
  for (auto bad : std::vector<std::pair<std::string, std::string>>{
           {"state", "done"},
           {"state", "RUNNING"},
           {"page_size", "0"},
           {"page_size", "201"},
           {"page_size", "x"},
           {"page_token", std::string(300, 'a')}}) {
    EXPECT_FALSE(ListRequestOf(Request({}, {bad})).ok()) << bad.first;
  }
}

TEST(DashboardRoutesTest, LoopbackHosts) {
  for (absl::string_view host :
       {"localhost", "localhost:8080", "LOCALHOST:1", "127.0.0.1",
        "127.0.0.1:8080", "127.1.2.3:1", "[::1]", "[::1]:8080"}) {
    EXPECT_TRUE(HostIsLoopback(Request({{"host", std::string(host)}}))) << host;
  }
  for (absl::string_view host :
       {"", "evil.example", "evil.example:8080", "127.0.0.1.evil.example",
        "localhost.evil.example", "127.0.0.256", "127.0.0", "128.0.0.1",
        "[::2]:1", "[::1]x", "[::1", "localhost:", "localhost:8x", "0.0.0.0",
        "::1"}) {
    EXPECT_FALSE(HostIsLoopback(Request({{"host", std::string(host)}})))
        << host;
  }
  EXPECT_FALSE(HostIsLoopback(Request({})));
}

TEST(DashboardRoutesTest, SameOrigin) {
  EXPECT_TRUE(SameOrigin(Request({{"host", "a:1"}}), false));
  EXPECT_TRUE(
      SameOrigin(Request({{"host", "a:1"}, {"origin", "http://a:1"}}), false));
  EXPECT_TRUE(
      SameOrigin(Request({{"host", "a:1"}, {"origin", "https://a:1"}}), true));
  EXPECT_FALSE(
      SameOrigin(Request({{"host", "a:1"}, {"origin", "http://a:1"}}), true));
  EXPECT_FALSE(SameOrigin(
      Request({{"host", "a:1"}, {"origin", "http://evil.example"}}), false));
  EXPECT_FALSE(
      SameOrigin(Request({{"host", "a:1"}, {"origin", "null"}}), false));
}

}  // namespace
}  // namespace lrtune::server
