#include "server/listen_policy.h"

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace lrtune::server {

bool IsLoopback(absl::string_view address) {
  return absl::StartsWith(address, "127.") ||
         absl::StartsWith(address, "localhost:") ||
         absl::StartsWith(address, "[::1]:");
}

absl::StatusOr<std::string> CheckExposure(absl::string_view flag,
                                          absl::string_view address,
                                          const Exposure& exposure) {
  if (IsLoopback(address) || (exposure.tls && exposure.tokens)) return "";
  if (!exposure.insecure) {
    return absl::FailedPreconditionError(absl::StrCat(
        "refusing to listen on ", address, " (", flag, ") without ",
        exposure.tls ? "" : "TLS (--tls-cert, --tls-key)",
        !exposure.tls && !exposure.tokens ? " and " : "",
        exposure.tokens ? "" : "tokens (--tokens-file)",
        ": anyone who can reach it could run and read jobs. Listen on "
        "127.0.0.1, add them, or pass --insecure to accept the risk."));
  }
  return absl::StrCat("WARNING: --insecure: listening on ", address, " (", flag,
                      ")", exposure.tls ? "" : " without TLS",
                      exposure.tokens ? ""
                                      : " without tokens (every caller "
                                        "is admin)");
}

}  // namespace lrtune::server
