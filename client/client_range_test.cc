#include "client/client_range_test.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "core/status_macros.h"

namespace lrtune::client {
namespace {

constexpr absl::Duration kFirstBackoff = absl::Milliseconds(50);
constexpr absl::Duration kMaxBackoff = absl::Seconds(2);

std::string RandomClientId() {
  absl::BitGen gen;
  return absl::StrFormat("c-%016x", absl::Uniform<uint64_t>(gen));
}

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

v1::JoinRangeTestRequest JoinRequest(const std::string& job_id,
                                     const std::string& client_id,
                                     std::optional<int> run_index) {
  v1::JoinRangeTestRequest request;
  request.set_job_id(job_id);
  request.set_client_id(client_id);
  if (run_index.has_value()) request.set_run_index(*run_index);
  return request;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ClientRangeTest>> ClientRangeTest::Start(
    Client* client, ClientRangeTestOptions options) {
  if (options.client_id.empty()) options.client_id = RandomClientId();
  if (options.batch_steps < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch_steps must be >= 1, got ", options.batch_steps));
  }
  if (options.job_id.empty()) {
    v1::SubmitJobRequest submit;
    *submit.mutable_range_test() = options.job;
    submit.mutable_range_test()->mutable_range_test()->set_driver(
        v1::RANGE_DRIVER_CLIENT);
    LRTUNE_ASSIGN_OR_RETURN(v1::Job job, client->SubmitJob(submit));
    options.job_id = job.job_id();
  }
  LRTUNE_ASSIGN_OR_RETURN(
      v1::RangeTestRun run,
      client->JoinRangeTest(
          JoinRequest(options.job_id, options.client_id, options.run_index)));
  if (run.ended()) {
    return absl::FailedPreconditionError(
        absl::StrCat("run ", run.run_index(), " of job ", run.job_id(),
                     " is over: ", run.end_reason()));
  }
  // Rejoins take this run, whichever the first join chose.
  options.run_index = run.run_index();
  auto test = std::unique_ptr<ClientRangeTest>(
      new ClientRangeTest(client, std::move(options), std::move(run)));
  test->thread_ = std::thread([t = test.get()] { t->Loop(); });
  return test;
}

ClientRangeTest::ClientRangeTest(Client* client, ClientRangeTestOptions options,
                                 v1::RangeTestRun run)
    : client_(client),
      options_(std::move(options)),
      run_(std::move(run)),
      started_(absl::Now()) {
  lrtune::MutexLock lock(&mu_);
  acked_ = run_.acked_step();
  attempt_id_ = run_.attempt_id();
  step_ = acked_ + 1;  // a run joined again continues where it was
}

ClientRangeTest::~ClientRangeTest() {
  {
    lrtune::MutexLock lock(&mu_);
    quit_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

double ClientRangeTest::lr() const {
  const int64_t n = run_.plan().lrs_size();
  return run_.plan().lrs(static_cast<int>(std::min(step_, n - 1)));
}

bool ClientRangeTest::done() const {
  return step_ >= run_.plan().lrs_size() ||
         over_.load(std::memory_order_relaxed);
}

std::string ClientRangeTest::stop_reason() const {
  lrtune::MutexLock lock(&mu_);
  return stop_reason_;
}

absl::Status ClientRangeTest::status() const {
  lrtune::MutexLock lock(&mu_);
  return status_;
}

void ClientRangeTest::Step(double loss) {
  if (done()) return;
  v1::ClientStep s;
  s.set_step(step_);
  s.set_loss(loss);
  s.set_skipped_updates(skipped_);
  s.set_elapsed_s(absl::ToDoubleSeconds(absl::Now() - started_));
  ++step_;
  skipped_ = 0;
  lrtune::MutexLock lock(&mu_);
  pending_.push_back(std::move(s));
}

void ClientRangeTest::SkipStep() {
  if (!done()) ++skipped_;
}

bool ClientRangeTest::Wakeful() const {
  return quit_ || flush_ ||
         static_cast<int>(pending_.size()) >= options_.batch_steps;
}

void ClientRangeTest::Fail(const absl::Status& status) {
  lrtune::MutexLock lock(&mu_);
  if (status_.ok()) status_ = status;
  if (stop_reason_.empty()) stop_reason_ = std::string(status.message());
  over_.store(true);
}

absl::Status ClientRangeTest::Rejoin() {
  LRTUNE_ASSIGN_OR_RETURN(
      v1::RangeTestRun again,
      client_->JoinRangeTest(
          JoinRequest(run_.job_id(), options_.client_id, options_.run_index)));
  lrtune::MutexLock lock(&mu_);
  if (again.ended()) {
    stopped_by_coordinator_ = true;
    stop_reason_ = again.end_reason();
    pending_.clear();
    over_.store(true);
    return absl::OkStatus();
  }
  attempt_id_ = again.attempt_id();
  acked_ = std::max(acked_, again.acked_step());
  while (!pending_.empty() && pending_.front().step() <= acked_) {
    pending_.pop_front();
  }
  return absl::OkStatus();
}

void ClientRangeTest::Loop() {
  const absl::Duration report_interval =
      std::max(FromProto(run_.report_interval()), absl::Milliseconds(10));
  const int max_steps = std::max(
      1, std::min(options_.batch_steps, run_.max_steps_per_report() > 0
                                            ? run_.max_steps_per_report()
                                            : options_.batch_steps));
  absl::Duration backoff = kFirstBackoff;
  absl::Time last_answer = absl::Now();
  absl::Time last_sent = absl::Now();
  while (true) {
    v1::ReportLossesRequest request;
    {
      lrtune::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(lrtune::Condition(this, &ClientRangeTest::Wakeful),
                           options_.flush_interval);
      // Quit, stopped (nothing more to send: Finish ends the run) or failed.
      if (quit_ || stopped_by_coordinator_ || !status_.ok()) return;
      if (pending_.empty()) {
        if (flush_) return;  // all acknowledged
        if (absl::Now() - last_sent < report_interval) continue;
      }
      request.set_run_id(run_.run_id());
      request.set_attempt_id(attempt_id_);
      for (const v1::ClientStep& s : pending_) {
        if (request.steps_size() >= max_steps) break;
        *request.add_steps() = s;
      }
    }
    last_sent = absl::Now();
    absl::StatusOr<v1::ReportLossesResponse> answer =
        client_->ReportLosses(request);
    if (answer.ok()) {
      last_answer = absl::Now();
      backoff = kFirstBackoff;
      lrtune::MutexLock lock(&mu_);
      acked_ = std::max(acked_, answer->acked_step());
      while (!pending_.empty() && pending_.front().step() <= acked_) {
        pending_.pop_front();
      }
      if (answer->directive() == v1::RUN_DIRECTIVE_STOP) {
        stopped_by_coordinator_ = true;
        stop_reason_ = answer->stop_reason();
        pending_.clear();  // acknowledged and dropped by the coordinator
        over_.store(true);
      }
      continue;
    }
    absl::Status status = answer.status();
    if (absl::IsFailedPrecondition(status)) {
      status = Rejoin();  // the lease lapsed: take the run back
      if (status.ok()) {
        last_answer = absl::Now();
        continue;
      }
    }
    // A coordinator going down cancels the calls in flight: as unreachable.
    if (!IsUnreachable(status) && !absl::IsCancelled(status)) {
      Fail(status);
      return;
    }
    if (absl::Now() - last_answer > options_.give_up_after) {
      Fail(absl::UnavailableError(absl::StrCat(
          "no answer for ", absl::FormatDuration(options_.give_up_after),
          " while reporting run ", run_.run_index(), " of job ", run_.job_id(),
          ": ", status.message())));
      return;
    }
    lrtune::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(lrtune::Condition(&quit_), backoff);
    if (quit_) return;
    backoff = std::min(backoff * 2, kMaxBackoff);
  }
}

absl::StatusOr<v1::EndRunResponse> ClientRangeTest::Finish() {
  if (finished_) {
    return absl::FailedPreconditionError("Finish was called before");
  }
  finished_ = true;
  {
    lrtune::MutexLock lock(&mu_);
    flush_ = true;
  }
  if (thread_.joinable()) thread_.join();  // everything sent, or over
  int64_t final_step;
  uint64_t attempt;
  {
    lrtune::MutexLock lock(&mu_);
    LRTUNE_RETURN_IF_ERROR(status_);
    final_step = acked_;
    attempt = attempt_id_;
  }
  v1::EndRunRequest end;
  end.set_run_id(run_.run_id());
  end.set_attempt_id(attempt);
  end.set_final_step(final_step);
  absl::StatusOr<v1::EndRunResponse> ended = client_->EndRun(end);
  if (absl::IsFailedPrecondition(ended.status())) {
    LRTUNE_RETURN_IF_ERROR(Rejoin());
    lrtune::MutexLock lock(&mu_);
    end.set_attempt_id(attempt_id_);
    ended = client_->EndRun(end);
  }
  lrtune::MutexLock lock(&mu_);
  // The coordinator's own words when it stopped the run.
  if (ended.ok() && stopped_by_coordinator_) {
    ended->set_end_reason(stop_reason_);
  }
  return ended;
}

absl::StatusOr<v1::Job> ClientRangeTest::WaitForJob() {
  return client_->WatchJob(run_.job_id(), 0, nullptr, /*skip_points=*/true);
}

}  // namespace lrtune::client
