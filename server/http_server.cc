#include "server/http_server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <system_error>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/recommendation_format.h"
#include "core/sync.h"

namespace lrtune::server {
namespace {

// The newest OpenSSL error as text, emptying its queue.
std::string OpenSslError() {
  std::string text;
  for (unsigned long e = ERR_get_error(); e != 0; e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    text = buf;
  }
  return text.empty() ? "unknown OpenSSL error" : text;
}

std::string PeerName(const sockaddr_storage& addr) {
  char host[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (addr.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
    port = ntohs(in->sin_port);
    return absl::StrCat("ipv4:", host, ":", port);
  }
  if (addr.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&addr);
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
    port = ntohs(in6->sin6_port);
    return absl::StrCat("ipv6:[", host, "]:", port);
  }
  return "unknown";
}

// A body for errors the server answers itself (the handler never saw the
// request).
std::string ErrorBody(absl::string_view message) {
  return absl::StrCat("{\"error\":", JsonString(message), "}\n");
}

}  // namespace

absl::string_view HttpReason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 204:
      return "No Content";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    default:
      return "";
  }
}

// What the accept thread and every connection thread share. Outlives the
// HttpServer while a connection thread still runs (each holds a
// reference), so that the last thing a thread does, counting itself out,
// touches only this.
struct HttpServer::Shared {
  HttpHandler handler;
  HttpServerOptions options;
  SSL_CTX* ssl_ctx = nullptr;         // owned; null: plaintext
  int stop_fd = -1;                   // eventfd: readable once Stop has begun
  std::atomic<bool> stopping{false};  // set just before stop_fd is

  lrtune::Mutex mu;
  int active ABSL_GUARDED_BY(mu) = 0;  // connection threads running

  ~Shared() {
    if (ssl_ctx != nullptr) SSL_CTX_free(ssl_ctx);
    if (stop_fd >= 0) close(stop_fd);
  }
  bool NoneActive() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return active == 0;
  }
};

// One accepted connection, served on its own thread: requests one after
// another (keep-alive), or one streamed response.
class HttpServer::Connection final : public HttpStream {
 public:
  Connection(std::shared_ptr<Shared> shared, int fd, std::string peer)
      : shared_(std::move(shared)),
        options_(shared_->options),
        fd_(fd),
        peer_(std::move(peer)) {}
  ~Connection() override {
    if (ssl_ != nullptr) {
      if (handshake_done_) SSL_shutdown(ssl_);  // best effort, non-blocking
      SSL_free(ssl_);
    }
    close(fd_);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void Serve() {
    if (shared_->ssl_ctx != nullptr && !Handshake()) return;
    std::string buffer;
    bool first = true;
    for (;;) {
      absl::StatusOr<HttpRequest> request = ReadRequest(buffer, first);
      if (!request.ok()) {
        if (request.status().code() != absl::StatusCode::kCancelled) {
          SendError(HttpStatusOfHeadError(request.status()),
                    request.status().message());
        }
        return;
      }
      HttpResponse response = shared_->handler(*request);
      const bool keep_alive =
          request->keep_alive && !response.stream && !Closed();
      if (!SendHead(response, keep_alive)) return;
      if (response.stream) {
        response.stream(*this);
        return;
      }
      // A HEAD answer has the head a GET would, without the body.
      if ((request->method != "HEAD" && !Write(response.body)) || !keep_alive) {
        return;
      }
      first = false;
    }
  }

  bool Write(absl::string_view data) override {
    if (shared_->stopping.load()) return false;
    while (!data.empty()) {
      const absl::Time deadline = absl::Now() + options_.write_timeout;
      ssize_t n;
      if (ssl_ != nullptr) {
        const int r =
            SSL_write(ssl_, data.data(),
                      static_cast<int>(std::min<size_t>(data.size(), 1 << 20)));
        if (r > 0) {
          n = r;
        } else {
          const int err = SSL_get_error(ssl_, r);
          if (err == SSL_ERROR_WANT_WRITE && WaitFor(POLLOUT, deadline)) {
            continue;
          }
          if (err == SSL_ERROR_WANT_READ && WaitFor(POLLIN, deadline)) {
            continue;
          }
          return false;
        }
      } else {
        n = send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
        if (n < 0) {
          if (errno == EINTR) continue;
          if ((errno == EAGAIN || errno == EWOULDBLOCK) &&
              WaitFor(POLLOUT, deadline)) {
            continue;
          }
          return false;
        }
      }
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  bool Closed() override {
    if (shared_->stopping.load()) return true;
    pollfd fds[2] = {{fd_, POLLRDHUP, 0}, {shared_->stop_fd, POLLIN, 0}};
    if (poll(fds, 2, 0) < 0) return errno != EINTR;
    return (fds[0].revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0 ||
           fds[1].revents != 0;
  }

 private:
  // Waits until fd_ is ready for `events`; false at `deadline`, when Stop
  // began, or on a poll error.
  bool WaitFor(short events, absl::Time deadline) {
    for (;;) {
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) return false;
      pollfd fds[2] = {{fd_, events, 0}, {shared_->stop_fd, POLLIN, 0}};
      const int timeout_ms = static_cast<int>(std::min<int64_t>(
          absl::ToInt64Milliseconds(left) + 1, 60 * 60 * 1000));
      const int r = poll(fds, 2, timeout_ms);
      if (r < 0) {
        if (errno == EINTR) continue;
        return false;
      }
      if (fds[1].revents != 0) return false;
      if (fds[0].revents != 0) return true;  // ready, or an error to read
    }
  }

  // Bytes read (> 0); 0 at end of stream; -1 on an error, at `deadline`
  // or when Stop began.
  ssize_t Read(char* buf, size_t size, absl::Time deadline) {
    for (;;) {
      if (ssl_ != nullptr) {
        const int r = SSL_read(ssl_, buf, static_cast<int>(size));
        if (r > 0) return r;
        const int err = SSL_get_error(ssl_, r);
        if (err == SSL_ERROR_ZERO_RETURN) return 0;
        if (err == SSL_ERROR_WANT_READ) {
          if (!WaitFor(POLLIN, deadline)) return -1;
          continue;
        }
        if (err == SSL_ERROR_WANT_WRITE) {
          if (!WaitFor(POLLOUT, deadline)) return -1;
          continue;
        }
        ERR_clear_error();
        return err == SSL_ERROR_SYSCALL && r == 0 ? 0 : -1;
      }
      const ssize_t n = recv(fd_, buf, size, 0);
      if (n >= 0) return n;
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
      if (!WaitFor(POLLIN, deadline)) return -1;
    }
  }

  bool Handshake() {
    ssl_ = SSL_new(shared_->ssl_ctx);
    if (ssl_ == nullptr || SSL_set_fd(ssl_, fd_) != 1) return false;
    const absl::Time deadline = absl::Now() + options_.head_timeout;
    for (;;) {
      const int r = SSL_accept(ssl_);
      if (r == 1) {
        handshake_done_ = true;
        return true;
      }
      const int err = SSL_get_error(ssl_, r);
      if ((err == SSL_ERROR_WANT_READ && WaitFor(POLLIN, deadline)) ||
          (err == SSL_ERROR_WANT_WRITE && WaitFor(POLLOUT, deadline))) {
        continue;
      }
      ERR_clear_error();  // a plaintext client, a refused certificate, ...
      return false;
    }
  }

  // The next request on the connection, its body read. CANCELLED when the
  // connection ended or timed out before a request began (nothing to
  // answer); other errors are answered (see HttpStatusOfHeadError, plus
  // 408 and 413).
  absl::StatusOr<HttpRequest> ReadRequest(std::string& buffer, bool first) {
    const HttpLimits& limits = options_.limits;
    // The first request must begin within head_timeout of the accept;
    // later ones within idle_timeout of the previous answer. A head, once
    // begun, must be whole within head_timeout.
    const absl::Time idle_deadline =
        absl::Now() + (first ? options_.head_timeout : options_.idle_timeout);
    absl::Time head_deadline = buffer.empty()
                                   ? absl::InfiniteFuture()
                                   : absl::Now() + options_.head_timeout;
    size_t end;
    size_t searched = 0;
    while ((end = buffer.find("\r\n\r\n", searched)) == std::string::npos) {
      if (buffer.size() > limits.max_head_bytes) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "the request head is over ", limits.max_head_bytes, " bytes"));
      }
      searched = buffer.size() < 3 ? 0 : buffer.size() - 3;
      char chunk[4096];
      const ssize_t n = Read(chunk, sizeof(chunk),
                             buffer.empty() ? idle_deadline : head_deadline);
      if (n <= 0) {
        if (buffer.empty() || n == 0 || Closed()) {
          return absl::CancelledError("the connection ended");
        }
        return TimedOut();
      }
      if (buffer.empty()) {
        head_deadline = absl::Now() + options_.head_timeout;
      }
      buffer.append(chunk, static_cast<size_t>(n));
    }
    absl::StatusOr<HttpRequest> request =
        ParseRequestHead(absl::string_view(buffer).substr(0, end + 4), limits);
    if (!request.ok()) return request.status();
    buffer.erase(0, end + 4);
    while (buffer.size() < request->content_length) {
      char chunk[4096];
      const ssize_t n = Read(chunk, sizeof(chunk), head_deadline);
      if (n == 0 || (n < 0 && Closed())) {
        return absl::CancelledError("the connection ended");
      }
      if (n < 0) return TimedOut();
      buffer.append(chunk, static_cast<size_t>(n));
    }
    request->body = buffer.substr(0, request->content_length);
    buffer.erase(0, request->content_length);
    request->peer = peer_;
    return request;
  }

  absl::Status TimedOut() {
    return absl::DeadlineExceededError("the request did not arrive in time");
  }

  bool SendHead(const HttpResponse& response, bool keep_alive) {
    std::string head = absl::StrCat("HTTP/1.1 ", response.status, " ",
                                    HttpReason(response.status), "\r\n");
    if (!response.content_type.empty()) {
      absl::StrAppend(&head, "Content-Type: ", response.content_type, "\r\n");
    }
    for (const auto& [name, value] : response.headers) {
      absl::StrAppend(&head, name, ": ", value, "\r\n");
    }
    if (!response.stream) {
      absl::StrAppend(&head, "Content-Length: ", response.body.size(), "\r\n");
    }
    absl::StrAppend(&head, "Connection: ", keep_alive ? "keep-alive" : "close",
                    "\r\n\r\n");
    return Write(head);
  }

  // Answers, then closes gently: the client may still be sending (a huge
  // head), and closing with unread input would reset the connection and
  // could destroy the answer before the client reads it. So the input is
  // read and dropped for a short, bounded while after the answer.
  void SendError(int status, absl::string_view message) {
    HttpResponse response;
    response.status = status;
    response.body = ErrorBody(message);
    if (!SendHead(response, /*keep_alive=*/false) || !Write(response.body)) {
      return;
    }
    if (ssl_ == nullptr) shutdown(fd_, SHUT_WR);
    const absl::Time deadline = absl::Now() + absl::Milliseconds(500);
    size_t drained = 0;
    char chunk[4096];
    while (drained < (1 << 20)) {
      const ssize_t n = Read(chunk, sizeof(chunk), deadline);
      if (n <= 0) break;
      drained += static_cast<size_t>(n);
    }
  }

  const std::shared_ptr<Shared> shared_;
  const HttpServerOptions& options_;  // shared_'s
  const int fd_;
  const std::string peer_;
  SSL* ssl_ = nullptr;
  bool handshake_done_ = false;
};

HttpServer::HttpServer(HttpHandler handler, HttpServerOptions options)
    : options_(std::move(options)), shared_(std::make_shared<Shared>()) {
  shared_->handler = std::move(handler);
  shared_->options = options_;
}

HttpServer::~HttpServer() { Stop(); }

int HttpServer::connections() const {
  lrtune::MutexLock lock(&shared_->mu);
  return shared_->active;
}

absl::Status HttpServer::Start() {
  const std::string& address = options_.address;
  const size_t colon = address.rfind(':');
  int port = -1;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(address.substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("address must be host:port, got \"", address, "\""));
  }
  std::string host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }

  if (options_.tls_cert_file.empty() != options_.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "a TLS certificate and its key go together");
  }
  if (!options_.tls_cert_file.empty()) {
    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == nullptr) {
      return absl::InternalError(
          absl::StrCat("cannot create a TLS context: ", OpenSslError()));
    }
    shared_->ssl_ctx = ctx;  // freed with shared_
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (SSL_CTX_use_certificate_chain_file(
            ctx, options_.tls_cert_file.c_str()) != 1) {
      return absl::FailedPreconditionError(absl::StrCat(
          "TLS certificate ", options_.tls_cert_file, ": ", OpenSslError()));
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, options_.tls_key_file.c_str(),
                                    SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
      return absl::FailedPreconditionError(absl::StrCat(
          "TLS key ", options_.tls_key_file, ": ", OpenSslError()));
    }
    if (!options_.tls_client_ca_file.empty()) {
      const char* ca = options_.tls_client_ca_file.c_str();
      STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(ca);
      if (names == nullptr ||
          SSL_CTX_load_verify_locations(ctx, ca, nullptr) != 1) {
        if (names != nullptr) sk_X509_NAME_pop_free(names, X509_NAME_free);
        return absl::FailedPreconditionError(
            absl::StrCat("TLS client CA ", options_.tls_client_ca_file, ": ",
                         OpenSslError()));
      }
      SSL_CTX_set_client_CA_list(ctx, names);  // takes ownership
      SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                         nullptr);
    }
  }

  shared_->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (shared_->stop_fd < 0) {
    return absl::InternalError(absl::StrCat("eventfd: ", std::strerror(errno)));
  }

  addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string port_text = std::to_string(port);
  if (getaddrinfo(host.empty() ? nullptr : host.c_str(), port_text.c_str(),
                  &hints, &found) != 0 ||
      found == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot resolve \"", host, "\" in ", address));
  }
  std::string why = "no address";
  for (addrinfo* ai = found; ai != nullptr && listen_fd_ < 0;
       ai = ai->ai_next) {
    const int fd =
        socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
               ai->ai_protocol);
    if (fd < 0) continue;
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 128) == 0) {
      listen_fd_ = fd;
    } else {
      why = std::strerror(errno);
      close(fd);
    }
  }
  freeaddrinfo(found);
  if (listen_fd_ < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", address, ": ", why));
  }
  sockaddr_storage bound = {};
  socklen_t len = sizeof(bound);
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound), &len);
  port_ = ntohs(bound.ss_family == AF_INET6
                    ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                    : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  accept_thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "lrtune-http-acc");
    AcceptLoop();
  });
  return absl::OkStatus();
}

void HttpServer::AcceptLoop() {
  for (;;) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {shared_->stop_fd, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;
    sockaddr_storage addr = {};
    socklen_t len = sizeof(addr);
    const int fd = accept4(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len,
                           SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      // EMFILE and friends: wait a little rather than spin.
      if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
        poll(fds + 1, 1, 100);
      }
      continue;
    }
    {
      lrtune::MutexLock lock(&shared_->mu);
      if (shared_->active >= options_.max_connections) {
        // Refused without a thread: a fixed answer (plaintext only; a TLS
        // client sees the connection close).
        if (shared_->ssl_ctx == nullptr) {
          static constexpr absl::string_view kBusy =
              "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
              "Connection: close\r\n\r\n";
          (void)!send(fd, kBusy.data(), kBusy.size(), MSG_NOSIGNAL);
        }
        close(fd);
        continue;
      }
      ++shared_->active;
    }
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    auto serve = [shared = shared_, fd, peer = PeerName(addr)] {
      pthread_setname_np(pthread_self(), "lrtune-http");  // for top -H
      if (shared->options.nice > 0) {
        setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()),
                    shared->options.nice);
      }
      // OpenSSL writes with write(2): a peer gone makes it EPIPE, not a
      // SIGPIPE that would end the process.
      sigset_t pipe;
      sigemptyset(&pipe);
      sigaddset(&pipe, SIGPIPE);
      pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
      {
        Connection connection(shared, fd, peer);
        connection.Serve();
      }
      lrtune::MutexLock lock(&shared->mu);
      --shared->active;
    };
    try {
      std::thread(std::move(serve)).detach();
    } catch (const std::system_error&) {  // out of threads: refuse it
      close(fd);
      lrtune::MutexLock lock(&shared_->mu);
      --shared_->active;
    }
  }
}

void HttpServer::Stop() {
  if (!accept_thread_.joinable()) return;
  shared_->stopping = true;
  const uint64_t one = 1;
  (void)!write(shared_->stop_fd, &one, sizeof(one));
  accept_thread_.join();
  close(listen_fd_);
  listen_fd_ = -1;
  lrtune::MutexLock lock(&shared_->mu);
  shared_->mu.Await(lrtune::Condition(shared_.get(), &Shared::NoneActive));
}

}  // namespace lrtune::server
