// Who may reach a listening address: the one rule lrtune-server applies to
// each of its listeners (gRPC's --listen and the dashboard's
// --dashboard-listen), so that both are exposed on the same terms.
//
//   Exposure exposure;  exposure.tls = true;  // no tokens, no --insecure
//   LRTUNE_ASSIGN_OR_RETURN(std::string warning,
//                           CheckExposure("--listen", address, exposure));
//   if (!warning.empty()) std::cerr << warning << "\n";
//
// An address on loopback (127.*, localhost:, [::1]:) may be served in any
// way. Any other address needs both TLS and tokens, unless the operator
// passed --insecure, which is then worth a warning. Pure; thread-safe.
#ifndef LRTUNE_SERVER_LISTEN_POLICY_H_
#define LRTUNE_SERVER_LISTEN_POLICY_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace lrtune::server {

// Whether `address` (host:port) is on the loopback interface only.
bool IsLoopback(absl::string_view address);

// How a listener would be served.
struct Exposure {
  bool tls = false;       // a certificate and key were given
  bool tokens = false;    // a tokens file was given
  bool insecure = false;  // --insecure: the operator accepts the risk
};

// The empty string when serving `address` this way is fine; the warning to
// print when it is allowed only by --insecure. FAILED_PRECONDITION naming
// `flag`, the address and what is missing when it is refused.
absl::StatusOr<std::string> CheckExposure(absl::string_view flag,
                                          absl::string_view address,
                                          const Exposure& exposure);

}  // namespace lrtune::server

#endif  // LRTUNE_SERVER_LISTEN_POLICY_H_
