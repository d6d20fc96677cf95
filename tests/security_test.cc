// Security and operability with real lrtune-server processes on loopback:
// missing, unknown and wrong-role tokens and another client's job are
// refused with UNAUTHENTICATED, PERMISSION_DENIED and NOT_FOUND; a token
// rotated through SIGHUP works without a restart; /metrics serves
// Prometheus text whose counters move when a (fake) worker runs a task;
// health reports SERVING; a plaintext client cannot talk to a TLS server;
// a non-loopback address without TLS and tokens is refused unless
// --insecure.
// Over the house's ~600 lines: each case starts real processes with its
// own flags, and they share the process and client helpers here.
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "lrtune/v1/lrtune.grpc.pb.h"
#include "lrtune/v1/worker.grpc.pb.h"
#include "small_run.h"
#include "test_process.h"

namespace {

namespace fs = std::filesystem;
using lrtune::testing::FreePort;
using lrtune::testing::MakeTempDir;
using lrtune::testing::Process;
using lrtune::testing::ReadFile;
using lrtune::v1::LrTune;
using lrtune::v1::WorkerHub;

const char kAlice[] = "alice-token-aaaaaaaaaaaa";
const char kBob[] = "bob-token-bbbbbbbbbbbbbb";
const char kWorker[] = "worker-token-wwwwwwwwwww";
const char kAdmin[] = "admin-token-oooooooooooo";

// How long a server has to exit on SIGTERM: part of what the tests check.
constexpr std::chrono::seconds kStopWithin(20);

void WriteTokens(const fs::path& path, const std::string& text) {
  // Written beside and renamed, as an operator's tool would.
  const fs::path tmp = path.string() + ".tmp";
  { std::ofstream(tmp) << text; }
  chmod(tmp.c_str(), 0600);
  fs::rename(tmp, path);
}

void SetDeadline(grpc::ClientContext* context, int seconds = 5) {
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::seconds(seconds));
}

void WithToken(grpc::ClientContext* context, const std::string& token) {
  if (!token.empty()) {
    context->AddMetadata("authorization", "Bearer " + token);
  }
}

std::string Flatten(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  std::string out;
  if (!buffer.Dump(&slices).ok()) return out;
  for (const grpc::Slice& s : slices) {
    out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return out;
}

lrtune::v1::SubmitJobRequest RangeTestJob() {
  lrtune::v1::SubmitJobRequest request;
  lrtune::v1::RangeTestJob& job = *request.mutable_range_test();
  job.mutable_run()->mutable_data()->set_name("spirals");
  job.mutable_run()->mutable_device()->set_device("cpu");
  job.mutable_range_test()->set_start_lr(1e-5);
  job.mutable_range_test()->set_end_lr(1.0);
  job.mutable_range_test()->set_steps(100);
  job.mutable_range_test()->add_seeds(7);
  return request;
}

// A server with a tokens file and metrics, on loopback, per test.
class SecurityTest : public testing::Test {
 protected:
  // Flags added to the server's command line.
  virtual std::vector<std::string> ExtraFlags() const { return {}; }

  void SetUp() override {
    dir_ = MakeTempDir(
        std::string("lrtune_security_test_") +
        testing::UnitTest::GetInstance()->current_test_info()->name());
    tokens_ = dir_ / "tokens";
    WriteTokens(tokens_, std::string("# role name token\n") + "client alice " +
                             kAlice + "\n" + "client bob " + kBob + "\n" +
                             "worker gpu-1 " + kWorker + "\n" + "admin ops " +
                             kAdmin + "\n");
    address_ = "127.0.0.1:" + std::to_string(FreePort());
    metrics_port_ = FreePort();
    log_ = dir_ / "server.log";
    std::vector<std::string> args = {
        LRTUNE_SERVER_BIN,
        "--listen",
        address_,
        "--db",
        (dir_ / "jobs.db").string(),
        "--tokens-file",
        tokens_.string(),
        "--metrics-listen",
        "127.0.0.1:" + std::to_string(metrics_port_)};
    for (const std::string& flag : ExtraFlags()) args.push_back(flag);
    server_.emplace(args, log_.string());
    ASSERT_TRUE(server_->started());
    channel_ =
        grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());
    ASSERT_TRUE(channel_->WaitForConnected(std::chrono::system_clock::now() +
                                           std::chrono::seconds(20)))
        << ReadFile(log_);
    client_ = LrTune::NewStub(channel_);
    hub_ = WorkerHub::NewStub(channel_);
  }

  void TearDown() override {
    client_.reset();
    hub_.reset();
    channel_.reset();
    if (server_ && server_->started()) {
      EXPECT_EQ(server_->Stop(kStopWithin), 0) << ReadFile(log_);
    }
    // No token's text may reach the log.
    const std::string log = ReadFile(log_);
    for (const char* token : {kAlice, kBob, kWorker, kAdmin}) {
      EXPECT_EQ(log.find(token), std::string::npos) << "token in the log";
    }
    fs::remove_all(dir_);
  }

  grpc::Status ListJobs(const std::string& token,
                        lrtune::v1::ListJobsResponse* response = nullptr) {
    lrtune::v1::ListJobsResponse ignored;
    grpc::ClientContext context;
    SetDeadline(&context);
    WithToken(&context, token);
    return client_->ListJobs(&context, lrtune::v1::ListJobsRequest(),
                             response != nullptr ? response : &ignored);
  }

  grpc::Status Submit(const std::string& token, lrtune::v1::Job* job) {
    grpc::ClientContext context;
    SetDeadline(&context);
    WithToken(&context, token);
    return client_->SubmitJob(&context, RangeTestJob(), job);
  }

  grpc::Status GetJob(const std::string& token, const std::string& id,
                      lrtune::v1::Job* job) {
    grpc::ClientContext context;
    SetDeadline(&context);
    WithToken(&context, token);
    lrtune::v1::GetJobRequest request;
    request.set_job_id(id);
    return client_->GetJob(&context, request, job);
  }

  grpc::Status Register(const std::string& token,
                        lrtune::v1::RegisterResponse* response) {
    lrtune::v1::RegisterRequest request;
    request.set_worker_id("gpu-1-worker");
    request.mutable_capabilities()->add_devices()->set_name("cpu");
    request.mutable_capabilities()->add_slots()->set_device("cpu");
    grpc::ClientContext context;
    SetDeadline(&context);
    WithToken(&context, token);
    return hub_->Register(&context, request, response);
  }

  std::string Metrics() {
    httplib::Client http("127.0.0.1", metrics_port_);
    auto result = http.Get("/metrics");
    if (!result || result->status != 200) return "";
    return result->body;
  }

  fs::path dir_, tokens_, log_;
  std::string address_;
  int metrics_port_ = 0;
  std::optional<Process> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<LrTune::Stub> client_;
  std::unique_ptr<WorkerHub::Stub> hub_;
};

TEST_F(SecurityTest, RefusesMissingAndUnknownTokensAndWrongRoles) {
  EXPECT_EQ(ListJobs("").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(ListJobs("not-a-token-0123456789").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  {
    grpc::ClientContext context;  // a token without the Bearer scheme
    SetDeadline(&context);
    context.AddMetadata("authorization", kAlice);
    lrtune::v1::ListJobsResponse response;
    EXPECT_EQ(client_->ListJobs(&context, {}, &response).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }
  // A worker cannot submit, list or read jobs.
  lrtune::v1::Job job;
  EXPECT_EQ(Submit(kWorker, &job).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(ListJobs(kWorker).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  // A client cannot act as a worker.
  lrtune::v1::RegisterResponse registered;
  EXPECT_EQ(Register(kAlice, &registered).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Register("", &registered).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  // The right roles pass; admin passes both.
  EXPECT_TRUE(ListJobs(kAlice).ok());
  EXPECT_TRUE(ListJobs(kAdmin).ok());
  EXPECT_TRUE(Register(kWorker, &registered).ok());
  EXPECT_TRUE(Register(kAdmin, &registered).ok());
}

TEST_F(SecurityTest, AClientSeesAndCancelsOnlyItsOwnJobs) {
  lrtune::v1::Job job;
  grpc::Status submitted = Submit(kAlice, &job);
  ASSERT_TRUE(submitted.ok()) << submitted.error_message();
  lrtune::v1::Job read;
  EXPECT_TRUE(GetJob(kAlice, job.job_id(), &read).ok());
  EXPECT_EQ(GetJob(kBob, job.job_id(), &read).error_code(),
            grpc::StatusCode::NOT_FOUND);
  {
    grpc::ClientContext context;
    SetDeadline(&context);
    WithToken(&context, kBob);
    lrtune::v1::CancelJobRequest request;
    request.set_job_id(job.job_id());
    EXPECT_EQ(client_->CancelJob(&context, request, &read).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
  {
    grpc::ClientContext context;
    SetDeadline(&context);
    WithToken(&context, kBob);
    lrtune::v1::WatchJobRequest request;
    request.set_job_id(job.job_id());
    auto reader = client_->WatchJob(&context, request);
    lrtune::v1::JobEvent event;
    EXPECT_FALSE(reader->Read(&event));
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
  }
  lrtune::v1::ListJobsResponse bobs, alices;
  ASSERT_TRUE(ListJobs(kBob, &bobs).ok());
  EXPECT_EQ(bobs.jobs_size(), 0);
  ASSERT_TRUE(ListJobs(kAlice, &alices).ok());
  ASSERT_EQ(alices.jobs_size(), 1);
  EXPECT_EQ(alices.jobs(0).job_id(), job.job_id());
  // Alice may cancel her own.
  grpc::ClientContext context;
  SetDeadline(&context);
  WithToken(&context, kAlice);
  lrtune::v1::CancelJobRequest request;
  request.set_job_id(job.job_id());
  grpc::Status cancelled = client_->CancelJob(&context, request, &read);
  EXPECT_TRUE(cancelled.ok()) << cancelled.error_message();
  // The log names the job and its owner.
  const std::string log = ReadFile(log_);
  EXPECT_NE(log.find("job " + job.job_id() + " submitted by alice"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("job " + job.job_id() + " cancelled by alice"),
            std::string::npos)
      << log;
}

TEST_F(SecurityTest, SighupRotatesATokenWithoutARestart) {
  lrtune::v1::Job job;
  ASSERT_TRUE(Submit(kAlice, &job).ok());
  const std::string rotated = "alice-token-rotated-zzzzzz";
  EXPECT_EQ(ListJobs(rotated).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  WriteTokens(tokens_, std::string("client alice ") + rotated + "\n" +
                           "client bob " + kBob + "\n");
  ASSERT_TRUE(server_->Signal(SIGHUP));
  // The server polls its signal flag every 100 ms.
  bool swapped = false;
  for (int i = 0; i < 50 && !swapped; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    swapped = ListJobs(rotated).ok();
  }
  ASSERT_TRUE(swapped) << ReadFile(log_);
  EXPECT_EQ(ListJobs(kAlice).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(ListJobs(kAdmin).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  // Same name, same owner: the new token reads the job the old one made.
  lrtune::v1::Job read;
  EXPECT_TRUE(GetJob(rotated, job.job_id(), &read).ok());
  // A broken file keeps the tokens in force.
  WriteTokens(tokens_, "client alice short\n");
  ASSERT_TRUE(server_->Signal(SIGHUP));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_TRUE(ListJobs(rotated).ok());
  EXPECT_NE(ReadFile(log_).find("keeping the previous 2 tokens"),
            std::string::npos)
      << ReadFile(log_);
  EXPECT_EQ(server_->Wait(std::chrono::milliseconds(1)), -1);
}

TEST_F(SecurityTest, HealthReportsServing) {
  grpc::GenericStub generic(channel_);
  for (const std::string service :
       {"", "lrtune.v1.LrTune", "lrtune.v1.WorkerHub"}) {
    // grpc.health.v1.HealthCheckRequest{service}: field 1, length-delimited.
    std::string bytes;
    if (!service.empty()) {
      bytes = std::string(1, '\x0a') +
              std::string(1, static_cast<char>(service.size())) + service;
    }
    grpc::Slice slice(bytes);
    grpc::ByteBuffer request(&slice, 1), response;
    grpc::ClientContext context;
    SetDeadline(&context);
    std::promise<grpc::Status> done;
    generic.UnaryCall(&context, "/grpc.health.v1.Health/Check",
                      grpc::StubOptions(), &request, &response,
                      [&done](grpc::Status s) { done.set_value(s); });
    grpc::Status status = done.get_future().get();
    ASSERT_TRUE(status.ok()) << service << ": " << status.error_message();
    // HealthCheckResponse{status: SERVING (1)}.
    EXPECT_EQ(Flatten(response), std::string("\x08\x01", 2)) << service;
  }
}

#ifdef LRTUNE_HAVE_GRPC_REFLECTION
TEST_F(SecurityTest, ReflectionListsTheServicesWithoutAToken) {
  grpc::GenericStub generic(channel_);
  grpc::CompletionQueue cq;
  grpc::ClientContext context;
  SetDeadline(&context);
  auto call = generic.PrepareCall(
      &context,
      "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  void* tag = nullptr;
  bool ok = false;
  call->StartCall(reinterpret_cast<void*>(1));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
  // ServerReflectionRequest{list_services: ""}: field 7, length-delimited.
  grpc::Slice slice(std::string("\x3a\x00", 2));
  grpc::ByteBuffer request(&slice, 1), response;
  call->WriteLast(request, grpc::WriteOptions(), reinterpret_cast<void*>(2));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
  call->Read(&response, reinterpret_cast<void*>(3));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
  const std::string body = Flatten(response);
  EXPECT_NE(body.find("lrtune.v1.LrTune"), std::string::npos);
  EXPECT_NE(body.find("lrtune.v1.WorkerHub"), std::string::npos);
  EXPECT_NE(body.find("grpc.health.v1.Health"), std::string::npos);
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(4));
  ASSERT_TRUE(cq.Next(&tag, &ok));
  EXPECT_TRUE(status.ok()) << status.error_message();
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
}
#endif

// Reads one counter or gauge from a Prometheus page; -1 when absent.
double Sample(const std::string& page, const std::string& name) {
  std::smatch match;
  const std::regex line("(^|\n)" + name + " ([0-9.eE+-]+)\n");
  if (!std::regex_search(page, match, line)) return -1;
  return std::stod(match[2]);
}

TEST_F(SecurityTest, MetricsAreValidPrometheusTextAndMoveWithAJob) {
  const std::string before = Metrics();
  ASSERT_FALSE(before.empty());
  EXPECT_EQ(Sample(before, "lrtune_points_ingested_total"), 0);
  EXPECT_EQ(Sample(before, "lrtune_queue_depth"), 0);

  lrtune::v1::Job job;
  ASSERT_TRUE(Submit(kAlice, &job).ok());
  const std::string queued = Metrics();
  EXPECT_EQ(Sample(queued, "lrtune_jobs_submitted_total"), 1);
  EXPECT_EQ(Sample(queued, "lrtune_queue_depth"), 1);

  // A fake worker, with a worker token, runs the job's one task.
  lrtune::v1::RegisterResponse registered;
  ASSERT_TRUE(Register(kWorker, &registered).ok());
  lrtune::v1::AcquireTaskResponse acquired;
  {
    lrtune::v1::AcquireTaskRequest request;
    request.set_worker_id(registered.worker_id());
    request.mutable_wait()->set_seconds(5);
    grpc::ClientContext context;
    SetDeadline(&context, 10);
    WithToken(&context, kWorker);
    grpc::Status status = hub_->AcquireTask(&context, request, &acquired);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_TRUE(acquired.has_task());
  }
  const lrtune::v1::Task& task = acquired.task();
  const std::string running = Metrics();
  EXPECT_EQ(Sample(running, "lrtune_tasks_running"), 1);
  EXPECT_EQ(Sample(running, "lrtune_queue_depth"), 0);
  EXPECT_EQ(Sample(running, "lrtune_workers"), 1);
  lrtune::v1::ReportPointsRequest report;
  report.set_task_id(task.task_id());
  report.set_attempt_id(task.attempt_id());
  for (int i = 0; i < 30; ++i) {
    lrtune::v1::TaskRecord* r = report.add_records();
    r->set_seq(i);
    lrtune::v1::CurvePoint* p = r->mutable_point();
    p->set_step(i);
    p->set_lr(1e-5 * (i + 1));
    p->set_loss(2.0 - 0.01 * i);
  }
  for (int repeat = 0; repeat < 2; ++repeat) {  // the repeat is not counted
    grpc::ClientContext context;
    SetDeadline(&context);
    WithToken(&context, kWorker);
    lrtune::v1::ReportPointsResponse response;
    grpc::Status status = hub_->ReportPoints(&context, report, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  {
    lrtune::v1::CompleteTaskRequest request;
    request.set_task_id(task.task_id());
    request.set_attempt_id(task.attempt_id());
    request.set_final_seq(29);
    lrtune::v1::Recommendation* rec =
        request.mutable_range_test()->mutable_recommendation();
    rec->set_min_lr(1e-3);
    rec->set_max_lr(1e-2);
    rec->set_stepsize_iterations(400);
    rec->set_lr_valley(3e-3);
    rec->set_points_used(30);
    rec->set_seeds(1);
    request.mutable_range_test()->set_steps_run(30);
    grpc::ClientContext context;
    SetDeadline(&context);
    WithToken(&context, kWorker);
    lrtune::v1::CompleteTaskResponse response;
    grpc::Status status = hub_->CompleteTask(&context, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  const std::string after = Metrics();
  EXPECT_EQ(Sample(after, "lrtune_points_ingested_total"), 30) << after;
  EXPECT_EQ(Sample(after, "lrtune_tasks_running"), 0);
  EXPECT_EQ(Sample(after, "lrtune_task_duration_seconds_count"), 1);
  EXPECT_EQ(Sample(after, "lrtune_lease_expiries_total"), 0);
  // The exposition format: comments, or `name{labels} value`; every
  // sample's family has a TYPE.
  const std::regex sample_line(
      R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"]*")*\})? (-?[0-9.eE+-]+|NaN|[+-]Inf)$)");
  const std::regex type_line(
      R"(^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$)");
  std::set<std::string> typed;
  std::istringstream lines(after);
  std::string l;
  int samples = 0;
  while (std::getline(lines, l)) {
    std::smatch m;
    if (std::regex_match(l, m, type_line)) {
      typed.insert(m[1]);
    } else if (std::regex_match(l, m, sample_line)) {
      std::string family = m[1];
      for (const char* suffix : {"_bucket", "_sum", "_count"}) {
        const std::string s(suffix);
        if (typed.count(family) == 0 && family.size() > s.size() &&
            family.compare(family.size() - s.size(), s.size(), s) == 0) {
          family.resize(family.size() - s.size());
        }
      }
      EXPECT_EQ(typed.count(family), 1u) << "no TYPE before " << l;
      ++samples;
    } else {
      EXPECT_EQ(l.rfind("# HELP ", 0), 0u) << "not exposition text: " << l;
    }
  }
  EXPECT_GE(samples, 10);
}

class SecurityShortLeaseTest : public SecurityTest {
 protected:
  std::vector<std::string> ExtraFlags() const override {
    return {"--lease-ttl", "1s", "--sweep-interval", "200ms"};
  }
};

TEST_F(SecurityShortLeaseTest, ALapsedLeaseMovesTheExpiryCounter) {
  lrtune::v1::Job job;
  ASSERT_TRUE(Submit(kAlice, &job).ok());
  lrtune::v1::RegisterResponse registered;
  ASSERT_TRUE(Register(kWorker, &registered).ok());
  lrtune::v1::AcquireTaskRequest request;
  request.set_worker_id(registered.worker_id());
  request.mutable_wait()->set_seconds(5);
  lrtune::v1::AcquireTaskResponse acquired;
  grpc::ClientContext context;
  SetDeadline(&context, 10);
  WithToken(&context, kWorker);
  ASSERT_TRUE(hub_->AcquireTask(&context, request, &acquired).ok());
  ASSERT_TRUE(acquired.has_task());
  EXPECT_EQ(Sample(Metrics(), "lrtune_lease_expiries_total"), 0);
  // No heartbeat: the lease lapses after 1 s and the task is requeued.
  double expiries = 0;
  for (int i = 0; i < 50 && expiries < 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    expiries = Sample(Metrics(), "lrtune_lease_expiries_total");
  }
  EXPECT_EQ(expiries, 1);
  std::string page;
  for (int i = 0; i < 30; ++i) {  // the sweeper requeues within 200 ms
    page = Metrics();
    if (Sample(page, "lrtune_queue_depth") == 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(Sample(page, "lrtune_queue_depth"), 1) << page;
  EXPECT_EQ(Sample(page, "lrtune_tasks_running"), 0);
}

// A self-signed certificate for localhost and 127.0.0.1 (its own CA).
bool MakeCertificate(const std::string& cert, const std::string& key) {
  const std::string openssl =
      std::string(LRTUNE_OPENSSL_BIN) +
      " req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
      "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout " +
      key + " -out " + cert + " 2>/dev/null";
  return std::system(openssl.c_str()) == 0;
}

// A second server on a port the first holds is refused, for gRPC and for
// the metrics (both used to bind with SO_REUSEPORT, and the kernel split the
// connections between the two servers), and the first keeps serving.
TEST_F(SecurityTest, ASecondServerOnTheSamePortIsRefused) {
  struct Case {
    std::vector<std::string> flags;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"--listen", address_},
       "cannot listen on " + address_ + " (--listen): the port is in use"},
      {{"--listen", "127.0.0.1:" + std::to_string(FreePort()),
        "--metrics-listen", "127.0.0.1:" + std::to_string(metrics_port_)},
       "--metrics-listen: cannot listen for metrics on 127.0.0.1:" +
           std::to_string(metrics_port_)},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const fs::path log = dir_ / ("second" + std::to_string(i) + ".log");
    std::vector<std::string> args = {
        LRTUNE_SERVER_BIN, "--db",
        (dir_ / ("second" + std::to_string(i) + ".db")).string()};
    args.insert(args.end(), cases[i].flags.begin(), cases[i].flags.end());
    Process second(args, log.string());
    ASSERT_TRUE(second.started());
    const int rc = second.Wait(std::chrono::seconds(10));
    if (rc == -1) second.Stop(kStopWithin);
    EXPECT_EQ(rc, 1) << "still serving beside the first? " << ReadFile(log);
    EXPECT_NE(ReadFile(log).find(cases[i].message), std::string::npos)
        << ReadFile(log);
  }
  EXPECT_TRUE(ListJobs(kAlice).ok());
  EXPECT_NE(Metrics(), "");
}

// A server with TLS from a self-signed certificate made by `openssl`.
TEST(SecurityTlsTest, PlaintextClientsCannotTalkToATlsServer) {
  const fs::path dir = MakeTempDir("lrtune_security_tls");
  const std::string cert = (dir / "cert.pem").string();
  const std::string key = (dir / "key.pem").string();
  ASSERT_TRUE(MakeCertificate(cert, key));
  const fs::path tokens = dir / "tokens";
  WriteTokens(tokens, std::string("client alice ") + kAlice + "\n");
  const std::string address = "127.0.0.1:" + std::to_string(FreePort());
  const fs::path log = dir / "server.log";
  Process server({LRTUNE_SERVER_BIN, "--listen", address, "--db",
                  (dir / "jobs.db").string(), "--tokens-file", tokens.string(),
                  "--tls-cert", cert, "--tls-key", key},
                 log.string());
  ASSERT_TRUE(server.started());

  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = ReadFile(cert);
  auto tls = grpc::CreateChannel(address, grpc::SslCredentials(ssl));
  ASSERT_TRUE(tls->WaitForConnected(std::chrono::system_clock::now() +
                                    std::chrono::seconds(20)))
      << ReadFile(log);
  auto tls_stub = LrTune::NewStub(tls);
  {
    grpc::ClientContext context;
    SetDeadline(&context);
    WithToken(&context, kAlice);
    lrtune::v1::ListJobsResponse response;
    grpc::Status status = tls_stub->ListJobs(&context, {}, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
  }
  auto plain = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  auto plain_stub = LrTune::NewStub(plain);
  {
    grpc::ClientContext context;
    SetDeadline(&context, 3);
    WithToken(&context, kAlice);
    lrtune::v1::ListJobsResponse response;
    grpc::Status status = plain_stub->ListJobs(&context, {}, &response);
    EXPECT_FALSE(status.ok());
    EXPECT_TRUE(status.error_code() == grpc::StatusCode::UNAVAILABLE ||
                status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED)
        << status.error_code() << " " << status.error_message();
  }
  // An open channel would hold the graceful shutdown for its 5 s.
  tls_stub.reset();
  plain_stub.reset();
  tls.reset();
  plain.reset();
  EXPECT_EQ(server.Stop(kStopWithin), 0) << ReadFile(log);

  // Mutual TLS: the same self-signed certificate is the client CA, so a
  // client presenting it passes and one presenting none does not.
  const std::string mtls_address = "127.0.0.1:" + std::to_string(FreePort());
  server =
      Process({LRTUNE_SERVER_BIN, "--listen", mtls_address, "--db",
               (dir / "jobs.db").string(), "--tokens-file", tokens.string(),
               "--tls-cert", cert, "--tls-key", key, "--tls-client-ca", cert},
              log.string());
  ASSERT_TRUE(server.started());
  for (bool with_cert : {true, false}) {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = ReadFile(cert);
    if (with_cert) {
      options.pem_cert_chain = ReadFile(cert);
      options.pem_private_key = ReadFile(key);
    }
    auto channel =
        grpc::CreateChannel(mtls_address, grpc::SslCredentials(options));
    channel->WaitForConnected(std::chrono::system_clock::now() +
                              std::chrono::seconds(with_cert ? 20 : 2));
    auto stub = LrTune::NewStub(channel);
    grpc::ClientContext context;
    SetDeadline(&context, 3);
    WithToken(&context, kAlice);
    lrtune::v1::ListJobsResponse response;
    grpc::Status status = stub->ListJobs(&context, {}, &response);
    EXPECT_EQ(status.ok(), with_cert)
        << with_cert << " " << status.error_message() << ReadFile(log);
  }
  EXPECT_EQ(server.Stop(kStopWithin), 0) << ReadFile(log);
  fs::remove_all(dir);
}

TEST(SecurityListenTest, NonLoopbackNeedsTlsAndTokensOrInsecure) {
  const fs::path dir = MakeTempDir("lrtune_security_listen");
  const std::string address = "0.0.0.0:" + std::to_string(FreePort());
  const fs::path log = dir / "refused.log";
  Process refused({LRTUNE_SERVER_BIN, "--listen", address, "--db",
                   (dir / "jobs.db").string()},
                  log.string());
  ASSERT_TRUE(refused.started());
  const int rc = refused.Wait(std::chrono::seconds(10));
  EXPECT_NE(rc, -1) << "still running";
  if (rc == -1) refused.Stop(kStopWithin);
  EXPECT_NE(rc, 0);
  const std::string message = ReadFile(log);
  EXPECT_NE(message.find("refusing to listen on " + address), std::string::npos)
      << message;
  EXPECT_NE(message.find("--insecure"), std::string::npos) << message;
  EXPECT_FALSE(fs::exists(dir / "jobs.db")) << "opened the store anyway";

  // With --insecure it starts (and says so).
  const fs::path log2 = dir / "insecure.log";
  Process insecure({LRTUNE_SERVER_BIN, "--listen", address, "--db",
                    (dir / "jobs.db").string(), "--insecure"},
                   log2.string());
  ASSERT_TRUE(insecure.started());
  auto channel =
      grpc::CreateChannel("127.0.0.1:" + address.substr(address.rfind(':') + 1),
                          grpc::InsecureChannelCredentials());
  EXPECT_TRUE(channel->WaitForConnected(std::chrono::system_clock::now() +
                                        std::chrono::seconds(20)))
      << ReadFile(log2);
  channel.reset();
  EXPECT_EQ(insecure.Stop(kStopWithin), 0);
  EXPECT_NE(ReadFile(log2).find("WARNING: --insecure"), std::string::npos);
  fs::remove_all(dir);
}

#ifdef LRTUNE_WORKER_BIN
// The whole path secured: a real worker with a worker token dials the TLS
// coordinator with --tls-ca, and a client's range test runs to success.
TEST(SecurityWorkerTest, AWorkerOverTlsWithATokenRunsARangeTest) {
  const fs::path dir = MakeTempDir("lrtune_security_worker");
  const std::string cert = (dir / "cert.pem").string();
  const std::string key = (dir / "key.pem").string();
  ASSERT_TRUE(MakeCertificate(cert, key));
  const fs::path tokens = dir / "tokens";
  WriteTokens(tokens, std::string("client alice ") + kAlice + "\n" +
                          "worker gpu-1 " + kWorker + "\n");
  const fs::path worker_token = dir / "worker_token";
  WriteTokens(worker_token, std::string(kWorker) + "\n");
  const std::string address = "127.0.0.1:" + std::to_string(FreePort());
  const fs::path log = dir / "server.log";
  Process server({LRTUNE_SERVER_BIN, "--listen", address, "--db",
                  (dir / "jobs.db").string(), "--tokens-file", tokens.string(),
                  "--tls-cert", cert, "--tls-key", key},
                 log.string());
  ASSERT_TRUE(server.started());
  const fs::path worker_log = dir / "worker.log";
  Process worker({LRTUNE_WORKER_BIN, "--server", address, "--tls-ca", cert,
                  "--token-file", worker_token.string(), "--devices", "cpu",
                  "--slots", "1", "--threads", "1"},
                 worker_log.string());
  ASSERT_TRUE(worker.started());

  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = ReadFile(cert);
  auto channel = grpc::CreateChannel(address, grpc::SslCredentials(ssl));
  ASSERT_TRUE(channel->WaitForConnected(std::chrono::system_clock::now() +
                                        std::chrono::seconds(20)));
  auto stub = LrTune::NewStub(channel);
  lrtune::v1::RangeTestRequest request;
  *request.mutable_run() = lrtune::testing::SmallRun(16);
  *request.mutable_range_test() = lrtune::testing::Ramp(40, 1e-5, 10, {1});
  request.set_skip_points(true);
  grpc::ClientContext context;
  SetDeadline(&context, 90);
  WithToken(&context, kAlice);
  auto reader = stub->RangeTest(&context, request);
  lrtune::v1::JobEvent event;
  lrtune::v1::JobState state = lrtune::v1::JOB_STATE_UNSPECIFIED;
  while (reader->Read(&event)) {
    if (event.has_state_changed()) state = event.state_changed().state();
  }
  grpc::Status status = reader->Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(state, lrtune::v1::JOB_STATE_SUCCEEDED)
      << ReadFile(log) << ReadFile(worker_log);
  EXPECT_EQ(ReadFile(worker_log).find(kWorker), std::string::npos);
  EXPECT_EQ(worker.Stop(kStopWithin), 0) << ReadFile(worker_log);
  stub.reset();
  channel.reset();
  EXPECT_EQ(server.Stop(kStopWithin), 0) << ReadFile(log);
  fs::remove_all(dir);
}
#endif

}  // namespace
