// The built-in models (mlp, cnn, resnet20) and TorchScript modules.
#include <torch/script.h>

#include <mutex>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "worker/torch_internal.h"

namespace lrtune::engine::internal {
namespace {

namespace nn = torch::nn;

// Flatten -> (Linear -> ReLU) x hidden -> Linear.
class MlpImpl : public nn::Module {
 public:
  MlpImpl(int64_t in, const std::vector<int64_t>& hidden, int64_t out) {
    int64_t width = in;
    for (size_t i = 0; i <= hidden.size(); ++i) {
      int64_t next = i < hidden.size() ? hidden[i] : out;
      layers_.push_back(
          register_module(absl::StrCat("fc", i), nn::Linear(width, next)));
      width = next;
    }
  }
  torch::Tensor forward(torch::Tensor x) {
    x = x.flatten(1);
    for (size_t i = 0; i + 1 < layers_.size(); ++i) {
      x = torch::relu(layers_[i]->forward(x));
    }
    return layers_.back()->forward(x);
  }

 private:
  std::vector<nn::Linear> layers_;
};
TORCH_MODULE(Mlp);

// conv5x5(16) -> ReLU -> pool2 -> conv5x5(32) -> ReLU -> pool2 -> Linear.
class CnnImpl : public nn::Module {
 public:
  CnnImpl(int64_t c, int64_t h, int64_t w, int64_t out)
      : conv1_(register_module(
            "conv1", nn::Conv2d(nn::Conv2dOptions(c, 16, 5).padding(2)))),
        conv2_(register_module(
            "conv2", nn::Conv2d(nn::Conv2dOptions(16, 32, 5).padding(2)))),
        fc_(register_module("fc", nn::Linear(32 * (h / 4) * (w / 4), out))) {}
  torch::Tensor forward(torch::Tensor x) {
    x = torch::max_pool2d(torch::relu(conv1_->forward(x)), 2);
    x = torch::max_pool2d(torch::relu(conv2_->forward(x)), 2);
    return fc_->forward(x.flatten(1));
  }

 private:
  nn::Conv2d conv1_;
  nn::Conv2d conv2_;
  nn::Linear fc_;
};
TORCH_MODULE(Cnn);

nn::Conv2d Conv3x3(int64_t in, int64_t out, int64_t stride) {
  return nn::Conv2d(
      nn::Conv2dOptions(in, out, 3).stride(stride).padding(1).bias(false));
}

// He et al.'s CIFAR basic block with the parameter-free shortcut (option A:
// subsample and zero-pad the channels).
class BasicBlockImpl : public nn::Module {
 public:
  BasicBlockImpl(int64_t in, int64_t out, int64_t stride)
      : conv1_(register_module("conv1", Conv3x3(in, out, stride))),
        bn1_(register_module("bn1", nn::BatchNorm2d(out))),
        conv2_(register_module("conv2", Conv3x3(out, out, 1))),
        bn2_(register_module("bn2", nn::BatchNorm2d(out))),
        stride_(stride),
        pad_(out - in) {}
  torch::Tensor forward(torch::Tensor x) {
    torch::Tensor y = torch::relu(bn1_->forward(conv1_->forward(x)));
    y = bn2_->forward(conv2_->forward(y));
    torch::Tensor shortcut = x;
    if (stride_ != 1 || pad_ != 0) {
      using torch::indexing::None;
      using torch::indexing::Slice;
      shortcut = x.index({Slice(), Slice(), Slice(None, None, stride_),
                          Slice(None, None, stride_)});
      shortcut = torch::constant_pad_nd(
          shortcut, {0, 0, 0, 0, pad_ / 2, pad_ - pad_ / 2});
    }
    return torch::relu(y + shortcut);
  }

 private:
  nn::Conv2d conv1_;
  nn::BatchNorm2d bn1_;
  nn::Conv2d conv2_;
  nn::BatchNorm2d bn2_;
  int64_t stride_;
  int64_t pad_;
};
TORCH_MODULE(BasicBlock);

class ResNet20Impl : public nn::Module {
 public:
  ResNet20Impl(int64_t c, int64_t out)
      : conv_(register_module("conv", Conv3x3(c, 16, 1))),
        bn_(register_module("bn", nn::BatchNorm2d(16))),
        fc_(register_module("fc", nn::Linear(64, out))) {
    int64_t in = 16;
    const int64_t widths[] = {16, 32, 64};
    for (int stage = 0; stage < 3; ++stage) {
      for (int b = 0; b < 3; ++b) {
        int64_t stride = (stage > 0 && b == 0) ? 2 : 1;
        blocks_.push_back(
            register_module(absl::StrCat("block", stage, "_", b),
                            BasicBlock(in, widths[stage], stride)));
        in = widths[stage];
      }
    }
    for (auto& m : modules(/*include_self=*/false)) {
      if (auto* conv = m->as<nn::Conv2d>()) {
        nn::init::kaiming_normal_(conv->weight, 0.0, torch::kFanOut,
                                  torch::kReLU);
      }
    }
  }
  torch::Tensor forward(torch::Tensor x) {
    x = torch::relu(bn_->forward(conv_->forward(x)));
    for (auto& block : blocks_) x = block->forward(x);
    x = torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1);
    return fc_->forward(x);
  }

 private:
  nn::Conv2d conv_;
  nn::BatchNorm2d bn_;
  nn::Linear fc_;
  std::vector<BasicBlock> blocks_;
};
TORCH_MODULE(ResNet20);

// Adapts a torch::nn module holder (Mlp, Cnn, ResNet20) to Model.
template <typename Holder>
class NnModel final : public Model {
 public:
  explicit NnModel(Holder module)
      : module_(std::move(module)), params_(module_->parameters()) {}
  torch::Tensor Forward(const torch::Tensor& x) override {
    return module_->forward(x);
  }
  std::vector<torch::Tensor> Parameters() override { return params_; }
  std::vector<std::pair<std::string, torch::Tensor>> State() override {
    std::vector<std::pair<std::string, torch::Tensor>> out;
    for (const auto& p : module_->named_parameters())
      out.emplace_back(p.key(), p.value());
    for (const auto& b : module_->named_buffers())
      out.emplace_back(b.key(), b.value());
    return out;
  }
  void SetTraining(bool on) override { module_->train(on); }
  bool graph_capturable() const override { return true; }

 private:
  Holder module_;
  std::vector<torch::Tensor> params_;
};

class ScriptModel final : public Model {
 public:
  explicit ScriptModel(torch::jit::Module module) : module_(std::move(module)) {
    for (const auto& p : module_.parameters()) {
      if (p.requires_grad()) params_.push_back(p);
    }
  }
  torch::Tensor Forward(const torch::Tensor& x) override {
    torch::IValue out = module_.forward({x});
    if (!out.isTensor()) {
      throw std::runtime_error(absl::StrCat(
          "torchscript forward must return a Tensor, got ", out.tagKind()));
    }
    return out.toTensor();
  }
  std::vector<torch::Tensor> Parameters() override { return params_; }
  std::vector<std::pair<std::string, torch::Tensor>> State() override {
    std::vector<std::pair<std::string, torch::Tensor>> out;
    for (const auto& p : module_.named_parameters())
      out.emplace_back(p.name, p.value);
    for (const auto& b : module_.named_buffers())
      out.emplace_back(b.name, b.value);
    return out;
  }
  void SetTraining(bool on) override { module_.train(on); }
  bool graph_capturable() const override { return false; }

 private:
  torch::jit::Module module_;
  std::vector<torch::Tensor> params_;
};

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

absl::StatusOr<std::unique_ptr<Model>> MakeModel(const ModelSpec& spec,
                                                 const Dataset& data,
                                                 int64_t out) {
  const auto& s = data.sample_shape;
  auto need_image = [&](const char* name) -> absl::Status {
    if (s.size() != 3 || s[1] < 4 || s[2] < 4) {
      return absl::InvalidArgumentError(
          absl::StrCat("model.kind ", name,
                       " needs image samples [C, H, W] with H, W >= 4;"
                       " dataset ",
                       data.name, " has samples ", ShapeString(s)));
    }
    return absl::OkStatus();
  };
  switch (spec.kind) {
    case ModelKind::kMlp: {
      int64_t in = 1;
      for (int64_t d : s) in *= d;
      return std::make_unique<NnModel<Mlp>>(Mlp(in, spec.hidden, out));
    }
    case ModelKind::kCnn: {
      absl::Status st = need_image("cnn");
      if (!st.ok()) return st;
      return std::make_unique<NnModel<Cnn>>(Cnn(s[0], s[1], s[2], out));
    }
    case ModelKind::kResnet20: {
      absl::Status st = need_image("resnet20");
      if (!st.ok()) return st;
      return std::make_unique<NnModel<ResNet20>>(ResNet20(s[0], out));
    }
    case ModelKind::kTorchScript: {
      if (spec.torchscript.empty()) {
        return absl::InvalidArgumentError(
            "model.torchscript must hold a module saved by torch.jit.save");
      }
      torch::jit::Module module;
      try {
        std::istringstream in(spec.torchscript);
        module = torch::jit::load(in, torch::kCPU);
      } catch (const std::exception& e) {
        return absl::InvalidArgumentError(
            absl::StrCat("model.torchscript: cannot load the module: ",
                         ExceptionMessage(e)));
      }
      auto model = std::make_unique<ScriptModel>(std::move(module));
      if (model->Parameters().empty()) {
        return absl::InvalidArgumentError(
            "model.torchscript: the module has no trainable parameters "
            "(none with requires_grad)");
      }
      return model;
    }
  }
  return absl::InvalidArgumentError("model.kind: unknown");
}

}  // namespace

torch::Tensor ComputeLoss(LossKind loss, const torch::Tensor& output,
                          const torch::Tensor& target) {
  if (loss == LossKind::kCrossEntropy) {
    return torch::nll_loss(torch::log_softmax(output, 1), target);
  }
  return torch::mse_loss(output.reshape(target.sizes()), target);
}

absl::StatusOr<std::unique_ptr<Model>> BuildModel(const ModelSpec& spec,
                                                  const Dataset& data,
                                                  LossKind loss, uint64_t seed,
                                                  const torch::Device& device) {
  const int64_t out =
      loss == LossKind::kCrossEntropy ? data.num_classes : data.target_width;
  if (spec.kind == ModelKind::kMlp) {
    for (int64_t h : spec.hidden) {
      if (h < 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("model.hidden widths must be >= 1, got ", h));
      }
    }
  }
  std::unique_ptr<Model> model;
  {
    // torch::manual_seed sets the process-wide generator that nn::init
    // draws from: serialise construction so concurrent jobs stay seeded.
    static std::mutex* init_mu = new std::mutex;
    std::lock_guard<std::mutex> lock(*init_mu);
    torch::manual_seed(seed);
    absl::StatusOr<std::unique_ptr<Model>> made = MakeModel(spec, data, out);
    if (!made.ok()) return made.status();
    model = *std::move(made);
  }
  torch::NoGradGuard no_grad;
  for (auto& [name, t] : model->State()) t.set_data(t.to(device));
  // One forward pass on two samples to check the output fits the loss.
  const int64_t n = std::min<int64_t>(2, data.train_size());
  model->SetTraining(false);
  torch::Tensor probe;
  try {
    probe = model->Forward(data.train_x.narrow(0, 0, n));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model.", ModelKindName(spec.kind), ": forward pass failed on samples ",
        ShapeString(data.sample_shape), ": ", ExceptionMessage(e)));
  }
  model->SetTraining(true);
  const bool fits =
      loss == LossKind::kCrossEntropy
          ? probe.dim() == 2 && probe.size(0) == n &&
                probe.size(1) == data.num_classes
          : probe.numel() == n * data.target_width && probe.size(0) == n;
  if (!fits) {
    std::vector<int64_t> want = {n, out};
    return absl::InvalidArgumentError(
        absl::StrCat("model output shape ", ShapeString(probe.sizes().vec()),
                     " does not fit loss ", LossKindName(loss), ": expected ",
                     ShapeString(want), " for dataset ", data.name));
  }
  return model;
}

}  // namespace lrtune::engine::internal
