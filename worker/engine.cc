// Range tests and schedule training on top of Trainer; the torch edge where
// exceptions become Status values.
#include "worker/engine.h"

#include <torch/cuda.h>
#include <torch/version.h>
#ifdef LRTUNE_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#endif

#include <chrono>
#include <cmath>
#include <deque>
#include <new>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "worker/blas_core.h"
#include "worker/torch_internal.h"
#include "worker/trainer.h"

namespace lrtune::engine {
namespace internal {

std::string ExceptionMessage(const std::exception& e) {
  const auto* c10 = dynamic_cast<const c10::Error*>(&e);
  std::string msg = c10 != nullptr ? c10->what_without_backtrace() : e.what();
  if (msg.size() > 400) msg = msg.substr(0, 400) + "...";
  return msg;
}

absl::Status StatusFromException(const std::exception& e,
                                 const std::string& context) {
  const std::string msg = ExceptionMessage(e);
  const bool oom =
      dynamic_cast<const std::bad_alloc*>(&e) != nullptr ||
      absl::StrContains(msg, "out of memory") ||
      absl::StrContains(msg, "DefaultCPUAllocator: can't allocate");
  std::string full = absl::StrCat(context, ": ", msg);
  return oom ? absl::ResourceExhaustedError(full) : absl::InternalError(full);
}

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since)
      .count();
}

namespace {

// `d` passed ValidateJob: its device name is well formed.
absl::StatusOr<torch::Device> ResolveDevice(const DeviceOptions& d) {
  const bool cuda_ok = torch::cuda::is_available();
  torch::Device device(torch::kCPU);
  if (d.device == "auto") {
    if (cuda_ok) device = torch::Device(torch::kCUDA, 0);
  } else if (d.device == "cuda" || absl::StartsWith(d.device, "cuda:")) {
    int index = 0;
    if (d.device.size() > 5) (void)absl::SimpleAtoi(d.device.substr(5), &index);
    if (!cuda_ok) {
      return absl::FailedPreconditionError(absl::StrCat(
          "device ", d.device, " requested but no CUDA device is available (",
          TorchVersion(), ")"));
    }
    if (index < 0 || index >= static_cast<int>(torch::cuda::device_count())) {
      return absl::InvalidArgumentError(
          absl::StrCat("device.device ", d.device, ": index out of range, ",
                       torch::cuda::device_count(), " CUDA device(s)"));
    }
    device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  if (!device.is_cuda() && (d.cuda_graph || d.precision == Precision::kFp16)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "device.cuda_graph and device.precision fp16 need a CUDA device, and ",
        d.device, " is the CPU here; the CPU autocasts to bf16"));
  }
  return device;
}

// The CPU threads a job trains on (DeviceOptions::threads; 0:
// DefaultCpuThreads), shared between LibTorch's pool and OpenBLAS's as
// PlanCpuThreads says. On CUDA only LibTorch's count is set, as asked.
// Process-wide (engine.h).
void ApplyThreads(const JobSpec& job, const Dataset& data,
                  const torch::Device& device) {
  const int threads =
      job.device.threads > 0 ? job.device.threads : DefaultCpuThreads();
  if (device.is_cuda()) {
    if (job.device.threads > 0) torch::set_num_threads(threads);
    return;
  }
  bool gemm_bound = false;
  if (job.model.kind == ModelKind::kMlp) {
    int64_t in = 1;
    for (int64_t d : data.sample_shape) in *= d;
    gemm_bound = MlpParameterCount(in, job.model.hidden,
                                   data.num_classes > 0 ? data.num_classes
                                                        : data.target_width) >
                 kCpuMaxPackedParameters;
  }
  const CpuThreads plan = PlanCpuThreads(threads, gemm_bound);
  // No OpenBLAS here (LibTorch on MKL manages MKL's threads itself), or
  // OPENBLAS_NUM_THREADS set by the user: LibTorch gets the job's count.
  torch::set_num_threads(SetBlasThreads(plan.blas) ? plan.torch : threads);
}

}  // namespace

std::string DeviceName(const torch::Device& d) { return d.str(); }

std::string SkipMessage(int64_t step, double lr, double scale) {
  return absl::StrCat("step ", step, " (lr ", lr,
                      "): update skipped, gradients not finite; loss scale "
                      "now ",
                      scale);
}

absl::StatusOr<Setup> Prepare(const JobSpec& job, const Callbacks& cb) {
  LRTUNE_RETURN_IF_ERROR(ValidateJob(job));
  Setup s;
  LRTUNE_ASSIGN_OR_RETURN(s.device, ResolveDevice(job.device));
  LRTUNE_ASSIGN_OR_RETURN(s.data, internal::LoadDataset(job.data, s.device));
  ApplyThreads(job, s.data, s.device);
  if (cb.on_progress) {
    cb.on_progress(absl::StrCat(
        "loaded ", s.data.name, ": ", s.data.train_size(), " train, ",
        s.data.val_size(), " validation samples on ", DeviceName(s.device)));
  }
  return s;
}

}  // namespace internal

namespace {

using internal::Dataset;
using internal::PendingPoint;
using internal::Seconds;
using internal::Setup;
using internal::Trainer;
using Clock = std::chrono::steady_clock;

// Packed seeds' parameters are capped at this many values (1 GiB of float32
// parameters, and as much again per optimizer state).
constexpr int64_t kMaxPackedParameters = int64_t{1} << 28;
// Whether a range test's `seeds` train packed into one model, `first`
// being the first seed's: the spec allows it (MayPackSeeds: asked for, more
// than one seed, mlp or cnn, no validation metric, which is per model), and
// its parameters fit. On the CPU a model's step is compute-bound beyond
// kCpuMaxPackedParameters, and K packed steps cost what K separate ones do:
// the MLP 784-32-10 (25k) is ~10% faster packed, the MLP 784-256-256-10
// (270k) ~5% slower (bench/whole_process.md).
bool PackSeeds(const JobSpec& job, const RangeTestSpec& spec,
               const torch::Device& device, size_t seeds,
               internal::Model& first) {
  if (!MayPackSeeds(job, spec)) return false;
  const int64_t n = internal::ParameterCount(first);
  if (!device.is_cuda() && n > kCpuMaxPackedParameters) return false;
  return n * static_cast<int64_t>(seeds) <= kMaxPackedParameters;
}

absl::StatusOr<RangeTestResult> RangeTestImpl(const JobSpec& job,
                                              const RangeTestSpec& spec,
                                              const Callbacks& cb,
                                              const CancellationToken* cancel) {
  LRTUNE_RETURN_IF_ERROR(ValidateRangeTest(spec));
  if (spec.driver == RangeDriver::kClient) {
    return absl::InvalidArgumentError(
        "range_test.driver is client: the client trains this test in its own "
        "loop, not the engine");
  }
  if (spec.metric == RangeMetric::kValAccuracy &&
      job.loss != LossKind::kCrossEntropy) {
    return absl::InvalidArgumentError(
        "range_test.metric val_accuracy needs loss cross_entropy (an mse "
        "model has no accuracy); use val_loss");
  }
  LRTUNE_ASSIGN_OR_RETURN(Setup setup, internal::Prepare(job, cb));
  LRTUNE_ASSIGN_OR_RETURN(
      Schedule ramp, Schedule::Create(ScheduleSpec::Ramp(
                         spec.start_lr, spec.end_lr, spec.steps, spec.shape)));
  std::vector<uint64_t> seeds = spec.seeds;
  if (seeds.empty()) seeds.push_back(job.seed);
  RangeTestResult result;
  result.device = internal::DeviceName(setup.device);
  auto build = [&](uint64_t seed) {
    return internal::BuildModel(job.model, setup.data, job.loss, seed,
                                setup.device);
  };
  // The seeds run one after another, or packed into one model (all at
  // once) when PackSeeds says they may. The first seed's model is built
  // once, for both.
  LRTUNE_ASSIGN_OR_RETURN(std::unique_ptr<internal::Model> first,
                          build(seeds[0]));
  const bool pack = PackSeeds(job, spec, setup.device, seeds.size(), *first);
  std::vector<std::vector<uint64_t>> groups;
  if (pack) {
    groups.push_back(seeds);
    if (cb.on_progress) {
      cb.on_progress(absl::StrCat("packing ", seeds.size(),
                                  " seeds into one batched model"));
    }
  } else {
    for (uint64_t seed : seeds) groups.push_back({seed});
  }
  int base = 0;  // seed index of the group's first member
  for (const std::vector<uint64_t>& group : groups) {
    const int k = static_cast<int>(group.size());
    std::unique_ptr<internal::Model> model;
    if (pack) {
      std::vector<std::unique_ptr<internal::Model>> members;
      members.push_back(std::move(first));
      for (int m = 1; m < k; ++m) {
        LRTUNE_ASSIGN_OR_RETURN(std::unique_ptr<internal::Model> member,
                                build(group[m]));
        members.push_back(std::move(member));
      }
      LRTUNE_ASSIGN_OR_RETURN(model, internal::PackModels(job.model, members));
    } else if (first != nullptr) {
      model = std::move(first);  // group 0
    } else {
      LRTUNE_ASSIGN_OR_RETURN(model, build(group[0]));
    }
    LRTUNE_ASSIGN_OR_RETURN(
        std::unique_ptr<Trainer> trainer,
        Trainer::Create(job, setup.data, *model, group, setup.device));
    std::vector<DivergenceMonitor> monitors(
        k, DivergenceMonitor(spec.analysis.smoothing_beta,
                             spec.analysis.divergence_factor));
    std::vector<std::vector<CurvePoint>> curves(k);
    int live = k;  // members whose monitor has not said diverged
    std::deque<PendingPoint> pending;
    auto drain = [&](bool flush) {
      const std::vector<double> losses = trainer->TakeLosses(flush);
      for (size_t i = 0; i < losses.size(); i += k) {
        PendingPoint p = pending.front();
        pending.pop_front();
        for (int m = 0; m < k; ++m) {
          // Past divergence (another member still runs, or CUDA chunking).
          if (monitors[m].diverged()) continue;
          const double loss = losses[i + m];
          if (monitors[m].Add(loss)) --live;
          curves[m].push_back({p.step, p.lr, loss});
          if (cb.on_point) {
            cb.on_point({base + m, p.step, p.lr, p.momentum, loss,
                         monitors[m].smoothed(), p.elapsed, p.skipped});
          }
        }
      }
    };
    const Clock::time_point start = Clock::now();
    int skipped = 0;  // updates loss scaling skipped at step t
    for (int64_t t = 0; t < spec.steps && live > 0; ++t) {
      if (cancel != nullptr && cancel->cancelled()) {
        return absl::CancelledError(
            absl::StrCat("range test cancelled at step ", t, " of ",
                         k == 1 ? absl::StrCat("seed ", group[0])
                                : absl::StrCat(k, " packed seeds")));
      }
      const double lr = ramp.Lr(t);
      const std::optional<double> momentum = ramp.Momentum(t);
      if (!trainer->Step(t, lr, momentum)) {  // never packed (MayPackSeeds)
        ++skipped;
        ++result.skipped_updates;
        if (cb.on_progress) {
          cb.on_progress(internal::SkipMessage(t, lr, trainer->loss_scale()));
        }
        if (skipped < kMaxSkippedInARow) {
          --t;  // the same step again, at the smaller scale
          continue;
        }
        // Not finite at any scale: the gradients are NaN, which ends the
        // curve here as a non-finite loss would.
        monitors[0].Add(std::nan(""));
        --live;
        curves[0].push_back({t, lr, std::nan("")});
        if (cb.on_point) {
          cb.on_point({base, t, lr, momentum, std::nan(""),
                       monitors[0].smoothed(), Seconds(start), skipped});
        }
        break;
      }
      pending.push_back({t, lr, momentum, Seconds(start), skipped});
      skipped = 0;
      result.steps_run += live;
      drain(/*flush=*/false);
      if (spec.eval_every > 0 && (t + 1) % spec.eval_every == 0 &&
          live > 0) {  // never packed (PackSeeds)
        internal::EvalResult e = trainer->Evaluate(spec.eval_samples);
        Evaluation ev{base, t + 1, 0, lr, std::nan(""), e.loss, e.accuracy};
        result.evaluations.push_back(ev);
        if (cb.on_evaluation) cb.on_evaluation(ev);
      }
    }
    drain(/*flush=*/true);
    result.train_seconds += Seconds(start);
    const AnalysisOptions options =
        CurveAnalysisOptions(job, spec, trainer->steps_per_epoch());
    for (int m = 0; m < k; ++m) {
      // Smith's original test reads the validation metric instead: one
      // point per evaluation (never packed: PackSeeds), 1 - accuracy so
      // that lower is better as for a loss.
      std::vector<CurvePoint> metric_curve;
      if (spec.metric != RangeMetric::kTrainLoss) {
        for (const Evaluation& ev : result.evaluations) {
          if (ev.seed_index != base + m) continue;
          metric_curve.push_back({ev.step - 1, ev.lr,
                                  spec.metric == RangeMetric::kValLoss
                                      ? ev.val_loss
                                      : 1.0 - ev.val_accuracy});
        }
        if (metric_curve.empty()) {
          // The same curve every attempt: permanent.
          return absl::InvalidArgumentError(absl::StrCat(
              "range_test.metric ", RangeMetricName(spec.metric),
              ": the training diverged before the first evaluation (step ",
              spec.eval_every, "); evaluate more often or start lower"));
        }
      }
      LRTUNE_ASSIGN_OR_RETURN(
          Recommendation rec,
          AnalyzeCurve(
              spec.metric == RangeMetric::kTrainLoss ? curves[m] : metric_curve,
              options));
      result.per_seed.push_back(std::move(rec));
      result.curves.push_back(std::move(curves[m]));
    }
    base += k;
  }
  LRTUNE_ASSIGN_OR_RETURN(result.recommendation,
                          AggregateSeeds(result.per_seed));
  return result;
}

}  // namespace

absl::StatusOr<RangeTestResult> RunRangeTest(const JobSpec& job,
                                             const RangeTestSpec& spec,
                                             const Callbacks& callbacks,
                                             const CancellationToken* cancel) {
  try {
    return RangeTestImpl(job, spec, callbacks, cancel);
  } catch (const std::exception& e) {
    return internal::StatusFromException(e, "range test");
  }
}

absl::StatusOr<TrainResult> RunTraining(const JobSpec& job,
                                        const TrainSpec& spec,
                                        const Callbacks& callbacks,
                                        const CancellationToken* cancel) {
  try {
    return internal::TrainImpl(job, spec, callbacks, cancel);
  } catch (const std::exception& e) {
    return internal::StatusFromException(e, "training");
  }
}

std::string TorchVersion() {
#ifdef LRTUNE_WITH_CUDA
  const char* kind = "cuda";
#else
  const char* kind = "cpu";
#endif
  return absl::StrCat(TORCH_VERSION_MAJOR, ".", TORCH_VERSION_MINOR, ".",
                      TORCH_VERSION_PATCH, " (", kind, ")");
}

DeviceInfo DescribeDevice(const std::string& device) {
  DeviceInfo info;
  info.name = device;
#ifdef LRTUNE_WITH_CUDA
  int index = -1;
  if (absl::StartsWith(device, "cuda:") &&
      absl::SimpleAtoi(device.substr(5), &index) && index >= 0 &&
      index < static_cast<int>(torch::cuda::device_count())) {
    try {
      const cudaDeviceProp* prop = at::cuda::getDeviceProperties(index);
      info.gpu_name = prop->name;
      info.memory_bytes = static_cast<int64_t>(prop->totalGlobalMem);
      info.compute_capability = absl::StrCat(prop->major, ".", prop->minor);
    } catch (const std::exception&) {
      // Registering without the GPU's details beats not registering.
    }
  }
#endif
  return info;
}

}  // namespace lrtune::engine
