#include "server/dashboard_feed.h"

#include <algorithm>
#include <mutex>
#include <utility>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "server/dashboard_json.h"
#include "server/event_codec.h"

namespace lrtune::server {
namespace {

// An event and its encoding (dashboard_json.h: a point's element or
// another event's frame), made by the first viewer that sends it (outside
// any lock), then shared.
class Entry {
 public:
  explicit Entry(const v1::JobEvent& event)
      : event_(event),
        point_(event.has_point()),
        terminal_(IsTerminalEvent(event)) {}
  int64_t seq() const { return static_cast<int64_t>(event_.seq()); }
  bool point() const { return point_; }
  bool terminal() const { return terminal_; }
  const std::string& Encoded() {
    std::call_once(once_, [this] {
      encoded_ = point_ ? PointElement(event_) : EventFrame(event_);
    });
    return encoded_;
  }

 private:
  const v1::JobEvent event_;
  const bool point_;
  const bool terminal_;
  std::once_flag once_;
  std::string encoded_;
};

}  // namespace

// One job's live events: a window of consecutive events, the newest seq
// known to be stored, and the viewers waiting for either to move.
class JobFeeds::Feed final : public EventSink {
 public:
  Feed(std::string job_id, size_t window)
      : job_id_(std::move(job_id)), window_limit_(window) {}

  const std::string& job_id() const { return job_id_; }

  // On the ingestion path, under the hub's lock: copies, never encodes.
  void OnEvents(const std::vector<v1::JobEvent>& events,
                int64_t last_seq) override {
    lrtune::MutexLock lock(&mu_);
    for (const v1::JobEvent& e : events) {
      const auto seq = static_cast<int64_t>(e.seq());
      if (!window_.empty()) {
        const int64_t end = window_.back()->seq();
        if (seq <= end) continue;  // already here
        // A gap (events published out of order): start again from here;
        // viewers before it read the store.
        if (seq != end + 1) window_.clear();
      }
      window_.push_back(std::make_shared<Entry>(e));
      if (window_.size() > window_limit_) window_.pop_front();
    }
    known_ = std::max(known_, last_seq);
  }

  void Shutdown() {
    lrtune::MutexLock lock(&mu_);
    shutdown_ = true;
  }

 private:
  friend class JobFeeds::Viewer;

  // The frames of the last range a viewer built from the window: viewers
  // that caught up together (the dashboard wakes them on the same beat)
  // ask for the same range, and build it once.
  struct Built {
    int64_t first = 0;
    int64_t last = 0;
    Batch batch;
  };

  const std::string job_id_;
  const size_t window_limit_;
  lrtune::Mutex mu_;
  std::shared_ptr<const Built> built_ ABSL_GUARDED_BY(mu_);
  // Consecutive seqs, oldest first.
  std::deque<std::shared_ptr<Entry>> window_ ABSL_GUARDED_BY(mu_);
  int64_t known_ ABSL_GUARDED_BY(mu_) = 0;  // a seq the store has reached
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
};

JobFeeds::JobFeeds(EventHub* hub, StoreReader read, Options options)
    : hub_(hub), read_(std::move(read)), options_(options) {}

JobFeeds::~JobFeeds() {
  // Viewers unsubscribe their feeds; none may be left.
  lrtune::MutexLock lock(&mu_);
  for (auto& [job_id, slot] : feeds_) {
    hub_->Unsubscribe(job_id, slot.feed.get());
  }
}

std::unique_ptr<JobFeeds::Viewer> JobFeeds::Watch(const std::string& job_id,
                                                  int64_t after_seq) {
  std::shared_ptr<Feed> feed;
  {
    lrtune::MutexLock lock(&mu_);
    Slot& slot = feeds_[job_id];
    if (slot.feed == nullptr) {
      slot.feed = std::make_shared<Feed>(
          job_id, static_cast<size_t>(std::max(options_.window, 1)));
      // Subscribed before the viewer's first store read, so that an event
      // stored after that read reaches the window (or at least `known_`).
      hub_->Subscribe(job_id, slot.feed.get());
    }
    ++slot.viewers;
    feed = slot.feed;
    if (shutdown_) feed->Shutdown();
  }
  return std::unique_ptr<Viewer>(new Viewer(this, std::move(feed), after_seq));
}

void JobFeeds::Leave(const std::shared_ptr<Feed>& feed) {
  lrtune::MutexLock lock(&mu_);
  auto it = feeds_.find(feed->job_id());
  if (it == feeds_.end() || it->second.feed != feed) return;
  if (--it->second.viewers > 0) return;
  // After Unsubscribe no OnEvents runs on it: the last reference may go.
  hub_->Unsubscribe(feed->job_id(), feed.get());
  feeds_.erase(it);
}

void JobFeeds::Shutdown() {
  lrtune::MutexLock lock(&mu_);
  shutdown_ = true;
  for (auto& [job_id, slot] : feeds_) slot.feed->Shutdown();
}

int JobFeeds::feeds() const {
  lrtune::MutexLock lock(&mu_);
  return static_cast<int>(feeds_.size());
}

JobFeeds::Viewer::Viewer(JobFeeds* feeds, std::shared_ptr<Feed> feed,
                         int64_t after_seq)
    : feeds_(feeds), feed_(std::move(feed)), cursor_(after_seq) {}

JobFeeds::Viewer::~Viewer() { feeds_->Leave(feed_); }

absl::StatusOr<JobFeeds::Batch> JobFeeds::Viewer::ReadStore() {
  const int limit = std::max(feeds_->options_.max_batch, 1);
  absl::StatusOr<std::vector<v1::JobEvent>> events =
      feeds_->read_(feed_->job_id(), cursor_, limit);
  if (!events.ok()) return events.status();
  Batch batch;
  FrameWriter frames(&batch.frames);
  for (const v1::JobEvent& e : *events) {
    const auto seq = static_cast<int64_t>(e.seq());
    if (seq <= cursor_) continue;
    if (seq != cursor_ + 1) break;  // cannot happen: seqs are gap-free
    frames.Add(e);
    ++batch.events;
    batch.last_seq = cursor_ = seq;
    if (IsTerminalEvent(e)) {
      batch.terminal = done_ = true;
      break;
    }
  }
  // Fewer than asked for: caught up with the store; what is stored from
  // now on reaches the feed (it was subscribed before this read).
  frames.Finish();
  if (static_cast<int>(events->size()) < limit) read_store_ = false;
  batch.more = read_store_ && !done_;
  return batch;
}

absl::StatusOr<JobFeeds::Batch> JobFeeds::Viewer::Next(absl::Duration timeout) {
  if (done_) return Batch();
  const absl::Time deadline = absl::Now() + timeout;
  // The store was last read with this much known stored: a notification
  // beyond it is news, one below it is not (no busy loop on it).
  int64_t checked_known = -1;
  for (;;) {
    if (read_store_) {
      {
        lrtune::MutexLock lock(&feed_->mu_);
        if (feed_->shutdown_) return absl::CancelledError("shutting down");
        checked_known = feed_->known_;
      }
      absl::StatusOr<Batch> batch = ReadStore();
      if (!batch.ok() || batch->events > 0) return batch;
    }
    std::vector<std::shared_ptr<Entry>> taken;
    bool more = false;
    std::shared_ptr<const Feed::Built> built;
    {
      Feed& f = *feed_;
      lrtune::MutexLock lock(&f.mu_);
      const int64_t cursor = cursor_;
      auto news = [&f, cursor,
                   checked_known]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(f.mu_) {
        return f.shutdown_ ||
               (!f.window_.empty() && f.window_.back()->seq() > cursor) ||
               (f.known_ > cursor && f.known_ > checked_known);
      };
      if (!f.mu_.AwaitWithTimeout(lrtune::Condition(&news),
                                  deadline - absl::Now())) {
        return Batch();  // nothing new in time
      }
      if (f.shutdown_) return absl::CancelledError("shutting down");
      if (f.window_.empty() || f.window_.front()->seq() > cursor + 1 ||
          f.window_.back()->seq() <= cursor) {
        read_store_ = true;  // behind the window, or news it does not hold
        continue;
      }
      const auto first =
          static_cast<size_t>(cursor + 1 - f.window_.front()->seq());
      const size_t count = std::min(
          f.window_.size() - first,
          static_cast<size_t>(std::max(feeds_->options_.max_batch, 1)));
      if (f.built_ != nullptr && f.built_->first == cursor + 1 &&
          f.built_->last == cursor + static_cast<int64_t>(count)) {
        built = f.built_;
      } else {
        taken.assign(
            f.window_.begin() + static_cast<std::ptrdiff_t>(first),
            f.window_.begin() + static_cast<std::ptrdiff_t>(first + count));
        more = first + count < f.window_.size();
      }
    }
    if (built != nullptr) {
      cursor_ = built->batch.last_seq;
      done_ = built->batch.terminal;
      return built->batch;
    }
    Batch batch;
    batch.more = more;
    FrameWriter frames(&batch.frames);
    for (const std::shared_ptr<Entry>& entry : taken) {
      frames.AddEncoded(entry->seq(), entry->point(), entry->Encoded());
      ++batch.events;
      batch.last_seq = cursor_ = entry->seq();
      if (entry->terminal()) {
        batch.terminal = done_ = true;
        batch.more = false;
        break;
      }
    }
    frames.Finish();
    auto share = std::make_shared<Feed::Built>();
    share->first = static_cast<int64_t>(taken.front()->seq());
    share->last = static_cast<int64_t>(taken.back()->seq());
    share->batch = batch;
    lrtune::MutexLock lock(&feed_->mu_);
    feed_->built_ = std::move(share);
    return batch;
  }
}

}  // namespace lrtune::server
