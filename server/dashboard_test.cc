// The dashboard in-process over a real coordinator, store and gRPC
// services: who sees what, the event stream and its resumption, cancel,
// and bad HTTP input refused while the gRPC service keeps serving.
#include "server/dashboard.h"

#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "lrtune/v1/lrtune.grpc.pb.h"
#include "server/clock.h"
#include "server/event_codec.h"
#include "server/grpc_services.h"
#include "server/job_store.h"
#include "server/test_http_client.h"

namespace lrtune::server {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

constexpr char kAlice[] = "alice-token-0123456789";
constexpr char kBob[] = "bob-token-0123456789";
constexpr char kOps[] = "ops-token-0123456789";
constexpr char kWorker[] = "worker-token-0123456789";

class DashboardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = *JobStore::Open(":memory:", SystemClock(), JobEventEncoder());
    coordinator_ = std::make_unique<Coordinator>(store_.get(), SystemClock(),
                                                 CoordinatorOptions{});
    auth_ = std::make_unique<TokenAuthenticator>(*TokenTable::Parse(
        absl::StrCat("client alice ", kAlice, "\nclient bob ", kBob,
                     "\nadmin ops ", kOps, "\nworker w ", kWorker, "\n")));
    chart_js_ = absl::StrCat(::testing::TempDir(), "/chart_", getpid(), ".js");
    std::ofstream(chart_js_) << "/* chart.js stand-in */";
  }
  void TearDown() override {
    if (dashboard_ != nullptr) dashboard_->Stop();
    if (grpc_ != nullptr) grpc_->Shutdown();
    std::remove(chart_js_.c_str());
  }

  void StartDashboard(int max_streams = 128,
                      absl::Duration list_cache = absl::Seconds(2)) {
    DashboardOptions options;
    options.list_cache = list_cache;
    options.http.address = "127.0.0.1:0";
    options.chart_js = chart_js_;
    options.max_streams = max_streams;
    options.keepalive = absl::Milliseconds(200);
    dashboard_ = std::make_unique<DashboardServer>(coordinator_.get(),
                                                   auth_.get(), options);
    ASSERT_TRUE(dashboard_->Start().ok());
  }

  void StartGrpc() {
    lrtune_service_ =
        std::make_unique<LrTuneService>(coordinator_.get(), auth_.get());
    hub_service_ =
        std::make_unique<WorkerHubService>(coordinator_.get(), auth_.get());
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(lrtune_service_.get());
    builder.RegisterService(hub_service_.get());
    grpc_ = builder.BuildAndStart();
    ASSERT_NE(grpc_, nullptr);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                   grpc::InsecureChannelCredentials());
  }

  std::string Submit(const std::string& owner, int steps = 100) {
    v1::SubmitJobRequest request;
    v1::RangeTestJob* job = request.mutable_range_test();
    job->mutable_run()->mutable_data()->set_name("spirals");
    job->mutable_range_test()->set_start_lr(1e-5);
    job->mutable_range_test()->set_end_lr(1.0);
    job->mutable_range_test()->set_steps(steps);
    job->mutable_range_test()->add_seeds(0);
    absl::StatusOr<v1::Job> submitted = coordinator_->SubmitJob(owner, request);
    EXPECT_TRUE(submitted.ok()) << submitted.status();
    return submitted->job_id();
  }

  // Registers a worker and leases the oldest task.
  v1::Task Lease() {
    v1::RegisterRequest reg;
    reg.set_hostname("test");
    reg.mutable_capabilities()->add_slots()->set_device("cpu");
    reg.mutable_capabilities()->add_devices()->set_name("cpu");
    absl::StatusOr<v1::RegisterResponse> worker = coordinator_->Register(reg);
    EXPECT_TRUE(worker.ok()) << worker.status();
    v1::AcquireTaskRequest acquire;
    acquire.set_worker_id(worker->worker_id());
    absl::StatusOr<v1::AcquireTaskResponse> task =
        coordinator_->AcquireTask(acquire);
    EXPECT_TRUE(task.ok() && task->has_task());
    return task->task();
  }

  void Report(const v1::Task& task, int first, int count) {
    v1::ReportPointsRequest report;
    report.set_task_id(task.task_id());
    report.set_attempt_id(task.attempt_id());
    for (int i = first; i < first + count; ++i) {
      v1::TaskRecord* record = report.add_records();
      record->set_seq(i);
      record->mutable_point()->set_step(i);
      record->mutable_point()->set_lr(1e-5 * (i + 1));
      record->mutable_point()->set_loss(2.0 - 0.01 * i);
      record->mutable_point()->set_smoothed(2.0 - 0.01 * i);
    }
    ASSERT_TRUE(coordinator_->ReportPoints(report).ok());
  }

  void Complete(const v1::Task& task, int points) {
    v1::CompleteTaskRequest complete;
    complete.set_task_id(task.task_id());
    complete.set_attempt_id(task.attempt_id());
    complete.set_final_seq(points - 1);
    v1::Recommendation* rec =
        complete.mutable_range_test()->mutable_recommendation();
    rec->set_min_lr(1e-3);
    rec->set_max_lr(1e-2);
    rec->set_stepsize_iterations(40);
    rec->set_points_used(points);
    rec->set_seeds(1);
    complete.mutable_range_test()->set_steps_run(points);
    ASSERT_TRUE(coordinator_->CompleteTask(complete).ok());
  }

  // One request on a fresh connection; the whole response.
  std::string Call(const std::string& method, const std::string& path,
                   const std::string& token = "",
                   const std::string& extra = "") {
    TestHttpClient client(dashboard_->port());
    EXPECT_TRUE(client.Send(absl::StrCat(
        method, " ", path, " HTTP/1.1\r\nHost: 127.0.0.1\r\n",
        token.empty() ? ""
                      : absl::StrCat("Authorization: Bearer ", token, "\r\n"),
        extra, "Content-Length: 0\r\nConnection: close\r\n\r\n")));
    return client.ReadAll();
  }

  std::string EventsRequest(const std::string& job_id, const std::string& token,
                            const std::string& extra = "") {
    return absl::StrCat("GET /api/jobs/", job_id,
                        "/events HTTP/1.1\r\nHost: localhost\r\n"
                        "Authorization: Bearer ",
                        token, "\r\n", extra, "\r\n");
  }

  std::unique_ptr<JobStore> store_;
  std::unique_ptr<Coordinator> coordinator_;
  std::unique_ptr<TokenAuthenticator> auth_;
  std::string chart_js_;
  std::unique_ptr<DashboardServer> dashboard_;
  std::unique_ptr<LrTuneService> lrtune_service_;
  std::unique_ptr<WorkerHubService> hub_service_;
  std::unique_ptr<grpc::Server> grpc_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(DashboardTest, ThePageIsPublicTheApiNeedsAToken) {
  StartDashboard();
  const std::string page = Call("GET", "/");
  EXPECT_THAT(page, StartsWith("HTTP/1.1 200 "));
  EXPECT_THAT(page, HasSubstr("Content-Type: text/html"));
  EXPECT_THAT(page, HasSubstr("/static/app.js"));
  EXPECT_THAT(page, HasSubstr("Content-Security-Policy: default-src 'self'"));
  EXPECT_THAT(Call("GET", "/static/app.js"), HasSubstr("lrtuneDashboard"));
  EXPECT_THAT(Call("GET", "/static/chart.js"), HasSubstr("chart.js stand-in"));
  EXPECT_THAT(Call("GET", "/static/nope.js"), StartsWith("HTTP/1.1 404 "));

  const std::string none = Call("GET", "/api/jobs");
  EXPECT_THAT(none, StartsWith("HTTP/1.1 401 "));
  EXPECT_THAT(none, HasSubstr("WWW-Authenticate: Bearer"));
  EXPECT_THAT(none, HasSubstr("missing bearer token"));
  EXPECT_THAT(Call("GET", "/api/jobs", "not-a-token-0123456789"),
              StartsWith("HTTP/1.1 401 "));
  EXPECT_THAT(Call("GET", "/api/whoami", kWorker), StartsWith("HTTP/1.1 403 "));
  EXPECT_THAT(Call("GET", "/api/whoami", kAlice),
              HasSubstr("{\"name\":\"alice\",\"role\":\"client\","
                        "\"sees_all\":false}"));
  EXPECT_THAT(Call("GET", "/api/whoami", kOps), HasSubstr("\"sees_all\":true"));
}

TEST_F(DashboardTest, ClientsSeeTheirOwnJobsAndAdminsEveryones) {
  StartDashboard();
  const std::string a1 = Submit("alice");
  const std::string a2 = Submit("alice");
  const std::string b1 = Submit("bob");

  const std::string alice = Call("GET", "/api/jobs", kAlice);
  EXPECT_THAT(alice, HasSubstr(a1));
  EXPECT_THAT(alice, HasSubstr(a2));
  EXPECT_THAT(alice, Not(HasSubstr(b1)));
  const std::string bob = Call("GET", "/api/jobs", kBob);
  EXPECT_THAT(bob, HasSubstr(b1));
  EXPECT_THAT(bob, Not(HasSubstr(a1)));
  const std::string ops = Call("GET", "/api/jobs", kOps);
  for (const std::string& id : {a1, a2, b1}) EXPECT_THAT(ops, HasSubstr(id));
  EXPECT_THAT(Call("GET", "/api/jobs?state=running", kOps), Not(HasSubstr(a1)));
  EXPECT_THAT(Call("GET", "/api/jobs?state=queued", kOps), HasSubstr(a1));
  EXPECT_THAT(Call("GET", "/api/jobs?state=bogus", kOps),
              StartsWith("HTTP/1.1 400 "));

  // Another owner's job is no job at all: 404, as over gRPC.
  for (const std::string& path : {absl::StrCat("/api/jobs/", a1),
                                  absl::StrCat("/api/jobs/", a1, "/events")}) {
    const std::string answer = Call("GET", path, kBob);
    EXPECT_THAT(answer, StartsWith("HTTP/1.1 404 ")) << path;
    EXPECT_THAT(answer, HasSubstr(absl::StrCat("job ", a1, " not found")));
  }
  EXPECT_THAT(Call("POST", absl::StrCat("/api/jobs/", a1, "/cancel"), kBob),
              StartsWith("HTTP/1.1 404 "));
  EXPECT_EQ(coordinator_->GetJob("alice", a1)->state(), v1::JOB_STATE_QUEUED);

  const std::string own = Call("GET", absl::StrCat("/api/jobs/", a1), kAlice);
  EXPECT_THAT(own, StartsWith("HTTP/1.1 200 "));
  EXPECT_THAT(own, HasSubstr("\"owner\":\"alice\""));
  EXPECT_THAT(own, HasSubstr("\"snippets\":null"));  // no result yet
  EXPECT_THAT(Call("GET", absl::StrCat("/api/jobs/", a1), kOps),
              StartsWith("HTTP/1.1 200 "));
  EXPECT_THAT(Call("GET", "/api/jobs/j-0000000000000000", kOps),
              StartsWith("HTTP/1.1 404 "));
}

// Every open list page re-reads the list every 5 s: an answer is reused
// for the same scope and query for list_cache, not read from the store
// once per viewer.
TEST_F(DashboardTest, TheJobListIsReadOncePerScopeAndQueryForAWhile) {
  StartDashboard(128, absl::Milliseconds(500));
  const std::string first = Submit("alice");
  const std::string before = Call("GET", "/api/jobs", kAlice);
  const std::string second = Submit("alice");
  EXPECT_THAT(Call("GET", "/api/jobs", kAlice), Not(HasSubstr(second)));
  // Another scope, or another query, is read afresh.
  EXPECT_THAT(Call("GET", "/api/jobs", kOps), HasSubstr(second));
  EXPECT_THAT(Call("GET", "/api/jobs?page_size=10", kAlice), HasSubstr(second));
  EXPECT_THAT(Call("GET", "/api/jobs", kBob), Not(HasSubstr(first)));
  absl::SleepFor(absl::Milliseconds(600));
  EXPECT_THAT(Call("GET", "/api/jobs", kAlice), HasSubstr(second));
  EXPECT_THAT(before, HasSubstr(first));
}

TEST_F(DashboardTest, AdminsAndOwnersCancelFromTheirOwnPageOnly) {
  StartDashboard();
  const std::string job = Submit("alice");
  const std::string path = absl::StrCat("/api/jobs/", job, "/cancel");
  EXPECT_THAT(Call("GET", path, kAlice), StartsWith("HTTP/1.1 405 "));
  EXPECT_THAT(Call("POST", path, kAlice, "Origin: http://evil.example\r\n"),
              StartsWith("HTTP/1.1 403 "));
  EXPECT_EQ(coordinator_->GetJob("alice", job)->state(), v1::JOB_STATE_QUEUED);
  const std::string cancelled =
      Call("POST", path, kOps, "Origin: http://127.0.0.1\r\n");
  EXPECT_THAT(cancelled, StartsWith("HTTP/1.1 200 "));
  EXPECT_THAT(cancelled, HasSubstr("JOB_STATE_CANCELLED"));
  const std::string second = Submit("alice");
  EXPECT_THAT(
      Call("POST", absl::StrCat("/api/jobs/", second, "/cancel"), kAlice),
      HasSubstr("JOB_STATE_CANCELLED"));
}

TEST_F(DashboardTest, EventsStreamHistoryThenLiveAndResumeFromLastEventId) {
  StartDashboard();
  const std::string job = Submit("alice", 20);
  const v1::Task task = Lease();
  Report(task, 0, 5);  // history: accepted, state running?, 5 points
  const int64_t history = coordinator_->GetJob("alice", job)->last_seq();

  TestHttpClient stream(dashboard_->port());
  ASSERT_TRUE(stream.Send(EventsRequest(job, kAlice)));
  ASSERT_TRUE(stream.ReadUntil(absl::StrCat("id: ", history, "\n")));
  std::string got = stream.Take();
  EXPECT_THAT(got, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(got, HasSubstr("Content-Type: text/event-stream"));
  EXPECT_THAT(got, HasSubstr("id: 1\nevent: accepted\n"));
  EXPECT_THAT(got, HasSubstr("event: points\n"));
  EXPECT_THAT(got, HasSubstr("[-1,0,4,"));  // trial, seed, step 4

  Report(task, 5, 5);  // live
  ASSERT_TRUE(stream.ReadUntil(absl::StrCat("id: ", history + 5, "\n")));
  got = stream.Take();
  // The five live points in one frame: id the last, "first" the first.
  EXPECT_THAT(got, StartsWith(absl::StrCat("id: ", history + 5,
                                           "\nevent: points\ndata: "
                                           "{\"first\":",
                                           history + 1, ",")));
  EXPECT_THAT(got, HasSubstr("[-1,0,9,"));
  // Idle: keep-alive comments.
  EXPECT_TRUE(stream.ReadUntil(": keepalive", absl::Seconds(2)));

  // A reconnect resumes after Last-Event-ID, and the stream ends after the
  // job's terminal event.
  TestHttpClient resumed(dashboard_->port());
  ASSERT_TRUE(resumed.Send(EventsRequest(
      job, kAlice, absl::StrCat("Last-Event-ID: ", history, "\r\n"))));
  ASSERT_TRUE(resumed.ReadUntil(absl::StrCat("id: ", history + 5, "\n")));
  got = resumed.Take();
  EXPECT_THAT(got, HasSubstr(absl::StrCat("{\"first\":", history + 1, ",")));
  EXPECT_THAT(got, Not(HasSubstr("[-1,0,4,")));  // before Last-Event-ID
  Report(task, 10, 10);
  Complete(task, 20);
  const int64_t last = coordinator_->GetJob("alice", job)->last_seq();
  ASSERT_TRUE(resumed.ReadUntil("JOB_STATE_SUCCEEDED"));
  EXPECT_THAT(resumed.Take(), HasSubstr(absl::StrCat("id: ", last, "\n")));
  resumed.ReadAll(absl::Seconds(2));
  EXPECT_TRUE(resumed.closed());
  // Resuming after the end: nothing follows, 204.
  EXPECT_THAT(Call("GET", absl::StrCat("/api/jobs/", job, "/events"), kAlice,
                   absl::StrCat("Last-Event-ID: ", last, "\r\n")),
              StartsWith("HTTP/1.1 204 "));
  EXPECT_THAT(Call("GET", absl::StrCat("/api/jobs/", job, "/events"), kAlice,
                   absl::StrCat("Last-Event-ID: ", last + 1, "\r\n")),
              StartsWith("HTTP/1.1 400 "));
  EXPECT_THAT(Call("GET", absl::StrCat("/api/jobs/", job, "/events"), kAlice,
                   "Last-Event-ID: -1\r\n"),
              StartsWith("HTTP/1.1 400 "));

  // The finished job's page has its result and the snippets.
  const std::string page = Call("GET", absl::StrCat("/api/jobs/", job), kAlice);
  EXPECT_THAT(page, HasSubstr("JOB_STATE_SUCCEEDED"));
  EXPECT_THAT(page, HasSubstr("OneCycleLR"));
}

TEST_F(DashboardTest, StreamsBeyondTheLimitAre503) {
  StartDashboard(/*max_streams=*/2);
  const std::string job = Submit("alice");
  TestHttpClient a(dashboard_->port());
  TestHttpClient b(dashboard_->port());
  ASSERT_TRUE(a.Send(EventsRequest(job, kAlice)));
  ASSERT_TRUE(b.Send(EventsRequest(job, kAlice)));
  ASSERT_TRUE(a.ReadUntil("id: 1\n"));
  ASSERT_TRUE(b.ReadUntil("id: 1\n"));
  EXPECT_EQ(dashboard_->streams(), 2);
  EXPECT_THAT(Call("GET", absl::StrCat("/api/jobs/", job, "/events"), kAlice),
              StartsWith("HTTP/1.1 503 "));
}

// What the issue lists: an unknown job, malformed paths, huge headers and a
// slow client are refused, and the gRPC service answers and ingests all the
// while.
TEST_F(DashboardTest, BadHttpInputIsRefusedWhileGrpcKeepsServing) {
  StartDashboard();
  StartGrpc();
  const std::string job = Submit("alice", 1000);
  const v1::Task task = Lease();

  // A gRPC watcher of the job and a worker reporting through the
  // coordinator, running through everything below.
  std::atomic<int> points_watched{0};
  grpc::ClientContext watch_context;
  watch_context.AddMetadata("authorization", absl::StrCat("Bearer ", kAlice));
  std::unique_ptr<v1::LrTune::Stub> stub = v1::LrTune::NewStub(channel_);
  v1::WatchJobRequest watch;
  watch.set_job_id(job);
  std::thread watcher([&] {
    std::unique_ptr<grpc::ClientReader<v1::JobEvent>> reader =
        stub->WatchJob(&watch_context, watch);
    v1::JobEvent event;
    while (reader->Read(&event)) {
      if (event.has_point()) ++points_watched;
    }
    reader->Finish();
  });
  std::atomic<int> reported{0};
  std::thread worker([&] {
    for (int first = 0; first < 500; first += 10) {
      Report(task, first, 10);
      reported += 10;
      absl::SleepFor(absl::Milliseconds(10));
    }
  });

  // Slow clients holding connections open.
  std::vector<std::unique_ptr<TestHttpClient>> slow;
  for (int i = 0; i < 20; ++i) {
    slow.push_back(std::make_unique<TestHttpClient>(dashboard_->port()));
    slow.back()->Send("GET /api/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: ");
  }
  EXPECT_THAT(Call("GET", "/api/jobs/j-0000000000000000", kAlice),
              StartsWith("HTTP/1.1 404 "));
  EXPECT_THAT(Call("GET", "/api/jobs/j-0000000000000000/events", kAlice),
              StartsWith("HTTP/1.1 404 "));
  for (const char* path :
       {"/api/jobs/../../etc/passwd", "/api/jobs/%2e%2e", "/api/jobs//events",
        "/api/jobs/j-1/events/extra", "/static/../../app.js", "/%ff%fe",
        "/api/jobs/%00"}) {
    const std::string answer = Call("GET", path, kAlice);
    EXPECT_TRUE(absl::StartsWith(answer, "HTTP/1.1 404 ") ||
                absl::StartsWith(answer, "HTTP/1.1 400 "))
        << path << ": " << answer.substr(0, 40);
  }
  {
    TestHttpClient huge(dashboard_->port());
    huge.Send(absl::StrCat("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ",
                           std::string(1 << 20, 'a')));
    EXPECT_THAT(huge.ReadAll(), StartsWith("HTTP/1.1 431 "));
  }
  {
    TestHttpClient smuggle(dashboard_->port());
    smuggle.Send(
        "POST /api/jobs/x/cancel HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n");
    EXPECT_THAT(smuggle.ReadAll(), StartsWith("HTTP/1.1 501 "));
  }
  EXPECT_THAT(Call("GET", "/api/jobs", kAlice,
                   "Host: evil.example\r\n"),  // a second Host
              StartsWith("HTTP/1.1 400 "));

  // gRPC answers meanwhile.
  grpc::ClientContext list_context;
  list_context.AddMetadata("authorization", absl::StrCat("Bearer ", kAlice));
  list_context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
  v1::ListJobsResponse listed;
  EXPECT_TRUE(
      stub->ListJobs(&list_context, v1::ListJobsRequest(), &listed).ok());
  EXPECT_EQ(listed.jobs_size(), 1);

  worker.join();
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (points_watched < reported && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(points_watched.load(), 500);
  watch_context.TryCancel();
  watcher.join();
  // And the dashboard still answers.
  EXPECT_THAT(Call("GET", "/api/whoami", kAlice), StartsWith("HTTP/1.1 200 "));
}

TEST_F(DashboardTest, ALoopbackDashboardAnswersOnlyLoopbackHosts) {
  StartDashboard();
  TestHttpClient rebound(dashboard_->port());
  rebound.Send(
      absl::StrCat("GET /api/jobs HTTP/1.1\r\nHost: evil.example\r\n"
                   "Authorization: Bearer ",
                   kOps, "\r\n\r\n"));
  const std::string answer = rebound.ReadResponse();
  EXPECT_THAT(answer, StartsWith("HTTP/1.1 403 "));
  EXPECT_THAT(answer, HasSubstr("loopback Host"));
}

TEST_F(DashboardTest, StartNamesAMissingChartLibrary) {
  DashboardOptions options;
  options.http.address = "127.0.0.1:0";
  options.chart_js = "/nonexistent/chart.min.js";
  DashboardServer dashboard(coordinator_.get(), auth_.get(), options);
  absl::Status started = dashboard.Start();
  EXPECT_EQ(started.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(started.message(), HasSubstr("/nonexistent/chart.min.js"));
  EXPECT_THAT(started.message(), HasSubstr("libjs-chart.js"));
}

}  // namespace
}  // namespace lrtune::server
