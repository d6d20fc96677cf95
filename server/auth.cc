#include "server/auth.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace lrtune::server {
namespace {

constexpr size_t kMinTokenLength = 16;
constexpr size_t kMaxTokenLength = 256;
constexpr size_t kMaxNameLength = 64;

std::optional<Role> ParseRole(absl::string_view text) {
  if (text == "client") return Role::kClient;
  if (text == "worker") return Role::kWorker;
  if (text == "admin") return Role::kAdmin;
  return std::nullopt;
}

bool ValidName(absl::string_view name) {
  if (name.empty() || name.size() > kMaxNameLength) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(c) && c != '.' && c != '_' && c != '@' &&
        c != '-') {
      return false;
    }
  }
  return true;
}

bool ValidToken(absl::string_view token) {
  if (token.size() < kMinTokenLength || token.size() > kMaxTokenLength) {
    return false;
  }
  for (char c : token) {
    if (!absl::ascii_isgraph(c)) return false;
  }
  return true;
}

}  // namespace

absl::string_view RoleName(Role role) {
  switch (role) {
    case Role::kClient:
      return "client";
    case Role::kWorker:
      return "worker";
    case Role::kAdmin:
      return "admin";
  }
  return "unknown";
}

absl::Status CheckRole(const Principal& principal, Role needed) {
  if (principal.role == needed || principal.role == Role::kAdmin) {
    return absl::OkStatus();
  }
  return absl::PermissionDeniedError(
      absl::StrCat("role ", RoleName(principal.role), " of \"", principal.name,
                   "\" may not call this service (it needs role ",
                   RoleName(needed), " or admin)"));
}

absl::StatusOr<TokenTable> TokenTable::Parse(absl::string_view text) {
  TokenTable table;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    const size_t hash = line.find('#');
    if (hash != absl::string_view::npos) line = line.substr(0, hash);
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t\r"), absl::SkipEmpty());
    if (fields.empty()) continue;
    const std::string where = absl::StrCat("line ", line_number, ": ");
    if (fields.size() != 3) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "expected `<role> <name> <token>`, got ",
                       fields.size(), " fields"));
    }
    std::optional<Role> role = ParseRole(fields[0]);
    if (!role.has_value()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "role must be client, worker or admin, got \"",
                       fields[0], "\""));
    }
    if (!ValidName(fields[1])) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "name must be 1-", kMaxNameLength,
                       " characters of [A-Za-z0-9._@-]"));
    }
    if (!ValidToken(fields[2])) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, "token must be ", kMinTokenLength, "-", kMaxTokenLength,
          " printable characters without spaces"));
    }
    Principal principal{std::string(fields[1]), *role};
    if (!table.by_token_.emplace(std::string(fields[2]), std::move(principal))
             .second) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "this token is already used on an earlier line"));
    }
  }
  return table;
}

absl::StatusOr<TokenTable> TokenTable::Load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat("cannot read ", path, ": ", std::strerror(errno)));
  }
  std::stringstream contents;
  contents << in.rdbuf();
  absl::StatusOr<TokenTable> table = Parse(contents.str());
  if (!table.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", table.status().message()));
  }
  return table;
}

std::optional<Principal> TokenTable::Find(absl::string_view token) const {
  auto it = by_token_.find(token);
  if (it == by_token_.end()) return std::nullopt;
  return it->second;
}

absl::Status TokenAuthenticator::Reload() {
  if (path_.empty()) {
    return absl::FailedPreconditionError(
        "these tokens were not read from a file");
  }
  absl::StatusOr<TokenTable> table = TokenTable::Load(path_);
  if (!table.ok()) return table.status();
  auto fresh = std::make_shared<const TokenTable>(*std::move(table));
  lrtune::MutexLock lock(&mu_);
  table_ = std::move(fresh);
  return absl::OkStatus();
}

size_t TokenAuthenticator::size() {
  std::shared_ptr<const TokenTable> table = Table();
  return table == nullptr ? 0 : table->size();
}

std::shared_ptr<const TokenTable> TokenAuthenticator::Table() {
  lrtune::MutexLock lock(&mu_);
  return table_;
}

absl::StatusOr<Principal> TokenAuthenticator::Authenticate(
    const grpc::CallbackServerContext& context) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) return AuthenticateHeader(std::nullopt);
  return AuthenticateHeader(
      absl::string_view(it->second.data(), it->second.size()));
}

absl::StatusOr<Principal> TokenAuthenticator::AuthenticateHeader(
    std::optional<absl::string_view> authorization) {
  if (!authorization.has_value()) {
    return absl::UnauthenticatedError(
        "missing bearer token (send `authorization: Bearer <token>`)");
  }
  absl::string_view value = *authorization;
  constexpr absl::string_view kScheme = "bearer ";
  if (value.size() <= kScheme.size() ||
      !absl::EqualsIgnoreCase(value.substr(0, kScheme.size()), kScheme)) {
    return absl::UnauthenticatedError(
        "missing bearer token (the authorization metadata must be "
        "`Bearer <token>`)");
  }
  absl::string_view token =
      absl::StripAsciiWhitespace(value.substr(kScheme.size()));
  std::shared_ptr<const TokenTable> table = Table();
  std::optional<Principal> principal;
  if (table != nullptr) principal = table->Find(token);
  if (!principal.has_value()) {
    return absl::UnauthenticatedError("unknown bearer token");
  }
  return *std::move(principal);
}

}  // namespace lrtune::server
