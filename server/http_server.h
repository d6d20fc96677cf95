// A small HTTP/1.1 server for the dashboard (dashboard.h): a thread per
// connection, TLS through OpenSSL with the gRPC listener's PEM files, and
// fixed limits and deadlines on everything a client controls before it is
// authenticated, so that a slow, huge or malformed request costs one
// connection's thread for a bounded time and bounded memory, and never
// touches the gRPC service.
//
//   HttpServerOptions options;  options.address = "127.0.0.1:0";
//   HttpServer http([](const HttpRequest& r) { return HttpResponse{...}; },
//                   options);
//   LRTUNE_RETURN_IF_ERROR(http.Start());   // http.port(): the bound port
//   ...
//   http.Stop();
//
// Why not cpp-httplib (which serves /metrics): Debian 12's 0.11 reads a
// header line of any length, and any number of them, into memory before it
// checks a limit, and bounds a request only per read, not as a whole.
//
// Limits (HttpServerOptions): the request head (HttpLimits: 16 KiB, 64
// fields, a 4 KiB target), a 4 KiB body, `head_timeout` for a whole head
// and body to arrive, `idle_timeout` between requests on a kept-alive
// connection, `write_timeout` for each write (a client that stops reading
// is dropped), and `max_connections` at once (beyond: 503, closed). A bad
// head is answered 400/414/431/501 and the connection closed.
//
// Handlers run on the connection's thread and may block (the store, a
// stream's wait). A streamed response (Server-Sent Events) keeps its
// thread until its callback returns; the connection is closed afterwards.
// Thread-safe.
#ifndef LRTUNE_SERVER_HTTP_SERVER_H_
#define LRTUNE_SERVER_HTTP_SERVER_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/http_request.h"

namespace lrtune::server {

struct HttpServerOptions {
  std::string address;  // host:port ("[::1]:8080"); port 0: any free port
  // PEM certificate chain and private key: TLS (1.2 or later). Both empty:
  // plaintext.
  std::string tls_cert_file;
  std::string tls_key_file;
  // PEM CA bundle: clients must present a certificate it signed. Empty:
  // none asked for.
  std::string tls_client_ca_file;
  HttpLimits limits;
  int max_connections = 256;
  // Added to the nice value of the connections' threads: with a CPU
  // short, the service's own threads (ingestion) go first. 0: as is.
  int nice = 0;
  absl::Duration head_timeout = absl::Seconds(10);
  absl::Duration idle_timeout = absl::Seconds(30);
  absl::Duration write_timeout = absl::Seconds(10);
};

// The sending end of a streamed response.
class HttpStream {
 public:
  virtual ~HttpStream() = default;
  // Sends `data` whole. False once the peer is gone, a write waited longer
  // than write_timeout, or the server is stopping: the callback should
  // return.
  virtual bool Write(absl::string_view data) = 0;
  // Whether the peer has closed its end or the server is stopping; does
  // not wait.
  virtual bool Closed() = 0;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  // Extra header fields, sent as given (no CR or LF in them).
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // When set, `body` is ignored: the head is sent without a length, then
  // this runs on the connection's thread, writing the body as it goes;
  // the connection closes when it returns.
  std::function<void(HttpStream&)> stream;
};

// Answers one request. Runs on the connection's thread; must not throw.
using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

// "Not Found" for 404 and so on; "" for a status it does not know.
absl::string_view HttpReason(int status);

class HttpServer {
 public:
  HttpServer(HttpHandler handler, HttpServerOptions options);
  ~HttpServer();  // Stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Loads the TLS files, binds and starts accepting. INVALID_ARGUMENT for
  // a malformed address, FAILED_PRECONDITION naming a PEM file OpenSSL
  // refuses, UNAVAILABLE when the address cannot be bound.
  absl::Status Start();
  // The bound port, after Start.
  int port() const { return port_; }

  // Stops accepting, ends every connection (a stream's Write fails and
  // Closed is true from now on) and waits for their threads. Idempotent.
  void Stop();

  // Connections open now (for tests).
  int connections() const;

 private:
  struct Shared;
  class Connection;
  void AcceptLoop();

  const HttpServerOptions options_;
  std::shared_ptr<Shared> shared_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::thread accept_thread_;
};

}  // namespace lrtune::server

#endif  // LRTUNE_SERVER_HTTP_SERVER_H_
