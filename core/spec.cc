// The spec model's rules, the data-set table and the names; see spec.h.
#include "core/spec.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/status_macros.h"

namespace lrtune {
namespace {

// --- The rules' shapes ---------------------------------------------------

absl::Status AtLeast(const FieldNamer& names, absl::string_view path, int64_t v,
                     int64_t lo) {
  if (v >= lo) return absl::OkStatus();
  return FieldError(names, path, absl::StrCat("must be >= ", lo, ", got ", v));
}

absl::Status InClosed(const FieldNamer& names, absl::string_view path, double v,
                      double lo, double hi) {
  if (v >= lo && v <= hi) return absl::OkStatus();
  return FieldError(names, path,
                    absl::StrCat("must be in [", lo, ", ", hi, "], got ", v));
}

absl::Status InHalfOpen(const FieldNamer& names, absl::string_view path,
                        double v, double lo, double hi) {
  if (v >= lo && v < hi) return absl::OkStatus();
  return FieldError(names, path,
                    absl::StrCat("must be in [", lo, ", ", hi, "), got ", v));
}

absl::Status Positive(const FieldNamer& names, absl::string_view path,
                      double v) {
  if (std::isfinite(v) && v > 0) return absl::OkStatus();
  return FieldError(names, path,
                    absl::StrCat("must be finite and > 0, got ", v));
}

// A sibling field's name as a rule mentions it: the last part of its name
// ("start_lr" for "range_test.start_lr", "--start-lr" for a flag).
std::string Sibling(const FieldNamer& names, absl::string_view path) {
  const std::string name = names(path);
  const size_t dot = name.rfind('.');
  return dot == std::string::npos ? name : name.substr(dot + 1);
}

template <typename Kind, size_t N>
std::string JoinNames(const Kind (&kinds)[N], const char* (*name)(Kind),
                      absl::string_view separator) {
  std::vector<std::string> out;
  for (Kind k : kinds) out.push_back(name(k));
  return absl::StrJoin(out, separator);
}

template <typename Kind, size_t N>
absl::StatusOr<Kind> ParseKind(const Kind (&kinds)[N],
                               const char* (*name)(Kind), absl::string_view v,
                               const FieldNamer& names,
                               absl::string_view path) {
  for (Kind k : kinds) {
    if (v == name(k)) return k;
  }
  return FieldError(
      names, path,
      absl::StrCat("must be one of ", JoinNames(kinds, name, ", "), "; got \"",
                   v, "\""));
}

constexpr ModelKind kModelKinds[] = {ModelKind::kMlp, ModelKind::kCnn,
                                     ModelKind::kResnet20,
                                     ModelKind::kTorchScript};
constexpr LossKind kLossKinds[] = {LossKind::kCrossEntropy, LossKind::kMse};
constexpr OptimizerKind kOptimizerKinds[] = {
    OptimizerKind::kSgd, OptimizerKind::kAdam, OptimizerKind::kAdamW,
    OptimizerKind::kRmsProp};
constexpr RampShape kRampShapes[] = {RampShape::kExp, RampShape::kLinear};
constexpr Precision kPrecisions[] = {Precision::kFp32, Precision::kBf16,
                                     Precision::kFp16};
constexpr StopMetric kStopMetrics[] = {StopMetric::kValLoss,
                                       StopMetric::kValAccuracy};
constexpr RangeMetric kRangeMetrics[] = {
    RangeMetric::kTrainLoss, RangeMetric::kValLoss, RangeMetric::kValAccuracy};
constexpr RangeDriver kRangeDrivers[] = {RangeDriver::kWorker,
                                         RangeDriver::kClient};

// The built-in data sets (worker/data.cc loads them).
constexpr DatasetInfo kDatasets[] = {
    {"fashion-mnist", "Zalando's 28x28 clothing images, 10 classes", 70000, 784,
     10, true, nullptr},
    {"digits", "scikit-learn's 8x8 digits, 10 classes", 1797, 64, 10, false,
     "digits.csv.gz"},
    {"iris", "scikit-learn's iris, 4 features, 3 classes", 150, 4, 3, false,
     "iris.csv"},
    {"wine", "scikit-learn's wine, 13 features, 3 classes", 178, 13, 3, false,
     "wine_data.csv"},
    {"breast-cancer", "scikit-learn's breast cancer, 30 features, 2 classes",
     569, 30, 2, false, "breast_cancer.csv"},
    {"spirals", "synthetic 2-d spirals, synthetic_classes arms", 0, 2, 0, false,
     nullptr},
    {"blobs", "synthetic Gaussian blobs", 0, 0, 0, false, nullptr},
    {"linear", "synthetic linear regression (mse)", 0, 0, -1, false, nullptr},
};
// Fashion-MNIST's official split: the first 60000 samples train.
constexpr int64_t kFashionTrainSamples = 60000;

absl::Status ValidateInline(const DataSpec& d, const FieldNamer& names) {
  const FieldNamer in = Nested(names, "data.inline_data.");
  if (d.x_shape.size() < 2 || d.x_shape.size() > 1 + kMaxSampleDims) {
    return FieldError(in, "x_shape",
                      absl::StrCat("must have 2..", 1 + kMaxSampleDims,
                                   " dims, got ", d.x_shape.size()));
  }
  int64_t product = 1;
  for (size_t i = 0; i < d.x_shape.size(); ++i) {
    LRTUNE_RETURN_IF_ERROR(
        AtLeast(in, absl::StrCat("x_shape[", i, "]"), d.x_shape[i], 1));
    if (product > kMaxInlineValues / d.x_shape[i]) {
      return absl::ResourceExhaustedError(
          absl::StrCat(names("data.inline_data"), " holds more than ",
                       kMaxInlineValues, " values"));
    }
    product *= d.x_shape[i];
  }
  const int64_t n = d.x_shape[0];
  if (n < kMinDatasetSamples) {
    return FieldError(in, "x_shape[0]",
                      absl::StrCat("must hold at least ", kMinDatasetSamples,
                                   " rows (samples), got ", n));
  }
  if (static_cast<int64_t>(d.x.size()) != product) {
    return FieldError(in, "x",
                      absl::StrCat("must hold product(x_shape) = ", product,
                                   " values, got ", d.x.size()));
  }
  if (n > kMaxInlineSamples) {
    return absl::ResourceExhaustedError(
        absl::StrCat(names("data.inline_data"), " holds more than ",
                     kMaxInlineSamples, " samples"));
  }
  for (size_t i = 0; i < d.x.size(); ++i) {
    if (!std::isfinite(d.x[i])) {
      return FieldError(in, absl::StrCat("x[", i, "]"),
                        absl::StrCat("must be finite, got ", d.x[i]));
    }
  }
  if (d.y_labels.empty() == d.y_targets.empty()) {
    return FieldError(in, "y_labels",
                      "and y_targets: exactly one must be non-empty");
  }
  if (!d.y_labels.empty()) {
    if (static_cast<int64_t>(d.y_labels.size()) != n) {
      return FieldError(
          in, "y_labels",
          absl::StrCat("must hold ", n, " labels, got ", d.y_labels.size()));
    }
    for (size_t i = 0; i < d.y_labels.size(); ++i) {
      if (d.y_labels[i] < 0 || d.y_labels[i] > kMaxLabel) {
        return FieldError(in, absl::StrCat("y_labels[", i, "]"),
                          absl::StrCat("must be in [0, ", kMaxLabel, "], got ",
                                       d.y_labels[i]));
      }
    }
    return absl::OkStatus();
  }
  LRTUNE_RETURN_IF_ERROR(AtLeast(in, "y_target_width", d.y_target_width, 1));
  if (static_cast<int64_t>(d.y_targets.size()) != n * d.y_target_width) {
    return FieldError(
        in, "y_targets",
        absl::StrCat("must hold N x y_target_width = ", n * d.y_target_width,
                     " values, got ", d.y_targets.size()));
  }
  for (size_t i = 0; i < d.y_targets.size(); ++i) {
    if (!std::isfinite(d.y_targets[i])) {
      return FieldError(in, absl::StrCat("y_targets[", i, "]"),
                        absl::StrCat("must be finite, got ", d.y_targets[i]));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateData(const DataSpec& d, const FieldNamer& names) {
  if (d.name != "inline" && FindDataset(d.name) == nullptr &&
      !IsDatasetName(d.name)) {
    return FieldError(
        names, "data.name",
        absl::StrCat("must be one of ", DatasetNames(", "),
                     " or the name of a data set by reference (1 to ",
                     kMaxDatasetNameLength,
                     " characters of A-Z a-z 0-9 . _ -, starting with a "
                     "letter or a digit); got \"",
                     d.name, "\""));
  }
  if (d.description.has_value()) {
    if (!IsReferencedDataset(d.name)) {
      return FieldError(names, "data.description",
                        absl::StrCat("must be unset for the ",
                                     d.name == "inline" ? "inline" : "built-in",
                                     " data set \"", d.name, "\""));
    }
    const FieldNamer described = Nested(names, "data.description.");
    LRTUNE_RETURN_IF_ERROR(
        ValidateDatasetDescription(*d.description, described));
    if (d.description->name != d.name) {
      return FieldError(described, "name",
                        absl::StrCat("must be data.name \"", d.name,
                                     "\", got \"", d.description->name, "\""));
    }
  }
  LRTUNE_RETURN_IF_ERROR(AtLeast(names, "data.subset", d.subset, 0));
  LRTUNE_RETURN_IF_ERROR(
      AtLeast(names, "data.validation_subset", d.validation_subset, 0));
  LRTUNE_RETURN_IF_ERROR(InClosed(names, "data.validation_fraction",
                                  d.validation_fraction, 0.0, 0.9));
  LRTUNE_RETURN_IF_ERROR(
      AtLeast(names, "data.synthetic_samples", d.synthetic_samples, 10));
  LRTUNE_RETURN_IF_ERROR(
      AtLeast(names, "data.synthetic_classes", d.synthetic_classes, 2));
  if (d.synthetic_features < 1 || d.synthetic_features > 4096) {
    return FieldError(
        names, "data.synthetic_features",
        absl::StrCat("must be in [1, 4096], got ", d.synthetic_features));
  }
  if (d.name == "inline") return ValidateInline(d, names);
  return absl::OkStatus();
}

absl::Status ValidateModel(const ModelSpec& m, const FieldNamer& names) {
  if (m.hidden.size() > static_cast<size_t>(kMaxHiddenLayers)) {
    return FieldError(names, "model.hidden",
                      absl::StrCat("must have at most ", kMaxHiddenLayers,
                                   " layers, got ", m.hidden.size()));
  }
  for (size_t i = 0; i < m.hidden.size(); ++i) {
    if (m.hidden[i] < 1 || m.hidden[i] > kMaxHiddenWidth) {
      return FieldError(names, absl::StrCat("model.hidden[", i, "]"),
                        absl::StrCat("must be in [1, ", kMaxHiddenWidth,
                                     "], got ", m.hidden[i]));
    }
  }
  if (static_cast<int64_t>(m.torchscript.size()) > kMaxTorchScriptBytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat(names("model.torchscript"), " is ", m.torchscript.size(),
                     " bytes, over the limit of ", kMaxTorchScriptBytes));
  }
  const bool script = m.kind == ModelKind::kTorchScript;
  if (script && m.torchscript.empty()) {
    return FieldError(names, "model.torchscript",
                      "is required for kind torchscript");
  }
  if (!script && !m.torchscript.empty()) {
    return FieldError(names, "model.torchscript",
                      "must be empty unless kind is torchscript");
  }
  return absl::OkStatus();
}

absl::Status ValidateOptimizer(const OptimizerSpec& o,
                               const FieldNamer& names) {
  const FieldNamer opt = Nested(names, "optimizer.");
  LRTUNE_RETURN_IF_ERROR(InClosed(opt, "momentum", o.momentum, 0.0, 1.0));
  LRTUNE_RETURN_IF_ERROR(
      InClosed(opt, "weight_decay", o.weight_decay, 0.0, 1.0));
  LRTUNE_RETURN_IF_ERROR(InHalfOpen(opt, "beta1", o.beta1, 0.0, 1.0));
  LRTUNE_RETURN_IF_ERROR(InHalfOpen(opt, "beta2", o.beta2, 0.0, 1.0));
  LRTUNE_RETURN_IF_ERROR(InHalfOpen(opt, "alpha", o.alpha, 0.0, 1.0));
  LRTUNE_RETURN_IF_ERROR(Positive(opt, "eps", o.eps));
  if (o.nesterov && (o.kind != OptimizerKind::kSgd || !(o.momentum > 0))) {
    return FieldError(opt, "nesterov",
                      "requires optimizer sgd with momentum > 0");
  }
  return absl::OkStatus();
}

bool IsDeviceName(const std::string& d) {
  if (d == "cpu" || d == "cuda" || d == "auto") return true;
  int index = 0;
  return absl::StartsWith(d, "cuda:") && d.size() > 5 &&
         d.find_first_not_of("0123456789", 5) == std::string::npos &&
         absl::SimpleAtoi(d.substr(5), &index);
}

absl::Status ValidateDevice(const JobSpec& job, const FieldNamer& names) {
  const DeviceOptions& d = job.device;
  const FieldNamer dev = Nested(names, "device.");
  if (!IsDeviceName(d.device)) {
    return FieldError(
        dev, "device",
        absl::StrCat("must be cpu, cuda, cuda:<i> or auto, got \"", d.device,
                     "\""));
  }
  if (d.threads < 0 || d.threads > kMaxThreads) {
    return FieldError(
        dev, "threads",
        absl::StrCat("must be in [0, ", kMaxThreads, "], got ", d.threads));
  }
  LRTUNE_RETURN_IF_ERROR(
      AtLeast(dev, "min_device_memory_bytes", d.min_device_memory_bytes, 0));
  if (d.cuda_graph && job.model.kind == ModelKind::kTorchScript) {
    return FieldError(dev, "cuda_graph",
                      "is only supported for built-in models");
  }
  if (d.precision == Precision::kFp16 && d.device == "cpu") {
    return FieldError(dev, "precision",
                      "fp16 needs a CUDA device (cuda, cuda:<i> or auto); "
                      "the CPU autocasts to bf16 only");
  }
  if (!(std::isfinite(d.loss_scale) && d.loss_scale >= 0.0)) {
    return FieldError(
        dev, "loss_scale",
        absl::StrCat("must be finite and >= 0 (0: on for fp16 at ",
                     kDefaultLossScale, "), got ", d.loss_scale));
  }
  // The graph replays one batch's forward and backward and overwrites the
  // gradients; accumulation adds to them, and loss scaling must read them
  // (and may skip the update) between replays.
  if (d.cuda_graph && job.grad_accumulation > 1) {
    return FieldError(dev, "cuda_graph",
                      absl::StrCat("needs ", names("grad_accumulation"),
                                   " 1, got ", job.grad_accumulation));
  }
  if (d.cuda_graph && UsesLossScaling(d)) {
    return FieldError(dev, "cuda_graph",
                      "does not take loss scaling (precision fp16 or "
                      "loss_scale > 0); use bf16");
  }
  return absl::OkStatus();
}

}  // namespace

// --- Names ---------------------------------------------------------------

const char* ModelKindName(ModelKind kind) {
  switch (kind) {
    case ModelKind::kMlp:
      return "mlp";
    case ModelKind::kCnn:
      return "cnn";
    case ModelKind::kResnet20:
      return "resnet20";
    case ModelKind::kTorchScript:
      return "torchscript";
  }
  return "?";
}

const char* LossKindName(LossKind kind) {
  return kind == LossKind::kCrossEntropy ? "cross_entropy" : "mse";
}

const char* OptimizerKindName(OptimizerKind kind) {
  switch (kind) {
    case OptimizerKind::kSgd:
      return "sgd";
    case OptimizerKind::kAdam:
      return "adam";
    case OptimizerKind::kAdamW:
      return "adamw";
    case OptimizerKind::kRmsProp:
      return "rmsprop";
  }
  return "?";
}

const char* RampShapeName(RampShape shape) {
  return shape == RampShape::kExp ? "exp" : "linear";
}

absl::StatusOr<ModelKind> ParseModelKind(absl::string_view name,
                                         const FieldNamer& names) {
  return ParseKind(kModelKinds, ModelKindName, name, names, "model.kind");
}

absl::StatusOr<LossKind> ParseLossKind(absl::string_view name,
                                       const FieldNamer& names) {
  return ParseKind(kLossKinds, LossKindName, name, names, "loss");
}

absl::StatusOr<OptimizerKind> ParseOptimizerKind(absl::string_view name,
                                                 const FieldNamer& names) {
  return ParseKind(kOptimizerKinds, OptimizerKindName, name, names,
                   "optimizer.kind");
}

absl::StatusOr<RampShape> ParseRampShape(absl::string_view name,
                                         const FieldNamer& names) {
  return ParseKind(kRampShapes, RampShapeName, name, names, "shape");
}

const char* PrecisionName(Precision precision) {
  switch (precision) {
    case Precision::kFp32:
      return "fp32";
    case Precision::kBf16:
      return "bf16";
    case Precision::kFp16:
      return "fp16";
  }
  return "?";
}

absl::StatusOr<Precision> ParsePrecision(absl::string_view name,
                                         const FieldNamer& names) {
  return ParseKind(kPrecisions, PrecisionName, name, names, "device.precision");
}

const char* StopMetricName(StopMetric metric) {
  return metric == StopMetric::kValLoss ? "val_loss" : "val_accuracy";
}

absl::StatusOr<StopMetric> ParseStopMetric(absl::string_view name,
                                           const FieldNamer& names) {
  return ParseKind(kStopMetrics, StopMetricName, name, names,
                   "early_stopping.metric");
}

const char* RangeMetricName(RangeMetric metric) {
  switch (metric) {
    case RangeMetric::kTrainLoss:
      return "train_loss";
    case RangeMetric::kValLoss:
      return "val_loss";
    case RangeMetric::kValAccuracy:
      return "val_accuracy";
  }
  return "?";
}

absl::StatusOr<RangeMetric> ParseRangeMetric(absl::string_view name,
                                             const FieldNamer& names) {
  return ParseKind(kRangeMetrics, RangeMetricName, name, names, "metric");
}

const char* RangeDriverName(RangeDriver driver) {
  switch (driver) {
    case RangeDriver::kWorker:
      return "worker";
    case RangeDriver::kClient:
      return "client";
  }
  return "?";
}

absl::StatusOr<RangeDriver> ParseRangeDriver(absl::string_view name,
                                             const FieldNamer& names) {
  return ParseKind(kRangeDrivers, RangeDriverName, name, names, "driver");
}

std::string ModelKindNames(absl::string_view separator) {
  return JoinNames(kModelKinds, ModelKindName, separator);
}

std::string LossKindNames(absl::string_view separator) {
  return JoinNames(kLossKinds, LossKindName, separator);
}

std::string OptimizerKindNames(absl::string_view separator) {
  return JoinNames(kOptimizerKinds, OptimizerKindName, separator);
}

// --- Data sets -----------------------------------------------------------

absl::Span<const DatasetInfo> Datasets() { return kDatasets; }

const DatasetInfo* FindDataset(absl::string_view name) {
  for (const DatasetInfo& d : kDatasets) {
    if (name == d.name) return &d;
  }
  return nullptr;
}

std::string DatasetNames(absl::string_view separator) {
  std::vector<std::string> names;
  for (const DatasetInfo& d : kDatasets) names.push_back(d.name);
  return absl::StrJoin(names, separator);
}

bool IsDatasetName(absl::string_view name) {
  if (name.empty() || name.size() > kMaxDatasetNameLength) return false;
  if (!absl::ascii_isalnum(static_cast<unsigned char>(name[0]))) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' &&
        c != '_' && c != '-') {
      return false;
    }
  }
  return true;
}

bool IsReferencedDataset(absl::string_view name) {
  return name != "inline" && FindDataset(name) == nullptr &&
         IsDatasetName(name);
}

absl::Status ValidateDatasetDescription(const DatasetDescription& d,
                                        const FieldNamer& names) {
  if (!IsReferencedDataset(d.name)) {
    return FieldError(
        names, "name",
        absl::StrCat("must be 1 to ", kMaxDatasetNameLength,
                     " characters of A-Z a-z 0-9 . _ -, starting with a "
                     "letter or a digit, and not inline or a built-in name (",
                     DatasetNames(", "), "); got \"", d.name, "\""));
  }
  if (d.sample_shape.empty() ||
      d.sample_shape.size() > static_cast<size_t>(kMaxSampleDims)) {
    return FieldError(names, "sample_shape",
                      absl::StrCat("must have 1..", kMaxSampleDims,
                                   " dims, got ", d.sample_shape.size()));
  }
  int64_t width = 1;
  for (size_t i = 0; i < d.sample_shape.size(); ++i) {
    const int64_t dim = d.sample_shape[i];
    LRTUNE_RETURN_IF_ERROR(
        AtLeast(names, absl::StrCat("sample_shape[", i, "]"), dim, 1));
    if (width > std::numeric_limits<int64_t>::max() / dim) {
      return FieldError(names, "sample_shape", "overflows int64");
    }
    width *= dim;
  }
  LRTUNE_RETURN_IF_ERROR(
      AtLeast(names, "train_samples", d.train_samples, kMinDatasetSamples));
  LRTUNE_RETURN_IF_ERROR(
      AtLeast(names, "validation_samples", d.validation_samples, 0));
  if (d.classes != 0 && (d.classes < 2 || d.classes > kMaxLabel + 1)) {
    return FieldError(names, "classes",
                      absl::StrCat("must be 0 (regression) or in [2, ",
                                   kMaxLabel + 1, "], got ", d.classes));
  }
  if (d.classes > 0 && d.target_width != 0) {
    return FieldError(names, "target_width",
                      absl::StrCat("must be 0 for class labels (classes ",
                                   d.classes, "), got ", d.target_width));
  }
  if (d.classes == 0 && d.target_width < 1) {
    return FieldError(
        names, "target_width",
        absl::StrCat("must be >= 1 for regression targets (classes 0), got ",
                     d.target_width));
  }
  return AtLeast(names, "bytes", d.bytes, 0);
}

std::string DatasetDifference(const DatasetDescription& have,
                              const DatasetDescription& planned) {
  std::vector<std::string> out;
  auto compare = [&out](const char* field, const std::string& a,
                        const std::string& b) {
    if (a != b) out.push_back(absl::StrCat(field, " ", a, ", planned ", b));
  };
  auto shape = [](const std::vector<int64_t>& s) {
    return absl::StrCat("[", absl::StrJoin(s, ","), "]");
  };
  compare("name", have.name, planned.name);
  compare("sample_shape", shape(have.sample_shape),
          shape(planned.sample_shape));
  compare("train_samples", absl::StrCat(have.train_samples),
          absl::StrCat(planned.train_samples));
  compare("validation_samples", absl::StrCat(have.validation_samples),
          absl::StrCat(planned.validation_samples));
  compare("classes", absl::StrCat(have.classes), absl::StrCat(planned.classes));
  compare("target_width", absl::StrCat(have.target_width),
          absl::StrCat(planned.target_width));
  return absl::StrJoin(out, "; ");
}

std::optional<int64_t> TrainSamples(const DataSpec& data) {
  int64_t n = 0;
  // The training split's size where the data has one of its own.
  std::optional<int64_t> split_train;
  if (data.name == "inline") {
    if (data.x_shape.empty()) return std::nullopt;
    n = data.x_shape[0];
  } else if (const DatasetInfo* info = FindDataset(data.name)) {
    n = info->samples > 0 ? info->samples : data.synthetic_samples;
    if (info->official_split) split_train = kFashionTrainSamples;
  } else if (data.description.has_value()) {
    n = data.description->train_samples;
    if (data.description->validation_samples > 0) split_train = n;
  } else {
    return std::nullopt;
  }
  int64_t train = n;
  if (split_train.has_value()) {
    train = *split_train;
  } else {
    // As the engine splits: floor(n x fraction) samples validate.
    train = n - static_cast<int64_t>(std::floor(static_cast<double>(n) *
                                                data.validation_fraction));
  }
  if (data.subset > 0 && data.subset < train) train = data.subset;
  return train;
}

std::optional<int64_t> InputWidth(const DataSpec& data) {
  if (data.name == "inline") {
    if (data.x_shape.size() < 2) return std::nullopt;
    int64_t w = 1;
    for (size_t i = 1; i < data.x_shape.size(); ++i) w *= data.x_shape[i];
    return w;
  }
  const DatasetInfo* info = FindDataset(data.name);
  if (info == nullptr) {
    if (!data.description.has_value()) return std::nullopt;
    int64_t w = 1;
    for (int64_t d : data.description->sample_shape) w *= d;
    return w;
  }
  return info->features > 0 ? info->features : data.synthetic_features;
}

std::optional<int64_t> OutputWidth(const DataSpec& data) {
  if (data.name == "inline") {
    if (!data.y_targets.empty()) return data.y_target_width;
    if (data.y_labels.empty()) return std::nullopt;
    return *std::max_element(data.y_labels.begin(), data.y_labels.end()) + 1;
  }
  const DatasetInfo* info = FindDataset(data.name);
  if (info == nullptr) {
    if (!data.description.has_value()) return std::nullopt;
    const DatasetDescription& d = *data.description;
    return d.classes > 0 ? d.classes : d.target_width;
  }
  if (info->classes < 0) return 1;
  return info->classes > 0 ? info->classes : data.synthetic_classes;
}

double OptimizerMomentum(const OptimizerSpec& o) {
  switch (o.kind) {
    case OptimizerKind::kSgd:
    case OptimizerKind::kRmsProp:
      return o.momentum;
    case OptimizerKind::kAdam:
    case OptimizerKind::kAdamW:
      return o.beta1;
  }
  return o.momentum;
}

AnalysisOptions CurveAnalysisOptions(const JobSpec& job,
                                     const RangeTestSpec& spec,
                                     int64_t steps_per_epoch) {
  AnalysisOptions options = spec.analysis;
  if (options.iters_per_epoch == 0) options.iters_per_epoch = steps_per_epoch;
  if (!options.momentum.has_value()) {
    options.momentum = OptimizerMomentum(job.optimizer);
  }
  options.adam_family = options.adam_family || IsAdamFamily(job.optimizer.kind);
  if (options.batch_size == 0) options.batch_size = UpdateSamples(job);
  if (options.planned_steps == 0) {  // fastai's num_it: the planned points
    options.planned_steps = spec.metric == RangeMetric::kTrainLoss
                                ? spec.steps
                                : spec.steps / spec.eval_every;
  }
  return options;
}

int64_t UpdateSamples(const JobSpec& job) {
  const std::optional<int64_t> train = TrainSamples(job.data);
  const int64_t batch = train.has_value() && *train > 0
                            ? std::min(job.batch_size, *train)
                            : job.batch_size;
  return batch * job.grad_accumulation;
}

int64_t StepsPerEpoch(const JobSpec& job) {
  const std::optional<int64_t> train = TrainSamples(job.data);
  if (!train.has_value() || *train <= 0 || job.batch_size < 1 ||
      job.grad_accumulation < 1) {
    return 0;
  }
  return *train / UpdateSamples(job);
}

bool IsAdamFamily(OptimizerKind kind) {
  return kind == OptimizerKind::kAdam || kind == OptimizerKind::kAdamW;
}

bool UsesLossScaling(const DeviceOptions& device) {
  return device.loss_scale > 0.0 || device.precision == Precision::kFp16;
}

double InitialLossScale(const DeviceOptions& device) {
  return device.loss_scale > 0.0 ? device.loss_scale : kDefaultLossScale;
}

std::optional<int64_t> MlpParameterCount(const JobSpec& job) {
  if (job.model.kind != ModelKind::kMlp) return std::nullopt;
  const std::optional<int64_t> in = InputWidth(job.data);
  const std::optional<int64_t> out = OutputWidth(job.data);
  if (!in.has_value() || !out.has_value()) return std::nullopt;
  return MlpParameterCount(*in, job.model.hidden, *out);
}

int64_t MlpParameterCount(int64_t in, const std::vector<int64_t>& hidden,
                          int64_t out) {
  std::vector<int64_t> widths = {in};
  widths.insert(widths.end(), hidden.begin(), hidden.end());
  widths.push_back(out);
  int64_t n = 0;
  for (size_t i = 0; i + 1 < widths.size(); ++i) {
    n += widths[i] * widths[i + 1] + widths[i + 1];
  }
  return n;
}

bool MayPackSeeds(const JobSpec& job, const RangeTestSpec& spec) {
  return spec.driver == RangeDriver::kWorker && spec.pack_seeds &&
         spec.seeds.size() >= 2 && spec.eval_every == 0 &&
         !UsesLossScaling(job.device) &&
         (job.model.kind == ModelKind::kMlp ||
          job.model.kind == ModelKind::kCnn);
}

bool ExpectPackedSeeds(const JobSpec& job, const RangeTestSpec& spec) {
  if (!MayPackSeeds(job, spec)) return false;
  if (job.model.kind == ModelKind::kCnn) return true;  // ~30k parameters
  if (absl::StartsWith(job.device.device, "cuda")) return true;
  const std::optional<int64_t> n = MlpParameterCount(job);
  return n.has_value() && *n <= kCpuMaxPackedParameters;
}

// --- Validators ----------------------------------------------------------

namespace {

// A data set by reference says whether it holds labels or targets: the
// loss must fit (the built-in and inline sets are checked by the engine,
// which sees their arrays).
absl::Status ValidateLossFitsData(const JobSpec& job, const FieldNamer& names) {
  if (!job.data.description.has_value()) return absl::OkStatus();
  const DatasetDescription& d = *job.data.description;
  if (job.loss == LossKind::kCrossEntropy && d.classes == 0) {
    return FieldError(
        names, "loss",
        absl::StrCat("cross_entropy needs class labels, but data set \"",
                     d.name,
                     "\" holds regression targets (classes 0): use mse"));
  }
  if (job.loss == LossKind::kMse && d.classes > 0) {
    return FieldError(names, "loss",
                      absl::StrCat("mse needs float targets, but data set \"",
                                   d.name, "\" holds class labels (classes ",
                                   d.classes, "): use cross_entropy"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateJob(const JobSpec& job, const FieldNamer& names) {
  LRTUNE_RETURN_IF_ERROR(ValidateModel(job.model, names));
  LRTUNE_RETURN_IF_ERROR(ValidateData(job.data, names));
  LRTUNE_RETURN_IF_ERROR(ValidateLossFitsData(job, names));
  LRTUNE_RETURN_IF_ERROR(ValidateOptimizer(job.optimizer, names));
  LRTUNE_RETURN_IF_ERROR(AtLeast(names, "batch_size", job.batch_size, 1));
  if (job.grad_accumulation < 1 ||
      job.grad_accumulation > kMaxGradAccumulation) {
    return FieldError(names, "grad_accumulation",
                      absl::StrCat("must be in [1, ", kMaxGradAccumulation,
                                   "], got ", job.grad_accumulation));
  }
  return ValidateDevice(job, names);
}

absl::Status ValidateRangeTest(const RangeTestSpec& s,
                               const FieldNamer& names) {
  LRTUNE_RETURN_IF_ERROR(Positive(names, "start_lr", s.start_lr));
  if (!std::isfinite(s.end_lr)) {
    return FieldError(names, "end_lr",
                      absl::StrCat("must be finite, got ", s.end_lr));
  }
  if (!(s.end_lr > s.start_lr)) {
    return FieldError(
        names, "end_lr",
        absl::StrCat("(", s.end_lr, ") must be > ", Sibling(names, "start_lr"),
                     " (", s.start_lr, ")"));
  }
  if (s.steps < 2 || s.steps > kMaxRangeTestSteps) {
    return FieldError(names, "steps",
                      absl::StrCat("must be in [2, ", kMaxRangeTestSteps,
                                   "], got ", s.steps));
  }
  LRTUNE_RETURN_IF_ERROR(
      ValidateAnalysisOptions(s.analysis, Nested(names, "analysis.")));
  if (s.seeds.size() > static_cast<size_t>(kMaxSeeds)) {
    return FieldError(names, "seeds",
                      absl::StrCat("must hold at most ", kMaxSeeds,
                                   " seeds, got ", s.seeds.size()));
  }
  std::set<uint64_t> seen;
  for (size_t i = 0; i < s.seeds.size(); ++i) {
    if (!seen.insert(s.seeds[i]).second) {
      return FieldError(
          names, absl::StrCat("seeds[", i, "]"),
          absl::StrCat("must be distinct; ", s.seeds[i], " repeats"));
    }
  }
  LRTUNE_RETURN_IF_ERROR(AtLeast(names, "eval_every", s.eval_every, 0));
  LRTUNE_RETURN_IF_ERROR(AtLeast(names, "budget_epochs", s.budget_epochs, 0));
  LRTUNE_RETURN_IF_ERROR(AtLeast(names, "eval_samples", s.eval_samples, 1));
  if (s.metric != RangeMetric::kTrainLoss &&
      (s.eval_every < 1 || s.eval_every > s.steps)) {
    return FieldError(
        names, "eval_every",
        absl::StrCat("must be in [1, steps (", s.steps, ")] for metric ",
                     RangeMetricName(s.metric),
                     " (evaluate every k steps), got ", s.eval_every));
  }
  if (s.driver == RangeDriver::kClient) {
    // The client trains: the coordinator sends it the plan whole and reads
    // only the training losses it reports.
    if (s.steps > kMaxClientRangeTestSteps) {
      return FieldError(
          names, "steps",
          absl::StrCat("must be in [2, ", kMaxClientRangeTestSteps,
                       "] for a client-driven test (its plan travels in one "
                       "message), got ",
                       s.steps));
    }
    if (s.metric != RangeMetric::kTrainLoss) {
      return FieldError(
          names, "metric",
          absl::StrCat("must be train_loss for a client-driven test (the "
                       "client reports training losses), got ",
                       RangeMetricName(s.metric)));
    }
    if (s.eval_every != 0) {
      return FieldError(
          names, "eval_every",
          absl::StrCat("must be 0 for a client-driven test (the client "
                       "reports no evaluations), got ",
                       s.eval_every));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateTrain(const TrainSpec& s, const FieldNamer& names) {
  LRTUNE_RETURN_IF_ERROR(AtLeast(names, "epochs", s.epochs, 0));
  LRTUNE_RETURN_IF_ERROR(AtLeast(names, "steps", s.steps, 0));
  if ((s.epochs > 0) == (s.steps > 0)) {
    return FieldError(names, "budget",
                      "needs exactly one of epochs and steps > 0");
  }
  LRTUNE_RETURN_IF_ERROR(AtLeast(names, "point_every", s.point_every, 1));
  LRTUNE_RETURN_IF_ERROR(
      AtLeast(names, "eval_every_steps", s.eval_every_steps, 0));
  const EarlyStoppingOptions& stop = s.early_stopping;
  LRTUNE_RETURN_IF_ERROR(
      AtLeast(names, "early_stopping.patience", stop.patience, 0));
  if (!(std::isfinite(stop.min_delta) && stop.min_delta >= 0.0)) {
    return FieldError(
        names, "early_stopping.min_delta",
        absl::StrCat("must be finite and >= 0, got ", stop.min_delta));
  }
  if (s.snapshot_ensemble < 0 || s.snapshot_ensemble > kMaxSnapshotEnsemble) {
    return FieldError(names, "snapshot_ensemble",
                      absl::StrCat("must be in [0, ", kMaxSnapshotEnsemble,
                                   "], got ", s.snapshot_ensemble));
  }
  for (size_t i = 0; i < s.rung_steps.size(); ++i) {
    const int64_t previous = i == 0 ? 0 : s.rung_steps[i - 1];
    if (s.rung_steps[i] <= previous) {
      return FieldError(
          names, absl::StrCat("rung_steps[", i, "]"),
          absl::StrCat("must be > ", previous, " (ascending, >= 1), got ",
                       s.rung_steps[i]));
    }
  }
  LRTUNE_RETURN_IF_ERROR(
      AtLeast(names, "checkpoint_every", s.checkpoint_every, 0));
  return AtLeast(names, "max_restored_records", s.max_restored_records, -1);
}

FieldNamer EngineJobNames() {
  return [](absl::string_view path) {
    constexpr absl::string_view kInline = "data.inline_data.";
    if (absl::StartsWith(path, kInline)) {
      return absl::StrCat("data.", path.substr(kInline.size()));
    }
    if (path == "data.inline_data") return std::string("data");
    return std::string(path);
  };
}

absl::Status ValidateJob(const JobSpec& job) {
  return ValidateJob(job, EngineJobNames());
}

absl::Status ValidateRangeTest(const RangeTestSpec& spec) {
  return ValidateRangeTest(spec, PrefixNames("range_test."));
}

absl::Status ValidateTrain(const TrainSpec& spec) {
  return ValidateTrain(spec, PrefixNames("train."));
}

}  // namespace lrtune
