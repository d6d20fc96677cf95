// Load: many clients at once against a real coordinator and workers, with
// a training configuration so small (an 8-unit MLP on 256 synthetic
// samples) that the service, not the engine, is what is measured.
//
//   load_test [--clients 32] [--jobs 1] [--workers 4] [--slots 1]
//             [--server BIN --worker BIN]
//
// Meanwhile --cancels times a long range test is started and cancelled, and
// the time until its worker stops is measured.
// Each client submits --jobs jobs in turn, alternating a 2-seed range test
// and a 4-trial grid (2 schedules x 2 seeds), and watches each to its end.
// Checks, exiting 1 on any failure: every job succeeds, every stream is
// gap-free and free of duplicates (seq), every seed's or trial's curve has
// each step once, and the coordinator's peak memory stays under
// --max-rss-mb. Prints jobs/s, points/s, the submit and stream latency
// percentiles (stream: a point's receipt minus the time the coordinator
// stored it), and the coordinator's peak RSS. Used by ctest with a short
// configuration and as the load benchmark (bench/README.md) with a long
// one.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "grpcpp/grpcpp.h"
#include "lrtune/v1/lrtune.grpc.pb.h"
#include "small_run.h"
#include "test_process.h"

namespace {

namespace v1 = lrtune::v1;
using Clock = std::chrono::steady_clock;
using lrtune::testing::FreePort;
using lrtune::testing::MakeTempDir;
using lrtune::testing::Process;

struct Options {
  int clients = 32;
  int jobs = 1;
  int workers = 4;
  int slots = 1;
  int max_rss_mb = 512;
  int cancels = 3;  // cancellations measured while the load runs
  std::string server_bin = LRTUNE_SERVER_BIN;
  std::string worker_bin = LRTUNE_WORKER_BIN;
};

// How long a child has to exit on SIGTERM at the end before it is killed.
constexpr std::chrono::seconds kStopWithin(10);

// Peak resident set of a process, in MiB (VmHWM), or -1.
double PeakRssMb(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) {
      return std::atof(line.c_str() + 6) / 1024.0;
    }
  }
  return -1;
}

v1::RunSpec TinyRun() {
  v1::RunSpec run = lrtune::testing::SmallRun(8, 32);
  run.mutable_data()->set_synthetic_samples(256);
  return run;
}

v1::SubmitJobRequest RangeTestJob() {
  v1::SubmitJobRequest request;
  *request.mutable_range_test()->mutable_run() = TinyRun();
  v1::RangeTestSpec* rt = request.mutable_range_test()->mutable_range_test();
  rt->set_steps(40);
  rt->set_start_lr(1e-4);
  rt->set_end_lr(1);
  rt->add_seeds(1);
  rt->add_seeds(2);
  return request;
}

v1::SubmitJobRequest GridJob() {
  v1::SubmitJobRequest request;
  v1::GridSearchJob* grid = request.mutable_grid();
  *grid->mutable_run() = TinyRun();
  grid->mutable_train()->set_steps(24);
  auto* schedules = grid->mutable_grid()->add_axes()->mutable_schedules();
  v1::ScheduleSpec* one_cycle = schedules->add_values();
  one_cycle->set_kind(v1::SCHEDULE_KIND_ONE_CYCLE);
  one_cycle->set_max_lr(0.1);
  v1::ScheduleSpec* cosine = schedules->add_values();
  cosine->set_kind(v1::SCHEDULE_KIND_COSINE);
  cosine->set_base_lr(0.1);
  auto* seeds = grid->mutable_grid()->add_axes()->mutable_seeds();
  seeds->add_values(1);
  seeds->add_values(2);
  return request;
}

struct Stats {
  std::mutex mu;
  std::vector<double> submit_ms;
  std::vector<double> stream_ms;
  int64_t points = 0;
  int jobs_done = 0;
  std::vector<std::string> errors;

  void Error(std::string e) {
    std::lock_guard<std::mutex> lock(mu);
    if (errors.size() < 20) errors.push_back(std::move(e));
  }
};

// Cancels a running range test while the load runs and measures how long
// the cancellation takes to reach the worker: from the CancelJob call to
// the end of the task's attempt, which the worker reports once its
// training loop has stopped (TaskAttempt.end_time, CANCELLED). The same
// machine's clock on both sides. Returns milliseconds, or -1.
double MeasureCancel(v1::LrTune::Stub& stub, Stats& stats) {
  v1::SubmitJobRequest request;
  *request.mutable_range_test()->mutable_run() = TinyRun();
  v1::RangeTestSpec* rt = request.mutable_range_test()->mutable_range_test();
  rt->set_steps(1000000);  // runs until cancelled
  rt->set_start_lr(1e-6);
  rt->set_end_lr(1e-5);
  v1::Job job;
  {
    grpc::ClientContext context;
    grpc::Status status = stub.SubmitJob(&context, request, &job);
    if (!status.ok()) {
      stats.Error("cancel: SubmitJob: " + status.error_message());
      return -1;
    }
  }
  {  // wait until it trains: 20 points
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(120));
    v1::WatchJobRequest watch;
    watch.set_job_id(job.job_id());
    auto reader = stub.WatchJob(&context, watch);
    v1::JobEvent event;
    int points = 0;
    while (points < 20 && reader->Read(&event)) points += event.has_point();
    context.TryCancel();
    reader->Finish();
  }
  const auto cancelled_at = std::chrono::system_clock::now();
  {
    v1::CancelJobRequest cancel;
    cancel.set_job_id(job.job_id());
    grpc::ClientContext context;
    grpc::Status status = stub.CancelJob(&context, cancel, &job);
    if (!status.ok()) {
      stats.Error("cancel: CancelJob: " + status.error_message());
      return -1;
    }
  }
  for (int i = 0; i < 1000; ++i) {
    v1::GetJobRequest get;
    get.set_job_id(job.job_id());
    grpc::ClientContext context;
    if (stub.GetJob(&context, get, &job).ok()) {
      for (const v1::TaskAttempt& a : job.attempts()) {
        if (a.outcome() != v1::ATTEMPT_OUTCOME_CANCELLED) continue;
        const auto ended = std::chrono::system_clock::time_point(
            std::chrono::seconds(a.end_time().seconds()) +
            std::chrono::nanoseconds(a.end_time().nanos()));
        return std::chrono::duration<double, std::milli>(ended - cancelled_at)
            .count();
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  stats.Error("cancel: the worker never reported the cancelled attempt");
  return -1;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * v.size()));
  return v[i];
}

// Submits and watches one job; checks its stream.
void RunJob(v1::LrTune::Stub& stub, const v1::SubmitJobRequest& request,
            Stats& stats) {
  v1::Job job;
  const auto t0 = Clock::now();
  {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(60));
    grpc::Status status = stub.SubmitJob(&context, request, &job);
    if (!status.ok()) {
      stats.Error("SubmitJob: " + status.error_message());
      return;
    }
  }
  const double submit_ms =
      std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(600));
  v1::WatchJobRequest watch;
  watch.set_job_id(job.job_id());
  auto reader = stub.WatchJob(&context, watch);
  v1::JobEvent event;
  uint64_t last_seq = 0;
  std::map<std::pair<int, int>, std::vector<int64_t>> curves;
  std::vector<double> stream_ms;
  v1::JobState final_state = v1::JOB_STATE_UNSPECIFIED;
  while (reader->Read(&event)) {
    if (event.seq() != last_seq + 1) {
      stats.Error(job.job_id() + ": seq " + std::to_string(event.seq()) +
                  " after " + std::to_string(last_seq));
    }
    last_seq = event.seq();
    if (event.has_point()) {
      const v1::Origin& o = event.point().origin();
      curves[{o.has_trial_index() ? o.trial_index() : -1,
              event.point().point().seed_index()}]
          .push_back(event.point().point().step());
      const auto stored = std::chrono::system_clock::time_point(
          std::chrono::seconds(event.time().seconds()) +
          std::chrono::nanoseconds(event.time().nanos()));
      stream_ms.push_back(std::chrono::duration<double, std::milli>(
                              std::chrono::system_clock::now() - stored)
                              .count());
    }
    if (event.has_state_changed()) final_state = event.state_changed().state();
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) stats.Error(job.job_id() + ": " + status.error_message());
  if (final_state != v1::JOB_STATE_SUCCEEDED) {
    stats.Error(job.job_id() + ": ended " + v1::JobState_Name(final_state));
  }
  int64_t points = 0;
  for (const auto& [key, steps] : curves) {
    for (size_t i = 0; i < steps.size(); ++i) {
      if (steps[i] != static_cast<int64_t>(i)) {
        stats.Error(job.job_id() + ": a curve repeats or skips step " +
                    std::to_string(i));
        break;
      }
    }
    points += static_cast<int64_t>(steps.size());
  }
  std::lock_guard<std::mutex> lock(stats.mu);
  stats.submit_ms.push_back(submit_ms);
  stats.stream_ms.insert(stats.stream_ms.end(), stream_ms.begin(),
                         stream_ms.end());
  stats.points += points;
  ++stats.jobs_done;
}

int Main(const Options& opt) {
  const std::filesystem::path dir = MakeTempDir("lrtune_load");
  const std::string address = "127.0.0.1:" + std::to_string(FreePort());
  Process server(
      {opt.server_bin, "--listen", address, "--db", (dir / "jobs.db").string()},
      (dir / "server.log").string());
  std::vector<Process> workers;
  for (int i = 0; i < opt.workers; ++i) {
    workers.emplace_back(
        std::vector<std::string>{
            opt.worker_bin, "--server", address, "--devices", "cpu", "--slots",
            std::to_string(opt.slots), "--threads", std::to_string(opt.slots),
            "--worker-id", "load-w" + std::to_string(i)},
        (dir / ("worker" + std::to_string(i) + ".log")).string());
  }
  auto channel =
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  if (!channel->WaitForConnected(std::chrono::system_clock::now() +
                                 std::chrono::seconds(20))) {
    std::fprintf(stderr, "load_test: no server on %s\n", address.c_str());
    return 1;
  }

  Stats stats;
  const auto start = Clock::now();
  std::vector<std::thread> clients;
  for (int c = 0; c < opt.clients; ++c) {
    clients.emplace_back([&, c] {
      // One channel per client, as separate programs would have.
      grpc::ChannelArguments args;
      args.SetInt("lrtune.client", c);  // distinct channels, not shared
      auto own = grpc::CreateCustomChannel(
          address, grpc::InsecureChannelCredentials(), args);
      // Connected before the clock starts: submit latency is the RPC's.
      own->WaitForConnected(std::chrono::system_clock::now() +
                            std::chrono::seconds(20));
      auto stub = v1::LrTune::NewStub(own);
      for (int j = 0; j < opt.jobs; ++j) {
        RunJob(*stub, (c + j) % 2 == 0 ? RangeTestJob() : GridJob(), stats);
      }
    });
  }
  std::vector<double> cancel_ms;
  std::thread canceller([&] {
    auto stub = v1::LrTune::NewStub(channel);
    for (int i = 0; i < opt.cancels; ++i) {
      const double ms = MeasureCancel(*stub, stats);
      if (ms >= 0) cancel_ms.push_back(ms);
    }
  });
  for (std::thread& t : clients) t.join();
  canceller.join();
  const double seconds =
      std::chrono::duration<double>(Clock::now() - start).count();
  const double rss = PeakRssMb(server.pid());
  for (Process& w : workers) w.Stop(kStopWithin);
  server.Stop(kStopWithin);

  const int expected = opt.clients * opt.jobs;
  std::printf(
      "load_test: %d clients x %d jobs, %d workers x %d slots (cpu)\n"
      "  jobs       %d/%d in %.1f s = %.2f jobs/s\n"
      "  points     %lld = %.0f points/s\n"
      "  submit     p50 %.1f ms  p99 %.1f ms\n"
      "  stream     p50 %.1f ms  p99 %.1f ms (point stored -> received)\n"
      "  cancel     %zu under load: median %.0f ms, max %.0f ms (CancelJob -> "
      "the worker's attempt ended)\n"
      "  server RSS peak %.1f MiB (limit %d)\n",
      opt.clients, opt.jobs, opt.workers, opt.slots, stats.jobs_done, expected,
      seconds, stats.jobs_done / seconds, static_cast<long long>(stats.points),
      stats.points / seconds, Percentile(stats.submit_ms, 0.5),
      Percentile(stats.submit_ms, 0.99), Percentile(stats.stream_ms, 0.5),
      Percentile(stats.stream_ms, 0.99), cancel_ms.size(),
      Percentile(cancel_ms, 0.5),
      cancel_ms.empty() ? 0.0
                        : *std::max_element(cancel_ms.begin(), cancel_ms.end()),
      rss, opt.max_rss_mb);
  bool ok = stats.errors.empty() && stats.jobs_done == expected;
  for (const std::string& e : stats.errors) {
    std::fprintf(stderr, "load_test: %s\n", e.c_str());
  }
  if (rss > opt.max_rss_mb) {
    std::fprintf(stderr, "load_test: server peak RSS %.1f MiB > %d MiB\n", rss,
                 opt.max_rss_mb);
    ok = false;
  }
  if (ok) {
    std::filesystem::remove_all(dir);
  } else {
    std::fprintf(stderr, "load_test: FAILED; logs in %s\n", dir.c_str());
  }
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "load_test: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--clients") {
      opt.clients = std::atoi(value().c_str());
    } else if (a == "--jobs") {
      opt.jobs = std::atoi(value().c_str());
    } else if (a == "--workers") {
      opt.workers = std::atoi(value().c_str());
    } else if (a == "--slots") {
      opt.slots = std::atoi(value().c_str());
    } else if (a == "--cancels") {
      opt.cancels = std::atoi(value().c_str());
    } else if (a == "--max-rss-mb") {
      opt.max_rss_mb = std::atoi(value().c_str());
    } else if (a == "--server") {
      opt.server_bin = value();
    } else if (a == "--worker") {
      opt.worker_bin = value();
    } else {
      std::fprintf(stderr,
                   "usage: load_test [--clients N] [--jobs N] [--workers N] "
                   "[--slots N] [--cancels N] [--max-rss-mb MB] "
                   "[--server BIN] "
                   "[--worker BIN]\n");
      return a == "--help" ? 0 : 2;
    }
  }
  if (opt.clients < 1 || opt.jobs < 1 || opt.workers < 1 || opt.slots < 1) {
    std::fprintf(stderr, "load_test: counts must be >= 1\n");
    return 2;
  }
  return Main(opt);
}
