#include "server/auth.h"

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace lrtune::server {
namespace {

TEST(TokenTable, ParsesRolesNamesAndComments) {
  absl::StatusOr<TokenTable> table = TokenTable::Parse(
      "# role name token\n"
      "\n"
      "client alice  alice-token-0123456789  # trailing comment\n"
      "worker\tgpu-1\tworker-token-0123456789\n"
      "admin ops@example.com admin-token-0123456789\r\n");
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(table->size(), 3u);
  std::optional<Principal> alice = table->Find("alice-token-0123456789");
  ASSERT_TRUE(alice.has_value());
  EXPECT_EQ(alice->name, "alice");
  EXPECT_EQ(alice->role, Role::kClient);
  std::optional<Principal> gpu = table->Find("worker-token-0123456789");
  ASSERT_TRUE(gpu.has_value());
  EXPECT_EQ(gpu->role, Role::kWorker);
  std::optional<Principal> ops = table->Find("admin-token-0123456789");
  ASSERT_TRUE(ops.has_value());
  EXPECT_EQ(ops->name, "ops@example.com");
  EXPECT_EQ(ops->role, Role::kAdmin);
  EXPECT_FALSE(table->Find("alice-token-012345678").has_value());
}

TEST(TokenTable, RefusesBadLinesWithoutEchoingTheToken) {
  const std::string secret = "secret-token-0123456789";
  for (const std::string& text : std::vector<std::string>{
           "root alice " + secret + "\n",         // unknown role
           "client al/ice " + secret + "\n",      // bad name
           "client alice short\n",                // short token
           "client alice\n",                      // missing token
           "client alice " + secret + " extra\n"  // extra field
       }) {
    absl::StatusOr<TokenTable> table = TokenTable::Parse("# ok\n" + text);
    ASSERT_FALSE(table.ok()) << text;
    EXPECT_EQ(table.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(table.status().message().find("line 2"), std::string::npos)
        << table.status();
    EXPECT_EQ(table.status().message().find(secret), std::string::npos)
        << table.status();
  }
  absl::StatusOr<TokenTable> twice = TokenTable::Parse(
      "client alice " + secret + "\nclient bob " + secret + "\n");
  ASSERT_FALSE(twice.ok());
  EXPECT_EQ(twice.status().message().find(secret), std::string::npos);
}

TEST(CheckRole, AdminMayCallEveryServiceOthersOnlyTheirOwn) {
  EXPECT_TRUE(CheckRole({"a", Role::kClient}, Role::kClient).ok());
  EXPECT_TRUE(CheckRole({"w", Role::kWorker}, Role::kWorker).ok());
  EXPECT_TRUE(CheckRole({"o", Role::kAdmin}, Role::kClient).ok());
  EXPECT_TRUE(CheckRole({"o", Role::kAdmin}, Role::kWorker).ok());
  EXPECT_EQ(CheckRole({"w", Role::kWorker}, Role::kClient).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(CheckRole({"a", Role::kClient}, Role::kWorker).code(),
            absl::StatusCode::kPermissionDenied);
}

TEST(TokenAuthenticator, ReloadKeepsTheOldTableWhenTheFileIsBad) {
  const std::string path = testing::TempDir() + "/auth_test_tokens";
  { std::ofstream(path) << "client alice alice-token-0123456789\n"; }
  TokenAuthenticator auth(path);
  ASSERT_TRUE(auth.Reload().ok());
  EXPECT_EQ(auth.size(), 1u);
  { std::ofstream(path) << "client alice short\n"; }
  EXPECT_FALSE(auth.Reload().ok());
  EXPECT_EQ(auth.size(), 1u);
  {
    std::ofstream(path) << "client alice alice-token-0123456789\n"
                        << "client bob bob-token-0123456789\n";
  }
  ASSERT_TRUE(auth.Reload().ok());
  EXPECT_EQ(auth.size(), 2u);
  std::remove(path.c_str());
  EXPECT_EQ(auth.Reload().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(auth.size(), 2u);
}

// The dashboard's callers: the same rules from an HTTP header's value.
TEST(TokenAuthenticator, AuthenticatesAnHttpHeader) {
  absl::StatusOr<TokenTable> table = TokenTable::Parse(
      "client alice alice-token-0123456789\nworker w "
      "worker-token-0123456789\n");
  ASSERT_TRUE(table.ok());
  TokenAuthenticator auth(*std::move(table));
  absl::StatusOr<Principal> alice =
      auth.AuthenticateHeader("Bearer alice-token-0123456789");
  ASSERT_TRUE(alice.ok()) << alice.status();
  EXPECT_EQ(alice->name, "alice");
  EXPECT_EQ(alice->role, Role::kClient);
  EXPECT_TRUE(auth.AuthenticateHeader("bearer  alice-token-0123456789 ").ok());
  for (std::optional<absl::string_view> bad :
       std::vector<std::optional<absl::string_view>>{
           std::nullopt, "", "Bearer", "Bearer ",
           "Basic YWxpY2U6eA==", "alice-token-0123456789",
           "Bearer alice-token-012345678", "Bearer alice-token-0123456789x"}) {
    absl::StatusOr<Principal> refused = auth.AuthenticateHeader(bad);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnauthenticated)
        << (bad.has_value() ? *bad : "(none)");
  }
  // In-memory tokens have no file to reload; they stay.
  EXPECT_EQ(auth.Reload().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(auth.size(), 2u);
  LocalAuthenticator local;
  absl::StatusOr<Principal> anyone = local.AuthenticateHeader(std::nullopt);
  ASSERT_TRUE(anyone.ok());
  EXPECT_EQ(anyone->role, Role::kAdmin);
}

}  // namespace
}  // namespace lrtune::server
