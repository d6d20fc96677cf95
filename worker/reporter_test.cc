#include "worker/reporter.h"

#include <cstdint>
#include <vector>

#include "gtest/gtest.h"

namespace lrtune::worker {
namespace {

v1::TaskRecord Point(int64_t step) {
  v1::TaskRecord r;
  r.mutable_point()->set_step(step);
  r.set_seq(999);  // overwritten by the buffer
  return r;
}

// Stores records like the coordinator: consecutive seqs only, records at or
// below the stored seq ignored, a batch that would leave a gap refused with
// the acked_seq to resend from. Can be made unreachable or stale.
class FakeHub final : public HubClient {
 public:
  absl::StatusOr<v1::RegisterResponse> Register(
      const v1::RegisterRequest&) override {
    return absl::UnimplementedError("fake");
  }
  absl::StatusOr<v1::AcquireTaskResponse> AcquireTask(
      const v1::AcquireTaskRequest&) override {
    return absl::UnimplementedError("fake");
  }
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(
      const v1::HeartbeatRequest&) override {
    return absl::UnimplementedError("fake");
  }
  absl::StatusOr<v1::ReportPointsResponse> ReportPoints(
      const v1::ReportPointsRequest& request) override {
    requests.push_back(request);
    if (unavailable) return absl::UnavailableError("connection refused");
    if (stale) {
      return absl::FailedPreconditionError("stale attempt: task t attempt 1");
    }
    v1::ReportPointsResponse response;
    response.set_directive(cancel ? v1::DIRECTIVE_CANCEL
                                  : v1::DIRECTIVE_CONTINUE);
    if (request.records(0).seq() > stored + 1) {  // gap: store nothing
      response.set_acked_seq(stored);
      return response;
    }
    for (const v1::TaskRecord& r : request.records()) {
      if (r.seq() == stored + 1) {
        ++stored;
        steps.push_back(r.point().step());
      }
    }
    response.set_acked_seq(stored);
    if (lose_response) return absl::UnavailableError("response lost");
    return response;
  }
  absl::StatusOr<v1::CompleteTaskResponse> CompleteTask(
      const v1::CompleteTaskRequest&) override {
    return absl::UnimplementedError("fake");
  }
  absl::StatusOr<v1::FailTaskResponse> FailTask(
      const v1::FailTaskRequest&) override {
    return absl::UnimplementedError("fake");
  }

  std::vector<v1::ReportPointsRequest> requests;
  std::vector<int64_t> steps;  // stored, in seq order
  int64_t stored = -1;
  bool unavailable = false;
  bool stale = false;
  bool cancel = false;
  bool lose_response = false;
};

TEST(RecordBuffer, NumbersFromZeroAndDropsAcknowledged) {
  RecordBuffer buffer;
  EXPECT_EQ(buffer.Add(Point(0)), 0);
  EXPECT_EQ(buffer.Add(Point(1)), 1);
  EXPECT_EQ(buffer.Add(Point(2)), 2);
  std::vector<v1::TaskRecord> batch = buffer.PendingBatch(2);
  ASSERT_EQ(batch.size(), 2u);
  EXPECT_EQ(batch[0].seq(), 0);
  EXPECT_EQ(batch[1].seq(), 1);
  ASSERT_TRUE(buffer.Acknowledge(1).ok());
  EXPECT_EQ(buffer.pending(), 1u);
  EXPECT_EQ(buffer.PendingBatch(10)[0].seq(), 2);
  EXPECT_EQ(buffer.last_seq(), 2);
}

TEST(RecordBuffer, ResumeSkipsRecordsTheCoordinatorHas) {
  RecordBuffer buffer(/*last_acked_seq=*/4);
  for (int i = 0; i < 8; ++i) buffer.Add(Point(i));
  EXPECT_EQ(buffer.pending(), 3u);  // seqs 5, 6, 7
  std::vector<v1::TaskRecord> batch = buffer.PendingBatch(10);
  ASSERT_EQ(batch.size(), 3u);
  EXPECT_EQ(batch[0].seq(), 5);
  EXPECT_EQ(batch[0].point().step(), 5);
  EXPECT_EQ(buffer.last_seq(), 7);
}

TEST(RecordBuffer, ResumedFromACheckpointNumberingContinuesThere) {
  RecordBuffer buffer(/*last_acked_seq=*/9);
  // A checkpoint 12 records in would leave seqs 10 and 11 out.
  EXPECT_EQ(buffer.ResumeAt(12).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(buffer.ResumeAt(6).ok());
  for (int i = 6; i < 12; ++i) EXPECT_EQ(buffer.Add(Point(i)), i);
  std::vector<v1::TaskRecord> batch = buffer.PendingBatch(10);
  ASSERT_EQ(batch.size(), 2u);  // 6..9 are stored already
  EXPECT_EQ(batch[0].seq(), 10);
  EXPECT_EQ(batch[0].point().step(), 10);
  // Once records are made, the numbering is fixed.
  EXPECT_EQ(buffer.ResumeAt(0).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(RecordBuffer, RewindBelowDroppedRecordsIsDataLoss) {
  RecordBuffer buffer;
  for (int i = 0; i < 4; ++i) buffer.Add(Point(i));
  ASSERT_TRUE(buffer.Acknowledge(2).ok());
  EXPECT_TRUE(buffer.Acknowledge(2).ok());  // repeated ack is fine
  EXPECT_EQ(buffer.Acknowledge(0).code(), absl::StatusCode::kDataLoss);
}

// A rung of a pruned search: the producer asks for a flush now and waits
// for its record's acknowledgement.
TEST(RecordBuffer, RequestFlushWakesTheSenderAndWaitForAckSeesTheAnswer) {
  RecordBuffer buffer;
  v1::TaskRecord r;
  const int64_t seq = buffer.Add(r);
  EXPECT_FALSE(buffer.WaitForAck(seq, absl::Milliseconds(1)));
  buffer.RequestFlush();
  // Woken at once although 100 records are asked for; only once.
  EXPECT_FALSE(buffer.WaitForWork(100, absl::Seconds(10)));
  const absl::Time start = absl::Now();
  EXPECT_FALSE(buffer.WaitForWork(100, absl::Milliseconds(50)));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(40));
  ASSERT_TRUE(buffer.Acknowledge(seq).ok());
  EXPECT_TRUE(buffer.WaitForAck(seq, absl::Seconds(10)));
}

TEST(RecordBuffer, WaitForWorkWakesOnBatchOrClose) {
  RecordBuffer buffer;
  EXPECT_FALSE(buffer.WaitForWork(1, absl::Milliseconds(1)));  // timeout
  buffer.Add(Point(0));
  EXPECT_FALSE(buffer.WaitForWork(1, absl::Seconds(10)));  // returns at once
  buffer.Close();
  EXPECT_TRUE(buffer.WaitForWork(100, absl::Seconds(10)));
}

TEST(TaskReporter, SendsBatchesWithTaskSeqsAndAttempt) {
  FakeHub hub;
  RecordBuffer buffer;
  for (int i = 0; i < 600; ++i) buffer.Add(Point(i));
  TaskReporter reporter(&hub, "task-1", 7, &buffer, /*max_batch=*/256);
  ASSERT_TRUE(reporter.Flush().ok());
  ASSERT_EQ(hub.requests.size(), 3u);  // 256 + 256 + 88
  EXPECT_EQ(hub.requests[0].records_size(), 256);
  EXPECT_EQ(hub.requests[2].records_size(), 88);
  EXPECT_EQ(hub.requests[1].task_id(), "task-1");
  EXPECT_EQ(hub.requests[1].attempt_id(), 7u);
  EXPECT_EQ(hub.requests[1].records(0).seq(), 256);
  ASSERT_EQ(hub.steps.size(), 600u);
  for (int i = 0; i < 600; ++i) ASSERT_EQ(hub.steps[i], i);
  EXPECT_EQ(buffer.pending(), 0u);
  EXPECT_TRUE(reporter.Flush().ok());
  EXPECT_EQ(hub.requests.size(), 3u);  // nothing pending, nothing sent
}

TEST(TaskReporter, KeepsRecordsWhileUnavailableAndResumes) {
  FakeHub hub;
  RecordBuffer buffer;
  TaskReporter reporter(&hub, "t", 1, &buffer, 4);
  for (int i = 0; i < 5; ++i) buffer.Add(Point(i));
  ASSERT_TRUE(reporter.Flush().ok());
  hub.unavailable = true;
  for (int i = 5; i < 10; ++i) buffer.Add(Point(i));
  absl::Status s = reporter.Flush();
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_TRUE(IsTransient(s));
  EXPECT_EQ(buffer.pending(), 5u);
  hub.unavailable = false;
  for (int i = 10; i < 12; ++i) buffer.Add(Point(i));
  ASSERT_TRUE(reporter.Flush().ok());
  ASSERT_EQ(hub.steps.size(), 12u);
  for (int i = 0; i < 12; ++i) EXPECT_EQ(hub.steps[i], i);
}

TEST(TaskReporter, NewAttemptDoesNotResendAcknowledged) {
  FakeHub hub;
  hub.stored = 9;  // a previous attempt stored seqs 0..9
  for (int i = 0; i < 10; ++i) hub.steps.push_back(i);
  RecordBuffer buffer(/*last_acked_seq=*/9);
  TaskReporter reporter(&hub, "t", 2, &buffer);
  for (int i = 0; i < 15; ++i) buffer.Add(Point(i));  // replay from scratch
  ASSERT_TRUE(reporter.Flush().ok());
  ASSERT_EQ(hub.requests.size(), 1u);
  EXPECT_EQ(hub.requests[0].records(0).seq(), 10);
  EXPECT_EQ(hub.requests[0].records_size(), 5);
  ASSERT_EQ(hub.steps.size(), 15u);
  for (int i = 0; i < 15; ++i) EXPECT_EQ(hub.steps[i], i);
}

TEST(TaskReporter, ResendsFromTheCoordinatorsAckedSeq) {
  FakeHub hub;
  RecordBuffer buffer;
  TaskReporter reporter(&hub, "t", 1, &buffer, 3);
  for (int i = 0; i < 6; ++i) buffer.Add(Point(i));
  ASSERT_TRUE(buffer.Acknowledge(2).ok());  // believed stored, but...
  hub.stored = 0;  // ...the coordinator has only seq 0: "resend from 1"
  hub.steps = {0};
  // seqs 0..2 were dropped, so the rewind to 1 cannot be served.
  EXPECT_EQ(reporter.Flush().code(), absl::StatusCode::kDataLoss);
}

TEST(TaskReporter, LostResponseResendsAndDuplicatesAreIgnored) {
  FakeHub hub;
  RecordBuffer buffer;
  TaskReporter reporter(&hub, "t", 1, &buffer, 3);
  for (int i = 0; i < 6; ++i) buffer.Add(Point(i));
  hub.lose_response = true;  // stored, but the answer never arrives
  EXPECT_TRUE(absl::IsUnavailable(reporter.Flush()));
  EXPECT_EQ(hub.stored, 2);
  EXPECT_EQ(buffer.pending(), 6u);
  hub.lose_response = false;
  ASSERT_TRUE(reporter.Flush().ok());
  EXPECT_EQ(hub.requests[1].records(0).seq(), 0);  // resent from the start
  ASSERT_EQ(hub.steps.size(), 6u);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(hub.steps[i], i);
}

TEST(TaskReporter, GapAnswerRewindsToKeptRecords) {
  FakeHub hub;
  RecordBuffer buffer(/*last_acked_seq=*/2);  // resume says 0..2 stored
  hub.stored = 0;  // but the coordinator's answer says resend from 1
  hub.steps = {0};
  for (int i = 0; i < 6; ++i) buffer.Add(Point(i));
  TaskReporter reporter(&hub, "t", 1, &buffer);
  // Seqs 1 and 2 were never kept (they were acknowledged at resume).
  EXPECT_EQ(reporter.Flush().code(), absl::StatusCode::kDataLoss);
}

TEST(TaskReporter, StaleAttemptAndCancelDirective) {
  FakeHub hub;
  RecordBuffer buffer;
  TaskReporter reporter(&hub, "t", 1, &buffer);
  buffer.Add(Point(0));
  hub.cancel = true;
  ASSERT_TRUE(reporter.Flush().ok());
  EXPECT_TRUE(reporter.cancel_requested());
  hub.stale = true;
  buffer.Add(Point(1));
  absl::Status s = reporter.Flush();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(IsTransient(s));
}

TEST(Backoff, GrowsExponentiallyCappedAndJittered) {
  Backoff::Options options;
  options.initial = absl::Milliseconds(100);
  options.max = absl::Seconds(2);
  options.multiplier = 2.0;
  options.jitter = 0.2;
  Backoff backoff(options, /*seed=*/1);
  const double expected_ms[] = {100, 200, 400, 800, 1600, 2000, 2000, 2000};
  for (double ms : expected_ms) {
    const double got = absl::ToDoubleMilliseconds(backoff.Next());
    EXPECT_GE(got, ms * 0.8 - 1e-6);
    EXPECT_LE(got, ms * 1.2 + 1e-6);
  }
  backoff.Reset();
  const double first = absl::ToDoubleMilliseconds(backoff.Next());
  EXPECT_LE(first, 120 + 1e-6);
}

TEST(Backoff, JitterSpreadsDelays) {
  Backoff::Options options;
  options.jitter = 0.5;
  Backoff a(options, 1), b(options, 2);
  bool differ = false;
  for (int i = 0; i < 5; ++i) differ |= a.Next() != b.Next();
  EXPECT_TRUE(differ);
  options.jitter = 0.0;
  Backoff c(options, 3);
  EXPECT_EQ(c.Next(), absl::Milliseconds(100));
  EXPECT_EQ(c.Next(), absl::Milliseconds(200));
}

}  // namespace
}  // namespace lrtune::worker
