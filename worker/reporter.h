// A task's outgoing records and how they reach the coordinator: the
// RecordBuffer numbers records and keeps them until acknowledged, the
// TaskReporter sends them in ReportPoints batches, and Backoff spaces the
// retries when the coordinator is away.
//
//   RecordBuffer buffer(/*last_acked_seq=*/task.resume().last_acked_seq());
//   buffer.Add(record);                    // on the training thread
//   TaskReporter reporter(hub, task_id, attempt_id, &buffer);
//   absl::Status s = reporter.Flush();     // on the reporting thread
//
// Sequence numbers: records are numbered from 0 in the order the run
// produces them. A new attempt replays from scratch, or from a checkpoint
// (ResumeAt: numbering continues where the checkpoint was taken), so
// records at or below the coordinator's acknowledged seq
// (ResumeInfo.last_acked_seq) are numbered but not kept: they are stored
// already. A response whose acked_seq
// is below what was sent ("resend from acked_seq + 1") rewinds the buffer.
#ifndef LRTUNE_WORKER_REPORTER_H_
#define LRTUNE_WORKER_REPORTER_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <random>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "core/sync.h"
#include "lrtune/v1/worker.pb.h"
#include "worker/hub_client.h"

namespace lrtune::worker {

// Thread-safe: one producer (the training thread) and any number of
// readers.
class RecordBuffer {
 public:
  // `last_acked_seq`: the highest seq already stored, -1 for none.
  explicit RecordBuffer(int64_t last_acked_seq = -1);
  RecordBuffer(const RecordBuffer&) = delete;
  RecordBuffer& operator=(const RecordBuffer&) = delete;

  // Numbers `record` with the next seq (overwriting its seq) and keeps it
  // unless that seq is already acknowledged. Returns the seq.
  int64_t Add(v1::TaskRecord record);

  // The run resumed from a checkpoint that `next_seq` records preceded: its
  // next record is numbered `next_seq`. Only before the first Add, and only
  // up to the acknowledged seq + 1 (a later start would leave a gap):
  // FailedPrecondition otherwise.
  absl::Status ResumeAt(int64_t next_seq);

  // Up to `max` unacknowledged records, lowest seq first (copies).
  std::vector<v1::TaskRecord> PendingBatch(size_t max) const;

  // The coordinator stored everything up to `acked_seq`. Records at or
  // below it are dropped; a value below the current acknowledgement rewinds
  // it, so those records are sent again. DataLoss when the rewind reaches
  // records already dropped (the attempt must then start over).
  absl::Status Acknowledge(int64_t acked_seq);

  // Marks the producer done and wakes WaitForWork.
  void Close();
  // Wakes WaitForWork now, whatever is pending (the producer needs an
  // answer about its newest record: a rung of a pruned search).
  void RequestFlush();
  // Blocks until at least `min_pending` records are pending, a flush was
  // requested, the buffer is closed, or `timeout` passes. Returns whether
  // the buffer is closed.
  bool WaitForWork(size_t min_pending, absl::Duration timeout);
  // Blocks until the coordinator acknowledged `seq` (true), the buffer is
  // closed or `timeout` passes (false).
  bool WaitForAck(int64_t seq, absl::Duration timeout) const;

  int64_t last_seq() const;   // seq of the newest record, -1 for none
  int64_t acked_seq() const;  // highest acknowledged seq, -1 for none
  size_t pending() const;     // records not yet acknowledged

 private:
  mutable lrtune::Mutex mu_;
  int64_t next_seq_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t acked_ ABSL_GUARDED_BY(mu_);
  // Kept records in seq order; front().seq() >= first_kept_.
  std::deque<v1::TaskRecord> records_ ABSL_GUARDED_BY(mu_);
  // Lowest seq a rewind can go back to: everything from here on is kept or
  // was never produced.
  int64_t first_kept_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  bool flush_requested_ ABSL_GUARDED_BY(mu_) = false;
};

// Exponential backoff with a cap and multiplicative jitter: the n-th delay
// (from 0) is min(initial * multiplier^n, max) * U[1 - jitter, 1 + jitter].
// Thread-compatible.
class Backoff {
 public:
  struct Options {
    absl::Duration initial = absl::Milliseconds(100);
    // Short beside the default lease (10 s): once the coordinator is back,
    // buffered records and completions reach it within about this long.
    absl::Duration max = absl::Seconds(2);
    double multiplier = 2.0;
    double jitter = 0.2;  // in [0, 1)
  };
  explicit Backoff(Options options, uint64_t seed = std::random_device{}());

  absl::Duration Next();
  void Reset() { attempt_ = 0; }
  int attempts() const { return attempt_; }

 private:
  Options options_;
  std::mt19937_64 rng_;
  int attempt_ = 0;
};

// Sends one attempt's records. Thread-compatible: one reporting thread.
class TaskReporter {
 public:
  // `hub` and `buffer` must outlive the reporter.
  TaskReporter(HubClient* hub, std::string task_id, uint64_t attempt_id,
               RecordBuffer* buffer, size_t max_batch = 256);

  // Sends every pending record in batches of at most max_batch and applies
  // each acknowledgement. Returns OK once nothing is pending; otherwise the
  // first error, with the records kept for the next Flush: UNAVAILABLE and
  // DEADLINE_EXCEEDED are transient (retry after a backoff);
  // FAILED_PRECONDITION (stale attempt) and NOT_FOUND for the task mean the
  // attempt is over and nothing more may be sent; IsNotRegistered: register
  // again, then Flush again.
  absl::Status Flush();

  // Whether a response carried DIRECTIVE_CANCEL.
  bool cancel_requested() const { return cancel_requested_; }
  // Whether a response said the trial was pruned (ReportPointsResponse.
  // pruned); set before the records it answered are acknowledged, so a
  // thread that saw them acknowledged (RecordBuffer::WaitForAck) sees it.
  // Any thread.
  bool pruned() const { return pruned_.load(std::memory_order_acquire); }
  int64_t batches_sent() const { return batches_sent_; }

 private:
  HubClient* hub_;
  const std::string task_id_;
  const uint64_t attempt_id_;
  RecordBuffer* buffer_;
  const size_t max_batch_;
  bool cancel_requested_ = false;
  std::atomic<bool> pruned_{false};
  int64_t batches_sent_ = 0;
};

// Whether `status` is worth retrying after a backoff (the coordinator is
// away or slow), as opposed to an answer.
bool IsTransient(const absl::Status& status);

// Whether the coordinator does not know this worker: it restarted and lost
// its registry of workers (NOT_FOUND with a WorkerNotRegistered in the
// status details: proto/status_details.h). The caller registers again with
// the same worker_id and retries the call. A NOT_FOUND without it (an
// unknown task) ends the attempt.
bool IsNotRegistered(const absl::Status& status);

}  // namespace lrtune::worker

#endif  // LRTUNE_WORKER_REPORTER_H_
