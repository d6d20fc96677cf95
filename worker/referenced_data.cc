// Data sets by reference as tensors: the arrays dataset_dir.h maps, wrapped
// in place (torch::from_blob over the mapping, which the tensors keep
// alive), split by the set's validation arrays or by selecting rows, so
// that nothing on the CPU reads or copies the features whole. A batch
// gathers its rows from the mapping (Dataset::GatherTrain); the kernel
// pages them in on first touch and may drop them again, so a set bigger
// than the machine's memory trains too, at the disk's pace.
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "worker/dataset_dir.h"
#include "worker/torch_internal.h"

namespace lrtune::engine::internal {
namespace {

c10::ScalarType TorchType(NpyDType t) {
  switch (t) {
    case NpyDType::kFloat32:
      return torch::kFloat32;
    case NpyDType::kInt64:
      return torch::kInt64;
    case NpyDType::kInt32:
      return torch::kInt32;
  }
  return torch::kFloat32;
}

// The array as a read-only tensor over its mapping. Nothing writes a data
// set's tensors in place (the engine makes new ones), and a write would
// fault rather than change the file.
torch::Tensor Wrap(const std::shared_ptr<const MappedNpy>& a) {
  return torch::from_blob(
      const_cast<void*>(a->data()), a->shape(), [a](void*) {},
      torch::TensorOptions().dtype(TorchType(a->dtype())));
}

// Labels as int64 (int32 ones converted: a copy of the labels, not of the
// features), checked to lie in [0, classes); targets as [N, k].
absl::StatusOr<torch::Tensor> Targets(const std::shared_ptr<const MappedNpy>& a,
                                      const DatasetDescription& d) {
  torch::Tensor y = Wrap(a);
  if (d.classes == 0) {
    return y.dim() == 1 ? y.reshape({-1, 1}) : y;
  }
  if (y.scalar_type() != torch::kInt64) y = y.to(torch::kInt64);
  const torch::Tensor bad = (y < 0).logical_or(y >= d.classes);
  if (y.numel() > 0 && bad.any().item<bool>()) {
    const int64_t row = bad.nonzero()[0][0].item<int64_t>();
    return absl::DataLossError(absl::StrCat(
        a->path(), ": row ", row, " has label ", y[row].item<int64_t>(),
        ", outside [0, ", d.classes, ") (\"classes\" in ", kManifestFile, ")"));
  }
  return y;
}

torch::Tensor Head(const torch::Tensor& t, int64_t limit) {
  return limit > 0 && limit < t.size(0) ? t.narrow(0, 0, limit) : t;
}

}  // namespace

absl::StatusOr<Dataset> LoadReferencedDataset(const DataSpec& spec,
                                              const torch::Device& device) {
  LRTUNE_ASSIGN_OR_RETURN(MappedDataset m,
                          OpenDataset(spec.data_dir, spec.name));
  const DatasetDescription& desc = m.description;
  if (spec.description.has_value()) {
    const std::string diff = DatasetDifference(desc, *spec.description);
    if (!diff.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "data set \"", spec.name, "\" in ", m.dir,
          " differs from the one the job was planned with (another worker's "
          "copy, or changed since): ",
          diff));
    }
  }
  Dataset d;
  d.name = spec.name;
  d.sample_shape = desc.sample_shape;
  d.num_classes = desc.classes;
  d.target_width = desc.target_width;
  d.train_x = Wrap(m.train_x);
  LRTUNE_ASSIGN_OR_RETURN(d.train_y, Targets(m.train_y, desc));
  if (m.validation_x != nullptr) {
    // Its own validation arrays: each split is every row of its files.
    d.val_x = Wrap(m.validation_x);
    LRTUNE_ASSIGN_OR_RETURN(d.val_y, Targets(m.validation_y, desc));
    d.train_x = Head(d.train_x, spec.subset);
    d.train_y = Head(d.train_y, spec.subset);
    d.val_x = Head(d.val_x, spec.validation_subset);
    d.val_y = Head(d.val_y, spec.validation_subset);
  } else {
    // The split the built-in sets get (data.cc): a permutation seeded by
    // split_seed, its first floor(n x fraction) rows validating; here as
    // row numbers, the arrays staying where they are.
    const int64_t n = desc.train_samples;
    torch::Generator gen =
        at::make_generator<at::CPUGeneratorImpl>(spec.split_seed);
    const torch::Tensor perm = torch::randperm(n, gen);
    const int64_t n_val = static_cast<int64_t>(
        std::floor(static_cast<double>(n) * spec.validation_fraction));
    d.train_rows = Head(perm.narrow(0, n_val, n - n_val), spec.subset);
    // No held-out rows: validate on the training rows.
    d.val_rows = Head(
        n_val > 0 ? perm.narrow(0, 0, n_val) : perm.narrow(0, n_val, n - n_val),
        spec.validation_subset);
    d.val_x = d.train_x;
    d.val_y = d.train_y;
  }
  if (!device.is_cpu()) {
    // A GPU trains from its own memory: the set is copied there once, so
    // it must fit (docs/engine.md).
    const bool shared = m.validation_x == nullptr;  // val_x is train_x
    for (torch::Tensor* t : {&d.train_x, &d.train_y, &d.val_x, &d.val_y,
                             &d.train_rows, &d.val_rows}) {
      if (shared && (t == &d.val_x || t == &d.val_y)) continue;
      if (t->defined()) *t = t->to(device);
    }
    if (shared) {
      d.val_x = d.train_x;
      d.val_y = d.train_y;
    }
  }
  return d;
}

}  // namespace lrtune::engine::internal
