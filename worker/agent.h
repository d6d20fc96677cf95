// The worker agent: registers with the coordinator's WorkerHub, runs one
// task per slot on threads it owns, reports records in batches, renews
// leases by heartbeat and stops tasks when told to.
//
//   AgentOptions options;  options.server = "localhost:7070";
//   Agent agent(options, NewGrpcHubClient(options.server, ""));
//   std::thread t([&] { agent.Run(); });  ...  agent.Shutdown(); t.join();
//
// Threads: one per slot (AcquireTask, then the engine runs on that thread,
// then CompleteTask/FailTask), one reporter per running task (ReportPoints
// every report_interval or report_batch records), one heartbeat thread.
// When the coordinator is unreachable every call is retried with capped,
// jittered exponential backoff; training continues and records stay
// buffered until acknowledged. When it answers that it does not know this
// worker (it restarted: its registry of workers lives in memory), the agent
// registers again under the same worker_id and carries on; the running
// tasks' leases are in the coordinator's store and stay valid.
#ifndef LRTUNE_WORKER_AGENT_H_
#define LRTUNE_WORKER_AGENT_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "core/sync.h"
#include "lrtune/v1/worker.pb.h"
#include "worker/engine.h"
#include "worker/hub_client.h"
#include "worker/reporter.h"

namespace lrtune::worker {

struct AgentOptions {
  std::string server;                       // host:port; required
  std::vector<std::string> devices{"cpu"};  // "cpu", "cuda:<i>"
  int slots = 1;                            // 1..64, round-robin on devices
  int threads = 0;        // CPU threads in total; 0 = all cores
  std::string worker_id;  // empty: the coordinator assigns one
  // Where the data sets are (built-in files and data sets by reference);
  // empty: $LRTUNE_DATA_DIR, then /usr/local/share/lrtune/datasets
  // (worker/dataset_files.h DataDirs).
  std::string data_dir;
  std::string checkpoint_dir;  // empty: no checkpoints
  std::string hostname;        // sent on Register, for humans
  absl::Duration acquire_wait = absl::Seconds(5);  // long poll
  absl::Duration report_interval = absl::Milliseconds(100);
  size_t report_batch = 256;  // records per ReportPoints
  // How long a trial at a rung of a pruned search waits for the
  // coordinator's decision before going on without it (the decision then
  // arrives with a later report and stops the run there).
  absl::Duration rung_wait = absl::Seconds(10);
  Backoff::Options backoff;  // reconnection delays
};

class Agent {
 public:
  // `hub` is owned by the agent.
  Agent(AgentOptions options, std::unique_ptr<HubClient> hub);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Registers (retrying until it succeeds or Shutdown), then serves tasks
  // until Shutdown. Returns OK after a shutdown; InvalidArgument for bad
  // options or when the coordinator refuses the registration.
  absl::Status Run();

  // Waits up to `timeout` for Run's first successful registration, which
  // reported the data sets in the data directory; true once it happened.
  // Thread-safe.
  bool WaitRegistered(absl::Duration timeout) const;

  // Stops acquiring, cancels running tasks (they are released with
  // FailTask(RELEASED), best effort) and makes Run return. Thread-safe;
  // not async-signal-safe (call it from a thread that waited for the
  // signal).
  void Shutdown();

 private:
  struct Running {
    std::string task_id;
    uint64_t attempt_id = 0;
    engine::CancellationToken cancel;
    std::atomic<int64_t> step{0};
    std::atomic<bool> cancel_directive{false};  // CANCEL: FailTask(CANCELLED)
    std::atomic<bool> abandoned{false};         // ABANDON or stale: silence
    std::atomic<bool> pruned{false};  // a pruned search stopped the trial
  };

  absl::Status RegisterWithRetry();
  // Registers again after a call made under registration `seen` (see
  // registrations()) was answered "not registered". Threads that hit this
  // together share one Register: a caller whose `seen` is already
  // outdated returns OK at once. Errors as RegisterWithRetry.
  absl::Status Reregister(int64_t seen);
  int64_t registrations() const;
  void SlotLoop(int slot);
  void HeartbeatLoop();
  // Where the task's checkpoint lives: --checkpoint-dir / the key the
  // coordinator gives (the same for every attempt); empty: none.
  std::string CheckpointPath(const v1::Task& task) const;
  void RunTask(int slot, const v1::Task& task);
  // Sends every buffered record, retrying transient errors, until done,
  // abandoned, or (when shutting down) after one try.
  void FinalFlush(TaskReporter& reporter, Running& running,
                  RecordBuffer& buffer);
  void Finish(const v1::Task& task, Running& running, RecordBuffer& buffer,
              const absl::Status& run_status,
              const v1::CompleteTaskRequest* complete);
  // Sleeps `d`; returns true (early) when shutting down.
  bool SleepOrStop(absl::Duration d) const;
  std::string worker_id() const;

  const AgentOptions options_;
  const std::unique_ptr<HubClient> hub_;
  lrtune::Notification stop_;
  lrtune::Notification registered_;  // the first Register succeeded
  // Held across a re-registration, so that only one thread registers.
  lrtune::Mutex register_mu_ ABSL_ACQUIRED_BEFORE(mu_);

  mutable lrtune::Mutex mu_;
  std::string worker_id_ ABSL_GUARDED_BY(mu_);
  int64_t registrations_ ABSL_GUARDED_BY(mu_) = 0;  // successful Registers
  absl::Duration heartbeat_interval_ ABSL_GUARDED_BY(mu_) = absl::Seconds(2);
  std::map<std::string, std::shared_ptr<Running>> running_ ABSL_GUARDED_BY(mu_);
};

// Parses "cpu" or "cuda:0,cuda:1" into device names; InvalidArgument
// naming the bad entry.
absl::StatusOr<std::vector<std::string>> ParseDevices(const std::string& list);

}  // namespace lrtune::worker

#endif  // LRTUNE_WORKER_AGENT_H_
