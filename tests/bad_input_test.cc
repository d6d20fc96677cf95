// Bad input, table-driven, against the real lrtune-server on loopback (and
// the engine's and the CLI's file readers): every case gets its documented
// status code and a message naming the field, and afterwards the server
// still serves. Cases are SubmitJobRequests in protobuf text format, so
// the table reads as what a client sends.
#include <sys/wait.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "google/protobuf/text_format.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "lrtune/v1/lrtune.grpc.pb.h"
#include "test_process.h"

namespace {

namespace v1 = lrtune::v1;
using grpc::StatusCode;
using lrtune::testing::FreePort;
using lrtune::testing::MakeTempDir;
using lrtune::testing::Process;

// Runs a command to its end; returns its exit status and its output.
int RunCommand(const std::string& command, std::string* output) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return -1;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) {
    output->append(buffer, n);
  }
  const int status = pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

struct Case {
  const char* name;
  const char* request;  // SubmitJobRequest, text format
  StatusCode code;
  const char* message;  // a substring of the status message
};

// A valid base the cases break one field at a time.
#define RUN "run { data { name: 'spirals' } model { hidden: 8 } } "
#define RT(x) "range_test { " RUN "range_test { " x " } }"
#define RUNX(x) "range_test { run { data { name: 'spirals' } " x " } }"
#define INLINE(x) "range_test { run { data { inline_data { " x " } } } }"
#define GRID(x) \
  "grid { " RUN \
  "train { steps: 10 schedule { kind: SCHEDULE_KIND_COSINE } } " x " }"

const Case kCases[] = {
    {"no spec", "", StatusCode::INVALID_ARGUMENT, "spec is required"},
    {"negative start lr", RT("start_lr: -1"), StatusCode::INVALID_ARGUMENT,
     "range_test.start_lr"},
    {"nan start lr", RT("start_lr: nan"), StatusCode::INVALID_ARGUMENT,
     "range_test.start_lr"},
    {"infinite end lr", RT("end_lr: inf"), StatusCode::INVALID_ARGUMENT,
     "range_test.end_lr"},
    {"end <= start", RT("start_lr: 1 end_lr: 0.5"),
     StatusCode::INVALID_ARGUMENT, "range_test.end_lr"},
    {"zero steps", RT("steps: 0"), StatusCode::INVALID_ARGUMENT,
     "range_test.steps"},
    {"huge steps", RT("steps: 1000000000000"), StatusCode::INVALID_ARGUMENT,
     "range_test.steps"},
    {"repeated seed", RT("seeds: 1 seeds: 1"), StatusCode::INVALID_ARGUMENT,
     "range_test.seeds"},
    {"smoothing 1", RT("analysis { smoothing_beta: 1 }"),
     StatusCode::INVALID_ARGUMENT, "smoothing_beta"},
    {"divergence factor 1", RT("analysis { divergence_factor: 1 }"),
     StatusCode::INVALID_ARGUMENT, "divergence_factor"},
    {"stepsize k 11", RT("analysis { stepsize_k: 11 }"),
     StatusCode::INVALID_ARGUMENT, "stepsize_k"},
    {"negative eval_every", RT("eval_every: -1"), StatusCode::INVALID_ARGUMENT,
     "eval_every"},
    {"zero eval samples", RT("eval_every: 5 eval_samples: 0"),
     StatusCode::INVALID_ARGUMENT, "eval_samples"},
    {"unknown model kind", RUNX("model { kind: 42 }"),
     StatusCode::INVALID_ARGUMENT, "run.model.kind"},
    {"torchscript without bytes",
     RUNX("model { kind: MODEL_KIND_TORCHSCRIPT }"),
     StatusCode::INVALID_ARGUMENT, "run.model.torchscript"},
    {"mlp with torchscript bytes", RUNX("model { torchscript: 'xyz' }"),
     StatusCode::INVALID_ARGUMENT, "run.model.torchscript"},
    {"zero-width layer", RUNX("model { hidden: 0 }"),
     StatusCode::INVALID_ARGUMENT, "run.model.hidden"},
    {"unknown dataset", "range_test { run { data { name: 'nope' } } }",
     StatusCode::INVALID_ARGUMENT, "run.data.name"},
    {"zero batch", RUNX("batch_size: 0"), StatusCode::INVALID_ARGUMENT,
     "run.batch_size"},
    {"negative subset", "range_test { run { data { subset: -1 } } }",
     StatusCode::INVALID_ARGUMENT, "run.data.subset"},
    {"validation fraction 0.95",
     "range_test { run { data { name: 'iris' validation_fraction: 0.95 } } }",
     StatusCode::INVALID_ARGUMENT, "validation_fraction"},
    {"inline 1-dim x", INLINE("x_shape: 10 y_labels: 0"),
     StatusCode::INVALID_ARGUMENT, "x_shape"},
    {"inline 5 samples", INLINE("x_shape: 5 x_shape: 1 x: 1 y_labels: 0"),
     StatusCode::INVALID_ARGUMENT, "x_shape[0]"},
    {"inline x shorter than its shape",
     INLINE("x_shape: 10 x_shape: 2 x: 1 x: 2 y_labels: 0"),
     StatusCode::INVALID_ARGUMENT, "inline_data.x must hold"},
    {"inline huge shape",
     INLINE("x_shape: 100000 x_shape: 100000 x_shape: 100000"),
     StatusCode::RESOURCE_EXHAUSTED, "inline_data"},
    {"optimizer momentum -0.1", RUNX("optimizer { momentum: -0.1 }"),
     StatusCode::INVALID_ARGUMENT, "run.optimizer.momentum"},
    {"nesterov without momentum", RUNX("optimizer { nesterov: true }"),
     StatusCode::INVALID_ARGUMENT, "nesterov"},
    {"beta1 1.0", RUNX("optimizer { kind: OPTIMIZER_KIND_ADAM beta1: 1.0 }"),
     StatusCode::INVALID_ARGUMENT, "beta1"},
    {"eps 0", RUNX("optimizer { kind: OPTIMIZER_KIND_ADAM eps: 0 }"),
     StatusCode::INVALID_ARGUMENT, "eps"},
    {"unknown optimizer kind", RUNX("optimizer { kind: 9 }"),
     StatusCode::INVALID_ARGUMENT, "run.optimizer.kind"},
    {"unknown loss", RUNX("loss: 7"), StatusCode::INVALID_ARGUMENT, "run.loss"},
    {"1000 threads", RUNX("device { threads: 1000 }"),
     StatusCode::INVALID_ARGUMENT, "run.device.threads"},
    {"device tpu", RUNX("device { device: 'tpu' }"),
     StatusCode::INVALID_ARGUMENT, "run.device.device"},
    {"zero attempts", RT("") " max_attempts: 0", StatusCode::INVALID_ARGUMENT,
     "max_attempts"},
    {"eleven attempts", RT("") " max_attempts: 11",
     StatusCode::INVALID_ARGUMENT, "max_attempts"},
    {"grid without axes", GRID(""), StatusCode::INVALID_ARGUMENT,
     "grid.grid.axes"},
    {"grid product over max_trials",
     GRID("grid { max_trials: 2 axes { seeds { values: 1 values: 2 values: 3 "
          "} } }"),
     StatusCode::INVALID_ARGUMENT, "grid.grid.max_trials is 2"},
    {"grid max_trials over the server's limit",
     GRID("grid { max_trials: 100000 axes { seeds { values: 1 } } }"),
     StatusCode::RESOURCE_EXHAUSTED, "above this server's limit"},
    {"recommended bounds without a range test",
     GRID("grid { axes { lr_bounds { values { recommended {} } } } }"),
     StatusCode::INVALID_ARGUMENT, "needs grid.range_test"},
    {"repeated axis value",
     GRID("grid { axes { seeds { values: 4 values: 4 } } }"),
     StatusCode::INVALID_ARGUMENT, "repeats values[0]"},
    {"zero-epoch budget",
     GRID("grid { axes { budgets { values { epochs: 0 } } } }"),
     StatusCode::INVALID_ARGUMENT, "epochs must be >= 1"},
    {"inverted explicit bounds",
     GRID("grid { axes { lr_bounds { values { explicit_bounds { min_lr: 1 "
          "max_lr: 0.1 } } } } }"),
     StatusCode::INVALID_ARGUMENT, "explicit_bounds"},
    {"sequential schedule in a grid",
     GRID("grid { axes { schedules { values { kind: SCHEDULE_KIND_SEQUENTIAL "
          "children { kind: SCHEDULE_KIND_CONSTANT } } } } }"),
     StatusCode::INVALID_ARGUMENT, "sequential"},
    {"grid eval cadence negative",
     "grid { " RUN "train { steps: 10 eval_every_steps: -5 schedule { kind: "
     "SCHEDULE_KIND_COSINE } } grid { axes { seeds { values: 1 } } } }",
     StatusCode::INVALID_ARGUMENT, "grid.train.eval_every_steps"},
    {"early stopping on the training loss",
     "grid { " RUN "train { steps: 10 early_stopping { patience: 2 metric: "
     "RANGE_METRIC_TRAIN_LOSS } schedule { kind: SCHEDULE_KIND_COSINE } } "
     "grid { axes { seeds { values: 1 } } } }",
     StatusCode::INVALID_ARGUMENT, "grid.train.early_stopping.metric"},
    {"65 snapshots",
     "grid { " RUN "train { steps: 10 snapshot_ensemble: 65 schedule { kind: "
     "SCHEDULE_KIND_COSINE } } grid { axes { seeds { values: 1 } } } }",
     StatusCode::INVALID_ARGUMENT, "grid.train.snapshot_ensemble"},
    {"accumulation 0", RUNX("grad_accumulation: 0"),
     StatusCode::INVALID_ARGUMENT, "run.grad_accumulation"},
    {"fp16 on the cpu",
     RUNX("device { device: 'cpu' precision: PRECISION_FP16 }"),
     StatusCode::INVALID_ARGUMENT, "run.device.precision"},
    {"cuda graph with accumulation",
     RUNX("grad_accumulation: 2 device { device: 'cuda' cuda_graph: true }"),
     StatusCode::INVALID_ARGUMENT, "run.device.cuda_graph"},
    {"negative loss scale", RUNX("device { loss_scale: -1 }"),
     StatusCode::INVALID_ARGUMENT, "run.device.loss_scale"},
    {"bf16 flag against fp32",
     RUNX("device { bf16: true precision: PRECISION_FP32 }"),
     StatusCode::INVALID_ARGUMENT, "run.device.bf16"},
};

class BadInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("lrtune_bad_input");
    address_ = "127.0.0.1:" + std::to_string(FreePort());
    server_.emplace(std::vector<std::string>{LRTUNE_SERVER_BIN, "--listen",
                                             address_, "--db",
                                             (dir_ / "jobs.db").string()});
    ASSERT_TRUE(server_->started());
    auto channel =
        grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());
    ASSERT_TRUE(channel->WaitForConnected(std::chrono::system_clock::now() +
                                          std::chrono::seconds(20)));
    stub_ = v1::LrTune::NewStub(channel);
  }

  void TearDown() override {
    if (server_) server_->Stop();
    std::filesystem::remove_all(dir_);
  }

  grpc::Status Submit(const v1::SubmitJobRequest& request, v1::Job* job) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(20));
    return stub_->SubmitJob(&context, request, job);
  }

  std::filesystem::path dir_;
  std::string address_;
  std::optional<Process> server_;
  std::unique_ptr<v1::LrTune::Stub> stub_;
};

TEST_F(BadInputTest, EveryBadRequestGetsItsStatusAndTheServerCarriesOn) {
  int checked = 0;
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.name);
    v1::SubmitJobRequest request;
    ASSERT_TRUE(
        google::protobuf::TextFormat::ParseFromString(c.request, &request))
        << c.request;
    v1::Job job;
    grpc::Status status = Submit(request, &job);
    EXPECT_EQ(status.error_code(), c.code) << status.error_message();
    EXPECT_NE(status.error_message().find(c.message), std::string::npos)
        << "message: " << status.error_message();
    ++checked;
  }
  EXPECT_GE(checked, 40);

  // Beyond the spec: oversize payloads, unknown jobs, bad paging, a watch
  // past the end.
  {
    v1::SubmitJobRequest big;
    big.mutable_range_test()->mutable_run()->mutable_model()->set_kind(
        v1::MODEL_KIND_TORCHSCRIPT);
    big.mutable_range_test()->mutable_run()->mutable_model()->set_torchscript(
        std::string((64 << 20) + 1, 'x'));
    v1::Job job;
    grpc::Status status = Submit(big, &job);
    EXPECT_EQ(status.error_code(), StatusCode::RESOURCE_EXHAUSTED)
        << status.error_message();
  }
  {
    v1::GetJobRequest get;
    get.set_job_id("j-0000000000000000");
    v1::Job job;
    grpc::ClientContext context;
    EXPECT_EQ(stub_->GetJob(&context, get, &job).error_code(),
              StatusCode::NOT_FOUND);
  }
  {
    v1::ListJobsRequest list;
    list.set_page_token("not-a-token");
    v1::ListJobsResponse response;
    grpc::ClientContext context;
    grpc::Status status = stub_->ListJobs(&context, list, &response);
    EXPECT_EQ(status.error_code(), StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(status.error_message().find("page_token"), std::string::npos);
  }
  {
    v1::CancelJobRequest cancel;
    v1::Job job;
    grpc::ClientContext context;
    grpc::Status status = stub_->CancelJob(&context, cancel, &job);
    EXPECT_EQ(status.error_code(), StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(status.error_message().find("job_id"), std::string::npos);
  }

  // Still serving: a valid job is accepted and watchable past the end.
  v1::SubmitJobRequest ok;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(RT(""), &ok));
  v1::Job job;
  grpc::Status status = Submit(ok, &job);
  ASSERT_TRUE(status.ok()) << status.error_message();
  v1::WatchJobRequest watch;
  watch.set_job_id(job.job_id());
  watch.set_after_seq(job.last_seq() + 100);
  grpc::ClientContext context;
  auto reader = stub_->WatchJob(&context, watch);
  v1::JobEvent event;
  EXPECT_FALSE(reader->Read(&event));
  EXPECT_EQ(reader->Finish().error_code(), StatusCode::OUT_OF_RANGE);
  EXPECT_EQ(server_->Wait(std::chrono::milliseconds(0)), -1)
      << "the server exited";
}

// Files a user hands the tools: the engine's JSON jobs and TorchScript
// files, and curve CSVs for `lrtune analyze`. Each is refused with a line
// naming what is wrong; none crashes (a signal would show as 128+).
TEST_F(BadInputTest, BadFilesAreRefusedWithAClearLine) {
  auto write = [&](const std::string& name, const std::string& text) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << text;
    return path;
  };
  struct FileCase {
    std::string command;
    int exit_code;
    std::string message;
  };
  const std::string engine = std::string(LRTUNE_ENGINE_BIN) + " --job ";
  const std::string analyze = std::string(LRTUNE_CLI_BIN) + " analyze --csv ";
  std::string random_bytes;
  for (int i = 0; i < 4096; ++i) {
    random_bytes.push_back(static_cast<char>((i * 7919) % 251));
  }
  write("random.pt", random_bytes);
  write("truncated.pt",
        std::string("PK\x03\x04", 4) + random_bytes.substr(0, 64));
  const std::vector<FileCase> cases = {
      {engine + write("malformed.json", "{\"kind\": \"range_test\", "), 1,
       "json"},
      {engine + write("no_kind.json", "{}"), 1, "kind"},
      {engine + write("bad_type.json",
                      "{\"kind\": \"range_test\", \"batch_size\": \"big\"}"),
       1, "batch_size"},
      {engine + write("random_model.json",
                      "{\"kind\": \"range_test\", \"model\": {\"kind\": "
                      "\"torchscript\", \"torchscript_path\": \"random.pt\"},"
                      " \"data\": {\"name\": \"spirals\"}, \"range_test\": "
                      "{\"steps\": 5}}"),
       1, "model.torchscript: cannot load"},
      {engine + write("truncated_model.json",
                      "{\"kind\": \"range_test\", \"model\": {\"kind\": "
                      "\"torchscript\", \"torchscript_path\": "
                      "\"truncated.pt\"}, \"data\": {\"name\": \"spirals\"}, "
                      "\"range_test\": {\"steps\": 5}}"),
       1, "model.torchscript: cannot load"},
      {analyze + write("text.csv", "step,lr,loss\n0,0.001,abc\n"), 2,
       "is not a number"},
      {analyze + write("no_lr.csv", "step,loss\n0,1\n"), 2, "lr"},
      {analyze + write("decreasing.csv", "lr,loss\n0.1,1\n0.01,1\n"), 2, "lr"},
  };
  for (const FileCase& c : cases) {
    SCOPED_TRACE(c.command);
    std::string output;
    const int code = RunCommand(c.command, &output);
    EXPECT_EQ(code, c.exit_code) << output;
    std::string lower = output;
    for (char& ch : lower) ch = static_cast<char>(std::tolower(ch));
    std::string want = c.message;
    for (char& ch : want) ch = static_cast<char>(std::tolower(ch));
    EXPECT_NE(lower.find(want), std::string::npos) << output;
  }
}

// One rule, one message: the same bad range test refused by the CLI (its
// flags), by the coordinator (a SubmitJob over gRPC) and by the engine (a
// JSON job) states the same rule, each naming the field in its caller's
// vocabulary. The rules live once, in core/spec.h.
TEST_F(BadInputTest, OneBadSpecGivesOneRuleInTheCliTheCoordinatorAndTheEngine) {
  struct OneRule {
    std::string cli_flags;    // lrtune range-test ...
    std::string request;      // SubmitJobRequest, text format
    std::string engine_json;  // lrtune-engine --job
    std::string cli_name, rpc_name, engine_name;
    std::string rule;
  };
  const std::vector<OneRule> cases = {
      {"--smoothing 1.5", RT("analysis { smoothing_beta: 1.5 }"),
       R"("range_test": {"smoothing_beta": 1.5})", "--smoothing",
       "range_test.analysis.smoothing_beta", "range_test.smoothing_beta",
       "must be in [0, 1), got 1.5"},
      {"--steps 1", RT("steps: 1"), R"("range_test": {"steps": 1})", "--steps",
       "range_test.steps", "range_test.steps",
       "must be in [2, 1000000], got 1"},
      {"--batch-size 0", RUNX("batch_size: 0"), R"("batch_size": 0)",
       "--batch-size", "run.batch_size", "batch_size", "must be >= 1, got 0"},
      {"--momentum 2", RUNX("optimizer { momentum: 2 }"),
       R"("optimizer": {"momentum": 2})", "--momentum",
       "run.optimizer.momentum", "optimizer.momentum",
       "must be in [0, 1], got 2"},
  };
  int n = 0;
  for (const OneRule& c : cases) {
    SCOPED_TRACE(c.rule);
    std::string cli;
    EXPECT_EQ(
        RunCommand("XDG_DATA_HOME=" + dir_.string() + " " + LRTUNE_CLI_BIN +
                       " range-test --dataset spirals " + c.cli_flags,
                   &cli),
        2)
        << cli;
    EXPECT_NE(cli.find(c.cli_name + " " + c.rule), std::string::npos) << cli;

    v1::SubmitJobRequest request;
    ASSERT_TRUE(
        google::protobuf::TextFormat::ParseFromString(c.request, &request));
    v1::Job job;
    const grpc::Status status = Submit(request, &job);
    EXPECT_EQ(status.error_code(), StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(status.error_message(), c.rpc_name + " " + c.rule);

    const std::string path =
        (dir_ / ("job" + std::to_string(n++) + ".json")).string();
    std::ofstream(path) << R"({"kind": "range_test", "data": {"name": )"
                        << R"("spirals"}, )" << c.engine_json << "}";
    std::string engine;
    EXPECT_EQ(
        RunCommand(std::string(LRTUNE_ENGINE_BIN) + " --job " + path, &engine),
        1)
        << engine;
    EXPECT_NE(engine.find(c.engine_name + " " + c.rule), std::string::npos)
        << engine;
  }
}

}  // namespace
