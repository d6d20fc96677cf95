// A client-driven LR range test inside the caller's own training loop (a
// LibTorch loop, or any other): the coordinator hands out the plan (every
// step's LR) and applies the divergence rule; the loop trains and reports
// each optimizer update's loss. client_run.proto has the protocol.
//
//   ClientRangeTestOptions o;  o.job = MyRangeTestJob();  // steps, LRs
//   LRTUNE_ASSIGN_OR_RETURN(auto rt, ClientRangeTest::Start(client, o));
//   while (!rt->done()) {
//     SetLr(optimizer, rt->lr());         // every group, keeping ratios
//     double loss = TrainOneUpdate();     // forward, backward, step
//     rt->Step(loss);                     // never waits on the network
//   }
//   LRTUNE_ASSIGN_OR_RETURN(v1::EndRunResponse end, rt->Finish());
//   LRTUNE_ASSIGN_OR_RETURN(v1::Job job, rt->WaitForJob());  // all runs
//
// Step and SkipStep only append to a buffer: a background thread sends it
// in batches (every flush_interval, or at once when batch_steps are
// waiting), renews the run's lease when there is nothing to send, and
// reads the answers: the acknowledged step (the buffer is kept until then,
// so after a dropped connection or a coordinator restart it is resent from
// acked + 1, idempotent by step) and STOP, which done() shows on the next
// call. A lapsed lease (FAILED_PRECONDITION) is taken back by joining again
// with the same client_id. An error the coordinator gives (a bad report,
// another owner's job), or a coordinator unreachable (or shutting down,
// cancelling the calls in flight) past give_up_after, ends the test:
// done() turns true and status() says why.
//
// Threads: Start, the accessors, Step, SkipStep, Finish and WaitForJob are
// for one thread (the training loop's); the background thread is the
// object's own and stops in Finish or the destructor. The header is
// torch-free.
#ifndef LRTUNE_CLIENT_CLIENT_RANGE_TEST_H_
#define LRTUNE_CLIENT_CLIENT_RANGE_TEST_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/lrtune_client.h"
#include "core/sync.h"
#include "lrtune/v1/client_run.pb.h"
#include "lrtune/v1/jobs.pb.h"

namespace lrtune::client {

struct ClientRangeTestOptions {
  // A client-driven range test to join (submitted before, e.g. by another
  // process); empty: submit `job` first, its range_test.driver set to
  // client (start_lr, end_lr, steps, shape, seeds, analysis and
  // run.optimizer as for any range test).
  std::string job_id;
  v1::RangeTestJob job;
  // The run to take; unset: the next free one.
  std::optional<int> run_index;
  // The client's id across reconnections; empty: a random one.
  std::string client_id;
  // The background thread sends at least this often while steps wait, and
  // at once when batch_steps do.
  absl::Duration flush_interval = absl::Milliseconds(100);  // default 0.1 s
  int batch_steps = 256;                                    // default 256
  // Resends go on for this long without an answer, from 50 ms apart growing
  // to 2 s; then the test ends with UNAVAILABLE.
  absl::Duration give_up_after = absl::Minutes(2);  // default 2 min
};

class ClientRangeTest {
 public:
  // Submits the job (unless options.job_id names one), joins a run and
  // starts the background thread. `client` is not owned and must outlive
  // the object. Errors: the coordinator's (INVALID_ARGUMENT naming the
  // field, NOT_FOUND, FAILED_PRECONDITION: no run free, a closed job) and
  // unreachable ones.
  static absl::StatusOr<std::unique_ptr<ClientRangeTest>> Start(
      Client* client, ClientRangeTestOptions options);
  ~ClientRangeTest();  // stops the thread; the run is left as it is
  ClientRangeTest(const ClientRangeTest&) = delete;
  ClientRangeTest& operator=(const ClientRangeTest&) = delete;

  // The run as joined: job_id, run_index, seed, the plan.
  const v1::RangeTestRun& run() const { return run_; }
  const std::string& job_id() const { return run_.job_id(); }
  // The plan's step the next update applies (0-based) and its LR; past
  // the plan's end, its last LR.
  int64_t step() const { return step_; }
  double lr() const;
  // Over: the plan is done, the coordinator said STOP, or the test failed.
  bool done() const;
  // Why the coordinator stopped the run ("diverged at step 57 (...)"),
  // empty until it did.
  std::string stop_reason() const;
  // OK, or why the test failed in the background.
  absl::Status status() const;

  // The loss of the update just applied at lr() (over its accumulated
  // micro-batches; NaN or Inf when it diverged); the next step begins.
  // Ignored once done().
  void Step(double loss);
  // An update AMP's GradScaler skipped (inf gradients): counted on the
  // next Step's point; lr() does not move.
  void SkipStep();

  // After the loop: sends every step (waiting for the acknowledgements),
  // ends the run unless the coordinator did (EndRun), stops the thread and
  // returns the run's recommendation and why it ended. Errors: status(),
  // or EndRun's.
  absl::StatusOr<v1::EndRunResponse> Finish();
  // Waits until the job ended (every run) and returns it; its
  // range_test_result holds the aggregate. Call after Finish.
  absl::StatusOr<v1::Job> WaitForJob();

 private:
  ClientRangeTest(Client* client, ClientRangeTestOptions options,
                  v1::RangeTestRun run);
  void Loop();
  // Whether the background thread has work now.
  bool Wakeful() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // After a lapsed lease: join the same run again. OK, or why not.
  absl::Status Rejoin();
  void Fail(const absl::Status& status);

  Client* const client_;
  const ClientRangeTestOptions options_;
  v1::RangeTestRun run_;  // attempt_id changes on Rejoin (background)
  const absl::Time started_;
  std::thread thread_;

  // The training thread's.
  int64_t step_ = 0;
  int64_t skipped_ = 0;
  bool finished_ = false;
  std::atomic<bool> over_{false};  // STOP heard or failed (both threads)

  mutable lrtune::Mutex mu_;
  std::deque<v1::ClientStep> pending_ ABSL_GUARDED_BY(mu_);  // not acked
  int64_t acked_ ABSL_GUARDED_BY(mu_) = -1;
  uint64_t attempt_id_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopped_by_coordinator_ ABSL_GUARDED_BY(mu_) = false;
  std::string stop_reason_ ABSL_GUARDED_BY(mu_);
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  bool flush_ ABSL_GUARDED_BY(mu_) = false;  // Finish: send everything now
  bool quit_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace lrtune::client

#endif  // LRTUNE_CLIENT_CLIENT_RANGE_TEST_H_
