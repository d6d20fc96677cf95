#include "worker/job_json.h"

#include <cmath>

#include "gtest/gtest.h"

namespace lrtune::engine {
namespace {

TEST(JobJsonTest, ParsesAFullRangeTestJob) {
  absl::StatusOr<EngineJob> job = ParseJobJson(R"({
    "kind": "range_test",
    "model": {"kind": "cnn"},
    "data": {"name": "fashion-mnist", "subset": 2048},
    "optimizer": {"kind": "sgd", "momentum": 0.9, "nesterov": true},
    "batch_size": 64, "seed": 7,
    "device": {"device": "cpu", "threads": 1},
    "range_test": {"start_lr": 1e-6, "end_lr": 1, "steps": 50,
                   "shape": "linear", "seeds": [1, 2], "eval_every": 10}
  })");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->kind, EngineJob::Kind::kRangeTest);
  EXPECT_EQ(job->job.model.kind, ModelKind::kCnn);
  EXPECT_EQ(job->job.data.subset, 2048);
  EXPECT_TRUE(job->job.optimizer.nesterov);
  EXPECT_EQ(job->job.batch_size, 64);
  EXPECT_EQ(job->job.seed, 7u);
  EXPECT_EQ(job->range_test.shape, RampShape::kLinear);
  EXPECT_EQ(job->range_test.seeds, (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(job->range_test.eval_every, 10);
}

TEST(JobJsonTest, ParsesATrainJobWithASchedule) {
  absl::StatusOr<EngineJob> job = ParseJobJson(R"({
    "kind": "train", "loss": "mse", "data": {"name": "linear"},
    "train": {"schedule": {"kind": "one_cycle", "max_lr": 0.1,
                           "total_steps": 100}, "steps": 100}
  })");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->job.loss, LossKind::kMse);
  EXPECT_EQ(job->train.schedule.kind, ScheduleKind::kOneCycle);
  EXPECT_EQ(job->train.schedule.total_steps, 100);
}

TEST(JobJsonTest, ErrorsNameTheKey) {
  auto message = [](const std::string& text) {
    return std::string(ParseJobJson(text).status().message());
  };
  EXPECT_NE(message(R"({"kind": "range_test", "data": {"subset": "x"}})")
                .find("data.subset: expected an integer"),
            std::string::npos);
  EXPECT_NE(message(R"({"kind": "range_test", "data": {"sbset": 1}})")
                .find("data.sbset: unknown key"),
            std::string::npos);
  EXPECT_NE(message(R"({"kind": "fit"})").find("kind must be"),
            std::string::npos);
  EXPECT_NE(message(R"({"kind": "range_test", "batch_size": 0})")
                .find("batch_size must be >= 1"),
            std::string::npos);
  EXPECT_NE(message(R"({"kind": "train"})").find("exactly one of epochs"),
            std::string::npos);
  EXPECT_NE(message("{").find("not valid JSON"), std::string::npos);
  EXPECT_EQ(ParseJobJson(R"({"kind": "range_test",
                "model": {"torchscript_path": "/nonexistent.pt"}})")
                .status()
                .code(),
            absl::StatusCode::kNotFound);
}

TEST(JobJsonTest, NonFiniteNumbersBecomeNull) {
  StepPoint p;
  p.step = 3;
  p.lr = 0.1;
  p.loss = std::nan("");
  const std::string line = PointToJsonLine(p);
  EXPECT_NE(line.find("\"loss\":null"), std::string::npos) << line;
  EXPECT_NE(line.find("\"step\":3"), std::string::npos) << line;
}

}  // namespace
}  // namespace lrtune::engine
