#include "server/http_request.h"

#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lrtune::server {
namespace {

using ::testing::Pair;

int StatusOf(absl::string_view head, const HttpLimits& limits = {}) {
  absl::StatusOr<HttpRequest> r = ParseRequestHead(head, limits);
  return r.ok() ? 200 : HttpStatusOfHeadError(r.status());
}

TEST(HttpRequestTest, ParsesAGet) {
  absl::StatusOr<HttpRequest> r = ParseRequestHead(
      "GET /api/jobs/j-1%2Dx?state=running,failed&page_token=a%2Bb+c&flag "
      "HTTP/1.1\r\n"
      "Host: 127.0.0.1:8080\r\n"
      "Authorization:   Bearer abc  \r\n"
      "Last-Event-ID: 42\r\n\r\n");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->method, "GET");
  EXPECT_EQ(r->path, "/api/jobs/j-1-x");
  EXPECT_THAT(r->query, ::testing::ElementsAre(Pair("state", "running,failed"),
                                               Pair("page_token", "a+b c"),
                                               Pair("flag", "")));
  EXPECT_EQ(r->Header("authorization"), "Bearer abc");
  EXPECT_EQ(r->Header("last-event-id"), "42");
  EXPECT_EQ(r->Header("cookie"), std::nullopt);
  EXPECT_EQ(r->Query("state"), "running,failed");
  EXPECT_TRUE(r->keep_alive);
  EXPECT_EQ(r->content_length, 0u);
}

TEST(HttpRequestTest, KeepAliveByVersionAndConnection) {
  auto keep = [](absl::string_view head) {
    absl::StatusOr<HttpRequest> r = ParseRequestHead(head);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() && r->keep_alive;
  };
  EXPECT_TRUE(keep("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
  EXPECT_FALSE(keep("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"));
  EXPECT_FALSE(keep("GET / HTTP/1.0\r\n\r\n"));
  EXPECT_TRUE(keep("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
}

TEST(HttpRequestTest, ContentLength) {
  absl::StatusOr<HttpRequest> r = ParseRequestHead(
      "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n"
      "content-length: 12\r\n\r\n");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->content_length, 12u);
  EXPECT_EQ(StatusOf("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n"
                     "Content-Length: 2\r\n\r\n"),
            400);
  EXPECT_EQ(
      StatusOf("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"),
      400);
  EXPECT_EQ(
      StatusOf("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 1e3\r\n\r\n"),
      400);
  EXPECT_EQ(StatusOf("POST /x HTTP/1.1\r\nHost: a\r\n"
                     "Content-Length: 99999999999999999999999\r\n\r\n"),
            400);
  EXPECT_EQ(
      StatusOf("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4097\r\n\r\n"),
      413);
  EXPECT_EQ(StatusOf("POST /x HTTP/1.1\r\nHost: a\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n"),
            501);
}

TEST(HttpRequestTest, RefusesMalformedHeads) {
  for (absl::string_view head : {
           "",
           "\r\n\r\n",
           "GET / HTTP/1.1\r\nHost: a\r\n",            // no empty line
           "GET / HTTP/1.1\nHost: a\r\n\r\n",          // bare LF
           "GET / HTTP/1.1\r\nHost: a\r\n x\r\n\r\n",  // folding
           "GET / HTTP/1.1\r\nHost : a\r\n\r\n",       // space before colon
           "GET / HTTP/1.1\r\nHost\r\n\r\n",           // no colon
           "GET / HTTP/1.1\r\nHo(st: a\r\n\r\n",       // not a token
           "GET / HTTP/1.1\r\nHost: a\x01\r\n\r\n",    // control character
           "GET / HTTP/1.1\r\nHost: a\x7f\r\n\r\n",
           "GET / HTTP/2.0\r\nHost: a\r\n\r\n",
           "GET / HTTP/1.1 x\r\nHost: a\r\n\r\n",
           "GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
           "GET /\r\nHost: a\r\n\r\n",
           "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",  // absolute-form
           "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
           "GET / HTTP/1.1\r\n\r\n",                        // no Host
           "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",  // two
           "GET /a%2 HTTP/1.1\r\nHost: a\r\n\r\n",          // short escape
           "GET /a%zz HTTP/1.1\r\nHost: a\r\n\r\n",
           "GET /a%00 HTTP/1.1\r\nHost: a\r\n\r\n",     // decodes to NUL
           "GET /a%0d%0a HTTP/1.1\r\nHost: a\r\n\r\n",  // CR LF
           "GET /a<b> HTTP/1.1\r\nHost: a\r\n\r\n",     // not a URL char
           "GET /?a=%1 HTTP/1.1\r\nHost: a\r\n\r\n",
           "G\xc3\xa9T / HTTP/1.1\r\nHost: a\r\n\r\n",
       }) {
    EXPECT_EQ(StatusOf(head), 400) << absl::CHexEscape(head);
  }
}

TEST(HttpRequestTest, Limits) {
  HttpLimits limits;
  limits.max_head_bytes = 200;
  limits.max_target_bytes = 50;
  limits.max_headers = 3;
  limits.max_query_params = 2;
  EXPECT_EQ(StatusOf(absl::StrCat("GET /", std::string(60, 'a'),
                                  " HTTP/1.1\r\nHost: a\r\n\r\n"),
                     limits),
            414);
  EXPECT_EQ(StatusOf(absl::StrCat("GET / HTTP/1.1\r\nHost: a\r\nX: ",
                                  std::string(200, 'b'), "\r\n\r\n"),
                     limits),
            431);
  EXPECT_EQ(
      StatusOf("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n",
               limits),
      431);
  EXPECT_EQ(
      StatusOf("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n", limits),
      200);
  EXPECT_EQ(StatusOf("GET /?a&b&c HTTP/1.1\r\nHost: a\r\n\r\n", limits), 400);
  EXPECT_EQ(StatusOf("GET /?a&b HTTP/1.1\r\nHost: a\r\n\r\n", limits), 200);
}

TEST(HttpRequestTest, PercentDecode) {
  EXPECT_EQ(*PercentDecode("a%20b+c", false), "a b+c");
  EXPECT_EQ(*PercentDecode("a%20b+c", true), "a b c");
  EXPECT_EQ(*PercentDecode("%C3%A9", false), "\xc3\xa9");
  EXPECT_FALSE(PercentDecode("%", false).ok());
  EXPECT_FALSE(PercentDecode("%4", false).ok());
  EXPECT_FALSE(PercentDecode("%g0", false).ok());
  EXPECT_FALSE(PercentDecode("%7F", false).ok());
  EXPECT_FALSE(PercentDecode("%1f", false).ok());
}

}  // namespace
}  // namespace lrtune::server
