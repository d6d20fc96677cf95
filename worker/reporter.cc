// Record numbering, batching and backoff; see reporter.h.
#include "worker/reporter.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "proto/status_details.h"

namespace lrtune::worker {

RecordBuffer::RecordBuffer(int64_t last_acked_seq)
    : acked_(std::max<int64_t>(last_acked_seq, -1)), first_kept_(acked_ + 1) {}

int64_t RecordBuffer::Add(v1::TaskRecord record) {
  lrtune::MutexLock lock(&mu_);
  const int64_t seq = next_seq_++;
  if (seq <= acked_) return seq;  // stored by an earlier attempt
  record.set_seq(seq);
  records_.push_back(std::move(record));
  return seq;
}

absl::Status RecordBuffer::ResumeAt(int64_t next_seq) {
  lrtune::MutexLock lock(&mu_);
  if (next_seq_ != 0 || next_seq < 0 || next_seq > acked_ + 1) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot number records from ", next_seq, ": ", next_seq_,
                     " records made, ", acked_ + 1, " stored"));
  }
  next_seq_ = next_seq;
  return absl::OkStatus();
}

std::vector<v1::TaskRecord> RecordBuffer::PendingBatch(size_t max) const {
  lrtune::MutexLock lock(&mu_);
  std::vector<v1::TaskRecord> batch;
  for (const v1::TaskRecord& r : records_) {
    if (batch.size() >= max) break;
    if (r.seq() > acked_) batch.push_back(r);
  }
  return batch;
}

absl::Status RecordBuffer::Acknowledge(int64_t acked_seq) {
  lrtune::MutexLock lock(&mu_);
  if (acked_seq + 1 < first_kept_) {
    return absl::DataLossError(absl::StrCat(
        "coordinator asks to resend from seq ", acked_seq + 1,
        " but records before ", first_kept_, " are no longer kept"));
  }
  acked_ = acked_seq;
  // Keep what a rewind may need: only records at or below the coordinator's
  // own acknowledgement are dropped, and it never goes below that.
  while (!records_.empty() && records_.front().seq() <= acked_) {
    records_.pop_front();
  }
  first_kept_ = std::max(first_kept_, acked_ + 1);
  return absl::OkStatus();
}

void RecordBuffer::Close() {
  lrtune::MutexLock lock(&mu_);
  closed_ = true;
}

void RecordBuffer::RequestFlush() {
  lrtune::MutexLock lock(&mu_);
  flush_requested_ = true;
}

bool RecordBuffer::WaitForWork(size_t min_pending, absl::Duration timeout) {
  lrtune::MutexLock lock(&mu_);
  auto ready = [this, min_pending]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return closed_ || flush_requested_ || records_.size() >= min_pending;
  };
  mu_.AwaitWithTimeout(lrtune::Condition(&ready), timeout);
  flush_requested_ = false;
  return closed_;
}

bool RecordBuffer::WaitForAck(int64_t seq, absl::Duration timeout) const {
  lrtune::MutexLock lock(&mu_);
  auto ready = [this, seq]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return closed_ || acked_ >= seq;
  };
  mu_.AwaitWithTimeout(lrtune::Condition(&ready), timeout);
  return acked_ >= seq;
}

int64_t RecordBuffer::last_seq() const {
  lrtune::MutexLock lock(&mu_);
  return next_seq_ - 1;
}

int64_t RecordBuffer::acked_seq() const {
  lrtune::MutexLock lock(&mu_);
  return acked_;
}

size_t RecordBuffer::pending() const {
  lrtune::MutexLock lock(&mu_);
  return records_.size();
}

Backoff::Backoff(Options options, uint64_t seed)
    : options_(options), rng_(seed) {}

absl::Duration Backoff::Next() {
  const double base_s = absl::ToDoubleSeconds(options_.initial) *
                        std::pow(options_.multiplier, attempt_);
  const double capped_s = std::min(base_s, absl::ToDoubleSeconds(options_.max));
  if (attempt_ < 64) ++attempt_;
  std::uniform_real_distribution<double> jitter(1.0 - options_.jitter,
                                                1.0 + options_.jitter);
  return absl::Seconds(capped_s * jitter(rng_));
}

TaskReporter::TaskReporter(HubClient* hub, std::string task_id,
                           uint64_t attempt_id, RecordBuffer* buffer,
                           size_t max_batch)
    : hub_(hub),
      task_id_(std::move(task_id)),
      attempt_id_(attempt_id),
      buffer_(buffer),
      max_batch_(std::max<size_t>(max_batch, 1)) {}

absl::Status TaskReporter::Flush() {
  while (true) {
    std::vector<v1::TaskRecord> batch = buffer_->PendingBatch(max_batch_);
    if (batch.empty()) return absl::OkStatus();
    v1::ReportPointsRequest request;
    request.set_task_id(task_id_);
    request.set_attempt_id(attempt_id_);
    const int64_t batch_first_seq = batch.front().seq();
    for (v1::TaskRecord& r : batch) *request.add_records() = std::move(r);
    const int64_t acked_before = buffer_->acked_seq();
    const bool contiguous = batch_first_seq == acked_before + 1;
    absl::StatusOr<v1::ReportPointsResponse> response =
        hub_->ReportPoints(request);
    if (!response.ok()) return response.status();
    ++batches_sent_;
    if (response->directive() == v1::DIRECTIVE_CANCEL) {
      cancel_requested_ = true;
    }
    if (response->pruned()) pruned_.store(true, std::memory_order_release);
    absl::Status acked = buffer_->Acknowledge(response->acked_seq());
    if (!acked.ok()) return acked;
    if (contiguous && response->acked_seq() <= acked_before) {
      // A gap-free batch that stored nothing: resending would loop.
      return absl::InternalError(
          absl::StrCat("ReportPoints stored nothing from seq ", batch_first_seq,
                       " (acked_seq ", response->acked_seq(), ")"));
    }
  }
}

bool IsTransient(const absl::Status& status) {
  return absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status) ||
         absl::IsResourceExhausted(status) || absl::IsAborted(status) ||
         absl::IsInternal(status) || absl::IsUnknown(status);
}

bool IsNotRegistered(const absl::Status& status) {
  return IsWorkerNotRegistered(status);
}

}  // namespace lrtune::worker
