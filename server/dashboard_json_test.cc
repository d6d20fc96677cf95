#include "server/dashboard_json.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lrtune::server {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

v1::JobEvent Point(int64_t seq, int64_t step) {
  v1::JobEvent e;
  e.set_seq(static_cast<uint64_t>(seq));
  e.set_job_id("j-1");
  e.mutable_time()->set_seconds(1732800000);
  e.mutable_time()->set_nanos(123456789);
  v1::CurvePoint* p = e.mutable_point()->mutable_point();
  p->set_seed_index(2);
  p->set_step(step);
  p->set_lr(1.25e-05);
  p->set_loss(2.5);
  p->set_smoothed(2.25);
  return e;
}

TEST(DashboardJsonTest, ConsecutivePointsShareACompactFrame) {
  EXPECT_EQ(PointElement(Point(12, 11)),
            "[-1,2,11,1.25e-05,2.5,2.25,1732800000123]");
  v1::JobEvent precise = Point(1, 0);
  precise.mutable_point()->mutable_point()->set_lr(0.00012345678901234567);
  precise.mutable_point()->mutable_point()->set_loss(2.3025850929940455);
  EXPECT_EQ(PointElement(precise),
            "[-1,2,0,0.0001234568,2.302585,2.25,1732800000123]");
  v1::JobEvent odd = Point(13, 12);
  odd.mutable_point()->mutable_origin()->set_trial_index(3);
  odd.mutable_point()->mutable_point()->set_loss(
      std::numeric_limits<double>::quiet_NaN());
  odd.mutable_point()->mutable_point()->set_smoothed(
      std::numeric_limits<double>::infinity());
  EXPECT_EQ(PointElement(odd), "[3,2,12,1.25e-05,null,null,1732800000123]");

  v1::JobEvent state;
  state.set_seq(14);
  state.mutable_state_changed()->set_state(v1::JOB_STATE_RUNNING);
  std::string text;
  FrameWriter frames(&text);
  frames.Add(Point(12, 11));
  frames.Add(odd);
  frames.Add(state);
  frames.Add(Point(15, 13));
  frames.Add(Point(17, 15));  // not consecutive: a frame of its own
  frames.Finish();
  EXPECT_EQ(text,
            "id: 13\nevent: points\ndata: {\"first\":12,\"points\":["
            "[-1,2,11,1.25e-05,2.5,2.25,1732800000123],"
            "[3,2,12,1.25e-05,null,null,1732800000123]]}\n\n" +
                EventFrame(state) +
                "id: 15\nevent: points\ndata: {\"first\":15,\"points\":["
                "[-1,2,13,1.25e-05,2.5,2.25,1732800000123]]}\n\n"
                "id: 17\nevent: points\ndata: {\"first\":17,\"points\":["
                "[-1,2,15,1.25e-05,2.5,2.25,1732800000123]]}\n\n");
}

TEST(DashboardJsonTest, ALongRunOfPointsIsSplit) {
  std::string text;
  FrameWriter frames(&text);
  for (int i = 1; i <= kPointsPerFrame + 3; ++i) frames.Add(Point(i, i));
  frames.Finish();
  EXPECT_THAT(text, HasSubstr(absl::StrCat("id: ", kPointsPerFrame,
                                           "\nevent: points\n")));
  EXPECT_THAT(text, HasSubstr(absl::StrCat("id: ", kPointsPerFrame + 3,
                                           "\nevent: points\ndata: "
                                           "{\"first\":",
                                           kPointsPerFrame + 1)));
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
