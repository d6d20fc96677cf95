// JobLocks: one lock per job. The coordinator's writes that must not
// interleave within a job (a task's records appended and then published in
// seq order, the last seed's aggregation, a grid's advance) hold their job's
// lock; other jobs' writes run beside them, so a sweeper advancing one grid
// or a slow completion never holds up another job's ingestion.
//
//   JobLocks::Held held = locks_.Lock(job_id);
//   LRTUNE_RETURN_IF_ERROR(AdvanceGrid(held));
//
// A function that needs a job's lock takes its Held, which names the job: a
// caller cannot forget the lock or hold another job's. An entry exists only
// while its lock is held or waited for. Locks are not reentrant; nothing
// holds two jobs' at once. Thread-safe.
#ifndef LRTUNE_SERVER_JOB_LOCKS_H_
#define LRTUNE_SERVER_JOB_LOCKS_H_

#include <functional>
#include <map>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "core/sync.h"

namespace lrtune::server {

class JobLocks {
  struct Entry {
    lrtune::Mutex mu;
    int users = 0;  // holding or waiting; guarded by JobLocks::mu_
  };

 public:
  // Proof that its job's lock is held, until it is destroyed.
  class Held {
   public:
    Held(Held&& other) noexcept;
    Held(const Held&) = delete;
    Held& operator=(const Held&) = delete;
    Held& operator=(Held&&) = delete;
    ~Held();

    const std::string& job_id() const { return job_id_; }

   private:
    friend class JobLocks;
    Held(JobLocks* locks, std::string job_id, Entry* entry)
        : locks_(locks), job_id_(std::move(job_id)), entry_(entry) {}

    JobLocks* locks_;
    std::string job_id_;
    Entry* entry_;  // null once moved from
  };

  JobLocks() = default;
  JobLocks(const JobLocks&) = delete;
  JobLocks& operator=(const JobLocks&) = delete;

  // Blocks until `job_id`'s lock is free, then holds it.
  // (The lock outlives the call, in the Held: hidden from -Wthread-safety.)
  Held Lock(absl::string_view job_id) ABSL_NO_THREAD_SAFETY_ANALYSIS;

  // Jobs whose lock is held or waited for (tests).
  int Entries() const;

 private:
  void Release(const std::string& job_id,
               Entry* entry) ABSL_NO_THREAD_SAFETY_ANALYSIS;

  mutable lrtune::Mutex mu_;
  // std::map: an entry stays where it is while others come and go.
  std::map<std::string, Entry, std::less<>> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace lrtune::server

#endif  // LRTUNE_SERVER_JOB_LOCKS_H_
