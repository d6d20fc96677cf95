#include "worker/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/autocast_mode.h>
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
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/cuda.h>
#endif

namespace lrtune::engine::internal {
namespace {

#if TORCH_VERSION_MAJOR > 2 || \
    (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define LRTUNE_AUTOCAST_BY_DEVICE_TYPE 1  // set_autocast_*(device_type, ...)
#endif

// Autocast of the forward pass and the loss to `precision`'s type, for one
// scope: bf16 on CUDA or the CPU, fp16 on CUDA (ValidateJob and
// ResolveDevice refuse fp16 elsewhere); fp32 does nothing.
class Autocast {
 public:
  Autocast(Precision precision, bool cuda)
      : on_(precision != Precision::kFp32), cuda_(cuda) {
    if (!on_) return;
    const at::ScalarType type =
        precision == Precision::kFp16 ? at::kHalf : at::kBFloat16;
    Enable(true, type);
    // The weight cast cache must stay off inside CUDA-graph capture.
    at::autocast::set_autocast_cache_enabled(false);
  }
  ~Autocast() {
    if (!on_) return;
    Enable(false, at::kFloat);
    at::autocast::clear_cache();
  }
  Autocast(const Autocast&) = delete;
  Autocast& operator=(const Autocast&) = delete;

 private:
  void Enable(bool on, at::ScalarType type) const {
#ifdef LRTUNE_AUTOCAST_BY_DEVICE_TYPE
    const c10::DeviceType device = cuda_ ? at::kCUDA : at::kCPU;
    at::autocast::set_autocast_enabled(device, on);
    if (on) at::autocast::set_autocast_dtype(device, type);
#else
    if (cuda_) {
      at::autocast::set_enabled(on);
      if (on) at::autocast::set_autocast_gpu_dtype(type);
    } else {
      at::autocast::set_cpu_enabled(on);
      if (on) at::autocast::set_autocast_cpu_dtype(type);
    }
#endif
  }

  bool on_;
  bool cuda_;
};

// A loss scale never grows past this (2^64): a run without overflows for
// 128,000 updates would otherwise reach inf, which halving cannot undo.
constexpr double kMaxLossScale = 18446744073709551616.0;

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
  int64_t accumulation = 1;     // batches per update
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  // Dynamic loss scaling (DeviceOptions::loss_scale): on, the scale, and
  // updates since it last changed.
  bool scaling = false;
  double scale = 1.0;
  int64_t good_updates = 0;
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
        k(static_cast<int64_t>(seeds.size())),
        accumulation(j.grad_accumulation),
        scaling(UsesLossScaling(j.device)),
        scale(scaling ? InitialLossScale(j.device) : 1.0) {}

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

  // Divides the gradients by the loss scale and says whether they are all
  // finite (one host sync). Not finite: the update is to be skipped and
  // the scale halves; kLossScaleGrowthInterval finite ones in a row double
  // it (GradScaler's rule).
  bool UnscaleGradients() {
    std::vector<torch::Tensor> finite;
    for (auto& p : params) {
      if (!p.grad().defined()) continue;
      p.mutable_grad().mul_(1.0 / scale);
      finite.push_back(p.grad().isfinite().all());
    }
    if (!finite.empty() && !torch::stack(finite).all().item<bool>()) {
      scale *= kLossScaleBackoff;
      good_updates = 0;
      return false;
    }
    if (++good_updates == kLossScaleGrowthInterval) {
      scale = std::min(scale * kLossScaleGrowth, kMaxLossScale);
      good_updates = 0;
    }
    return true;
  }

  void ZeroGradToNone() {
    for (auto& p : params) p.mutable_grad() = torch::Tensor();
  }

  torch::Tensor ForwardLoss() {
    Autocast autocast(job.device.precision, on_cuda);
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

  // Loads batch `micro` of update `step` (micro < accumulation): an
  // update's batches are consecutive slices of the epoch's permutation, so
  // 4 x 32 sees the samples one batch of 128 would.
  void LoadBatch(int64_t step, int64_t micro) {
    const int64_t spe = data.train_size() / (xb.size(0) / k * accumulation);
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
    torch::Tensor idx =
        perm.narrow(1, ((step % spe) * accumulation + micro) * b, b)
            .reshape({-1});
    data.GatherTrain(idx, xb, yb);
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
  const int64_t per_update = b * job.grad_accumulation;
  if (per_update > data.train_size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "batch_size (", b, ") x grad_accumulation (", job.grad_accumulation,
        ") = ", per_update, " samples per update exceeds the ",
        data.train_size(), " training samples"));
  }
  std::unique_ptr<Trainer> t(new Trainer(std::move(impl)));
  t->batch_ = b;
  t->steps_per_epoch_ = data.train_size() / per_update;
  return t;
}

bool Trainer::Step(int64_t step, double lr, std::optional<double> momentum) {
  Impl& s = *impl_;
  s.SetHyper(lr, momentum);
  torch::Tensor loss;
#ifdef LRTUNE_WITH_CUDA
  // ValidateJob: a graph run has one batch per update and no loss scaling.
  if (s.on_cuda && s.job.device.cuda_graph && s.model.graph_capturable()) {
    s.LoadBatch(step, 0);
    if (!s.graph) s.CaptureGraph();
    s.graph->replay();
    loss = s.static_loss;
  }
#endif
  if (!loss.defined()) {
    s.ZeroGradToNone();
    // Each batch's loss / accumulation: the gradients add up to the mean's.
    for (int64_t micro = 0; micro < s.accumulation; ++micro) {
      s.LoadBatch(step, micro);
      torch::Tensor batch_loss = s.ForwardLoss();
      torch::Tensor scaled = batch_loss;
      if (s.accumulation > 1) {
        scaled = scaled / static_cast<double>(s.accumulation);
      }
      if (s.scaling) scaled = scaled * s.scale;
      s.Backward(scaled);
      loss = micro == 0 ? batch_loss.detach() : loss + batch_loss.detach();
    }
    if (s.accumulation > 1) loss = loss / static_cast<double>(s.accumulation);
  }
  if (s.scaling && !s.UnscaleGradients()) return false;
  s.optimizer->step();
  if (!s.on_cuda) {
    if (s.k == 1) {
      s.ready.push_back(loss.item<double>());
    } else {
      torch::Tensor host = loss.detach().to(torch::kFloat64).contiguous();
      const double* v = host.data_ptr<double>();
      s.ready.insert(s.ready.end(), v, v + s.k);
    }
    return true;
  }
  s.loss_buf[s.buffered++].copy_(loss.detach().reshape({s.k}),
                                 /*non_blocking=*/true);
  // A full chunk moves to `ready` (one host sync); the caller takes it.
  if (s.buffered == kLossChunk) s.ReadBufferedLosses();
  return true;
}

double Trainer::loss_scale() const {
  return impl_->scaling ? impl_->scale : 0.0;
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
  int64_t n = s.data.val_size();
  if (max_samples > 0) n = std::min(n, max_samples);
  const bool ce = s.job.loss == LossKind::kCrossEntropy;
  torch::Tensor loss_sum =
      torch::zeros({}, s.data.val_x.options().dtype(torch::kFloat64));
  torch::Tensor correct =
      torch::zeros({}, s.data.val_x.options().dtype(torch::kInt64));
  constexpr int64_t kChunk = 1024;
  for (int64_t i = 0; i < n; i += kChunk) {
    const int64_t m = std::min(kChunk, n - i);
    const auto [x, y] = s.data.ValSlice(i, m);
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
  if (!state.tensors.empty()) {
    torch::serialize::OutputArchive tensors;
    for (const auto& [name, t] : state.tensors) {
      tensors.write(name, t.detach().cpu());
    }
    archive.write("tensors", tensors);
  }
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
  torch::serialize::InputArchive tensors;
  if (archive.try_read("tensors", tensors)) {
    for (const std::string& name : tensors.keys()) {
      torch::Tensor t;
      tensors.read(name, t);
      state.tensors[name] = t;
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
    if (s.scaling) {
      archive.write("loss_scale", torch::tensor(s.scale, torch::kFloat64));
      archive.write("good_updates", torch::tensor(s.good_updates));
    }
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

std::vector<torch::Tensor> Trainer::CopyWeights() {
  std::vector<torch::Tensor> out;
  for (auto& [name, t] : impl_->model.State()) {
    out.push_back(t.detach().clone());
  }
  return out;
}

absl::Status Trainer::LoadWeights(const std::vector<torch::Tensor>& weights) {
  auto state = impl_->model.State();
  if (weights.size() != state.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "weights: ", weights.size(), " tensors for a model of ", state.size()));
  }
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < state.size(); ++i) {
    if (!weights[i].sizes().equals(state[i].second.sizes())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "weights: tensor ", state[i].first, " has another shape"));
    }
    state[i].second.copy_(weights[i]);
  }
  return absl::OkStatus();
}

absl::Status Trainer::SaveWeights(const std::string& path,
                                  const std::vector<torch::Tensor>& weights) {
  try {
    torch::serialize::OutputArchive archive;
    auto state = impl_->model.State();
    for (size_t i = 0; i < state.size() && i < weights.size(); ++i) {
      archive.write(state[i].first, weights[i].cpu());
    }
    archive.save_to(path);
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("writing ", path, ": ", ExceptionMessage(e)));
  }
  return absl::OkStatus();
}

EvalResult Trainer::EvaluateEnsemble(
    const std::vector<const std::vector<torch::Tensor>*>& members) {
  Impl& s = *impl_;
  TORCH_CHECK(s.k == 1 && s.job.loss == LossKind::kCrossEntropy,
              "Trainer::EvaluateEnsemble: one model, cross-entropy");
  const std::vector<torch::Tensor> current = CopyWeights();
  torch::NoGradGuard no_grad;
  s.model.SetTraining(false);
  const int64_t n = s.data.val_size();
  torch::Tensor probs;
  constexpr int64_t kChunk = 1024;
  for (const std::vector<torch::Tensor>* weights : members) {
    TORCH_CHECK(LoadWeights(*weights).ok(), "ensemble member's weights");
    std::vector<torch::Tensor> parts;
    for (int64_t i = 0; i < n; i += kChunk) {
      torch::Tensor x = s.data.ValSlice(i, std::min(kChunk, n - i)).first;
      parts.push_back(
          torch::softmax(s.model.Forward(x).to(torch::kFloat64), 1));
    }
    torch::Tensor p = torch::cat(parts);
    probs = probs.defined() ? probs + p : p;
  }
  TORCH_CHECK(LoadWeights(current).ok(), "restoring the weights");
  s.model.SetTraining(true);
  probs = probs / static_cast<double>(members.size());
  const torch::Tensor val_y = s.data.ValSlice(0, n).second;
  EvalResult r;
  r.loss = torch::nll_loss(torch::log(probs.clamp_min(1e-300)), val_y)
               .item<double>();
  r.accuracy =
      probs.argmax(1).eq(val_y).to(torch::kFloat64).mean().item<double>();
  return r;
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
    torch::Tensor scale, good;
    if (s.scaling && archive.try_read("loss_scale", scale) &&
        archive.try_read("good_updates", good)) {
      s.scale = scale.item<double>();
      s.good_updates = good.item<int64_t>();
    }
    return state;
  } catch (const std::exception& e) {
    return absl::DataLossError(
        absl::StrCat("checkpoint ", path, ": ", ExceptionMessage(e)));
  }
}

}  // namespace lrtune::engine::internal
