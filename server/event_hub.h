// Live fan-out of a job's events to its watchers, and the one background
// thread that serves watchers from the store, so that neither the ingestion
// path nor gRPC's reaction threads wait on a slow watcher or on SQLite.
//
//   EventHub hub;
//   hub.Subscribe(job_id, &sink);                  // sink: an EventSink
//   hub.Publish(job_id, {event}, event.seq());     // after the store commit
//
// Publish is called only after the events are durable, so a sink that drops
// live events (its bounded queue is full, or they arrive out of order) can
// always read them back from the store: the hub never buffers, and each
// sink bounds its own memory. Thread-safe.
#ifndef LRTUNE_SERVER_EVENT_HUB_H_
#define LRTUNE_SERVER_EVENT_HUB_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "core/sync.h"
#include "lrtune/v1/jobs.pb.h"

namespace lrtune::server {

// A watcher's end of the hub. OnEvents must not block: it is called on the
// ingestion path, with the hub's lock held.
class EventSink {
 public:
  virtual ~EventSink() = default;
  // `events` are stored events of the job (in seq order when one writer
  // published them; possibly empty: a bare notification); `last_seq` is a
  // seq the job has reached, at least that of the last event.
  virtual void OnEvents(const std::vector<v1::JobEvent>& events,
                        int64_t last_seq) = 0;
};

class EventHub {
 public:
  EventHub() = default;
  EventHub(const EventHub&) = delete;
  EventHub& operator=(const EventHub&) = delete;

  // `sink` is not owned; after Unsubscribe returns no call to it is running
  // or will start.
  void Subscribe(const std::string& job_id, EventSink* sink);
  void Unsubscribe(const std::string& job_id, EventSink* sink);
  void Publish(const std::string& job_id,
               const std::vector<v1::JobEvent>& events, int64_t last_seq);

 private:
  lrtune::Mutex mu_;
  std::map<std::string, std::set<EventSink*>> sinks_ ABSL_GUARDED_BY(mu_);
};

// Runs closures one at a time, in order, on its own thread. The destructor
// runs what is queued, then joins.
class BackgroundRunner {
 public:
  BackgroundRunner();
  ~BackgroundRunner();
  BackgroundRunner(const BackgroundRunner&) = delete;
  BackgroundRunner& operator=(const BackgroundRunner&) = delete;

  void Post(std::function<void()> fn);

 private:
  void Loop();
  bool HasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stopping_ || !queue_.empty();
  }

  lrtune::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace lrtune::server

#endif  // LRTUNE_SERVER_EVENT_HUB_H_
