// End to end on loopback: the real lrtune-server and lrtune-worker
// processes, a client submitting a 2-seed range test (spirals, mlp, 60
// steps, cpu, 1 thread) through LrTune.RangeTest, read to its terminal
// event. Checks the curve per seed is gap-free from step 0, both per-seed
// and the aggregate recommendations arrive, the job succeeds, and the
// worker exits 0 on SIGTERM.
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "lrtune/v1/lrtune.grpc.pb.h"

extern char** environ;

namespace {

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

pid_t Spawn(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const std::string& a : args)
    argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ) != 0) {
    return -1;
  }
  return pid;
}

// Sends SIGTERM and returns the exit status (-1: killed after 30 s).
int Stop(pid_t pid) {
  kill(pid, SIGTERM);
  for (int i = 0; i < 300; ++i) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  return -1;
}

TEST(WorkerAgentEndToEnd, TwoSeedRangeTestCompletes) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() /
      ("lrtune_worker_agent_test_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const std::string address = "127.0.0.1:" + std::to_string(FreePort());
  pid_t server = Spawn({LRTUNE_SERVER_BIN, "--listen", address, "--db",
                        (dir / "jobs.db").string()});
  ASSERT_GT(server, 0);
  pid_t worker = Spawn({LRTUNE_WORKER_BIN, "--server", address, "--devices",
                        "cpu", "--slots", "1", "--threads", "1"});
  ASSERT_GT(worker, 0);

  auto channel =
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  ASSERT_TRUE(channel->WaitForConnected(std::chrono::system_clock::now() +
                                        std::chrono::seconds(20)));
  auto stub = lrtune::v1::LrTune::NewStub(channel);

  lrtune::v1::RangeTestRequest request;
  lrtune::v1::RunSpec& run = *request.mutable_run();
  run.mutable_model()->set_kind(lrtune::v1::MODEL_KIND_MLP);
  run.mutable_model()->add_hidden(32);
  run.mutable_data()->set_name("spirals");
  run.set_batch_size(64);
  run.mutable_device()->set_device("cpu");
  run.mutable_device()->set_threads(1);
  lrtune::v1::RangeTestSpec& rt = *request.mutable_range_test();
  rt.set_steps(60);
  rt.set_start_lr(1e-5);
  rt.set_end_lr(10);
  rt.add_seeds(1);
  rt.add_seeds(2);

  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(120));
  auto reader = stub->RangeTest(&context, request);
  lrtune::v1::JobEvent event;
  std::map<int, std::vector<int64_t>> steps;  // seed_index -> steps
  int per_seed = 0;
  bool aggregate = false;
  lrtune::v1::JobState final_state = lrtune::v1::JOB_STATE_UNSPECIFIED;
  std::string reason;
  uint64_t last_seq = 0;
  while (reader->Read(&event)) {
    EXPECT_EQ(event.seq(), last_seq + 1);
    last_seq = event.seq();
    if (event.has_point()) {
      steps[event.point().origin().seed_index()].push_back(
          event.point().point().step());
    } else if (event.has_recommendation()) {
      if (event.recommendation().has_seed_index()) {
        ++per_seed;
      } else {
        aggregate = true;
        EXPECT_EQ(event.recommendation().recommendation().seeds(), 2);
      }
    } else if (event.has_state_changed()) {
      final_state = event.state_changed().state();
      reason = event.state_changed().reason();
    }
  }
  grpc::Status status = reader->Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(final_state, lrtune::v1::JOB_STATE_SUCCEEDED) << reason;
  EXPECT_EQ(per_seed, 2);
  EXPECT_TRUE(aggregate);
  ASSERT_EQ(steps.size(), 2u);
  for (const auto& [seed, curve] : steps) {
    ASSERT_GE(curve.size(), 10u) << "seed " << seed;
    EXPECT_LE(curve.size(), 60u);
    for (size_t i = 0; i < curve.size(); ++i) {
      ASSERT_EQ(curve[i], static_cast<int64_t>(i)) << "seed " << seed;
    }
  }

  EXPECT_EQ(Stop(worker), 0);
  Stop(server);
  std::filesystem::remove_all(dir);
}

}  // namespace
