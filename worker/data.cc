// Datasets as in-memory tensors: Fashion-MNIST, scikit-learn's tables,
// seeded synthetic sets and inline tensors from a client. The decoded
// Fashion-MNIST and scikit-learn arrays go to the data cache
// (data_cache.h), so a later process maps them instead of decoding again.
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <functional>
#include <memory>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "worker/data_cache.h"
#include "worker/dataset_files.h"
#include "worker/torch_internal.h"

namespace lrtune::engine::internal {
namespace {

// Fashion-MNIST's training-set pixel mean and standard deviation (of x/255).
constexpr float kFashionMean = 0.2860f;
constexpr float kFashionStd = 0.3530f;

struct Split {
  torch::Tensor x, y;
};

c10::ScalarType TorchType(CacheDType t) {
  switch (t) {
    case CacheDType::kFloat32:
      return torch::kFloat32;
    case CacheDType::kInt64:
      return torch::kInt64;
    case CacheDType::kUInt8:
      return torch::kUInt8;
  }
  return torch::kUInt8;
}

CacheDType CacheType(c10::ScalarType t) {
  return t == torch::kFloat32 ? CacheDType::kFloat32
         : t == torch::kInt64 ? CacheDType::kInt64
                              : CacheDType::kUInt8;
}

// The cached arrays "x" and "y" as tensors over the entry's mapping (which
// they keep alive), or nullopt if the entry lacks them or their types.
std::optional<Split> SplitFromEntry(std::shared_ptr<const CacheEntry> entry,
                                    CacheDType x_type, CacheDType y_type) {
  const CacheArray* x = entry->Find("x");
  const CacheArray* y = entry->Find("y");
  if (x == nullptr || y == nullptr || x->dtype != x_type ||
      y->dtype != y_type || x->shape.empty() || y->shape.empty() ||
      x->shape[0] != y->shape[0]) {
    return std::nullopt;
  }
  auto wrap = [&entry](const CacheArray& a) {
    // The mapping is read-only: nothing below writes a dataset's tensors in
    // place (standardising makes new ones).
    return torch::from_blob(
        const_cast<void*>(a.data), a.shape, [entry](void*) {},
        torch::TensorOptions().dtype(TorchType(a.dtype)));
  };
  return Split{wrap(*x), wrap(*y)};
}

// `decode` run through the data cache: the arrays of a hit, else decoded
// and stored for the next process. The cache is an optimisation: when it is
// off, unwritable or its files are damaged, the data is decoded as usual.
absl::StatusOr<Split> Cached(
    const CacheKey& key, CacheDType x_type, CacheDType y_type,
    const std::function<absl::StatusOr<Split>()>& decode) {
  const std::string dir = DataCacheDir();
  if (!dir.empty()) {
    absl::StatusOr<std::shared_ptr<const CacheEntry>> hit =
        LookupDataCache(dir, key);
    if (hit.ok()) {
      if (std::optional<Split> s = SplitFromEntry(*hit, x_type, y_type)) {
        return *s;
      }
    }
  }
  absl::StatusOr<Split> s = decode();
  if (!s.ok() || dir.empty()) return s;
  torch::Tensor x = s->x.contiguous(), y = s->y.contiguous();
  auto in = [](const char* name, const torch::Tensor& t) {
    return CacheArray{name, CacheType(t.scalar_type()), t.sizes().vec(),
                      t.data_ptr(), t.nbytes()};
  };
  // Best effort: a failed store (read-only home, full disk) costs the next
  // process a decode, nothing else.
  (void)StoreDataCache(dir, key, {in("x", x), in("y", y)});
  return Split{x, y};
}

Split Head(const Split& s, int64_t limit) {
  if (limit <= 0 || limit >= s.x.size(0)) return s;
  return {s.x.narrow(0, 0, limit), s.y.narrow(0, 0, limit)};
}

absl::StatusOr<Split> DecodeFashion(const std::string& dir, const char* prefix,
                                    int64_t limit);

// Fashion-MNIST's `prefix` split (train, t10k), standardised, its first
// `limit` samples (0: all), through the data cache.
absl::StatusOr<Split> ReadFashion(const std::string& dir, const char* prefix,
                                  int64_t limit) {
  const CacheKey key{
      absl::StrFormat("fashion-mnist %s v1: x float32 [N,1,H,W] = "
                      "(pixel/255 - %.4f) / %.4f, y int64",
                      prefix, kFashionMean, kFashionStd),
      {absl::StrCat(dir, "/", prefix, "-images-idx3-ubyte.gz"),
       absl::StrCat(dir, "/", prefix, "-labels-idx1-ubyte.gz")}};
  absl::StatusOr<Split> all = Cached(
      key, CacheDType::kFloat32, CacheDType::kInt64,
      // Decode all of it for the cache, only the head without one.
      [&] {
        return DecodeFashion(dir, prefix, DataCacheDir().empty() ? limit : 0);
      });
  if (!all.ok()) return all.status();
  return Head(*all, limit);
}

absl::StatusOr<Split> DecodeFashion(const std::string& dir, const char* prefix,
                                    int64_t limit) {
  absl::StatusOr<IdxArray> images =
      ReadIdx(absl::StrCat(dir, "/", prefix, "-images-idx3-ubyte.gz"));
  if (!images.ok()) return images.status();
  absl::StatusOr<IdxArray> labels =
      ReadIdx(absl::StrCat(dir, "/", prefix, "-labels-idx1-ubyte.gz"));
  if (!labels.ok()) return labels.status();
  if (images->dims.size() != 3 || labels->dims.size() != 1 ||
      images->dims[0] != labels->dims[0]) {
    return absl::DataLossError(
        absl::StrCat(dir, "/", prefix, ": images and labels do not match"));
  }
  int64_t n = images->dims[0];
  if (limit > 0) n = std::min(n, limit);
  const int64_t h = images->dims[1], w = images->dims[2];
  torch::Tensor x =
      torch::from_blob(images->data.data(), {n, 1, h, w}, torch::kUInt8)
          .to(torch::kFloat32)
          .div_(255.0f)
          .sub_(kFashionMean)
          .div_(kFashionStd);
  torch::Tensor y = torch::from_blob(labels->data.data(), {n}, torch::kUInt8)
                        .to(torch::kInt64);
  return Split{x, y};
}

torch::Generator MakeGenerator(uint64_t seed) {
  return at::make_generator<at::CPUGeneratorImpl>(seed);
}

// Synthetic sets, generated on the CPU from `seed`. The spec is valid
// (ValidateJob, core/spec.h).
Split Synthetic(const DataSpec& spec) {
  const int64_t n = spec.synthetic_samples, k = spec.synthetic_classes,
                f = spec.synthetic_features;
  torch::Generator gen = MakeGenerator(spec.split_seed + 7919);
  if (spec.name == "spirals") {
    torch::Tensor y = torch::arange(n, torch::kInt64).remainder(k);
    torch::Tensor t = torch::rand({n}, gen);
    torch::Tensor theta = y.to(torch::kFloat32) * (2.0 * M_PI / k) + t * 4.0 +
                          torch::randn({n}, gen) * 0.15;
    torch::Tensor x =
        torch::stack({t * torch::sin(theta), t * torch::cos(theta)}, 1);
    return Split{x, y};
  }
  if (spec.name == "blobs") {
    torch::Tensor centers = torch::randn({k, f}, gen) * 3.0;
    torch::Tensor y = torch::arange(n, torch::kInt64).remainder(k);
    torch::Tensor x = centers.index_select(0, y) + torch::randn({n, f}, gen);
    return Split{x, y};
  }
  torch::Tensor w = torch::randn({f, 1}, gen);
  torch::Tensor x = torch::randn({n, f}, gen);
  torch::Tensor y = x.matmul(w) + 0.5 + torch::randn({n, 1}, gen) * 0.1;
  return Split{x, y};
}

// The client's tensors; ValidateJob (core/spec.h) checked their shapes,
// sizes and values.
Split Inline(const DataSpec& spec) {
  const int64_t n = spec.x_shape[0];
  torch::Tensor x = torch::from_blob(const_cast<float*>(spec.x.data()),
                                     spec.x_shape, torch::kFloat32)
                        .clone();
  if (!spec.y_labels.empty()) {
    torch::Tensor y =
        torch::from_blob(const_cast<int64_t*>(spec.y_labels.data()), {n},
                         torch::kInt64)
            .clone();
    return Split{x, y};
  }
  torch::Tensor y = torch::from_blob(const_cast<float*>(spec.y_targets.data()),
                                     {n, spec.y_target_width}, torch::kFloat32)
                        .clone();
  return Split{x, y};
}

}  // namespace

absl::StatusOr<Dataset> LoadDataset(const DataSpec& spec,
                                    const torch::Device& device) {
  // The spec passed ValidateJob (engine.cc's Prepare).
  if (IsReferencedDataset(spec.name)) {
    return LoadReferencedDataset(spec, device);
  }
  const DatasetInfo* info = FindDataset(spec.name);
  Dataset d;
  d.name = spec.name;
  Split train, val;
  bool official_split = false;
  bool standardise = false;
  if (spec.name == "fashion-mnist") {
    absl::StatusOr<std::string> dir = FindDatasetDir(spec.data_dir, spec.name);
    if (!dir.ok()) return dir.status();
    absl::StatusOr<Split> tr = ReadFashion(*dir, "train", spec.subset);
    if (!tr.ok()) return tr.status();
    absl::StatusOr<Split> te =
        ReadFashion(*dir, "t10k", spec.validation_subset);
    if (!te.ok()) return te.status();
    train = *tr;
    val = *te;
    official_split = true;
  } else if (info != nullptr && info->sklearn_file != nullptr) {
    const char* file = info->sklearn_file;
    absl::StatusOr<std::string> dir = FindDatasetDir(spec.data_dir, "sklearn");
    if (!dir.ok()) return dir.status();
    const std::string path = absl::StrCat(*dir, "/", file);
    absl::StatusOr<Split> table = Cached(
        {"sklearn-csv v1: x float32 [rows,cols], y int64 labels", {path}},
        CacheDType::kFloat32, CacheDType::kInt64,
        [&]() -> absl::StatusOr<Split> {
          absl::StatusOr<CsvTable> t = ReadSklearnCsv(path);
          if (!t.ok()) return t.status();
          return Split{
              torch::from_blob(t->x.data(), {t->rows, t->cols}, torch::kFloat32)
                  .clone(),
              torch::from_blob(t->labels.data(), {t->rows}, torch::kInt64)
                  .clone()};
        });
    if (!table.ok()) return table.status();
    train = *table;
    standardise = true;
  } else if (spec.name == "spirals" || spec.name == "blobs" ||
             spec.name == "linear") {
    train = Synthetic(spec);
    standardise = spec.name != "spirals";
  } else if (spec.name == "inline") {
    train = Inline(spec);
  } else {
    return absl::InternalError(absl::StrCat(
        "data.name \"", spec.name, "\" passed ValidateJob but has no loader"));
  }
  if (!official_split) {
    // Deterministic split from split_seed, independent of the job's seed.
    const int64_t n = train.x.size(0);
    torch::Generator gen = MakeGenerator(spec.split_seed);
    torch::Tensor perm = torch::randperm(n, gen);
    const int64_t n_val = static_cast<int64_t>(
        std::floor(static_cast<double>(n) * spec.validation_fraction));
    torch::Tensor val_idx = perm.narrow(0, 0, n_val);
    torch::Tensor train_idx = perm.narrow(0, n_val, n - n_val);
    Split all = train;
    train = {all.x.index_select(0, train_idx),
             all.y.index_select(0, train_idx)};
    // No held-out samples: validate on the training set.
    val = n_val > 0 ? Split{all.x.index_select(0, val_idx),
                            all.y.index_select(0, val_idx)}
                    : train;
    if (spec.subset > 0 && spec.subset < train.x.size(0)) {
      train = {train.x.narrow(0, 0, spec.subset),
               train.y.narrow(0, 0, spec.subset)};
    }
    if (spec.validation_subset > 0 && spec.validation_subset < val.x.size(0)) {
      val = {val.x.narrow(0, 0, spec.validation_subset),
             val.y.narrow(0, 0, spec.validation_subset)};
    }
  }
  if (standardise) {
    torch::Tensor mean = train.x.mean(0, /*keepdim=*/true);
    // A feature constant over the training split (digits' border pixels)
    // keeps scale 1, as scikit-learn's StandardScaler does: dividing by a
    // clamped ~0 std would turn a validation sample's stray nonzero into
    // ~1e6 and its loss into hundreds.
    torch::Tensor std = train.x.std(0, /*unbiased=*/false, /*keepdim=*/true);
    std = torch::where(std < 1e-6, torch::ones_like(std), std);
    train.x = (train.x - mean) / std;
    val.x = (val.x - mean) / std;
  }
  if (spec.name == "digits") {  // 8x8 images: let cnn and resnet20 use them
    train.x = train.x.reshape({-1, 1, 8, 8});
    val.x = val.x.reshape({-1, 1, 8, 8});
  }
  d.sample_shape = train.x.sizes().vec();
  d.sample_shape.erase(d.sample_shape.begin());
  if (train.y.scalar_type() == torch::kInt64) {
    d.num_classes =
        std::max(train.y.max().item<int64_t>(), val.y.max().item<int64_t>()) +
        1;
  } else {
    d.target_width = train.y.size(1);
  }
  d.train_x = train.x.contiguous().to(device);
  d.train_y = train.y.contiguous().to(device);
  d.val_x = val.x.contiguous().to(device);
  d.val_y = val.y.contiguous().to(device);
  return d;
}

}  // namespace lrtune::engine::internal
