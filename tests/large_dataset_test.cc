// A data set by reference bigger than a request could ever carry, end to
// end on loopback: scripts/make_dataset.py writes 70,000 x 784 float32
// features and their labels (about 220 MB) with NumPy into a data
// directory; a real lrtune-worker started on it reports the set when it
// registers; a range test naming it runs on a real lrtune-server. The
// request names the set (a few hundred bytes), the worker maps the arrays,
// the job succeeds with a recommendation, and the worker's own memory
// (RssAnon, sampled while it trains) grows by far less than the set:
// nothing read it whole. A name no worker has is refused, naming
// run.data.name and listing the worker's sets.
//
// Figures go to stderr (wall time, the worker's peak RSS and RssAnon) for
// bench notes; the test takes ~10-30 s, most of it writing the set.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/lrtune_client.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "test_process.h"

namespace {

using Clock = std::chrono::steady_clock;
using lrtune::testing::FreePort;
using lrtune::testing::MakeTempDir;
using lrtune::testing::Process;

constexpr int64_t kRows = 70000;
constexpr int64_t kFeatures = 784;
constexpr int64_t kSteps = 300;

// A field of /proc/<pid>/status in kB ("VmHWM", "RssAnon"); -1 if absent.
int64_t StatusKb(pid_t pid, const std::string& field) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field + ":", 0) != 0) continue;
    std::string digits = line.substr(field.size() + 1);
    digits.erase(0, digits.find_first_not_of(" \t"));
    digits = digits.substr(0, digits.find(' '));
    int64_t kb = -1;
    if (absl::SimpleAtoi(digits, &kb)) return kb;
  }
  return -1;
}

TEST(LargeDataset, RangeTestOnA220MBSetByReference) {
  const std::filesystem::path dir = MakeTempDir("lrtune_large_dataset_test");
  const std::filesystem::path data = dir / "data";
  struct Cleanup {
    std::filesystem::path dir;
    ~Cleanup() { std::filesystem::remove_all(dir); }
  } cleanup{dir};

  // The set, written by NumPy as a user would (docs/engine.md).
  const auto made_at = Clock::now();
  Process make(
      {"/usr/bin/python3", LRTUNE_SOURCE_DIR "/scripts/make_dataset.py",
       data.string(), "big", "--rows", std::to_string(kRows), "--features",
       std::to_string(kFeatures)},
      (dir / "make.log").string());
  ASSERT_TRUE(make.started());
  ASSERT_EQ(make.Wait(std::chrono::seconds(120)), 0) << make.Log();
  const double make_s =
      std::chrono::duration<double>(Clock::now() - made_at).count();
  const uintmax_t bytes = std::filesystem::file_size(data / "big" / "x.npy") +
                          std::filesystem::file_size(data / "big" / "y.npy");
  ASSERT_GE(bytes, 200u * 1000 * 1000);

  const std::string address = "127.0.0.1:" + std::to_string(FreePort());
  Process server({LRTUNE_SERVER_BIN, "--listen", address, "--db",
                  (dir / "jobs.db").string()},
                 (dir / "server.log").string());
  ASSERT_TRUE(server.started());
  Process worker(
      {LRTUNE_WORKER_BIN, "--server", address, "--devices", "cpu", "--slots",
       "1", "--threads", "1", "--data-dir", data.string()},
      (dir / "worker.log").string());
  ASSERT_TRUE(worker.started());
  ASSERT_TRUE(worker.WaitForLog("data sets: big", std::chrono::seconds(30)))
      << worker.Log();
  const int64_t rss_anon_idle = StatusKb(worker.pid(), "RssAnon");

  auto channel =
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  ASSERT_TRUE(channel->WaitForConnected(std::chrono::system_clock::now() +
                                        std::chrono::seconds(20)));
  auto client = lrtune::client::Client::FromChannel(channel, address, {});

  lrtune::v1::RangeTestRequest request;
  lrtune::v1::RunSpec& run = *request.mutable_run();
  run.mutable_model()->set_kind(lrtune::v1::MODEL_KIND_MLP);
  run.mutable_data()->set_name("nope");
  run.set_batch_size(128);
  run.mutable_device()->set_device("cpu");
  run.mutable_device()->set_threads(1);
  request.mutable_range_test()->set_steps(kSteps);
  request.mutable_range_test()->set_start_lr(1e-5);
  request.mutable_range_test()->set_end_lr(10);

  // A name the worker does not have.
  absl::StatusOr<lrtune::v1::Job> refused =
      client->RangeTest(request, [](const lrtune::v1::JobEvent&) {});
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find(
                "run.data.name \"nope\" is neither a built-in data set"),
            std::string::npos)
      << refused.status();
  EXPECT_NE(refused.status().message().find("the registered worker has big"),
            std::string::npos)
      << refused.status();

  // The set by reference: the request carries its name only.
  run.mutable_data()->set_name("big");
  EXPECT_LT(request.ByteSizeLong(), 1024u);
  int64_t rss_anon_peak = rss_anon_idle;
  int points = 0;
  const auto started = Clock::now();
  absl::StatusOr<lrtune::v1::Job> job =
      client->RangeTest(request, [&](const lrtune::v1::JobEvent& event) {
        if (event.has_point()) ++points;
        rss_anon_peak =
            std::max(rss_anon_peak, StatusKb(worker.pid(), "RssAnon"));
      });
  const double wall_s =
      std::chrono::duration<double>(Clock::now() - started).count();
  ASSERT_TRUE(job.ok()) << job.status() << "\n" << worker.Log();
  EXPECT_EQ(job->state(), lrtune::v1::JOB_STATE_SUCCEEDED)
      << job->failure() << "\n"
      << worker.Log();
  const lrtune::v1::DatasetDescription& described =
      job->range_test().run().data().description();
  EXPECT_EQ(described.train_samples(), kRows);
  EXPECT_EQ(described.sample_shape(0), kFeatures);
  EXPECT_EQ(static_cast<uintmax_t>(described.bytes()), bytes);
  const lrtune::v1::Recommendation& rec =
      job->range_test_result().recommendation();
  EXPECT_GT(rec.min_lr(), 0);
  EXPECT_GT(rec.max_lr(), rec.min_lr());
  EXPECT_GE(points, 50);
  // The stepsize is counted in the set's epochs: 56000 training rows (the
  // default validation_fraction holds 20% out), 437 updates of 128.
  ASSERT_GT(rec.stepsize_epochs(), 0);
  EXPECT_NEAR(
      static_cast<double>(rec.stepsize_iterations()) / rec.stepsize_epochs(),
      static_cast<double>((kRows - kRows / 5) / 128), 1e-6);

  const int64_t hwm = StatusKb(worker.pid(), "VmHWM");
  const int64_t set_kb = static_cast<int64_t>(bytes / 1024);
  std::fprintf(stderr,
               "large_dataset_test: %.0f MB set written in %.1f s; range test "
               "of %lld steps in %.1f s (%d points); worker VmHWM %lld MB, "
               "RssAnon %lld MB idle, %lld MB peak\n",
               static_cast<double>(bytes) / 1e6, make_s,
               static_cast<long long>(kSteps), wall_s, points,
               static_cast<long long>(hwm / 1024),
               static_cast<long long>(rss_anon_idle / 1024),
               static_cast<long long>(rss_anon_peak / 1024));
  // Mapped, not copied: the worker's own memory grows by far less than the
  // set it trains on (a copy would add all of it).
  EXPECT_LT(rss_anon_peak - rss_anon_idle, set_kb / 4)
      << "RssAnon grew from " << rss_anon_idle << " to " << rss_anon_peak
      << " kB on a " << set_kb << " kB set";
  EXPECT_EQ(worker.Stop(), 0) << worker.Log();
  EXPECT_EQ(server.Stop(), 0) << server.Log();
}

}  // namespace
