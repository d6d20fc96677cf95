// engine_bench: range-test throughput of the engine on Fashion-MNIST, for
// comparison with bench/pytorch_loop.py (same model, data, batch, optimizer
// and thread count). Prints one JSON line with steps_per_s.
//
//   engine_bench --model tiny_mlp|mlp|cnn --device cpu|cuda --threads 1
//                --steps 1000 --batch 128 [--cuda-graph] [--bf16]
#include <cstdio>
#include <cstdlib>
#include <string>

#include "nlohmann/json.hpp"
#include "worker/engine.h"

namespace {

// Flags, read once in main.
struct Options {
  std::string model = "mlp";  // tiny_mlp (784-32-10), mlp (784-256-256-10), cnn
  std::string device = "cpu";
  int threads = 1;      // torch::set_num_threads
  int64_t steps = 500;  // timed steps
  int64_t warmup = 20;  // untimed steps first
  int64_t batch = 128;
  int64_t subset = 0;  // training samples; 0 = all 60000
  bool cuda_graph = false;
  bool bf16 = false;
  int seeds = 1;         // K curves, packed unless no_pack
  bool no_pack = false;  // RangeTestSpec::pack_seeds = false
};

int Usage(const std::string& msg) {
  std::fprintf(stderr,
               "%s\nusage: engine_bench --model tiny_mlp|mlp|cnn --device "
               "cpu|cuda --threads N --steps S --batch B [--warmup W] "
               "[--subset N] [--cuda-graph] [--bf16] [--seeds K] "
               "[--no-pack]\n"
               "steps_per_s counts every seed's steps: with --seeds K it is "
               "K seeds' throughput\n",
               msg.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace lrtune::engine;
  TuneAllocatorForTraining();
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--model") {
      o.model = next();
    } else if (a == "--device") {
      o.device = next();
    } else if (a == "--threads") {
      o.threads = std::atoi(next().c_str());
    } else if (a == "--steps") {
      o.steps = std::atoll(next().c_str());
    } else if (a == "--warmup") {
      o.warmup = std::atoll(next().c_str());
    } else if (a == "--batch") {
      o.batch = std::atoll(next().c_str());
    } else if (a == "--subset") {
      o.subset = std::atoll(next().c_str());
    } else if (a == "--cuda-graph") {
      o.cuda_graph = true;
    } else if (a == "--bf16") {
      o.bf16 = true;
    } else if (a == "--seeds") {
      o.seeds = std::atoi(next().c_str());
      if (o.seeds < 1 || o.seeds > 64) return Usage("--seeds must be 1..64");
    } else if (a == "--no-pack") {
      o.no_pack = true;
    } else {
      return Usage("unknown flag " + a);
    }
  }
  JobSpec job;
  job.data.name = "fashion-mnist";
  job.data.subset = o.subset;
  job.data.validation_subset = 256;
  job.batch_size = o.batch;
  job.device.device = o.device;
  job.device.threads = o.threads;
  job.device.cuda_graph = o.cuda_graph;
  if (o.bf16) job.device.precision = Precision::kBf16;
  if (o.model == "tiny_mlp") {
    job.model.hidden = {32};
  } else if (o.model == "mlp") {
    job.model.hidden = {256, 256};
  } else if (o.model == "cnn") {
    job.model.kind = ModelKind::kCnn;
  } else {
    return Usage("--model must be tiny_mlp, mlp or cnn");
  }
  // A gentle ramp: the benchmark measures steps, not divergence.
  RangeTestSpec spec;
  spec.start_lr = 1e-3;
  spec.end_lr = 5e-2;
  spec.analysis.divergence_factor = 1e9;
  for (int s = 0; s < o.seeds; ++s) spec.seeds.push_back(s);
  spec.pack_seeds = !o.no_pack;
  Callbacks none;
  if (o.warmup >= 2) {
    spec.steps = o.warmup;
    absl::StatusOr<RangeTestResult> w = RunRangeTest(job, spec, none);
    if (!w.ok()) {
      std::fprintf(stderr, "warmup: %s\n", w.status().ToString().c_str());
      return 1;
    }
  }
  spec.steps = o.steps;
  absl::StatusOr<RangeTestResult> r = RunRangeTest(job, spec, none);
  if (!r.ok()) {
    std::fprintf(stderr, "%s\n", r.status().ToString().c_str());
    return 1;
  }
  nlohmann::json out = {
      {"impl", "engine"},
      {"model", o.model},
      {"device", r->device},
      {"threads", o.threads},
      {"batch", o.batch},
      {"steps", r->steps_run},
      {"seconds", r->train_seconds},
      {"steps_per_s", r->steps_run / r->train_seconds},
      {"cuda_graph", o.cuda_graph},
      {"bf16", o.bf16},
      {"seeds", o.seeds},
      {"packed", !o.no_pack && o.seeds > 1},
      {"torch", TorchVersion()},
  };
  std::printf("%s\n", out.dump().c_str());
  return 0;
}
