// A plain TCP client for tests of the dashboard's HTTP server: raw bytes
// out, raw bytes in, so that tests can send what no HTTP library would.
//
//   TestHttpClient client(port);
//   client.Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
//   std::string response = client.ReadResponse();
//
// Not thread-safe.
#ifndef LRTUNE_SERVER_TEST_HTTP_CLIENT_H_
#define LRTUNE_SERVER_TEST_HTTP_CLIENT_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace lrtune::server {

// A plain TCP client of the server under test.
class TestHttpClient {
 public:
  explicit TestHttpClient(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr = {};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ =
        connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~TestHttpClient() { close(fd_); }
  TestHttpClient(const TestHttpClient&) = delete;
  TestHttpClient& operator=(const TestHttpClient&) = delete;
  bool connected() const { return connected_; }

  // False once the server has closed (or reset) the connection.
  bool Send(absl::string_view data) {
    while (!data.empty()) {
      const ssize_t n = send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // What arrives until the server closes or `timeout` passes.
  std::string ReadAll(absl::Duration timeout = absl::Seconds(5)) {
    std::string out;
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      pollfd p = {fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      char buf[4096];
      const ssize_t n = recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) {
        closed_ = true;
        break;
      }
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }

  // One response with a Content-Length body.
  std::string ReadResponse(absl::Duration timeout = absl::Seconds(5)) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      const size_t end = buffer_.find("\r\n\r\n");
      if (end != std::string::npos) {
        size_t length = 0;
        const size_t at = buffer_.find("Content-Length: ");
        if (at != std::string::npos && at < end) {
          const size_t eol = buffer_.find("\r\n", at);
          (void)absl::SimpleAtoi(buffer_.substr(at + 16, eol - at - 16),
                                 &length);
        }
        if (buffer_.size() >= end + 4 + length) {
          std::string response = buffer_.substr(0, end + 4 + length);
          buffer_.erase(0, end + 4 + length);
          return response;
        }
      }
      pollfd p = {fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      char buf[4096];
      const ssize_t n = recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) break;
      buffer_.append(buf, static_cast<size_t>(n));
    }
    return "";
  }

  // Reads until what arrived since the last Take() holds `needle` (true),
  // the server closes or `timeout` passes (false).
  bool ReadUntil(absl::string_view needle,
                 absl::Duration timeout = absl::Seconds(5)) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::string_view(buffer_).find(needle) == absl::string_view::npos) {
      if (absl::Now() >= deadline) return false;
      pollfd p = {fd_, POLLIN, 0};
      if (poll(&p, 1, 20) <= 0) continue;
      char buf[4096];
      const ssize_t n = recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) {
        closed_ = true;
        return absl::string_view(buffer_).find(needle) !=
               absl::string_view::npos;
      }
      buffer_.append(buf, static_cast<size_t>(n));
    }
    return true;
  }
  // What ReadUntil gathered; empties it.
  std::string Take() {
    std::string out;
    out.swap(buffer_);
    return out;
  }

  bool closed() const { return closed_; }

 private:
  int fd_ = -1;
  bool connected_ = false;
  bool closed_ = false;
  std::string buffer_;
};

}  // namespace lrtune::server

#endif  // LRTUNE_SERVER_TEST_HTTP_CLIENT_H_
