#include "server/metrics.h"

#include <regex>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace lrtune::server {
namespace {

// Every line is a comment (# HELP / # TYPE) or `name{labels} value`.
void ExpectValidExposition(const std::string& text) {
  const std::regex sample(
      R"(^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"]*")*\})? (-?[0-9.eE+-]+|NaN|[+-]Inf)$)");
  const std::regex comment(R"(^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$)");
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    const std::string l(line);
    EXPECT_TRUE(std::regex_match(l, sample) || std::regex_match(l, comment))
        << l;
  }
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
}

v1::Task LeasedTask(const std::string& id, uint64_t attempt,
                    absl::Time expires) {
  v1::Task task;
  task.set_task_id(id);
  task.set_attempt_id(attempt);
  task.mutable_lease_expires_at()->set_seconds(absl::ToUnixSeconds(expires));
  return task;
}

TEST(Metrics, CountsNewPointsOnceAndTaskDurations) {
  Metrics metrics;
  const absl::Time t0 = absl::FromUnixSeconds(1'000'000);
  metrics.OnJobSubmitted();
  metrics.OnWorkerCall("w1", t0);
  metrics.OnTaskLeased(LeasedTask("j-1-t0", 7, t0 + absl::Seconds(10)), t0);
  v1::ReportPointsRequest report;
  report.set_task_id("j-1-t0");
  report.set_attempt_id(7);
  for (int i = 0; i < 5; ++i) {
    v1::TaskRecord* r = report.add_records();
    r->set_seq(i);
    r->mutable_point()->set_step(i);
  }
  metrics.OnPointsReported(report, 4);
  metrics.OnPointsReported(report, 4);  // a repeated batch
  EXPECT_EQ(metrics.points_ingested(), 5);
  metrics.OnTaskEnded("j-1-t0", 7, t0 + absl::Seconds(3));

  // A retry replays from scratch: only what the store had not got counts.
  v1::Task retry = LeasedTask("j-1-t1", 9, t0 + absl::Seconds(10));
  retry.mutable_resume()->set_last_acked_seq(2);
  metrics.OnTaskLeased(retry, t0);
  report.set_task_id("j-1-t1");
  report.set_attempt_id(9);
  metrics.OnPointsReported(report, 4);
  EXPECT_EQ(metrics.points_ingested(), 7);
  metrics.OnTaskEnded("j-1-t1", 9, t0 + absl::Seconds(3));

  const std::string text = metrics.RenderPrometheus(t0 + absl::Seconds(4));
  ExpectValidExposition(text);
  EXPECT_NE(text.find("lrtune_jobs_submitted_total 1\n"), std::string::npos);
  EXPECT_NE(text.find("lrtune_points_ingested_total 7\n"), std::string::npos);
  EXPECT_NE(text.find("lrtune_workers 1\n"), std::string::npos);
  EXPECT_NE(text.find("lrtune_task_duration_seconds_bucket{le=\"1\"} 0\n"),
            std::string::npos);
  EXPECT_NE(text.find("lrtune_task_duration_seconds_bucket{le=\"5\"} 2\n"),
            std::string::npos);
  EXPECT_NE(text.find("lrtune_task_duration_seconds_count 2\n"),
            std::string::npos);
  EXPECT_NE(text.find("lrtune_lease_expiries_total 0\n"), std::string::npos);
  // No gauge source: the store gauges are left out, not reported as 0.
  EXPECT_EQ(text.find("lrtune_queue_depth"), std::string::npos);
}

TEST(Metrics, ALeaseThatLapsesCountsOnceAndARenewedOneNever) {
  Metrics metrics;
  const absl::Time t0 = absl::FromUnixSeconds(2'000'000);
  metrics.OnTaskLeased(LeasedTask("a", 1, t0 + absl::Seconds(10)), t0);
  metrics.OnTaskLeased(LeasedTask("b", 1, t0 + absl::Seconds(10)), t0);
  v1::HeartbeatRequest beat;
  beat.set_worker_id("w");
  v1::HeartbeatResponse renewed;
  v1::TaskDirective* d = renewed.add_directives();
  d->set_task_id("b");
  d->set_attempt_id(1);
  d->set_directive(v1::DIRECTIVE_CONTINUE);
  d->mutable_lease_expires_at()->set_seconds(
      absl::ToUnixSeconds(t0 + absl::Seconds(30)));
  metrics.OnHeartbeat(beat, renewed, t0 + absl::Seconds(5));
  std::string text = metrics.RenderPrometheus(t0 + absl::Seconds(20));
  EXPECT_NE(text.find("lrtune_lease_expiries_total 1\n"), std::string::npos)
      << text;
  text = metrics.RenderPrometheus(t0 + absl::Seconds(25));
  EXPECT_NE(text.find("lrtune_lease_expiries_total 1\n"), std::string::npos);
  // Workers seen more than 75 s ago no longer count.
  text = metrics.RenderPrometheus(t0 + absl::Seconds(200));
  EXPECT_NE(text.find("lrtune_workers 0\n"), std::string::npos);
  EXPECT_NE(text.find("lrtune_lease_expiries_total 2\n"), std::string::npos);
}

TEST(Metrics, StoreGaugesAppearWhenASourceIsSet) {
  Metrics metrics;
  metrics.SetTaskGauges([]() -> absl::StatusOr<TaskGauges> {
    return TaskGauges{3, 2};
  });
  const std::string text = metrics.RenderPrometheus(absl::Now());
  ExpectValidExposition(text);
  EXPECT_NE(text.find("lrtune_queue_depth 3\n"), std::string::npos);
  EXPECT_NE(text.find("lrtune_tasks_running 2\n"), std::string::npos);
}

}  // namespace
}  // namespace lrtune::server
