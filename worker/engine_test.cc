// End-to-end tests of the engine on small data: every built-in model learns
// on every dataset it fits, the range test on Fashion-MNIST, determinism,
// TorchScript modules, and the errors (bad module, bad tensors, cancel, NaN).
// Over ~600 lines because it is the one torch-compiled test file: a second
// one would add ~10 s of torch compile to every build.
#include "worker/engine.h"

#include <sys/stat.h>
#include <torch/script.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_format.h"
#include "gtest/gtest.h"

namespace lrtune::engine {
namespace {

JobSpec SmallJob(const std::string& data, ModelKind kind = ModelKind::kMlp) {
  JobSpec job;
  job.model.kind = kind;
  job.model.hidden = {32};
  job.data.name = data;
  job.data.subset = 512;
  job.data.validation_subset = 256;
  job.batch_size = 32;
  job.seed = 1;
  job.device.threads = 1;
  return job;
}

TrainSpec ConstantLr(double lr, int64_t steps) {
  TrainSpec spec;
  spec.schedule.kind = ScheduleKind::kConstant;
  spec.schedule.base_lr = lr;
  spec.steps = steps;
  return spec;
}

struct Recorded {
  std::vector<double> losses;
  std::vector<Evaluation> evals;
  Callbacks callbacks() {
    Callbacks cb;
    cb.on_point = [this](const StepPoint& p) { losses.push_back(p.loss); };
    cb.on_evaluation = [this](const Evaluation& e) { evals.push_back(e); };
    return cb;
  }
  double Mean(size_t from, size_t n) const {
    double s = 0;
    for (size_t i = from; i < from + n; ++i) s += losses[i];
    return s / static_cast<double>(n);
  }
};

struct LearnCase {
  std::string data;
  ModelKind model;
  OptimizerKind optimizer;
  double lr;
  LossKind loss = LossKind::kCrossEntropy;
};

class LearnTest : public testing::TestWithParam<LearnCase> {};

TEST_P(LearnTest, LossDecreases) {
  const LearnCase& c = GetParam();
  JobSpec job = SmallJob(c.data, c.model);
  job.optimizer.kind = c.optimizer;
  job.loss = c.loss;
  if (c.optimizer == OptimizerKind::kSgd) job.optimizer.momentum = 0.9;
  Recorded rec;
  constexpr int64_t kSteps = 40;
  absl::StatusOr<TrainResult> r =
      RunTraining(job, ConstantLr(c.lr, kSteps), rec.callbacks());
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(rec.losses.size(), static_cast<size_t>(kSteps));
  EXPECT_LT(rec.Mean(kSteps - 8, 8), 0.8 * rec.Mean(0, 8))
      << c.data << " / " << ModelKindName(c.model);
  EXPECT_TRUE(std::isfinite(r->final_eval.val_loss));
  ASSERT_FALSE(rec.evals.empty());
}

INSTANTIATE_TEST_SUITE_P(
    Engine, LearnTest,
    testing::Values(
        LearnCase{"fashion-mnist", ModelKind::kMlp, OptimizerKind::kSgd, 0.05},
        LearnCase{"fashion-mnist", ModelKind::kCnn, OptimizerKind::kAdam, 2e-3},
        LearnCase{"fashion-mnist", ModelKind::kResnet20, OptimizerKind::kAdam,
                  3e-3},
        LearnCase{"digits", ModelKind::kMlp, OptimizerKind::kAdamW, 3e-3},
        LearnCase{"digits", ModelKind::kCnn, OptimizerKind::kRmsProp, 1e-3},
        LearnCase{"digits", ModelKind::kResnet20, OptimizerKind::kAdam, 3e-3},
        LearnCase{"iris", ModelKind::kMlp, OptimizerKind::kSgd, 0.05},
        LearnCase{"wine", ModelKind::kMlp, OptimizerKind::kSgd, 0.05},
        LearnCase{"breast-cancer", ModelKind::kMlp, OptimizerKind::kSgd, 0.02},
        LearnCase{"spirals", ModelKind::kMlp, OptimizerKind::kAdam, 1e-2},
        LearnCase{"blobs", ModelKind::kMlp, OptimizerKind::kSgd, 0.05},
        LearnCase{"linear", ModelKind::kMlp, OptimizerKind::kSgd, 0.01,
                  LossKind::kMse}),
    [](const testing::TestParamInfo<LearnCase>& info) {
      std::string name =
          info.param.data + "_" + ModelKindName(info.param.model);
      for (char& ch : name) {
        if (ch == '-') ch = '_';
      }
      return name;
    });

TEST(EngineTest, ImageModelsRejectTabularData) {
  absl::StatusOr<TrainResult> r =
      RunTraining(SmallJob("iris", ModelKind::kCnn), ConstantLr(0.1, 2), {});
  ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("[C, H, W]"), std::string::npos);
}

TEST(EngineTest, RangeTestOnFashionMnist) {
  JobSpec job = SmallJob("fashion-mnist");
  job.data.subset = 2048;
  job.model.hidden = {64};
  job.batch_size = 64;
  RangeTestSpec spec;
  spec.start_lr = 1e-4;
  spec.end_lr = 100.0;
  spec.steps = 200;
  // 200 points: a shorter EMA than the default 0.98 (a 50-step lag).
  spec.analysis.smoothing_beta = 0.9;
  spec.eval_every = 40;
  spec.eval_samples = 128;
  Recorded rec;
  absl::StatusOr<RangeTestResult> r = RunRangeTest(job, spec, rec.callbacks());
  ASSERT_TRUE(r.ok()) << r.status();
  const Recommendation& rc = r->recommendation;
  ASSERT_EQ(r->curves.size(), 1u);
  const std::vector<CurvePoint>& curve = r->curves[0];
  EXPECT_EQ(rec.losses.size(), curve.size());
  // lr up to 100 diverges; the test stops there.
  EXPECT_LT(static_cast<int64_t>(curve.size()), spec.steps);
  const double diverged_lr = curve.back().lr;
  EXPECT_GE(rc.min_lr, spec.start_lr);
  EXPECT_LT(rc.min_lr, rc.max_lr);
  EXPECT_LE(rc.max_lr, diverged_lr);
  EXPECT_GT(rc.stepsize_iterations, 0);
  EXPECT_TRUE(rc.warnings.empty()) << rc.warnings[0].message;
  EXPECT_FALSE(r->evaluations.empty());
}

// The decoded-data cache end to end: the first run stores the table, the
// second maps it (same curve, entry untouched), a changed source is decoded
// again (another curve, entry replaced), and a damaged entry is a miss.
TEST(EngineTest, DataCacheServesTheNextRunAndNoticesAChangedSource) {
  namespace fs = std::filesystem;
  const fs::path root = fs::path(testing::TempDir()) /
                        absl::StrFormat("engine_cache_test_%d", getpid());
  fs::remove_all(root);
  fs::create_directories(root / "data" / "sklearn");
  const fs::path csv = root / "data" / "sklearn" / "iris.csv";
  fs::copy_file("/usr/local/share/lrtune/datasets/sklearn/iris.csv", csv);
  const fs::path cache = root / "cache";
  ASSERT_EQ(setenv("LRTUNE_CACHE_DIR", cache.c_str(), 1), 0);

  JobSpec job = SmallJob("iris");
  job.data.data_dir = (root / "data").string();
  RangeTestSpec spec;
  spec.start_lr = 1e-3;
  spec.end_lr = 1.0;
  spec.steps = 15;
  auto curve = [&] {
    absl::StatusOr<RangeTestResult> r = RunRangeTest(job, spec, {});
    EXPECT_TRUE(r.ok()) << r.status();
    std::vector<double> losses;
    if (r.ok()) {
      for (const CurvePoint& p : r->curves[0]) losses.push_back(p.loss);
    }
    return losses;
  };
  auto entries = [&] {
    std::vector<fs::path> out;
    for (const auto& e : fs::directory_iterator(cache)) {
      if (e.path().extension() == ".lrtcache") out.push_back(e.path());
    }
    return out;
  };
  auto inode = [](const fs::path& p) {
    struct stat st;
    return stat(p.c_str(), &st) == 0 ? st.st_ino : 0;
  };

  const std::vector<double> first = curve();
  ASSERT_EQ(entries().size(), 1u) << "the first run stores the table";
  const fs::path entry = entries()[0];
  const auto stored = inode(entry);
  EXPECT_EQ(curve(), first) << "the cached table is the decoded one";
  EXPECT_EQ(inode(entry), stored) << "a hit does not store again";

  // Same size, one value changed: only the content hash can tell.
  std::string text;
  {
    std::ifstream in(csv);
    text.assign(std::istreambuf_iterator<char>(in), {});
  }
  const size_t at = text.find("5.1");
  ASSERT_NE(at, std::string::npos);
  text.replace(at, 3, "9.9");
  {
    std::ofstream out(csv, std::ios::trunc);
    out << text;
  }
  const std::vector<double> changed = curve();
  EXPECT_NE(changed, first) << "a changed source must be decoded again";
  EXPECT_NE(inode(entry), stored) << "and its entry replaced";

  fs::resize_file(entry, fs::file_size(entry) / 2);  // a damaged entry
  EXPECT_EQ(curve(), changed);
  EXPECT_EQ(curve(), changed);  // stored again, then served

  ASSERT_EQ(setenv("LRTUNE_CACHE_DIR", "off", 1), 0);
  EXPECT_EQ(curve(), changed) << "with the cache off, the same data";
  unsetenv("LRTUNE_CACHE_DIR");
  fs::remove_all(root);
}

TEST(EngineTest, SameSeedSameCurveBitForBit) {
  JobSpec job = SmallJob("fashion-mnist");
  job.data.subset = 256;
  RangeTestSpec spec;
  spec.start_lr = 1e-3;
  spec.end_lr = 1.0;
  spec.steps = 20;
  absl::StatusOr<RangeTestResult> a = RunRangeTest(job, spec, {});
  absl::StatusOr<RangeTestResult> b = RunRangeTest(job, spec, {});
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(a->curves[0].size(), b->curves[0].size());
  for (size_t i = 0; i < a->curves[0].size(); ++i) {
    EXPECT_EQ(a->curves[0][i].loss, b->curves[0][i].loss) << "step " << i;
  }
  job.seed = 2;
  absl::StatusOr<RangeTestResult> c = RunRangeTest(job, spec, {});
  ASSERT_TRUE(c.ok());
  EXPECT_NE(a->curves[0][5].loss, c->curves[0][5].loss);
}

TEST(EngineTest, SeveralSeedsAreAggregated) {
  JobSpec job = SmallJob("blobs");
  RangeTestSpec spec;
  spec.start_lr = 1e-3;
  spec.end_lr = 50.0;
  spec.steps = 40;
  spec.seeds = {1, 2, 3};
  absl::StatusOr<RangeTestResult> r = RunRangeTest(job, spec, {});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->per_seed.size(), 3u);
  EXPECT_EQ(r->recommendation.seeds, 3);
}

struct PackCase {
  ModelKind model;
  OptimizerKind optimizer;
};

class PackedSeedsTest : public testing::TestWithParam<PackCase> {};

// Packed seeds train as their unpacked runs do: the same per-seed curves
// (within float tolerance: batched and grouped kernels sum in another
// order) up to each seed's own divergence, and the same points, labelled
// by seed.
TEST_P(PackedSeedsTest, CurvesEqualUnpackedRuns) {
  const PackCase& c = GetParam();
  JobSpec job = SmallJob("fashion-mnist", c.model);
  job.data.subset = 1024;
  job.optimizer.kind = c.optimizer;
  if (c.optimizer == OptimizerKind::kSgd) job.optimizer.momentum = 0.9;
  RangeTestSpec spec;
  spec.start_lr = c.optimizer == OptimizerKind::kSgd ? 1e-4 : 1e-6;
  spec.end_lr = c.optimizer == OptimizerKind::kSgd ? 50.0 : 5.0;
  spec.steps = 60;
  spec.analysis.smoothing_beta = 0.9;
  spec.seeds = {3, 1, 2};
  std::vector<std::vector<StepPoint>> packed_points(3);
  Callbacks cb;
  std::vector<std::string> progress;
  cb.on_point = [&](const StepPoint& p) {
    packed_points.at(p.seed_index).push_back(p);
  };
  cb.on_progress = [&](const std::string& line) { progress.push_back(line); };
  absl::StatusOr<RangeTestResult> packed = RunRangeTest(job, spec, cb);
  ASSERT_TRUE(packed.ok()) << packed.status();
  ASSERT_EQ(packed->curves.size(), 3u);
  EXPECT_NE(progress.back().find("packing 3 seeds"), std::string::npos);
  spec.pack_seeds = false;
  absl::StatusOr<RangeTestResult> plain = RunRangeTest(job, spec, {});
  ASSERT_TRUE(plain.ok()) << plain.status();
  bool some_diverged = false;
  for (size_t k = 0; k < 3; ++k) {
    const std::vector<CurvePoint>& a = packed->curves[k];
    const std::vector<CurvePoint>& b = plain->curves[k];
    ASSERT_EQ(packed_points[k].size(), a.size());
    // Float differences grow once the LR is large (chaotic SGD): compare
    // the curve's first half (lr up to ~0.07 / ~2e-3) point by point, its
    // length and its recommendation closely.
    some_diverged |= static_cast<int64_t>(b.size()) < spec.steps;
    EXPECT_NEAR(static_cast<double>(a.size()), static_cast<double>(b.size()),
                2.0)
        << "seed " << spec.seeds[k];
    for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
      if (static_cast<int64_t>(i) >= spec.steps / 2) break;
      EXPECT_EQ(a[i].lr, b[i].lr);
      EXPECT_NEAR(a[i].loss, b[i].loss, 1e-3 * std::abs(b[i].loss) + 1e-5)
          << "seed " << spec.seeds[k] << " step " << i;
      EXPECT_EQ(packed_points[k][i].loss, a[i].loss);
    }
    EXPECT_NEAR(std::log10(packed->per_seed[k].max_lr),
                std::log10(plain->per_seed[k].max_lr), 0.05);
  }
  EXPECT_TRUE(some_diverged) << "the ramp should reach divergence";
  // Different seeds, different curves: the members did not share weights
  // or batches.
  EXPECT_NE(packed->curves[0][3].loss, packed->curves[1][3].loss);
}

INSTANTIATE_TEST_SUITE_P(
    Engine, PackedSeedsTest,
    testing::Values(PackCase{ModelKind::kMlp, OptimizerKind::kSgd},
                    PackCase{ModelKind::kMlp, OptimizerKind::kAdam},
                    PackCase{ModelKind::kCnn, OptimizerKind::kSgd}),
    [](const testing::TestParamInfo<PackCase>& info) {
      return absl::StrFormat("%s_%s", ModelKindName(info.param.model),
                             OptimizerKindName(info.param.optimizer));
    });

TEST(EngineTest, SeedsAreNotPackedWithAValidationMetric) {
  JobSpec job = SmallJob("digits");
  RangeTestSpec spec;
  spec.steps = 20;
  spec.seeds = {1, 2};
  spec.eval_every = 10;
  std::vector<std::string> progress;
  Callbacks cb;
  cb.on_progress = [&](const std::string& line) { progress.push_back(line); };
  absl::StatusOr<RangeTestResult> r = RunRangeTest(job, spec, cb);
  ASSERT_TRUE(r.ok()) << r.status();
  for (const std::string& line : progress) {
    EXPECT_EQ(line.find("packing"), std::string::npos) << line;
  }
  ASSERT_EQ(r->evaluations.size(), 4u);  // two per seed
  EXPECT_EQ(r->evaluations[2].seed_index, 1);
}

// Smith's original test: the bounds are read from the validation metric,
// one point per evaluation, and they are bounds (min < max) on a real
// curve; accuracy needs a classifier.
TEST(EngineTest, ValidationMetricRangeTestReadsTheEvaluations) {
  JobSpec job = SmallJob("digits");
  RangeTestSpec spec;
  spec.start_lr = 1e-4;
  spec.end_lr = 10;
  spec.steps = 200;
  spec.eval_every = 4;
  spec.eval_samples = 256;
  for (RangeMetric metric :
       {RangeMetric::kValLoss, RangeMetric::kValAccuracy}) {
    spec.metric = metric;
    absl::StatusOr<RangeTestResult> r = RunRangeTest(job, spec, {});
    ASSERT_TRUE(r.ok()) << r.status();
    const Recommendation& rec = r->recommendation;
    EXPECT_GT(rec.max_lr, rec.min_lr) << RangeMetricName(metric);
    EXPECT_GT(rec.min_lr, 0) << RangeMetricName(metric);
    // Read from the evaluations (at most 50), not the <= 200 training steps.
    EXPECT_LE(rec.points_used, static_cast<int64_t>(r->evaluations.size()));
    EXPECT_LE(r->evaluations.size(), 50u);
    EXPECT_GE(rec.points_used, 20) << RangeMetricName(metric);
  }
  job.loss = LossKind::kMse;
  spec.metric = RangeMetric::kValAccuracy;
  absl::StatusOr<RangeTestResult> mse = RunRangeTest(job, spec, {});
  EXPECT_EQ(mse.status().code(), absl::StatusCode::kInvalidArgument);
  spec.metric = RangeMetric::kValLoss;
  spec.eval_every = 0;
  EXPECT_NE(RunRangeTest(SmallJob("digits"), spec, {})
                .status()
                .message()
                .find("eval_every must be in [1, steps (200)] for metric "
                      "val_loss"),
            std::string::npos);
}

// A TorchScript linear classifier made here, as a client would with
// torch.jit.save.
std::string ScriptModule(int64_t in, int64_t out, bool with_params = true,
                         const std::string& body = "") {
  torch::jit::Module m("Linear");
  if (with_params) {
    torch::manual_seed(0);
    m.register_parameter("w", (torch::randn({in, out}) * 0.1).requires_grad_(),
                         false);
    m.register_parameter("b", torch::zeros({out}).requires_grad_(), false);
  }
  m.define(body.empty() ? "def forward(self, x):\n  return "
                          "x.flatten(1).matmul(self.w) + self.b\n"
                        : body);
  std::ostringstream bytes;
  m.save(bytes);
  return bytes.str();
}

TEST(EngineTest, TrainsTorchScriptModule) {
  JobSpec job = SmallJob("blobs", ModelKind::kTorchScript);
  job.model.torchscript = ScriptModule(8, 3);
  Recorded rec;
  absl::StatusOr<TrainResult> r =
      RunTraining(job, ConstantLr(0.1, 30), rec.callbacks());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_LT(rec.Mean(22, 8), 0.8 * rec.Mean(0, 8));
}

TEST(EngineTest, BadTorchScriptModulesGiveErrors) {
  JobSpec job = SmallJob("blobs", ModelKind::kTorchScript);
  job.model.torchscript = "not a zip archive";
  absl::StatusOr<TrainResult> r = RunTraining(job, ConstantLr(0.1, 2), {});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("cannot load"), std::string::npos);

  job.model.torchscript = ScriptModule(8, 3, /*with_params=*/false,
                                       "def forward(self, x):\n  return x\n");
  r = RunTraining(job, ConstantLr(0.1, 2), {});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("no trainable parameters"),
            std::string::npos);

  job.model.torchscript = ScriptModule(8, 5);  // 5 outputs, 3 classes
  r = RunTraining(job, ConstantLr(0.1, 2), {});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("does not fit loss"), std::string::npos);

  job.model.torchscript = ScriptModule(7, 3);  // wrong input width
  r = RunTraining(job, ConstantLr(0.1, 2), {});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("forward pass failed"),
            std::string::npos);
}

JobSpec InlineJob() {
  JobSpec job = SmallJob("inline");
  job.data.x_shape = {10, 2};  // N >= 10 (core/spec.h)
  job.data.x = {0, 0, 0, 1, 1, 0, 1, 1, 2, 2, 3, 3, 0, 2, 2, 0, 1, 3, 3, 1};
  job.data.y_labels = {0, 1, 1, 0, 1, 0, 0, 1, 1, 0};
  job.data.validation_fraction = 0.0;
  return job;
}

TEST(EngineTest, InlineTensorsTrainAndBadTensorsGiveErrors) {
  absl::StatusOr<TrainResult> r =
      RunTraining(InlineJob(), ConstantLr(0.1, 5), {});
  ASSERT_TRUE(r.ok()) << r.status();

  JobSpec job = InlineJob();
  job.data.x.pop_back();
  r = RunTraining(job, ConstantLr(0.1, 5), {});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find(
                "data.x must hold product(x_shape) = 20 values, got 19"),
            std::string::npos);

  job = InlineJob();
  job.data.x[3] = std::nanf("");
  r = RunTraining(job, ConstantLr(0.1, 5), {});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);

  job = InlineJob();
  job.data.y_labels[0] = -1;
  r = RunTraining(job, ConstantLr(0.1, 5), {});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("data.y_labels"), std::string::npos);

  job = InlineJob();
  job.data.y_targets = {1, 2, 3, 4, 5, 6};  // both labels and targets
  r = RunTraining(job, ConstantLr(0.1, 5), {});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);

  job = InlineJob();
  job.data.x_shape = {kMaxInlineSamples + 1, 1};
  r = RunTraining(job, ConstantLr(0.1, 5), {});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(EngineTest, CancelledRunStops) {
  CancellationToken cancel;
  Callbacks cb;
  int points = 0;
  cb.on_point = [&](const StepPoint&) {
    if (++points == 5) cancel.Cancel();
  };
  RangeTestSpec spec;
  spec.steps = 100;
  absl::StatusOr<RangeTestResult> r =
      RunRangeTest(SmallJob("blobs"), spec, cb, &cancel);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(points, 5);
}

TEST(EngineTest, NonFiniteLossFailsTraining) {
  JobSpec job = SmallJob("linear");
  job.loss = LossKind::kMse;
  absl::StatusOr<TrainResult> r = RunTraining(job, ConstantLr(1e6, 50), {});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("diverged"), std::string::npos);
}

TEST(EngineTest, InvalidSpecsNameTheField) {
  JobSpec job = SmallJob("blobs");
  job.batch_size = 0;
  absl::StatusOr<TrainResult> r = RunTraining(job, ConstantLr(0.1, 5), {});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("batch_size"), std::string::npos);

  job = SmallJob("no-such-data");
  r = RunTraining(job, ConstantLr(0.1, 5), {});
  EXPECT_NE(r.status().message().find("data.name"), std::string::npos);

  job = SmallJob("fashion-mnist");
  job.data.data_dir = "/nonexistent";
  r = RunTraining(job, ConstantLr(0.1, 5), {});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);

  job = SmallJob("blobs");
  job.device.device = "tpu";
  r = RunTraining(job, ConstantLr(0.1, 5), {});
  EXPECT_NE(r.status().message().find("device.device"), std::string::npos);

  RangeTestSpec spec;
  spec.end_lr = spec.start_lr / 2;
  EXPECT_EQ(RunRangeTest(SmallJob("blobs"), spec, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(EngineTest, CheckpointResumesExactly) {
  JobSpec job = SmallJob("blobs");
  job.optimizer.momentum = 0.9;
  TrainSpec spec = ConstantLr(0.05, 30);
  absl::StatusOr<TrainResult> whole = RunTraining(job, spec, {});
  ASSERT_TRUE(whole.ok()) << whole.status();

  spec.checkpoint_path =
      testing::TempDir() + "/engine_test_ckpt_" + std::to_string(::getpid());
  std::remove(spec.checkpoint_path.c_str());
  CancellationToken cancel;
  Callbacks cb;
  cb.on_point = [&](const StepPoint& p) {
    if (p.step == 12) cancel.Cancel();
  };
  absl::StatusOr<TrainResult> first = RunTraining(job, spec, cb, &cancel);
  EXPECT_EQ(first.status().code(), absl::StatusCode::kCancelled);
  absl::StatusOr<TrainResult> resumed = RunTraining(job, spec, {});
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(resumed->resumed_from, 13);
  EXPECT_EQ(resumed->steps, 30);
  EXPECT_EQ(resumed->final_eval.val_loss, whole->final_eval.val_loss);
  std::remove(spec.checkpoint_path.c_str());
}

// Every record a run emits, as text (the elapsed times aside).
struct RecordLog {
  std::vector<std::string> lines;
  int64_t restored_step = -1;
  int64_t restored_records = -1;
  Callbacks callbacks() {
    Callbacks cb;
    cb.on_point = [this](const StepPoint& p) {
      lines.push_back(absl::StrFormat("point %d lr=%.17g loss=%.17g s=%.17g",
                                      p.step, p.lr, p.loss, p.smoothed));
    };
    cb.on_evaluation = [this](const Evaluation& e) {
      lines.push_back(absl::StrFormat(
          "eval %d epoch=%d train=%.17g val=%.17g acc=%.17g", e.step, e.epoch,
          e.train_loss, e.val_loss, e.val_accuracy));
    };
    cb.on_restore = [this](int64_t step, int64_t records) {
      restored_step = step;
      restored_records = records;
    };
    return cb;
  }
};

// A run stopped mid epoch and resumed from its checkpoint emits exactly the
// records the uninterrupted run emits from there on (smoothed losses and the
// epoch's mean training loss included), numbered where the first part
// stopped.
TEST(EngineTest, ResumedRunContinuesTheRecordStream) {
  JobSpec job = SmallJob("blobs");
  job.optimizer.momentum = 0.9;
  TrainSpec spec = ConstantLr(0.05, 40);  // epochs of 16 steps: evals too
  spec.point_every = 3;
  RecordLog whole;
  absl::StatusOr<TrainResult> whole_result =
      RunTraining(job, spec, whole.callbacks());
  ASSERT_TRUE(whole_result.ok()) << whole_result.status();

  spec.checkpoint_path =
      testing::TempDir() + "/engine_test_stream_" + std::to_string(::getpid());
  std::remove(spec.checkpoint_path.c_str());
  CancellationToken cancel;
  RecordLog first;
  Callbacks cb = first.callbacks();
  cb.on_point = [&, inner = cb.on_point](const StepPoint& p) {
    inner(p);
    if (p.step == 21) cancel.Cancel();
  };
  EXPECT_EQ(RunTraining(job, spec, cb, &cancel).status().code(),
            absl::StatusCode::kCancelled);

  RecordLog resumed;
  absl::StatusOr<TrainResult> r = RunTraining(job, spec, resumed.callbacks());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->resumed_from, 22);
  EXPECT_EQ(resumed.restored_step, 22);
  ASSERT_EQ(resumed.restored_records, static_cast<int64_t>(first.lines.size()));
  std::vector<std::string> joined = first.lines;
  joined.insert(joined.end(), resumed.lines.begin(), resumed.lines.end());
  EXPECT_EQ(joined, whole.lines);

  // The checkpoint now holds the end of the run (step 40) and the one before
  // it the end of epoch 2 (step 32). With fewer records stored than the
  // newest follows, the run resumes from the one before; with fewer than
  // both follow, it starts over and emits the whole stream.
  const int64_t all = static_cast<int64_t>(whole.lines.size());
  spec.max_restored_records = all - 1;
  RecordLog previous;
  r = RunTraining(job, spec, previous.callbacks());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->resumed_from, 32);
  ASSERT_GT(previous.restored_records, 0);
  joined.assign(whole.lines.begin(),
                whole.lines.begin() + previous.restored_records);
  joined.insert(joined.end(), previous.lines.begin(), previous.lines.end());
  EXPECT_EQ(joined, whole.lines);

  spec.max_restored_records = previous.restored_records - 1;
  RecordLog afresh;
  r = RunTraining(job, spec, afresh.callbacks());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->resumed_from, 0);
  EXPECT_EQ(afresh.restored_step, -1);
  EXPECT_EQ(afresh.lines, whole.lines);
  spec.max_restored_records = all;
  RecordLog at_end;
  r = RunTraining(job, spec, at_end.callbacks());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->resumed_from, 40);
  EXPECT_EQ(at_end.restored_records, all);
  EXPECT_TRUE(at_end.lines.empty());
  EXPECT_EQ(r->final_eval.val_loss, whole_result->final_eval.val_loss);
  std::remove(spec.checkpoint_path.c_str());
  std::remove((spec.checkpoint_path + kPreviousCheckpointSuffix).c_str());
}

// digits has pixels that are 0 throughout a training split but not in the
// validation split: standardising must not divide them by a ~0 std (that
// made validation losses of several hundred at 96% accuracy).
TEST(EngineTest, FeaturesConstantInTrainingKeepValidationLossSane) {
  JobSpec job = SmallJob("digits");
  job.data.validation_subset = 0;  // the whole validation split
  job.optimizer.momentum = 0.9;
  absl::StatusOr<TrainResult> r = RunTraining(job, ConstantLr(0.05, 64), {});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(r->final_eval.val_accuracy, 0.8);
  EXPECT_LT(r->final_eval.val_loss, 1.5);
}

TEST(EngineTest, EpochBudgetEvaluatesEveryEpoch) {
  JobSpec job = SmallJob("iris");
  TrainSpec spec;
  spec.schedule = ScheduleSpec::OneCycle(0.5, 3 * (120 / 32));
  spec.epochs = 3;
  Recorded rec;
  absl::StatusOr<TrainResult> r = RunTraining(job, spec, rec.callbacks());
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(rec.evals.size(), 3u);
  EXPECT_EQ(rec.evals[2].epoch, 3);
  EXPECT_GT(r->best_eval.val_accuracy, 0.5);
}

}  // namespace
}  // namespace lrtune::engine
