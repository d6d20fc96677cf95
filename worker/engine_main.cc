// lrtune-engine: runs one JSON job (range test or training) without a
// server and prints JSON lines: progress, points, evaluations, then one
// result (or error) line. Exit status 0 on success, 1 on a failed job, 2 on
// bad usage.
//
//   lrtune-engine --job job.json [--device cuda] [--threads 1] [--quiet]
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "worker/engine.h"
#include "worker/job_json.h"

namespace {

// Flags, read once in main. Defaults in comments.
struct Options {
  std::string job_path;  // required
  std::string device;    // "": the job's
  int threads = -1;      // -1: the job's
  bool quiet = false;    // false: print every point
};

int Usage(const char* msg) {
  std::fprintf(stderr,
               "%s\nusage: lrtune-engine --job job.json [--device DEV] "
               "[--threads N] [--quiet]\n",
               msg);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace lrtune::engine;
  TuneAllocatorForTraining();
  Options opt;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> const char* {
      return i + 1 < argc ? argv[++i] : nullptr;
    };
    if (a == "--job") {
      const char* v = value();
      if (v == nullptr) return Usage("--job needs a path");
      opt.job_path = v;
    } else if (a == "--device") {
      const char* v = value();
      if (v == nullptr) return Usage("--device needs a value");
      opt.device = v;
    } else if (a == "--threads") {
      const char* v = value();
      if (v == nullptr) return Usage("--threads needs a value");
      opt.threads = std::atoi(v);
    } else if (a == "--quiet") {
      opt.quiet = true;
    } else if (a == "--version") {
      std::printf("lrtune-engine, LibTorch %s\n", TorchVersion().c_str());
      return 0;
    } else {
      return Usage(("unknown flag " + a).c_str());
    }
  }
  if (opt.job_path.empty()) return Usage("--job is required");
  std::ifstream in(opt.job_path);
  if (!in) return Usage(("cannot read " + opt.job_path).c_str());
  std::stringstream text;
  text << in.rdbuf();
  const size_t slash = opt.job_path.rfind('/');
  const std::string base =
      slash == std::string::npos ? "." : opt.job_path.substr(0, slash);

  absl::StatusOr<EngineJob> job = ParseJobJson(text.str(), base);
  if (!job.ok()) {
    std::cout << ErrorToJsonLine(job.status()) << std::endl;
    return 1;
  }
  if (!opt.device.empty()) job->job.device.device = opt.device;
  if (opt.threads >= 0) job->job.device.threads = opt.threads;

  Callbacks cb;
  if (!opt.quiet) {
    cb.on_point = [](const StepPoint& p) {
      std::cout << PointToJsonLine(p) << "\n";
    };
  }
  cb.on_evaluation = [](const Evaluation& e) {
    std::cout << EvaluationToJsonLine(e) << "\n";
  };
  cb.on_progress = [](const std::string& m) {
    std::cout << ProgressToJsonLine(m) << std::endl;
  };
  absl::Status status;
  if (job->kind == EngineJob::Kind::kRangeTest) {
    absl::StatusOr<RangeTestResult> r =
        RunRangeTest(job->job, job->range_test, cb);
    if (r.ok()) std::cout << RangeTestResultToJsonLine(*r) << std::endl;
    status = r.status();
  } else {
    absl::StatusOr<TrainResult> r = RunTraining(job->job, job->train, cb);
    if (r.ok()) std::cout << TrainResultToJsonLine(*r) << std::endl;
    status = r.status();
  }
  if (!status.ok()) {
    std::cout << ErrorToJsonLine(status) << std::endl;
    return 1;
  }
  return 0;
}
