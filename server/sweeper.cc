// The coordinator's sweeper: every sweep_interval it expires lapsed leases
// (requeueing their tasks), ends long polls whose time is up, and advances
// the grids that need it. sweep_mu_ runs the thread; sweep_grids_mu_ holds
// the grids left to advance. A grid is advanced under its own job's lock,
// so a sweep never waits on another job's ingestion, and a quiet one on
// none.
#include <set>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "core/status_macros.h"
#include "server/coordinator.h"

namespace lrtune::server {

absl::StatusOr<Coordinator::SweepReport> Coordinator::SweepOnce() {
  SweepReport report;
  const absl::Time now = clock_->Now();
  LRTUNE_ASSIGN_OR_RETURN(std::vector<ExpiredLease> expired,
                          store_->ExpireLeases(now));
  leases_.Expired(now);
  report.expired_leases = static_cast<int>(expired.size());
  for (const ExpiredLease& e : expired) NotifyJob(e.job_id);
  if (!expired.empty()) SignalWork();
  signal_.ExpireWaiters(absl::Now());  // long polls whose time is up

  std::set<std::string> grids;
  {
    lrtune::MutexLock lock(&sweep_grids_mu_);
    if (!swept_all_grids_) {
      LRTUNE_ASSIGN_OR_RETURN(std::vector<std::string> running,
                              store_->ListJobIds("grid", JobState::kRunning));
      grids_to_advance_.insert(running.begin(), running.end());
      swept_all_grids_ = true;
    }
    // AdvanceGrid passes over a job that is not a grid.
    for (const ExpiredLease& e : expired) grids_to_advance_.insert(e.job_id);
    grids.swap(grids_to_advance_);
  }
  if (grids.empty()) return report;
  absl::Status failed;
  for (const std::string& id : grids) {
    absl::Status s = AdvanceGrid(job_locks_.Lock(id));
    if (s.ok()) {
      ++report.grids_advanced;
      continue;
    }
    failed.Update(s);
    lrtune::MutexLock retry(&sweep_grids_mu_);
    grids_to_advance_.insert(id);  // the next sweep tries again
  }
  if (!failed.ok()) return failed;
  return report;
}

void Coordinator::StartSweeper() {
  lrtune::MutexLock lock(&sweep_mu_);
  if (sweeping_) return;
  sweeping_ = true;
  sweeper_ = std::thread([this] {
    lrtune::MutexLock lock(&sweep_mu_);
    while (sweeping_) {
      sweep_mu_.Unlock();
      SweepOnce().status().IgnoreError();  // retried next interval
      sweep_mu_.Lock();
      sweep_mu_.AwaitWithTimeout(
          lrtune::Condition(
              +[](bool* running) { return !*running; }, &sweeping_),
          options_.sweep_interval);
    }
  });
}

void Coordinator::StopSweeper() {
  {
    lrtune::MutexLock lock(&sweep_mu_);
    if (!sweeping_) return;
    sweeping_ = false;
  }
  sweeper_.join();
}

}  // namespace lrtune::server
