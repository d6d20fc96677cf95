#include "worker/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/version.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <thread>

#include "absl/strings/str_cat.h"

#ifdef LRTUNE_WITH_CUDA
#include <ATen/autocast_mode.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/cuda.h>
#endif

namespace lrtune::engine::internal {
namespace {

#ifdef LRTUNE_WITH_CUDA
// bf16 autocast of the forward pass and the loss on CUDA, for one scope.
class Bf16Autocast {
 public:
  explicit Bf16Autocast(bool on) : on_(on) {
    if (!on_) return;
#if TORCH_VERSION_MAJOR > 2 || \
    (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    at::autocast::set_autocast_enabled(at::kCUDA, true);
    at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
#else
    at::autocast::set_enabled(true);
    at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
#endif
    // The weight cast cache must stay off inside CUDA-graph capture.
    at::autocast::set_autocast_cache_enabled(false);
  }
  ~Bf16Autocast() {
    if (!on_) return;
#if TORCH_VERSION_MAJOR > 2 || \
    (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    at::autocast::set_autocast_enabled(at::kCUDA, false);
#else
    at::autocast::set_enabled(false);
#endif
    at::autocast::clear_cache();
  }
  Bf16Autocast(const Bf16Autocast&) = delete;
  Bf16Autocast& operator=(const Bf16Autocast&) = delete;

 private:
  bool on_;
};
#endif

std::unique_ptr<torch::optim::Optimizer> MakeOptimizer(
    const OptimizerSpec& o, std::vector<torch::Tensor> params) {
  namespace optim = torch::optim;
  switch (o.kind) {
    case OptimizerKind::kSgd:
      return std::make_unique<optim::SGD>(params,
                                          optim::SGDOptions(0.01)
                                              .momentum(o.momentum)
                                              .nesterov(o.nesterov)
                                              .weight_decay(o.weight_decay));
    case OptimizerKind::kAdam:
      return std::make_unique<optim::Adam>(
          params, optim::AdamOptions(1e-3)
                      .betas(std::make_tuple(o.beta1, o.beta2))
                      .eps(o.eps)
                      .weight_decay(o.weight_decay));
    case OptimizerKind::kAdamW:
      return std::make_unique<optim::AdamW>(
          params, optim::AdamWOptions(1e-3)
                      .betas(std::make_tuple(o.beta1, o.beta2))
                      .eps(o.eps)
                      .weight_decay(o.weight_decay));
    case OptimizerKind::kRmsProp:
      return std::make_unique<optim::RMSprop>(
          params, optim::RMSpropOptions(1e-2)
                      .alpha(o.alpha)
                      .eps(o.eps)
                      .momentum(o.momentum)
                      .weight_decay(o.weight_decay));
  }
  return nullptr;
}

}  // namespace

struct Trainer::Impl {
  const JobSpec& job;
  const Dataset& data;
  Model& model;
  torch::Device device;
  std::vector<uint64_t> seeds;  // one per member of the model
  int64_t k = 1;                // members
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  std::vector<torch::Tensor> params;
  bool on_cuda = false;

  int64_t epoch = -1;
  torch::Tensor perm;         // this epoch's permutations, [K, N], on device
  torch::Tensor xb, yb;       // batch buffers (static inputs of the graph)
  std::vector<double> ready;  // losses read, not yet taken
  torch::Tensor loss_buf;     // CUDA: per-step losses of the chunk, [32, K]
  int64_t buffered = 0;

#ifdef LRTUNE_WITH_CUDA
  std::unique_ptr<at::cuda::CUDAGraph> graph;
  torch::Tensor static_loss;
#endif

  Impl(const JobSpec& j, const Dataset& d, Model& m, torch::Device dev,
       std::vector<uint64_t> s)
      : job(j),
        data(d),
        model(m),
        device(dev),
        seeds(std::move(s)),
        k(static_cast<int64_t>(seeds.size())) {}

  // CUDA: copies the buffered per-step losses to the host (one sync) and
  // appends them to `ready`, in step order.
  void ReadBufferedLosses() {
    if (buffered == 0) return;
    torch::Tensor host = loss_buf.narrow(0, 0, buffered)
                             .to(torch::kCPU, torch::kFloat64)
                             .contiguous();
    const double* v = host.data_ptr<double>();
    ready.insert(ready.end(), v, v + buffered * k);
    buffered = 0;
  }

  void SetHyper(double lr, std::optional<double> momentum) {
    for (auto& group : optimizer->param_groups()) {
      auto& opts = group.options();
      switch (job.optimizer.kind) {
        case OptimizerKind::kSgd: {
          auto& o = static_cast<torch::optim::SGDOptions&>(opts);
          o.lr(lr);
          if (momentum) o.momentum(*momentum);
          break;
        }
        case OptimizerKind::kAdam: {
          auto& o = static_cast<torch::optim::AdamOptions&>(opts);
          o.lr(lr);
          if (momentum) o.betas({*momentum, std::get<1>(o.betas())});
          break;
        }
        case OptimizerKind::kAdamW: {
          auto& o = static_cast<torch::optim::AdamWOptions&>(opts);
          o.lr(lr);
          if (momentum) o.betas({*momentum, std::get<1>(o.betas())});
          break;
        }
        case OptimizerKind::kRmsProp: {
          auto& o = static_cast<torch::optim::RMSpropOptions&>(opts);
          o.lr(lr);
          if (momentum) o.momentum(*momentum);
          break;
        }
      }
    }
  }

  void ZeroGradToNone() {
    for (auto& p : params) p.mutable_grad() = torch::Tensor();
  }

  torch::Tensor ForwardLoss() {
#ifdef LRTUNE_WITH_CUDA
    Bf16Autocast autocast(job.device.bf16);
#endif
    torch::Tensor out = model.Forward(xb).to(torch::kFloat32);
    if (k == 1) return ComputeLoss(job.loss, out, yb);
    return MemberLosses(job.loss, out, yb);  // [K]
  }

  // A packed model's members' losses are independent: the sum's gradient
  // is each member's own.
  void Backward(const torch::Tensor& loss) {
    if (k == 1) {
      loss.backward();
    } else {
      loss.sum().backward();
    }
  }

  void LoadBatch(int64_t step) {
    const int64_t spe = data.train_size() / (xb.size(0) / k);
    const int64_t e = step / spe;
    if (e != epoch) {
      // One generator per (seed, epoch): the order of any epoch is known
      // without replaying the earlier ones, so a restored run continues
      // exactly where it stopped.
      std::vector<torch::Tensor> perms;
      for (uint64_t seed : seeds) {
        torch::Generator gen = at::make_generator<at::CPUGeneratorImpl>(
            seed * 1000003ULL + static_cast<uint64_t>(e));
        perms.push_back(torch::randperm(data.train_size(), gen));
      }
      perm = torch::stack(perms).to(device);
      epoch = e;
    }
    const int64_t b = xb.size(0) / k;
    // Member m's batch goes to rows [m b, (m + 1) b).
    torch::Tensor idx = perm.narrow(1, (step % spe) * b, b).reshape({-1});
    torch::index_select_out(xb, data.train_x, 0, idx);
    torch::index_select_out(yb, data.train_y, 0, idx);
  }

#ifdef LRTUNE_WITH_CUDA
  // Captures forward + loss + backward into a CUDA graph on a side stream;
  // the optimizer step runs eagerly after each replay, so the LR and
  // momentum written into the optimizer's options take effect as usual.
  // Gradients are set to none before capture, so backward allocates them in
  // the graph's pool and every replay overwrites them (no zeroing needed).
  void CaptureGraph() {
    torch::cuda::synchronize();
    c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool();
    {
      c10::cuda::CUDAStreamGuard guard(side);
      for (int i = 0; i < 3; ++i) {  // warm up kernels and the allocator
        ZeroGradToNone();
        Backward(ForwardLoss());
      }
      ZeroGradToNone();
      graph = std::make_unique<at::cuda::CUDAGraph>();
      graph->capture_begin();
      static_loss = ForwardLoss();
      Backward(static_loss);
      graph->capture_end();
    }
    torch::cuda::synchronize();
  }
#endif
};

Trainer::Trainer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Trainer::~Trainer() = default;

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Create(
    const JobSpec& job, const Dataset& data, Model& model,
    std::vector<uint64_t> seeds, const torch::Device& device) {
  if (static_cast<int64_t>(seeds.size()) != model.members()) {
    return absl::InvalidArgumentError(
        absl::StrCat("trainer: ", seeds.size(), " seeds for a model of ",
                     model.members(), " members"));
  }
  auto impl =
      std::make_unique<Impl>(job, data, model, device, std::move(seeds));
  const int64_t k = impl->k;
  impl->params = model.Parameters();
  impl->on_cuda = device.is_cuda();
  try {
    impl->optimizer = MakeOptimizer(job.optimizer, impl->params);
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("optimizer: ", e.what_without_backtrace()));
  }
  const int64_t b = std::min<int64_t>(job.batch_size, data.train_size());
  std::vector<int64_t> xshape = {k * b};
  xshape.insert(xshape.end(), data.sample_shape.begin(),
                data.sample_shape.end());
  impl->xb = torch::empty(xshape, data.train_x.options());
  std::vector<int64_t> yshape = data.train_y.sizes().vec();
  yshape[0] = k * b;
  impl->yb = torch::empty(yshape, data.train_y.options());
  if (impl->on_cuda) {
    impl->loss_buf = torch::empty(
        {kLossChunk, k}, torch::TensorOptions(device).dtype(torch::kFloat32));
  }
  std::unique_ptr<Trainer> t(new Trainer(std::move(impl)));
  t->batch_ = b;
  t->steps_per_epoch_ = data.train_size() / b;
  return t;
}

void Trainer::Step(int64_t step, double lr, std::optional<double> momentum) {
  Impl& s = *impl_;
  s.LoadBatch(step);
  s.SetHyper(lr, momentum);
  torch::Tensor loss;
#ifdef LRTUNE_WITH_CUDA
  if (s.on_cuda && s.job.device.cuda_graph && s.model.graph_capturable()) {
    if (!s.graph) s.CaptureGraph();
    s.graph->replay();
    loss = s.static_loss;
  }
#endif
  if (!loss.defined()) {
    s.ZeroGradToNone();
    loss = s.ForwardLoss();
    s.Backward(loss);
  }
  s.optimizer->step();
  if (!s.on_cuda) {
    if (s.k == 1) {
      s.ready.push_back(loss.item<double>());
    } else {
      torch::Tensor host = loss.detach().to(torch::kFloat64).contiguous();
      const double* v = host.data_ptr<double>();
      s.ready.insert(s.ready.end(), v, v + s.k);
    }
    return;
  }
  s.loss_buf[s.buffered++].copy_(loss.detach().reshape({s.k}),
                                 /*non_blocking=*/true);
  // A full chunk moves to `ready` (one host sync); the caller takes it.
  if (s.buffered == kLossChunk) s.ReadBufferedLosses();
}

std::vector<double> Trainer::TakeLosses(bool flush) {
  Impl& s = *impl_;
  if (flush) s.ReadBufferedLosses();
  std::vector<double> out;
  out.swap(s.ready);
  return out;
}

EvalResult Trainer::Evaluate(int64_t max_samples) {
  Impl& s = *impl_;
  TORCH_CHECK(s.k == 1, "Trainer::Evaluate: not for a packed model");
  torch::NoGradGuard no_grad;
  s.model.SetTraining(false);
  int64_t n = s.data.val_x.size(0);
  if (max_samples > 0) n = std::min(n, max_samples);
  const bool ce = s.job.loss == LossKind::kCrossEntropy;
  torch::Tensor loss_sum =
      torch::zeros({}, s.data.val_x.options().dtype(torch::kFloat64));
  torch::Tensor correct =
      torch::zeros({}, s.data.val_x.options().dtype(torch::kInt64));
  constexpr int64_t kChunk = 1024;
  for (int64_t i = 0; i < n; i += kChunk) {
    const int64_t m = std::min(kChunk, n - i);
    torch::Tensor x = s.data.val_x.narrow(0, i, m);
    torch::Tensor y = s.data.val_y.narrow(0, i, m);
    torch::Tensor out = s.model.Forward(x).to(torch::kFloat32);
    if (ce) {
      loss_sum +=
          torch::nll_loss(torch::log_softmax(out, 1), y, {}, at::Reduction::Sum)
              .to(torch::kFloat64);
      correct += out.argmax(1).eq(y).sum();
    } else {
      loss_sum += torch::mse_loss(out.reshape(y.sizes()), y, at::Reduction::Sum)
                      .to(torch::kFloat64) /
                  static_cast<double>(y.size(1));
    }
  }
  s.model.SetTraining(true);
  EvalResult r;
  r.loss = loss_sum.item<double>() / static_cast<double>(n);
  r.accuracy =
      ce ? static_cast<double>(correct.item<int64_t>()) / static_cast<double>(n)
         : std::nan("");
  return r;
}

namespace {

void WriteState(const Trainer::CheckpointState& state,
                torch::serialize::OutputArchive& archive) {
  archive.write("step", torch::tensor(static_cast<int64_t>(state.step)));
  torch::serialize::OutputArchive run;
  for (const auto& [name, value] : state.values) {
    run.write(name, torch::tensor(value, torch::kFloat64));
  }
  archive.write("run", run);
}

Trainer::CheckpointState ReadState(torch::serialize::InputArchive& archive) {
  Trainer::CheckpointState state;
  torch::Tensor step;
  archive.read("step", step);
  state.step = step.item<int64_t>();
  torch::serialize::InputArchive run;
  if (archive.try_read("run", run)) {  // absent in older checkpoints
    for (const std::string& name : run.keys()) {
      torch::Tensor value;
      run.read(name, value);
      state.values[name] = value.item<double>();
    }
  }
  return state;
}

}  // namespace

absl::Status Trainer::SaveCheckpoint(const std::string& path,
                                     const CheckpointState& state) {
  Impl& s = *impl_;
  const std::string tmp =
      absl::StrCat(path, ".tmp.", ::getpid(), ".",
                   std::hash<std::thread::id>()(std::this_thread::get_id()));
  try {
    torch::serialize::OutputArchive archive;
    WriteState(state, archive);
    for (auto& [name, t] : s.model.State()) {
      archive.write("model." + name, t.detach().cpu());
    }
    torch::serialize::OutputArchive opt;
    s.optimizer->save(opt);
    archive.write("optimizer", opt);
    archive.save_to(tmp);
  } catch (const std::exception& e) {
    std::remove(tmp.c_str());
    return absl::InternalError(
        absl::StrCat("writing checkpoint ", tmp, ": ", ExceptionMessage(e)));
  }
  // The previous checkpoint stays as the fallback; a crash between the
  // renames leaves it and the temporary file, never a torn checkpoint.
  const std::string previous = path + kPreviousCheckpointSuffix;
  if (std::rename(path.c_str(), previous.c_str()) != 0 && errno != ENOENT) {
    std::remove(tmp.c_str());
    return absl::InternalError(absl::StrCat("renaming ", path, " to ", previous,
                                            ": ", std::strerror(errno)));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return absl::InternalError(absl::StrCat("renaming ", tmp, " to ", path));
  }
  return absl::OkStatus();
}

absl::StatusOr<Trainer::CheckpointState> Trainer::ReadCheckpointState(
    const std::string& path) {
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path, torch::kCPU);
    return ReadState(archive);
  } catch (const std::exception& e) {
    return absl::DataLossError(
        absl::StrCat("checkpoint ", path, ": ", ExceptionMessage(e)));
  }
}

absl::StatusOr<Trainer::CheckpointState> Trainer::RestoreCheckpoint(
    const std::string& path) {
  Impl& s = *impl_;
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path, s.device);
    CheckpointState state = ReadState(archive);
    torch::NoGradGuard no_grad;
    for (auto& [name, t] : s.model.State()) {
      torch::Tensor saved;
      archive.read("model." + name, saved);
      if (!saved.sizes().equals(t.sizes())) {
        return absl::DataLossError(absl::StrCat(
            "checkpoint ", path, ": tensor ", name, " has another shape"));
      }
      t.copy_(saved);
    }
    torch::serialize::InputArchive opt;
    archive.read("optimizer", opt);
    s.optimizer->load(opt);
    return state;
  } catch (const std::exception& e) {
    return absl::DataLossError(
        absl::StrCat("checkpoint ", path, ": ", ExceptionMessage(e)));
  }
}

}  // namespace lrtune::engine::internal
