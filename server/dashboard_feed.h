// A job's events for the dashboard's viewers: one subscription to the
// coordinator's EventHub per job however many viewers it has, each event
// encoded once (dashboard_json.h: a point's element of a `points` frame,
// another event's frame) and shared from a bounded window; a viewer behind the
// window, or resuming from an older seq, reads the store, as WatchJob's reactor
// does. So 50 viewers of a running job cost the ingestion path one copy of each
// event, and the store is read only for history.
//
//   JobFeeds feeds(coordinator.hub(), [&](const std::string& job, int64_t
//       after, int limit) { return coordinator.ReadEvents(job, after, limit);
//   });
//   std::unique_ptr<JobFeeds::Viewer> viewer = feeds.Watch(job_id, 0);
//   for (;;) {
//     LRTUNE_ASSIGN_OR_RETURN(JobFeeds::Batch batch,
//                             viewer->Next(absl::Seconds(1)));
//     write(batch.frames);  if (batch.terminal) break;
//   }
//
// A viewer gets every event after its start exactly once, in seq order,
// up to and including the job's terminal event. Thread-safe; a Viewer is
// used by one thread at a time.
#ifndef LRTUNE_SERVER_DASHBOARD_FEED_H_
#define LRTUNE_SERVER_DASHBOARD_FEED_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/sync.h"
#include "lrtune/v1/jobs.pb.h"
#include "server/event_hub.h"

namespace lrtune::server {

class JobFeeds {
 public:
  // Up to `limit` stored events of the job after `after_seq`, in order
  // (Coordinator::ReadEvents).
  using StoreReader = std::function<absl::StatusOr<std::vector<v1::JobEvent>>(
      const std::string& job_id, int64_t after_seq, int limit)>;

  struct Options {
    // Events kept per job being viewed (~300 bytes each): ~0.2 s of the
    // fastest ingestion measured (bench/dashboard_bench.md), so that a
    // viewer slowed down for a moment does not fall back to the store.
    int window = 16384;
    int max_batch = 1024;  // events per Next
  };

  // `hub` is not owned and must outlive this; `read` is called on viewers'
  // threads.
  JobFeeds(EventHub* hub, StoreReader read, Options options);
  JobFeeds(EventHub* hub, StoreReader read)
      : JobFeeds(hub, std::move(read), Options()) {}
  ~JobFeeds();  // every Viewer must be gone
  JobFeeds(const JobFeeds&) = delete;
  JobFeeds& operator=(const JobFeeds&) = delete;

  // Events for one viewer, as frames ready to send.
  struct Batch {
    std::string frames;     // zero or more frames, in seq order
    int events = 0;         // how many
    int64_t last_seq = 0;   // of the last one (0: none)
    bool terminal = false;  // the last one ends the job: the stream is done
    bool more = false;      // more events were ready than one batch holds
  };

  class Feed;
  class Viewer {
   public:
    ~Viewer();  // leaves the feed; the last viewer unsubscribes it
    Viewer(const Viewer&) = delete;
    Viewer& operator=(const Viewer&) = delete;

    // The events after the last one returned (first: after `after_seq`),
    // waiting up to `timeout` for one. An empty batch: nothing new in
    // time. CANCELLED once Shutdown was called; the store's error when a
    // read fails. Nothing after a terminal batch.
    absl::StatusOr<Batch> Next(absl::Duration timeout);

   private:
    friend class JobFeeds;
    Viewer(JobFeeds* feeds, std::shared_ptr<Feed> feed, int64_t after_seq);
    absl::StatusOr<Batch> ReadStore();

    JobFeeds* const feeds_;
    const std::shared_ptr<Feed> feed_;
    int64_t cursor_;          // the last seq returned
    bool read_store_ = true;  // the next events come from the store
    bool done_ = false;       // the terminal event was returned
  };

  // A viewer of `job_id` from the events after `after_seq` (the caller has
  // checked that the job exists and may be seen).
  std::unique_ptr<Viewer> Watch(const std::string& job_id, int64_t after_seq);

  // Viewers' Next answers CANCELLED from now on, at once.
  void Shutdown();

  // Jobs with at least one viewer (for tests).
  int feeds() const;

 private:
  void Leave(const std::shared_ptr<Feed>& feed);

  EventHub* const hub_;
  const StoreReader read_;
  const Options options_;
  struct Slot {
    std::shared_ptr<Feed> feed;
    int viewers = 0;
  };
  mutable lrtune::Mutex mu_;
  std::map<std::string, Slot> feeds_ ABSL_GUARDED_BY(mu_);
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace lrtune::server

#endif  // LRTUNE_SERVER_DASHBOARD_FEED_H_
