#include "server/job_locks.h"

#include <utility>

namespace lrtune::server {

JobLocks::Held::Held(Held&& other) noexcept
    : locks_(other.locks_),
      job_id_(std::move(other.job_id_)),
      entry_(other.entry_) {
  other.entry_ = nullptr;
}

JobLocks::Held::~Held() {
  if (entry_ != nullptr) locks_->Release(job_id_, entry_);
}

JobLocks::Held JobLocks::Lock(absl::string_view job_id) {
  Entry* entry = nullptr;
  {
    lrtune::MutexLock lock(&mu_);
    auto it = entries_.find(job_id);
    if (it == entries_.end()) {
      it = entries_.try_emplace(std::string(job_id)).first;
    }
    entry = &it->second;
    ++entry->users;
  }
  entry->mu.Lock();
  return Held(this, std::string(job_id), entry);
}

void JobLocks::Release(const std::string& job_id, Entry* entry) {
  entry->mu.Unlock();
  lrtune::MutexLock lock(&mu_);
  if (--entry->users == 0) entries_.erase(job_id);
}

int JobLocks::Entries() const {
  lrtune::MutexLock lock(&mu_);
  return static_cast<int>(entries_.size());
}

}  // namespace lrtune::server
