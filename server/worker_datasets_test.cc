// Data sets by reference on the coordinator, driven without gRPC: what a
// registration may report, a job naming a set no registered worker has
// refused with the field and what the workers have, a known one described
// in the stored job (and planned from it), and its tasks leased only to
// workers that have the set.
#include "server/worker_datasets.h"

#include <unistd.h>

#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/spec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lrtune/v1/lrtune.pb.h"
#include "lrtune/v1/worker.pb.h"
#include "server/clock.h"
#include "server/coordinator.h"
#include "server/job_store.h"

namespace lrtune::server {
namespace {

using ::testing::HasSubstr;

v1::DatasetDescription Described(const std::string& name, int64_t rows = 1000) {
  v1::DatasetDescription d;
  d.set_name(name);
  d.add_sample_shape(784);
  d.set_train_samples(rows);
  d.set_classes(10);
  d.set_bytes(rows * (784 * 4 + 8));
  return d;
}

v1::SubmitJobRequest RangeTestOn(const std::string& dataset) {
  v1::SubmitJobRequest request;
  v1::RangeTestJob& job = *request.mutable_range_test();
  job.mutable_run()->mutable_data()->set_name(dataset);
  job.mutable_range_test()->set_steps(50);
  return request;
}

class WorkerDatasetsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_path_ = absl::StrCat(::testing::TempDir(), "/worker_datasets_test_",
                            getpid(), ".db");
    Remove();
    Open();
  }
  void TearDown() override {
    coordinator_.reset();
    store_.reset();
    Remove();
  }
  void Open() {
    coordinator_.reset();
    store_.reset();
    auto store = JobStore::Open(db_path_, SystemClock(), JobEventEncoder());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    coordinator_ = std::make_unique<Coordinator>(store_.get(), SystemClock(),
                                                 CoordinatorOptions{});
  }
  void Remove() {
    for (const char* suffix : {"", "-wal", "-shm"}) {
      std::remove((db_path_ + suffix).c_str());
    }
  }

  absl::StatusOr<v1::RegisterResponse> Register(
      const std::string& id, std::vector<v1::DatasetDescription> datasets) {
    v1::RegisterRequest request;
    request.set_worker_id(id);
    request.mutable_capabilities()->add_devices()->set_name("cpu");
    request.mutable_capabilities()->add_slots()->set_device("cpu");
    for (v1::DatasetDescription& d : datasets) {
      *request.mutable_capabilities()->add_datasets() = std::move(d);
    }
    return coordinator_->Register(request);
  }

  std::optional<v1::Task> Acquire(const std::string& worker) {
    v1::AcquireTaskRequest request;
    request.set_worker_id(worker);
    absl::StatusOr<v1::AcquireTaskResponse> r =
        coordinator_->AcquireTask(request);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok() || !r->has_task()) return std::nullopt;
    return r->task();
  }

  std::string db_path_;
  std::unique_ptr<JobStore> store_;
  std::unique_ptr<Coordinator> coordinator_;
};

TEST_F(WorkerDatasetsTest, RegistrationsFollowTheRules) {
  EXPECT_TRUE(Register("w1", {Described("mine"), Described("other")}).ok());
  absl::StatusOr<v1::RegisterResponse> r =
      Register("w2", {Described("mine"), Described("mine")});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(),
              HasSubstr("capabilities.datasets[1].name \"mine\" repeats"));
  r = Register("w2", {Described("mine", 5)});
  EXPECT_THAT(r.status().message(),
              HasSubstr("capabilities.datasets[0].train_samples must be >= "
                        "10, got 5"));
  r = Register("w2", {Described("iris")});
  EXPECT_THAT(r.status().message(),
              HasSubstr("capabilities.datasets[0].name must be"));
  std::vector<v1::DatasetDescription> many;
  for (int i = 0; i <= kMaxDatasetsPerWorker; ++i) {
    many.push_back(Described(absl::StrCat("set-", i)));
  }
  r = Register("w2", many);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
}

TEST_F(WorkerDatasetsTest, UnknownNameIsRefusedWithWhatTheWorkersHave) {
  absl::StatusOr<v1::Job> job =
      coordinator_->SubmitJob("alice", RangeTestOn("mine"));
  EXPECT_EQ(job.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(job.status().message(),
              HasSubstr("run.data.name \"mine\" is neither a built-in data "
                        "set (fashion-mnist, digits"));
  EXPECT_THAT(job.status().message(), HasSubstr("no worker is registered"));

  ASSERT_TRUE(Register("w1", {Described("b-set"), Described("a-set")}).ok());
  ASSERT_TRUE(Register("w2", {Described("a-set")}).ok());
  job = coordinator_->SubmitJob("alice", RangeTestOn("mine"));
  EXPECT_THAT(job.status().message(),
              HasSubstr("the 2 registered workers have a-set, b-set"));

  v1::SubmitJobRequest grid;
  grid.mutable_grid()->mutable_run()->mutable_data()->set_name("c-set");
  grid.mutable_grid()->mutable_train()->set_steps(10);
  job = coordinator_->SubmitJob("alice", grid);
  EXPECT_THAT(job.status().message(),
              HasSubstr("grid.run.data.name \"c-set\""));
  // Built-in sets need no worker to say so.
  EXPECT_TRUE(coordinator_->SubmitJob("alice", RangeTestOn("iris")).ok());
}

TEST_F(WorkerDatasetsTest, KnownSetIsDescribedStoredAndLeasedOnlyWhereItIs) {
  ASSERT_TRUE(Register("has-it", {Described("mine", 1000)}).ok());
  ASSERT_TRUE(Register("has-not", {Described("other")}).ok());
  v1::SubmitJobRequest request = RangeTestOn("mine");
  // Whatever a client claims about the set is replaced by the workers'.
  *request.mutable_range_test()
       ->mutable_run()
       ->mutable_data()
       ->mutable_description() = Described("mine", 7);
  request.set_request_id("r-1");
  absl::StatusOr<v1::Job> job = coordinator_->SubmitJob("alice", request);
  ASSERT_TRUE(job.ok()) << job.status();
  const v1::DataSpec& data = job->range_test().run().data();
  ASSERT_TRUE(data.has_description());
  EXPECT_EQ(data.description().train_samples(), 1000);
  EXPECT_EQ(data.description().SerializeAsString(),
            Described("mine", 1000).SerializeAsString());
  // A retry is the same job.
  request.mutable_range_test()
      ->mutable_run()
      ->mutable_data()
      ->clear_description();
  absl::StatusOr<v1::Job> again = coordinator_->SubmitJob("alice", request);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->job_id(), job->job_id());

  EXPECT_FALSE(Acquire("has-not").has_value());
  std::optional<v1::Task> task = Acquire("has-it");
  ASSERT_TRUE(task.has_value());
  EXPECT_EQ(task->range_test().run().data().description().train_samples(),
            1000);
}

TEST_F(WorkerDatasetsTest, EpochBudgetsArePlannedFromTheDescription) {
  // 1000 rows, 20% held out: 800 train, 6 updates of 128 an epoch.
  ASSERT_TRUE(Register("w1", {Described("mine", 1000)}).ok());
  v1::SubmitJobRequest request;
  v1::GridSearchJob& grid = *request.mutable_grid();
  grid.mutable_run()->mutable_data()->set_name("mine");
  grid.mutable_train()->mutable_schedule()->set_kind(v1::SCHEDULE_KIND_COSINE);
  grid.mutable_train()->mutable_schedule()->set_base_lr(0.1);
  v1::BudgetAxis* budgets = grid.mutable_grid()->add_axes()->mutable_budgets();
  budgets->add_values()->set_epochs(1);
  budgets->add_values()->set_epochs(3);
  absl::StatusOr<v1::Job> job = coordinator_->SubmitJob("alice", request);
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_EQ(job->trials_size(), 2);
  EXPECT_EQ(job->trials(0).train().steps(), 6);
  EXPECT_EQ(job->trials(1).train().steps(), 18);

  // A coordinator restarted with no worker registered yet still has the
  // job's plan: it is in the stored spec.
  const std::string id = job->job_id();
  Open();
  absl::StatusOr<v1::Job> reread = coordinator_->GetJob("alice", id);
  ASSERT_TRUE(reread.ok()) << reread.status();
  EXPECT_EQ(reread->trials(1).train().steps(), 18);
  absl::StatusOr<std::vector<v1::JobEvent>> events =
      coordinator_->ReadEvents(id, 0, 10);
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_FALSE(events->empty());
  EXPECT_EQ(events->front().accepted().job().trials(1).train().steps(), 18);
}

TEST(WithoutDatasetDescriptions, DropsOnlyThem) {
  v1::SubmitJobRequest request = RangeTestOn("mine");
  v1::SubmitJobRequest described = request;
  *described.mutable_range_test()
       ->mutable_run()
       ->mutable_data()
       ->mutable_description() = Described("mine");
  EXPECT_EQ(WithoutDatasetDescriptions(described).SerializeAsString(),
            request.SerializeAsString());
  EXPECT_FALSE(WithoutDatasetDescriptions(request).has_grid());
}

}  // namespace
}  // namespace lrtune::server
