// An HTTP/1.1 request head, parsed strictly and within fixed limits: what
// the dashboard's server (http_server.h) reads from a connection before
// anyone has been authenticated, so it trusts nothing in it.
//
//   LRTUNE_ASSIGN_OR_RETURN(HttpRequest request, ParseRequestHead(head));
//   std::optional<absl::string_view> token = request.Header("authorization");
//
// What is accepted: a request line `METHOD SP /origin-form SP HTTP/1.x`,
// then header lines `name: value`, every line ending in CRLF, then an empty
// line. Refused: other request targets (absolute-form, `*`), other
// versions, bare LF, line folding, control characters, a space before a
// colon, a bad or repeated Content-Length, Transfer-Encoding (bodies are
// tiny here: Content-Length only), an HTTP/1.1 request without Host, a
// percent escape that is not two hex digits, or one that decodes to a
// control character. Pure functions; thread-safe.
#ifndef LRTUNE_SERVER_HTTP_REQUEST_H_
#define LRTUNE_SERVER_HTTP_REQUEST_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace lrtune::server {

struct HttpLimits {
  size_t max_head_bytes = 16 * 1024;  // request line + headers + CRLFs
  size_t max_target_bytes = 4096;     // the request target, as sent
  int max_headers = 64;
  int max_query_params = 32;
  size_t max_body_bytes = 4096;  // Content-Length above it: 413
};

struct HttpRequest {
  std::string method;  // as sent, e.g. "GET"
  std::string target;  // as sent: path and query
  std::string path;    // percent-decoded, starts with '/'
  // Query parameters in order, percent-decoded ('+' is a space).
  std::vector<std::pair<std::string, std::string>> query;
  int minor_version = 1;  // HTTP/1.<minor_version>, 0 or 1
  // Header fields in order; names lowercased, values without surrounding
  // blanks.
  std::vector<std::pair<std::string, std::string>> headers;
  size_t content_length = 0;
  bool keep_alive = true;  // the client did not ask to close
  std::string body;        // filled by the server, content_length bytes
  std::string peer;        // filled by the server: "ipv4:127.0.0.1:50000"

  // The first header field called `name` (lowercase), or nullopt.
  std::optional<absl::string_view> Header(absl::string_view name) const;
  // The first query parameter called `name`, or nullopt.
  std::optional<absl::string_view> Query(absl::string_view name) const;
};

// Parses `head`, the bytes up to and including the empty line that ends
// the headers. Errors: INVALID_ARGUMENT (malformed; answer 400),
// OUT_OF_RANGE (the target is over max_target_bytes; 414),
// RESOURCE_EXHAUSTED (the head is over max_head_bytes or has more than
// max_headers fields; 431), FAILED_PRECONDITION (a Content-Length over
// max_body_bytes; 413), UNIMPLEMENTED (Transfer-Encoding; 501).
absl::StatusOr<HttpRequest> ParseRequestHead(absl::string_view head,
                                             const HttpLimits& limits = {});

// The HTTP status that answers a ParseRequestHead error, and
// DEADLINE_EXCEEDED (a request that did not arrive in time: 408).
int HttpStatusOfHeadError(const absl::Status& status);

// Decodes %XX escapes (and '+' as a space when `plus_is_space`).
// INVALID_ARGUMENT for a truncated or non-hex escape and for a decoded
// control character (below 0x20, or 0x7f).
absl::StatusOr<std::string> PercentDecode(absl::string_view text,
                                          bool plus_is_space);

}  // namespace lrtune::server

#endif  // LRTUNE_SERVER_HTTP_REQUEST_H_
