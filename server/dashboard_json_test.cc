#include "server/dashboard_json.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lrtune::server {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(DashboardJsonTest, APointIsACompactFrame) {
  v1::JobEvent e;
  e.set_seq(12);
  e.set_job_id("j-1");
  e.mutable_time()->set_seconds(1732800000);
  e.mutable_time()->set_nanos(123456789);
  v1::CurvePoint* p = e.mutable_point()->mutable_point();
  p->set_seed_index(2);
  p->set_step(11);
  p->set_lr(1.25e-05);
  p->set_loss(2.5);
  p->set_smoothed(2.25);
  EXPECT_EQ(EventFrame(e),
            "id: 12\nevent: point\ndata: {\"seq\":12,\"t\":1732800000123,"
            "\"trial\":-1,\"seed\":2,\"step\":11,\"lr\":1.25e-05,\"loss\":2.5,"
            "\"smoothed\":2.25}\n\n");
  e.mutable_point()->mutable_origin()->set_trial_index(3);
  p->set_loss(std::numeric_limits<double>::quiet_NaN());
  p->set_smoothed(std::numeric_limits<double>::infinity());
  const std::string frame = EventFrame(e);
  EXPECT_THAT(frame, HasSubstr("\"trial\":3,"));
  EXPECT_THAT(frame, HasSubstr("\"loss\":null,\"smoothed\":null}"));
}

TEST(DashboardJsonTest, OtherEventsAreTheProtoMapping) {
  v1::JobEvent e;
  e.set_seq(7);
  e.mutable_state_changed()->set_state(v1::JOB_STATE_SUCCEEDED);
  e.mutable_state_changed()->set_reason("line one\nline two");
  const std::string frame = EventFrame(e);
  EXPECT_THAT(frame, ::testing::StartsWith("id: 7\nevent: state_changed\n"
                                           "data: {"));
  EXPECT_THAT(frame, HasSubstr("\"state\":\"JOB_STATE_SUCCEEDED\""));
  EXPECT_THAT(frame, HasSubstr("line one\\nline two"));
  // One data line: the frame's only newlines are its own.
  EXPECT_EQ(std::count(frame.begin(), frame.end(), '\n'), 4);
  EXPECT_EQ(EventKind(v1::JobEvent()), "unknown");
}

TEST(DashboardJsonTest, UploadsAreLeftOut) {
  v1::Job job;
  job.set_job_id("j-1");
  v1::RunSpec* run = job.mutable_range_test()->mutable_run();
  v1::InlineData* data = run->mutable_data()->mutable_inline_data();
  data->add_x_shape(2);
  data->add_x_shape(1);
  data->add_x(0.5f);
  data->add_x(0.25f);
  data->add_y_labels(1);
  data->add_y_labels(0);
  run->mutable_model()->set_kind(v1::MODEL_KIND_TORCHSCRIPT);
  run->mutable_model()->set_torchscript(std::string(1000, 'z'));
  job.set_tasks_total(3);
  job.set_last_seq(123456789012345);
  const std::string json = JobJson(job);
  EXPECT_THAT(json, HasSubstr("\"x_shape\":[\"2\",\"1\"]"));
  EXPECT_THAT(json, Not(HasSubstr("\"x\":")));
  EXPECT_THAT(json, Not(HasSubstr("y_labels")));
  EXPECT_THAT(json, Not(HasSubstr("torchscript")));
  EXPECT_THAT(json, HasSubstr("\"kind\":\"MODEL_KIND_TORCHSCRIPT\""));
  EXPECT_THAT(json, HasSubstr("\"tasks_total\":3"));
  EXPECT_THAT(json, HasSubstr("\"last_seq\":\"123456789012345\""));

  v1::JobEvent accepted;
  accepted.set_seq(1);
  *accepted.mutable_accepted()->mutable_job() = job;
  EXPECT_THAT(EventFrame(accepted), Not(HasSubstr("zzzz")));
  v1::JobEvent started;
  started.set_seq(2);
  *started.mutable_trial_started()->mutable_trial()->mutable_run() = *run;
  EXPECT_THAT(EventFrame(started), Not(HasSubstr("zzzz")));
}

TEST(DashboardJsonTest, AListLeavesOutAttemptsAndTrials) {
  v1::ListJobsResponse list;
  v1::Job* job = list.add_jobs();
  job->set_job_id("j-1");
  job->add_attempts()->set_task_id("t");
  job->add_trials()->set_label("schedule=one_cycle");
  list.set_next_page_token("next");
  const std::string json = JobListJson(list);
  EXPECT_THAT(json, HasSubstr("\"job_id\":\"j-1\""));
  EXPECT_THAT(json, HasSubstr("\"next_page_token\":\"next\""));
  EXPECT_THAT(json, Not(HasSubstr("attempts")));
  EXPECT_THAT(json, Not(HasSubstr("one_cycle")));
}

}  // namespace
}  // namespace lrtune::server
