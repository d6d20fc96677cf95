// Who is calling: bearer tokens with roles, read from a tokens file, and the
// Authenticator interface the RPC edge (grpc_services.h) asks on every call.
//
//   TokenAuthenticator auth("/etc/lrtune/tokens");
//   LRTUNE_RETURN_IF_ERROR(auth.Reload());   // at start, and on SIGHUP
//
// The tokens file has one principal per line, `<role> <name> <token>`,
// separated by spaces or tabs; `#` starts a comment, blank lines are
// skipped. Roles are `client`, `worker` and `admin`; a name is 1-64 of
// [A-Za-z0-9._@-] and becomes the owner of the jobs it submits; a token is
// 16-256 printable ASCII characters without spaces, unique in the file.
// Nothing here logs or returns a token's text: parse errors name the line.
#ifndef LRTUNE_SERVER_AUTH_H_
#define LRTUNE_SERVER_AUTH_H_

#include <cstddef>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/sync.h"
#include "grpcpp/grpcpp.h"

namespace lrtune::server {

enum class Role { kClient, kWorker, kAdmin };

// "client", "worker", "admin".
absl::string_view RoleName(Role role);

struct Principal {
  std::string name;  // the job owner
  Role role = Role::kClient;
};

// OK when `principal` may call a service meant for `needed` (admin may call
// every service); otherwise PERMISSION_DENIED naming both roles.
absl::Status CheckRole(const Principal& principal, Role needed);

// A parsed tokens file. Immutable; thread-compatible.
class TokenTable {
 public:
  // INVALID_ARGUMENT "line N: ..." for a malformed line, an unknown role,
  // a bad name, a short or long token, or a token used twice.
  static absl::StatusOr<TokenTable> Parse(absl::string_view text);
  // Parse of the file's contents; NOT_FOUND / PERMISSION_DENIED style
  // errors (as the OS says) when it cannot be read.
  static absl::StatusOr<TokenTable> Load(const std::string& path);

  // The principal holding `token`, or nullopt.
  std::optional<Principal> Find(absl::string_view token) const;
  size_t size() const { return by_token_.size(); }

 private:
  absl::flat_hash_map<std::string, Principal> by_token_;
};

// Who is calling. Thread-safe.
class Authenticator {
 public:
  virtual ~Authenticator() = default;
  // The caller's principal, or UNAUTHENTICATED.
  virtual absl::StatusOr<Principal> Authenticate(
      const grpc::CallbackServerContext& context) = 0;
  // The same for an HTTP caller (the dashboard), from the value of its
  // `Authorization` header (nullopt: it sent none).
  virtual absl::StatusOr<Principal> AuthenticateHeader(
      std::optional<absl::string_view> authorization) = 0;
};

// Accepts every caller as {"local", admin}: a loopback-only server without
// a tokens file (and the in-process servers of tests and the CLI).
class LocalAuthenticator final : public Authenticator {
 public:
  absl::StatusOr<Principal> Authenticate(
      const grpc::CallbackServerContext& context) override {
    return Principal{"local", Role::kAdmin};
  }
  absl::StatusOr<Principal> AuthenticateHeader(
      std::optional<absl::string_view> authorization) override {
    return Principal{"local", Role::kAdmin};
  }
};

// Looks up the `authorization: Bearer <token>` metadata in the table last
// loaded from `path`. Reload swaps the whole table at once, so a call sees
// either the old or the new file, and a revoked token is refused from the
// first call after Reload returns. Thread-safe.
class TokenAuthenticator final : public Authenticator {
 public:
  explicit TokenAuthenticator(std::string path) : path_(std::move(path)) {}
  // Tokens held in memory only (the embedded dashboard's one-time token);
  // Reload then answers FAILED_PRECONDITION and keeps them.
  explicit TokenAuthenticator(TokenTable table)
      : table_(std::make_shared<const TokenTable>(std::move(table))) {}
  TokenAuthenticator(const TokenAuthenticator&) = delete;
  TokenAuthenticator& operator=(const TokenAuthenticator&) = delete;

  // Reads the file again. On error the previous table stays in force (none
  // before the first successful load: every call is refused).
  absl::Status Reload();
  // Tokens in force.
  size_t size();

  // UNAUTHENTICATED "missing bearer token" (no or malformed metadata) or
  // "unknown bearer token".
  absl::StatusOr<Principal> Authenticate(
      const grpc::CallbackServerContext& context) override;
  // As Authenticate: `authorization` is the metadata's or header's value.
  absl::StatusOr<Principal> AuthenticateHeader(
      std::optional<absl::string_view> authorization) override;

 private:
  std::shared_ptr<const TokenTable> Table();

  const std::string path_;
  lrtune::Mutex mu_;
  std::shared_ptr<const TokenTable> table_ ABSL_GUARDED_BY(mu_);
};

}  // namespace lrtune::server

#endif  // LRTUNE_SERVER_AUTH_H_
