#include "server/listen_policy.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lrtune::server {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(ListenPolicyTest, LoopbackAddresses) {
  EXPECT_TRUE(IsLoopback("127.0.0.1:50051"));
  EXPECT_TRUE(IsLoopback("127.1.2.3:0"));
  EXPECT_TRUE(IsLoopback("localhost:8080"));
  EXPECT_TRUE(IsLoopback("[::1]:8080"));
  EXPECT_FALSE(IsLoopback("0.0.0.0:8080"));
  EXPECT_FALSE(IsLoopback("[::]:8080"));
  EXPECT_FALSE(IsLoopback("10.0.0.7:8080"));
  EXPECT_FALSE(IsLoopback("localhost.example.com:8080"));
  EXPECT_FALSE(IsLoopback("1270.0.0.1:1"));
}

TEST(ListenPolicyTest, LoopbackNeedsNothing) {
  absl::StatusOr<std::string> warning =
      CheckExposure("--listen", "127.0.0.1:1", {});
  ASSERT_TRUE(warning.ok());
  EXPECT_EQ(*warning, "");
}

TEST(ListenPolicyTest, ElsewhereNeedsTlsAndTokens) {
  Exposure both;
  both.tls = both.tokens = true;
  absl::StatusOr<std::string> ok =
      CheckExposure("--dashboard-listen", "0.0.0.0:8443", both);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, "");

  Exposure tokens_only;
  tokens_only.tokens = true;
  absl::StatusOr<std::string> no_tls =
      CheckExposure("--dashboard-listen", "0.0.0.0:8443", tokens_only);
  ASSERT_FALSE(no_tls.ok());
  EXPECT_EQ(no_tls.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(no_tls.status().message(),
              HasSubstr("refusing to listen on 0.0.0.0:8443 "
                        "(--dashboard-listen) without TLS"));
  EXPECT_THAT(no_tls.status().message(), Not(HasSubstr("tokens")));

  absl::StatusOr<std::string> neither =
      CheckExposure("--listen", "10.0.0.7:1", {});
  ASSERT_FALSE(neither.ok());
  EXPECT_THAT(neither.status().message(),
              HasSubstr("without TLS (--tls-cert, --tls-key) and tokens "
                        "(--tokens-file)"));
}

TEST(ListenPolicyTest, InsecureIsAWarning) {
  Exposure insecure;
  insecure.tls = insecure.insecure = true;
  absl::StatusOr<std::string> warning =
      CheckExposure("--listen", "0.0.0.0:1", insecure);
  ASSERT_TRUE(warning.ok());
  EXPECT_THAT(*warning, HasSubstr("WARNING: --insecure"));
  EXPECT_THAT(*warning, HasSubstr("without tokens"));
  EXPECT_THAT(*warning, Not(HasSubstr("without TLS")));
}

}  // namespace
}  // namespace lrtune::server
