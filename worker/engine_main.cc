// lrtune-engine: runs one JSON job (range test or training) without a
// server, for debugging, benchmarks and GPU checks. The job format is
// worker/job_json.h's; examples/ has ready ones.
//
//   lrtune-engine --job examples/range-test.json [--format text]
//
// --format jsonl (default) prints JSON lines: progress, points, evaluations,
// then one result (or error) line. --format text prints progress and the
// result for a person. Exit status 0 on success, 1 on a failed job, 2 on
// bad usage.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "core/recommendation_format.h"
#include "worker/blas_core.h"
#include "worker/engine.h"
#include "worker/job_json.h"

namespace {

using namespace lrtune::engine;  // NOLINT: a main file

constexpr char kUsage[] =
    "usage: lrtune-engine --job JOB.json [--format jsonl|text] [--device DEV]\n"
    "                     [--threads N] [--quiet]\n"
    "\n"
    "Runs one range test or training job with the LibTorch engine, no server.\n"
    "\n"
    "  --job FILE      the job (format: worker/job_json.h; examples/*.json)\n"
    "  --format F      jsonl: a JSON line per point, evaluation and result\n"
    "                  (default); text: progress and a summary for a person\n"
    "  --device DEV    override the job's device: cpu, cuda, cuda:1, auto\n"
    "  --threads N     override the job's CPU threads (0: all cores)\n"
    "  --quiet         jsonl without the per-step points\n"
    "  --version       print the LibTorch version\n";

// Flags, read once in main. Defaults in comments.
struct Options {
  std::string job_path;  // required
  bool text = false;     // false: JSON lines
  std::string device;    // "": the job's
  int threads = -1;      // -1: the job's
  bool quiet = false;    // false: print every point (jsonl)
};

int Usage(const std::string& msg) {
  std::fprintf(stderr, "lrtune-engine: %s\n\n%s", msg.c_str(), kUsage);
  return 2;
}

// Text mode: one line per tenth of a curve, so long runs show progress.
Callbacks TextCallbacks(const EngineJob& job) {
  const int64_t total = job.kind == EngineJob::Kind::kRangeTest
                            ? job.range_test.steps
                            : job.train.steps;
  const int64_t every = total > 0 ? std::max<int64_t>(1, total / 10) : 100;
  Callbacks cb;
  cb.on_point = [total, every](const StepPoint& p) {
    if ((p.step + 1) % every != 0) return;
    std::fprintf(stderr,
                 "  seed %d  step %6lld%s  lr %-10.3g loss %-9.4g smoothed "
                 "%-9.4g %6.1fs\n",
                 p.seed_index, static_cast<long long>(p.step + 1),
                 total > 0 ? absl::StrFormat("/%d", total).c_str() : "", p.lr,
                 p.loss, p.smoothed, p.elapsed_s);
  };
  cb.on_evaluation = [](const Evaluation& e) {
    std::fprintf(stderr,
                 "  eval  epoch %lld step %lld  val_loss %.4g  val_acc %.4g\n",
                 static_cast<long long>(e.epoch),
                 static_cast<long long>(e.step), e.val_loss, e.val_accuracy);
  };
  cb.on_progress = [](const std::string& m) {
    std::fprintf(stderr, "%s\n", m.c_str());
  };
  return cb;
}

Callbacks JsonCallbacks(bool quiet) {
  Callbacks cb;
  if (!quiet) {
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
  return cb;
}

void PrintRangeTestText(const RangeTestResult& r) {
  std::printf("range test on %s: %lld steps in %.1f s (%.0f steps/s)\n",
              r.device.c_str(), static_cast<long long>(r.steps_run),
              r.train_seconds,
              r.train_seconds > 0 ? r.steps_run / r.train_seconds : 0.0);
  std::printf("%s", lrtune::FormatRecommendation(r.recommendation).c_str());
}

void PrintTrainText(const TrainResult& r) {
  std::printf("training: %lld steps in %.1f s\n",
              static_cast<long long>(r.steps), r.train_seconds);
  std::printf("  final  val_loss %.4g  val_accuracy %.4g  (epoch %lld)\n",
              r.final_eval.val_loss, r.final_eval.val_accuracy,
              static_cast<long long>(r.final_eval.epoch));
  std::printf("  best   val_loss %.4g  val_accuracy %.4g  (epoch %lld)\n",
              r.best_eval.val_loss, r.best_eval.val_accuracy,
              static_cast<long long>(r.best_eval.epoch));
}

}  // namespace

int main(int argc, char** argv) {
  ReexecWithBlasCore(argv);  // OpenBLAS's kernels (worker/blas_core.h)
  TuneAllocatorForTraining();
  Options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--help" || a == "-h") {
      std::printf("%s", kUsage);
      return 0;
    } else if (a == "--version") {
      std::printf("lrtune-engine, LibTorch %s\n", TorchVersion().c_str());
      return 0;
    } else if (a == "--quiet") {
      opt.quiet = true;
    } else if (a == "--job" || a == "--device" || a == "--format" ||
               a == "--threads") {
      if (!has_value) return Usage(a + " needs a value");
      const std::string v = argv[++i];
      if (a == "--job") {
        opt.job_path = v;
      } else if (a == "--device") {
        opt.device = v;
      } else if (a == "--format") {
        if (v != "text" && v != "jsonl") {
          return Usage("--format must be jsonl or text, got '" + v + "'");
        }
        opt.text = v == "text";
      } else if (!absl::SimpleAtoi(v, &opt.threads) || opt.threads < 0) {
        return Usage("--threads must be an integer >= 0, got '" + v + "'");
      }
    } else {
      return Usage("unknown flag " + a);
    }
  }
  if (opt.job_path.empty()) return Usage("--job is required");
  std::ifstream in(opt.job_path);
  if (!in) return Usage("cannot read " + opt.job_path);
  std::stringstream text;
  text << in.rdbuf();
  const size_t slash = opt.job_path.rfind('/');
  const std::string base =
      slash == std::string::npos ? "." : opt.job_path.substr(0, slash);

  absl::StatusOr<EngineJob> job = ParseJobJson(text.str(), base);
  absl::Status status = job.status();
  if (status.ok()) {
    if (!opt.device.empty()) job->job.device.device = opt.device;
    if (opt.threads >= 0) job->job.device.threads = opt.threads;
    const Callbacks cb =
        opt.text ? TextCallbacks(*job) : JsonCallbacks(opt.quiet);
    if (job->kind == EngineJob::Kind::kRangeTest) {
      absl::StatusOr<RangeTestResult> r =
          RunRangeTest(job->job, job->range_test, cb);
      if (r.ok() && opt.text) PrintRangeTestText(*r);
      if (r.ok() && !opt.text) {
        std::cout << RangeTestResultToJsonLine(*r) << std::endl;
      }
      status = r.status();
    } else {
      absl::StatusOr<TrainResult> r = RunTraining(job->job, job->train, cb);
      if (r.ok() && opt.text) PrintTrainText(*r);
      if (r.ok() && !opt.text) {
        std::cout << TrainResultToJsonLine(*r) << std::endl;
      }
      status = r.status();
    }
  }
  if (!status.ok()) {
    if (opt.text) {
      std::fprintf(stderr, "lrtune-engine: %s: %s\n", opt.job_path.c_str(),
                   std::string(status.message()).c_str());
    } else {
      std::cout << ErrorToJsonLine(status) << std::endl;
    }
    return 1;
  }
  return 0;
}
