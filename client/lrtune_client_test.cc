// The client library against an in-process fake LrTune server: streams
// resumed after disconnects without gaps or repeats, errors in words.
#include "client/lrtune_client.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/sync.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "lrtune/v1/lrtune.grpc.pb.h"

namespace lrtune::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr int kLastSeq = 10;

v1::JobEvent Event(uint64_t seq) {
  v1::JobEvent e;
  e.set_seq(seq);
  e.set_job_id("j1");
  if (seq == 1) {
    e.mutable_accepted()->mutable_job()->set_job_id("j1");
  } else if (seq == kLastSeq) {
    e.mutable_state_changed()->set_state(v1::JOB_STATE_SUCCEEDED);
  } else {
    e.mutable_point()->mutable_point()->set_step(static_cast<int64_t>(seq));
  }
  return e;
}

// Serves job "j1" (events 1..10, terminal at 10; points after it when a
// script step asks for them). Each stream call follows the next entry
// of `script`: send events up to `until` (from after_seq + 1), then end
// with `status`. Past the script's end: everything, OK. A test fake, so
// the plain synchronous API.
class FakeLrTune final : public v1::LrTune::Service {
 public:
  struct Step {
    uint64_t until;
    grpc::Status status;
  };
  std::vector<Step> script;

  grpc::Status RangeTest(grpc::ServerContext* context,
                         const v1::RangeTestRequest* request,
                         grpc::ServerWriter<v1::JobEvent>* writer) override {
    {
      lrtune::MutexLock lock(&mu_);
      range_test_request_ids_.push_back(request->request_id());
    }
    return Stream(0, writer);
  }
  grpc::Status WatchJob(grpc::ServerContext* context,
                        const v1::WatchJobRequest* request,
                        grpc::ServerWriter<v1::JobEvent>* writer) override {
    if (request->job_id() != "j1") {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "no job nope");
    }
    {
      lrtune::MutexLock lock(&mu_);
      watch_after_.push_back(request->after_seq());
    }
    return Stream(request->after_seq(), writer);
  }
  grpc::Status GetJob(grpc::ServerContext* context,
                      const v1::GetJobRequest* request,
                      v1::Job* response) override {
    auto it = context->client_metadata().find("authorization");
    if (it != context->client_metadata().end()) {
      lrtune::MutexLock lock(&mu_);
      authorization_ = std::string(it->second.data(), it->second.size());
    }
    response->set_job_id(request->job_id());
    response->set_state(v1::JOB_STATE_SUCCEEDED);
    response->set_last_seq(kLastSeq);
    return grpc::Status::OK;
  }
  grpc::Status SubmitJob(grpc::ServerContext* context,
                         const v1::SubmitJobRequest* request,
                         v1::Job* response) override {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "run.batch_size must be >= 1, got 0");
  }

  std::vector<uint64_t> watch_after() {
    lrtune::MutexLock lock(&mu_);
    return watch_after_;
  }
  std::vector<std::string> range_test_request_ids() {
    lrtune::MutexLock lock(&mu_);
    return range_test_request_ids_;
  }
  std::string authorization() {
    lrtune::MutexLock lock(&mu_);
    return authorization_;
  }

 private:
  grpc::Status Stream(uint64_t after, grpc::ServerWriter<v1::JobEvent>* w) {
    Step step{kLastSeq, grpc::Status::OK};
    {
      lrtune::MutexLock lock(&mu_);
      if (next_ < script.size()) step = script[next_++];
    }
    for (uint64_t seq = after + 1; seq <= step.until; ++seq) {
      w->Write(Event(seq));
    }
    return step.status;
  }

  lrtune::Mutex mu_;
  size_t next_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<uint64_t> watch_after_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> range_test_request_ids_ ABSL_GUARDED_BY(mu_);
  std::string authorization_ ABSL_GUARDED_BY(mu_);
};

const grpc::Status kUnavailable(grpc::StatusCode::UNAVAILABLE, "Socket closed");

class ClientTest : public ::testing::Test {
 protected:
  void Start() {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port_);
    builder.RegisterService(&fake_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    options_.initial_backoff = absl::Milliseconds(5);
    options_.max_backoff = absl::Milliseconds(20);
    options_.token = "secret";
    absl::StatusOr<std::unique_ptr<Client>> client =
        Client::Connect(absl::StrCat("127.0.0.1:", port_), options_);
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = std::move(*client);
  }
  void TearDown() override {
    if (server_) server_->Shutdown();
  }

  std::vector<uint64_t> Seqs() const {
    std::vector<uint64_t> seqs;
    for (const v1::JobEvent& e : events_) seqs.push_back(e.seq());
    return seqs;
  }
  EventCallback Collect() {
    return [this](const v1::JobEvent& e) { events_.push_back(e); };
  }

  FakeLrTune fake_;
  int port_ = 0;
  ClientOptions options_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<Client> client_;
  std::vector<v1::JobEvent> events_;
};

TEST_F(ClientTest, WatchResumesFromTheLastSeqAfterDisconnects) {
  fake_.script = {{4, kUnavailable}, {0, kUnavailable}, {7, kUnavailable}};
  Start();
  absl::StatusOr<v1::Job> job = client_->WatchJob("j1", 0, Collect());
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_THAT(Seqs(), ElementsAre(1, 2, 3, 4, 5, 6, 7, 8, 9, 10));
  EXPECT_THAT(fake_.watch_after(), ElementsAre(0, 4, 4, 7));
  EXPECT_EQ(fake_.authorization(), "Bearer secret");
}

TEST_F(ClientTest, WatchFromAfterSeqGetsOnlyLaterEvents) {
  Start();
  absl::StatusOr<v1::Job> job = client_->WatchJob("j1", 6, Collect());
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_THAT(Seqs(), ElementsAre(7, 8, 9, 10));
}

TEST_F(ClientTest, AStreamEndingOkBeforeTheTerminalEventIsResumed) {
  fake_.script = {{5, grpc::Status::OK}};
  Start();
  ASSERT_TRUE(client_->WatchJob("j1", 0, Collect()).ok());
  EXPECT_THAT(Seqs(), ElementsAre(1, 2, 3, 4, 5, 6, 7, 8, 9, 10));
  EXPECT_THAT(fake_.watch_after(), ElementsAre(0, 5));
}

TEST_F(ClientTest, RangeTestResumesWithWatchJobAfterAcceptance) {
  fake_.script = {{3, kUnavailable}};
  Start();
  absl::StatusOr<v1::Job> job = client_->RangeTest({}, Collect());
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->job_id(), "j1");
  EXPECT_THAT(Seqs(), ElementsAre(1, 2, 3, 4, 5, 6, 7, 8, 9, 10));
  EXPECT_THAT(fake_.watch_after(), ElementsAre(3));
  ASSERT_EQ(fake_.range_test_request_ids().size(), 1u);
  EXPECT_THAT(fake_.range_test_request_ids()[0], StartsWith("cli-"));
}

// A coordinator may store points that arrive after a cancellation behind
// the terminal event; the client stops at the terminal event.
TEST_F(ClientTest, NothingAfterTheTerminalEventIsTaken) {
  fake_.script = {{kLastSeq + 2, grpc::Status::OK},
                  {kLastSeq + 2, grpc::Status::OK}};
  Start();
  absl::StatusOr<v1::Job> job = client_->RangeTest({}, Collect());
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_THAT(Seqs(), ElementsAre(1, 2, 3, 4, 5, 6, 7, 8, 9, 10));
  EXPECT_THAT(fake_.watch_after(), ElementsAre());
  events_.clear();
  ASSERT_TRUE(client_->WatchJob("j1", 8, Collect()).ok());
  EXPECT_THAT(Seqs(), ElementsAre(9, 10));
}

TEST_F(ClientTest, RangeTestRefusedBeforeAcceptanceIsAnError) {
  fake_.script = {{0, kUnavailable}};
  Start();
  absl::StatusOr<v1::Job> job = client_->RangeTest({}, Collect());
  EXPECT_TRUE(absl::IsUnavailable(job.status())) << job.status();
  EXPECT_THAT(std::string(job.status().message()),
              HasSubstr("unreachable: Socket closed"));
}

TEST_F(ClientTest, GivesUpAfterTheReconnectTimeout) {
  fake_.script = std::vector<FakeLrTune::Step>(1000, {0, kUnavailable});
  options_.reconnect_timeout = absl::Milliseconds(200);
  Start();
  absl::StatusOr<v1::Job> job = client_->WatchJob("j1", 0, Collect());
  EXPECT_TRUE(absl::IsUnavailable(job.status())) << job.status();
  EXPECT_THAT(std::string(job.status().message()),
              HasSubstr("while watching j1"));
  EXPECT_GE(fake_.watch_after().size(), 3u);  // retried meanwhile
}

TEST_F(ClientTest, ServerErrorsKeepTheirCodeAndFieldMessage) {
  Start();
  absl::StatusOr<v1::Job> job = client_->SubmitJob({});
  EXPECT_TRUE(absl::IsInvalidArgument(job.status()));
  EXPECT_EQ(job.status().message(), "run.batch_size must be >= 1, got 0");
  absl::StatusOr<v1::Job> missing = client_->WatchJob("nope", 0, Collect());
  EXPECT_TRUE(absl::IsNotFound(missing.status()));
  EXPECT_EQ(missing.status().message(), "WatchJob: no job nope");
}

TEST(ClientUnreachableTest, NamesTheServer) {
  ClientOptions options;
  options.rpc_deadline = absl::Seconds(5);
  absl::StatusOr<std::unique_ptr<Client>> client =
      Client::Connect("127.0.0.1:1", options);
  ASSERT_TRUE(client.ok());
  absl::StatusOr<v1::Job> job = (*client)->GetJob("j1");
  EXPECT_TRUE(IsUnreachable(job.status())) << job.status();
  EXPECT_THAT(std::string(job.status().message()),
              StartsWith("server 127.0.0.1:1 unreachable: "));
  EXPECT_TRUE(absl::IsInvalidArgument(Client::Connect("", options).status()));
}

// A certificate name to check means TLS, which needs a CA (the TLS path
// itself runs against a real server in tests/client_tls_test.sh).
TEST(ClientTlsTest, AServerNameWithoutACaIsRefused) {
  ClientOptions options;
  options.tls_server_name = "lrtune.internal";
  absl::StatusOr<std::unique_ptr<Client>> client =
      Client::Connect("127.0.0.1:1", options);
  EXPECT_TRUE(absl::IsInvalidArgument(client.status())) << client.status();
}

}  // namespace
}  // namespace lrtune::client
