#include "server/event_hub.h"

#include <utility>

namespace lrtune::server {

void EventHub::Subscribe(const std::string& job_id, EventSink* sink) {
  lrtune::MutexLock lock(&mu_);
  sinks_[job_id].insert(sink);
}

void EventHub::Unsubscribe(const std::string& job_id, EventSink* sink) {
  lrtune::MutexLock lock(&mu_);
  auto it = sinks_.find(job_id);
  if (it == sinks_.end()) return;
  it->second.erase(sink);
  if (it->second.empty()) sinks_.erase(it);
}

void EventHub::Publish(const std::string& job_id,
                       const std::vector<v1::JobEvent>& events,
                       int64_t last_seq) {
  lrtune::MutexLock lock(&mu_);
  auto it = sinks_.find(job_id);
  if (it == sinks_.end()) return;
  for (EventSink* sink : it->second) sink->OnEvents(events, last_seq);
}

BackgroundRunner::BackgroundRunner() : thread_([this] { Loop(); }) {}

BackgroundRunner::~BackgroundRunner() {
  {
    lrtune::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

void BackgroundRunner::Post(std::function<void()> fn) {
  lrtune::MutexLock lock(&mu_);
  queue_.push_back(std::move(fn));
}

void BackgroundRunner::Loop() {
  for (;;) {
    std::function<void()> fn;
    {
      lrtune::MutexLock lock(&mu_);
      mu_.Await(lrtune::Condition(this, &BackgroundRunner::HasWork));
      if (queue_.empty()) return;  // stopping, nothing left
      fn = std::move(queue_.front());
      queue_.pop_front();
    }
    fn();
  }
}

}  // namespace lrtune::server
