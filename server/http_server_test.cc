#include "server/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/test_http_client.h"

namespace lrtune::server {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

using Client = TestHttpClient;

HttpResponse Echo(const HttpRequest& request) {
  HttpResponse response;
  response.content_type = "text/plain";
  response.body = absl::StrCat(
      request.method, " ", request.path, " ", request.body, " from ",
      absl::StartsWith(request.peer, "ipv4:127.0.0.1:") ? "loopback"
                                                        : request.peer);
  return response;
}

HttpServerOptions Loopback() {
  HttpServerOptions options;
  options.address = "127.0.0.1:0";
  return options;
}

TEST(HttpServerTest, AnswersRequestsOnAKeptAliveConnection) {
  HttpServer server(Echo, Loopback());
  ASSERT_TRUE(server.Start().ok());
  Client client(server.port());
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.Send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::string first = client.ReadResponse();
  EXPECT_THAT(first, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(first, HasSubstr("Connection: keep-alive"));
  EXPECT_THAT(first, HasSubstr("\r\n\r\nGET /a  from loopback"));
  // Two more, pipelined, the second with a body and asking to close.
  ASSERT_TRUE(
      client.Send("GET /b HTTP/1.1\r\nHost: x\r\n\r\n"
                  "POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                  "Connection: close\r\n\r\nhello"));
  EXPECT_THAT(client.ReadResponse(), HasSubstr("GET /b"));
  std::string last = client.ReadResponse();
  EXPECT_THAT(last, HasSubstr("POST /c hello"));
  EXPECT_THAT(last, HasSubstr("Connection: close"));
  client.ReadAll(absl::Seconds(2));
  EXPECT_TRUE(client.closed());
}

TEST(HttpServerTest, AHeadAnswerHasNoBody) {
  HttpServer server(Echo, Loopback());
  ASSERT_TRUE(server.Start().ok());
  Client client(server.port());
  ASSERT_TRUE(
      client.Send("HEAD /a HTTP/1.1\r\nHost: x\r\n\r\n"
                  "GET /b HTTP/1.1\r\nHost: x\r\n\r\n"));
  // The second answer follows the first head directly.
  ASSERT_TRUE(client.ReadUntil("GET /b  from loopback"));
  const std::string both = client.Take();
  EXPECT_THAT(both, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(both, HasSubstr("\r\n\r\nHTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(both, Not(HasSubstr("HEAD /a")));
}

TEST(HttpServerTest, MalformedRequestsAreAnsweredAndClosed) {
  HttpServer server(Echo, Loopback());
  ASSERT_TRUE(server.Start().ok());
  const std::pair<const char*, const char*> cases[] = {
      {"GARBAGE\r\n\r\n", "HTTP/1.1 400 "},
      {"GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 400 "},  // no Host
      {"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
       "HTTP/1.1 501 "},
      {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n",
       "HTTP/1.1 413 "},
  };
  for (const auto& [request, expected] : cases) {
    Client client(server.port());
    ASSERT_TRUE(client.Send(request));
    const std::string answer = client.ReadAll();
    EXPECT_THAT(answer, StartsWith(expected)) << request;
    EXPECT_THAT(answer, HasSubstr("Connection: close"));
    EXPECT_TRUE(client.closed()) << request;
  }
}

TEST(HttpServerTest, HugeHeadsAreRefusedWithoutReadingThemWhole) {
  HttpServer server(Echo, Loopback());
  ASSERT_TRUE(server.Start().ok());
  {
    // One endless header line: answered 431 after ~16 KiB; the server
    // stops reading, so most of the 64 MiB never leaves this side.
    Client client(server.port());
    ASSERT_TRUE(client.Send("GET / HTTP/1.1\r\nHost: x\r\nX-Big: "));
    const std::string chunk(1 << 16, 'a');
    int sent = 0;
    for (; sent < 1024 && client.Send(chunk); ++sent) {
    }
    EXPECT_LT(sent, 1024);
    EXPECT_THAT(client.ReadAll(), StartsWith("HTTP/1.1 431 "));
  }
  {
    std::string many = "GET / HTTP/1.1\r\nHost: x\r\n";
    for (int i = 0; i < 100; ++i) absl::StrAppend(&many, "X-", i, ": 1\r\n");
    Client client(server.port());
    ASSERT_TRUE(client.Send(absl::StrCat(many, "\r\n")));
    EXPECT_THAT(client.ReadAll(), StartsWith("HTTP/1.1 431 "));
  }
  {
    Client client(server.port());
    ASSERT_TRUE(client.Send(absl::StrCat("GET /", std::string(5000, 'a'),
                                         " HTTP/1.1\r\nHost: x\r\n\r\n")));
    EXPECT_THAT(client.ReadAll(), StartsWith("HTTP/1.1 414 "));
  }
  // Still serving.
  Client client(server.port());
  ASSERT_TRUE(client.Send("GET /ok HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_THAT(client.ReadResponse(), HasSubstr("GET /ok"));
}

TEST(HttpServerTest, SlowAndSilentClientsAreDropped) {
  HttpServerOptions options = Loopback();
  options.head_timeout = absl::Milliseconds(400);
  options.idle_timeout = absl::Milliseconds(400);
  HttpServer server(Echo, options);
  ASSERT_TRUE(server.Start().ok());
  {
    // A byte every 100 ms never completes a head within 400 ms of its
    // first byte, however long each read waits.
    Client client(server.port());
    const absl::Time start = absl::Now();
    const std::string head = "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaa";
    bool refused = false;
    for (char c : head) {
      if (!client.Send(std::string(1, c))) {
        refused = true;
        break;
      }
      absl::SleepFor(absl::Milliseconds(100));
      if (absl::Now() - start > absl::Seconds(3)) break;
    }
    const std::string answer = client.ReadAll(absl::Seconds(2));
    EXPECT_TRUE(refused || absl::StartsWith(answer, "HTTP/1.1 408 ")) << answer;
    EXPECT_LT(absl::Now() - start, absl::Seconds(4));
  }
  {
    // Silent: closed after head_timeout with nothing to answer.
    Client client(server.port());
    const absl::Time start = absl::Now();
    EXPECT_EQ(client.ReadAll(absl::Seconds(3)), "");
    EXPECT_TRUE(client.closed());
    EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  }
  {
    // Idle after an answer: closed after idle_timeout.
    Client client(server.port());
    ASSERT_TRUE(client.Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    EXPECT_THAT(client.ReadResponse(), StartsWith("HTTP/1.1 200"));
    client.ReadAll(absl::Seconds(3));
    EXPECT_TRUE(client.closed());
  }
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(server.connections(), 0);
}

TEST(HttpServerTest, StreamsUntilTheClientLeaves) {
  std::atomic<int> writes{0};
  std::atomic<bool> ended{false};
  HttpServer server(
      [&](const HttpRequest&) {
        HttpResponse response;
        response.content_type = "text/event-stream";
        response.stream = [&](HttpStream& out) {
          while (out.Write("data: x\n\n")) {
            ++writes;
            absl::SleepFor(absl::Milliseconds(20));
            if (out.Closed()) break;
          }
          ended = true;
        };
        return response;
      },
      Loopback());
  ASSERT_TRUE(server.Start().ok());
  {
    Client client(server.port());
    ASSERT_TRUE(client.Send("GET /events HTTP/1.1\r\nHost: x\r\n\r\n"));
    const std::string got = client.ReadAll(absl::Milliseconds(300));
    EXPECT_THAT(got, StartsWith("HTTP/1.1 200 OK\r\n"));
    EXPECT_THAT(got, HasSubstr("Content-Type: text/event-stream"));
    EXPECT_THAT(got, Not(HasSubstr("Content-Length")));
    EXPECT_THAT(got, HasSubstr("\r\n\r\ndata: x\n\ndata: x\n\n"));
  }
  const absl::Time left = absl::Now();
  while (!ended && absl::Now() - left < absl::Seconds(3)) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_TRUE(ended);
  EXPECT_GT(writes.load(), 2);
}

TEST(HttpServerTest, AClientThatStopsReadingIsDropped) {
  HttpServerOptions options = Loopback();
  options.write_timeout = absl::Milliseconds(300);
  std::atomic<bool> ended{false};
  HttpServer server(
      [&](const HttpRequest&) {
        HttpResponse response;
        response.stream = [&](HttpStream& out) {
          const std::string chunk(1 << 20, 'x');
          while (out.Write(chunk)) {
          }
          ended = true;
        };
        return response;
      },
      options);
  ASSERT_TRUE(server.Start().ok());
  Client client(server.port());
  ASSERT_TRUE(client.Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  // Never reads: the socket buffers fill, a write waits 300 ms, gives up.
  const absl::Time start = absl::Now();
  while (!ended && absl::Now() - start < absl::Seconds(5)) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_TRUE(ended);
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
}

TEST(HttpServerTest, ConnectionsBeyondTheLimitGet503) {
  HttpServerOptions options = Loopback();
  options.max_connections = 2;
  HttpServer server(Echo, options);
  ASSERT_TRUE(server.Start().ok());
  Client a(server.port());
  Client b(server.port());
  const absl::Time start = absl::Now();
  while (server.connections() < 2 && absl::Now() - start < absl::Seconds(3)) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_EQ(server.connections(), 2);
  Client c(server.port());
  EXPECT_THAT(c.ReadAll(absl::Seconds(2)), StartsWith("HTTP/1.1 503 "));
  ASSERT_TRUE(a.Send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_THAT(a.ReadResponse(), HasSubstr("GET /a"));
}

TEST(HttpServerTest, StopEndsStreamsAndConnections) {
  std::atomic<bool> streaming{false};
  HttpServer server(
      [&](const HttpRequest&) {
        HttpResponse response;
        response.stream = [&](HttpStream& out) {
          streaming = true;
          while (!out.Closed()) absl::SleepFor(absl::Milliseconds(5));
          EXPECT_FALSE(out.Write("late"));
        };
        return response;
      },
      Loopback());
  ASSERT_TRUE(server.Start().ok());
  Client streamer(server.port());
  Client idle(server.port());
  ASSERT_TRUE(streamer.Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  const absl::Time start = absl::Now();
  while (!streaming && absl::Now() - start < absl::Seconds(3)) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_TRUE(streaming);
  const absl::Time stop = absl::Now();
  server.Stop();
  EXPECT_LT(absl::Now() - stop, absl::Seconds(1));
  EXPECT_EQ(server.connections(), 0);
}

TEST(HttpServerTest, RefusesBadAddressesAndTlsFiles) {
  HttpServerOptions bad = Loopback();
  bad.address = "no-port";
  EXPECT_EQ(HttpServer(Echo, bad).Start().code(),
            absl::StatusCode::kInvalidArgument);
  HttpServerOptions tls = Loopback();
  tls.tls_cert_file = "/nonexistent/cert.pem";
  tls.tls_key_file = "/nonexistent/key.pem";
  absl::Status started = HttpServer(Echo, tls).Start();
  EXPECT_EQ(started.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(started.message(), HasSubstr("/nonexistent/cert.pem"));
  HttpServer first(Echo, Loopback());
  ASSERT_TRUE(first.Start().ok());
  HttpServerOptions taken = Loopback();
  taken.address = absl::StrCat("127.0.0.1:", first.port());
  EXPECT_EQ(HttpServer(Echo, taken).Start().code(),
            absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace lrtune::server
