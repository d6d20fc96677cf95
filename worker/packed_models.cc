// K seeds of one built-in model trained as one batched model (torch_internal.h
// says when). Each member starts from the weights BuildModel gives its seed
// and sees its own batches; its loss depends on its weights only, so the
// sum's gradient is every member's own gradient, and SGD, Adam, AdamW and
// RMSprop (element-wise) update each member as its unpacked run would.
#include <cmath>

#include "absl/strings/str_cat.h"
#include "worker/torch_internal.h"

namespace lrtune::engine::internal {
namespace {

// Stacks the tensor named `name` of every member: [K, ...], a copy
// without gradient history.
torch::Tensor Stack(const std::vector<std::unique_ptr<Model>>& members,
                    const std::string& name) {
  std::vector<torch::Tensor> parts;
  for (const auto& m : members) {
    for (auto& [n, t] : m->State()) {
      if (n == name) parts.push_back(t.detach());
    }
  }
  return torch::stack(parts);
}

// Input layout: [K * B, ...sample], member k's batch in rows [kB, (k+1)B).
// Output: [K, B, out].
class PackedModel : public Model {
 public:
  int64_t members() const override { return k_; }
  std::vector<torch::Tensor> Parameters() override {
    std::vector<torch::Tensor> out;
    for (auto& [name, t] : params_) out.push_back(t);
    return out;
  }
  std::vector<std::pair<std::string, torch::Tensor>> State() override {
    return params_;
  }
  void SetTraining(bool) override {}  // no dropout, no batch norm
  bool graph_capturable() const override { return true; }

 protected:
  explicit PackedModel(int64_t k) : k_(k) {}
  // Registers `value` (laid out as given) as the trainable parameter `name`.
  torch::Tensor AddParam(const std::string& name, const torch::Tensor& value) {
    torch::Tensor p = value.contiguous().requires_grad_(true);
    params_.emplace_back(name, p);
    return p;
  }
  // The members' Linear layer `name`: weights [K, in, out] (transposed, so
  // that bmm and its backward read them without a copy: on the CPU that
  // halves the step) and biases [K, 1, out].
  std::pair<torch::Tensor, torch::Tensor> AddLinear(
      const std::vector<std::unique_ptr<Model>>& members,
      const std::string& name) {
    return {
        AddParam(name + ".weight",
                 Stack(members, name + ".weight").transpose(1, 2)),
        AddParam(name + ".bias", Stack(members, name + ".bias").unsqueeze(1))};
  }
  // One Linear layer per member: x [K, B, in] -> [K, B, out].
  static torch::Tensor Linear(const torch::Tensor& x, const torch::Tensor& w,
                              const torch::Tensor& b) {
    return torch::baddbmm(b, x, w);
  }

  int64_t k_;
  std::vector<std::pair<std::string, torch::Tensor>> params_;
};

// models.cc's Mlp: Flatten -> (Linear -> ReLU) x hidden -> Linear.
class PackedMlp final : public PackedModel {
 public:
  PackedMlp(const std::vector<std::unique_ptr<Model>>& members, size_t layers)
      : PackedModel(static_cast<int64_t>(members.size())) {
    for (size_t i = 0; i < layers; ++i) {
      auto [w, b] = AddLinear(members, absl::StrCat("fc", i));
      w_.push_back(w);
      b_.push_back(b);
    }
  }
  torch::Tensor Forward(const torch::Tensor& x) override {
    torch::Tensor h = x.reshape({k_, x.size(0) / k_, -1});
    for (size_t i = 0; i + 1 < w_.size(); ++i) {
      h = torch::relu(Linear(h, w_[i], b_[i]));
    }
    return Linear(h, w_.back(), b_.back());
  }

 private:
  std::vector<torch::Tensor> w_, b_;
};

// models.cc's Cnn, members side by side in the channels: conv5x5(16) ->
// ReLU -> pool2 -> conv5x5(32) -> ReLU -> pool2 -> Linear, the convolutions
// grouped by member.
class PackedCnn final : public PackedModel {
 public:
  explicit PackedCnn(const std::vector<std::unique_ptr<Model>>& members)
      : PackedModel(static_cast<int64_t>(members.size())) {
    // [K, out, in, kh, kw] -> [K * out, in, kh, kw]: group k is member k.
    auto conv = [&](const std::string& name) {
      return std::make_pair(
          AddParam(name + ".weight",
                   Stack(members, name + ".weight").flatten(0, 1)),
          AddParam(name + ".bias",
                   Stack(members, name + ".bias").flatten(0, 1)));
    };
    std::tie(w1_, b1_) = conv("conv1");
    std::tie(w2_, b2_) = conv("conv2");
    std::tie(wf_, bf_) = AddLinear(members, "fc");
  }
  torch::Tensor Forward(const torch::Tensor& x) override {
    const int64_t b = x.size(0) / k_;
    // [K*B, C, H, W] -> [B, K*C, H, W]
    torch::Tensor h = x.reshape({k_, b, x.size(1), x.size(2), x.size(3)})
                          .transpose(0, 1)
                          .reshape({b, k_ * x.size(1), x.size(2), x.size(3)});
    h = torch::conv2d(h, w1_, b1_, /*stride=*/1, /*padding=*/2,
                      /*dilation=*/1, /*groups=*/k_);
    h = torch::max_pool2d(torch::relu(h), 2);
    h = torch::conv2d(h, w2_, b2_, 1, 2, 1, k_);
    h = torch::max_pool2d(torch::relu(h), 2);
    // [B, K*32, h, w] -> [K, B, 32*h*w], each member's features in the
    // order its unpacked flatten(1) gives.
    h = h.reshape({b, k_, -1}).transpose(0, 1);
    return Linear(h, wf_, bf_);
  }

 private:
  torch::Tensor w1_, b1_, w2_, b2_, wf_, bf_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Model>> PackModels(
    const ModelSpec& spec, const std::vector<std::unique_ptr<Model>>& members) {
  if (spec.kind != ModelKind::kMlp && spec.kind != ModelKind::kCnn) {
    return absl::InvalidArgumentError(
        absl::StrCat("model.kind ", ModelKindName(spec.kind),
                     " cannot be packed (mlp and cnn can)"));
  }
  if (members.empty()) {
    return absl::InvalidArgumentError("packing needs at least one model");
  }
  torch::NoGradGuard no_grad;
  if (spec.kind == ModelKind::kMlp) {
    return std::make_unique<PackedMlp>(members, spec.hidden.size() + 1);
  }
  return std::make_unique<PackedCnn>(members);
}

int64_t ParameterCount(Model& model) {
  int64_t n = 0;
  for (const torch::Tensor& p : model.Parameters()) n += p.numel();
  return n;
}

torch::Tensor MemberLosses(LossKind loss, const torch::Tensor& output,
                           const torch::Tensor& target) {
  const int64_t k = output.size(0), b = output.size(1);
  if (loss == LossKind::kCrossEntropy) {
    torch::Tensor flat = output.reshape({k * b, output.size(2)});
    return torch::nll_loss(torch::log_softmax(flat, 1), target, {},
                           at::Reduction::None)
        .reshape({k, b})
        .mean(1);
  }
  torch::Tensor t = target.reshape({k, b, -1});
  return torch::mse_loss(output.reshape(t.sizes()), t, at::Reduction::None)
      .reshape({k, -1})
      .mean(1);
}

}  // namespace lrtune::engine::internal
