#include "server/http_request.h"

#include <algorithm>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace lrtune::server {
namespace {

// RFC 9110 tchar: the characters of a method or a field name.
bool IsTokenChar(char c) {
  if (absl::ascii_isalnum(c)) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

bool IsToken(absl::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!IsTokenChar(c)) return false;
  }
  return true;
}

// A field value's characters: visible ASCII, space, tab and obs-text.
bool IsFieldValue(absl::string_view s) {
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u == '\t' || u == ' ' || (u > 0x20 && u != 0x7f)) continue;
    return false;
  }
  return true;
}

// The characters a request target may hold as sent (RFC 3986's
// unreserved, sub-delims, ':', '@', '/', '?' and '%' escapes).
bool IsTargetChar(char c) {
  if (absl::ascii_isalnum(c)) return true;
  return absl::string_view("-._~!$&'()*+,;=:@/?%").find(c) !=
         absl::string_view::npos;
}

absl::Status Malformed(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("malformed request: ", what));
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Splits `target` into the decoded path and query.
absl::Status ParseTarget(absl::string_view target, const HttpLimits& limits,
                         HttpRequest& request) {
  if (target.empty() || target[0] != '/') {
    return Malformed("the target must be a path starting with '/'");
  }
  for (char c : target) {
    if (!IsTargetChar(c)) return Malformed("a character not allowed in a URL");
  }
  const size_t question = target.find('?');
  absl::StatusOr<std::string> path =
      PercentDecode(target.substr(0, question), /*plus_is_space=*/false);
  if (!path.ok()) return path.status();
  request.path = *std::move(path);
  if (question == absl::string_view::npos) return absl::OkStatus();
  for (absl::string_view param :
       absl::StrSplit(target.substr(question + 1), '&', absl::SkipEmpty())) {
    if (static_cast<int>(request.query.size()) >= limits.max_query_params) {
      return Malformed(absl::StrCat("more than ", limits.max_query_params,
                                    " query parameters"));
    }
    const size_t eq = param.find('=');
    absl::StatusOr<std::string> name =
        PercentDecode(param.substr(0, eq), /*plus_is_space=*/true);
    if (!name.ok()) return name.status();
    std::string value;
    if (eq != absl::string_view::npos) {
      absl::StatusOr<std::string> decoded =
          PercentDecode(param.substr(eq + 1), /*plus_is_space=*/true);
      if (!decoded.ok()) return decoded.status();
      value = *std::move(decoded);
    }
    request.query.emplace_back(*std::move(name), std::move(value));
  }
  return absl::OkStatus();
}

absl::Status ParseRequestLine(absl::string_view line, const HttpLimits& limits,
                              HttpRequest& request) {
  const size_t first = line.find(' ');
  const size_t last = line.rfind(' ');
  if (first == absl::string_view::npos || first == last) {
    return Malformed("the request line is not METHOD TARGET VERSION");
  }
  const absl::string_view method = line.substr(0, first);
  const absl::string_view target = line.substr(first + 1, last - first - 1);
  const absl::string_view version = line.substr(last + 1);
  if (!IsToken(method) || method.size() > 16) return Malformed("bad method");
  if (target.size() > limits.max_target_bytes) {
    return absl::OutOfRangeError(absl::StrCat(
        "the request target is over ", limits.max_target_bytes, " bytes"));
  }
  if (version == "HTTP/1.1") {
    request.minor_version = 1;
  } else if (version == "HTTP/1.0") {
    request.minor_version = 0;
  } else {
    return Malformed("the version must be HTTP/1.1 or HTTP/1.0");
  }
  request.method = std::string(method);
  request.target = std::string(target);
  return ParseTarget(target, limits, request);
}

}  // namespace

std::optional<absl::string_view> HttpRequest::Header(
    absl::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (key == name) return absl::string_view(value);
  }
  return std::nullopt;
}

std::optional<absl::string_view> HttpRequest::Query(
    absl::string_view name) const {
  for (const auto& [key, value] : query) {
    if (key == name) return absl::string_view(value);
  }
  return std::nullopt;
}

absl::StatusOr<std::string> PercentDecode(absl::string_view text,
                                          bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '%') {
      if (i + 2 >= text.size() || HexValue(text[i + 1]) < 0 ||
          HexValue(text[i + 2]) < 0) {
        return Malformed("a '%' escape that is not two hex digits");
      }
      c = static_cast<char>(HexValue(text[i + 1]) * 16 + HexValue(text[i + 2]));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      c = ' ';
    }
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      return Malformed("an escape that decodes to a control character");
    }
    out.push_back(c);
  }
  return out;
}

absl::StatusOr<HttpRequest> ParseRequestHead(absl::string_view head,
                                             const HttpLimits& limits) {
  if (head.size() > limits.max_head_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the request head is over ", limits.max_head_bytes, " bytes"));
  }
  if (!absl::EndsWith(head, "\r\n\r\n")) {
    return Malformed("the head does not end with an empty line");
  }
  head.remove_suffix(4);
  HttpRequest request;
  bool first = true;
  bool has_host = false;
  bool has_length = false;
  bool close = false;
  bool keep_alive = false;
  for (absl::string_view line : absl::StrSplit(head, "\r\n")) {
    if (line.find('\n') != absl::string_view::npos ||
        line.find('\r') != absl::string_view::npos) {
      return Malformed("a line that does not end in CRLF");
    }
    if (first) {
      first = false;
      absl::Status parsed = ParseRequestLine(line, limits, request);
      if (!parsed.ok()) return parsed;
      continue;
    }
    if (line.empty()) return Malformed("an empty header line");
    if (line[0] == ' ' || line[0] == '\t') return Malformed("line folding");
    const size_t colon = line.find(':');
    if (colon == absl::string_view::npos || !IsToken(line.substr(0, colon))) {
      return Malformed("a header line that is not `name: value`");
    }
    if (static_cast<int>(request.headers.size()) >= limits.max_headers) {
      return absl::ResourceExhaustedError(
          absl::StrCat("more than ", limits.max_headers, " header fields"));
    }
    const absl::string_view value =
        absl::StripAsciiWhitespace(line.substr(colon + 1));
    if (!IsFieldValue(value)) return Malformed("a control character");
    std::string name = absl::AsciiStrToLower(line.substr(0, colon));
    if (name == "transfer-encoding") {
      return absl::UnimplementedError(
          "Transfer-Encoding is not accepted; send Content-Length");
    }
    if (name == "content-length") {
      uint64_t length = 0;
      if (value.empty() || value.size() > 18 ||
          !std::all_of(value.begin(), value.end(), absl::ascii_isdigit) ||
          !absl::SimpleAtoi(value, &length)) {
        return Malformed("Content-Length is not a number");
      }
      if (has_length && length != request.content_length) {
        return Malformed("two different Content-Length fields");
      }
      has_length = true;
      request.content_length = static_cast<size_t>(length);
    }
    if (name == "host") {
      if (has_host) return Malformed("two Host fields");
      has_host = true;
    }
    if (name == "connection") {
      for (absl::string_view option : absl::StrSplit(value, ',')) {
        option = absl::StripAsciiWhitespace(option);
        if (absl::EqualsIgnoreCase(option, "close")) close = true;
        if (absl::EqualsIgnoreCase(option, "keep-alive")) keep_alive = true;
      }
    }
    request.headers.emplace_back(std::move(name), std::string(value));
  }
  if (first) return Malformed("no request line");
  if (request.minor_version == 1 && !has_host) {
    return Malformed("an HTTP/1.1 request without Host");
  }
  request.keep_alive = !close && (request.minor_version == 1 || keep_alive);
  if (request.content_length > limits.max_body_bytes) {
    return absl::FailedPreconditionError(
        absl::StrCat("the body is over ", limits.max_body_bytes, " bytes"));
  }
  return request;
}

int HttpStatusOfHeadError(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOutOfRange:
      return 414;
    case absl::StatusCode::kResourceExhausted:
      return 431;
    case absl::StatusCode::kFailedPrecondition:
      return 413;
    case absl::StatusCode::kUnimplemented:
      return 501;
    case absl::StatusCode::kDeadlineExceeded:
      return 408;
    default:
      return 400;
  }
}

}  // namespace lrtune::server
