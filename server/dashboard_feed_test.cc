#include "server/dashboard_feed.h"

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "core/sync.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lrtune::server {
namespace {

constexpr char kJob[] = "j-1";

v1::JobEvent Point(int64_t seq) {
  v1::JobEvent e;
  e.set_seq(static_cast<uint64_t>(seq));
  e.set_job_id(kJob);
  e.mutable_point()->mutable_point()->set_step(seq);
  e.mutable_point()->mutable_point()->set_lr(1e-3);
  e.mutable_point()->mutable_point()->set_loss(2.0);
  return e;
}

v1::JobEvent Done(int64_t seq) {
  v1::JobEvent e;
  e.set_seq(static_cast<uint64_t>(seq));
  e.set_job_id(kJob);
  e.mutable_state_changed()->set_state(v1::JOB_STATE_SUCCEEDED);
  return e;
}

// The store a feed reads history from, with a count of its reads.
class FakeStore {
 public:
  void Append(const v1::JobEvent& e) {
    lrtune::MutexLock lock(&mu_);
    events_.push_back(e);
  }
  // Stores the events, then publishes them, as the coordinator does.
  void AppendAndPublish(EventHub& hub, std::vector<v1::JobEvent> events) {
    for (const v1::JobEvent& e : events) Append(e);
    hub.Publish(kJob, events, static_cast<int64_t>(events.back().seq()));
  }
  JobFeeds::StoreReader Reader() {
    return [this](const std::string&, int64_t after, int limit) {
      lrtune::MutexLock lock(&mu_);
      ++reads_;
      std::vector<v1::JobEvent> out;
      for (const v1::JobEvent& e : events_) {
        if (static_cast<int64_t>(e.seq()) > after &&
            static_cast<int>(out.size()) < limit) {
          out.push_back(e);
        }
      }
      return absl::StatusOr<std::vector<v1::JobEvent>>(out);
    };
  }
  int reads() {
    lrtune::MutexLock lock(&mu_);
    return reads_;
  }

 private:
  lrtune::Mutex mu_;
  std::vector<v1::JobEvent> events_ ABSL_GUARDED_BY(mu_);
  int reads_ ABSL_GUARDED_BY(mu_) = 0;
};

// The seqs of the events in `frames`: a frame's id, or for a `points`
// frame every seq from its "first" to its id.
std::vector<int64_t> Seqs(const std::string& frames) {
  std::vector<int64_t> seqs;
  for (absl::string_view frame :
       absl::StrSplit(frames, "\n\n", absl::SkipEmpty())) {
    int64_t id = 0;
    int64_t first = -1;
    for (absl::string_view line : absl::StrSplit(frame, '\n')) {
      if (absl::ConsumePrefix(&line, "id: ")) {
        EXPECT_TRUE(absl::SimpleAtoi(line, &id));
      }
      if (absl::ConsumePrefix(&line, "data: {\"first\":")) {
        EXPECT_TRUE(absl::SimpleAtoi(line.substr(0, line.find(',')), &first));
      }
    }
    for (int64_t s = first < 0 ? id : first; s <= id; ++s) seqs.push_back(s);
  }
  return seqs;
}

// Reads until `want` events arrived (or 5 s passed), checking the order.
std::vector<int64_t> Drain(JobFeeds::Viewer& viewer, size_t want) {
  std::vector<int64_t> all;
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (all.size() < want && absl::Now() < deadline) {
    absl::StatusOr<JobFeeds::Batch> batch =
        viewer.Next(absl::Milliseconds(200));
    EXPECT_TRUE(batch.ok()) << batch.status();
    if (!batch.ok()) break;
    std::vector<int64_t> seqs = Seqs(batch->frames);
    EXPECT_EQ(static_cast<int>(seqs.size()), batch->events);
    all.insert(all.end(), seqs.begin(), seqs.end());
    if (batch->terminal) break;
  }
  return all;
}

std::vector<int64_t> Range(int64_t first, int64_t last) {
  std::vector<int64_t> v;
  for (int64_t s = first; s <= last; ++s) v.push_back(s);
  return v;
}

TEST(JobFeedsTest, HistoryFromTheStoreThenLiveEventsFromTheHub) {
  EventHub hub;
  FakeStore store;
  for (int s = 1; s <= 3; ++s) store.Append(Point(s));
  JobFeeds feeds(&hub, store.Reader());
  std::unique_ptr<JobFeeds::Viewer> viewer = feeds.Watch(kJob, 0);
  EXPECT_EQ(Drain(*viewer, 3), Range(1, 3));
  const int reads = store.reads();
  store.AppendAndPublish(hub, {Point(4), Point(5)});
  EXPECT_EQ(Drain(*viewer, 2), Range(4, 5));
  EXPECT_EQ(store.reads(), reads);  // live events come from the hub
}

TEST(JobFeedsTest, ResumesAfterASeq) {
  EventHub hub;
  FakeStore store;
  for (int s = 1; s <= 5; ++s) store.Append(Point(s));
  JobFeeds feeds(&hub, store.Reader());
  std::unique_ptr<JobFeeds::Viewer> viewer = feeds.Watch(kJob, 3);
  EXPECT_EQ(Drain(*viewer, 2), Range(4, 5));
}

TEST(JobFeedsTest, ViewersShareOneSubscriptionAndTheStoreIsNotPolled) {
  EventHub hub;
  FakeStore store;
  store.Append(Point(1));
  JobFeeds feeds(&hub, store.Reader());
  std::vector<std::unique_ptr<JobFeeds::Viewer>> viewers;
  for (int i = 0; i < 20; ++i) viewers.push_back(feeds.Watch(kJob, 0));
  EXPECT_EQ(feeds.feeds(), 1);
  for (auto& v : viewers) EXPECT_EQ(Drain(*v, 1), Range(1, 1));
  const int reads = store.reads();
  for (int batch = 0; batch < 50; ++batch) {
    store.AppendAndPublish(hub, {Point(2 + 2 * batch), Point(3 + 2 * batch)});
  }
  for (auto& v : viewers) EXPECT_EQ(Drain(*v, 100), Range(2, 101));
  EXPECT_EQ(store.reads(), reads);
  viewers.clear();
  EXPECT_EQ(feeds.feeds(), 0);
}

TEST(JobFeedsTest, AViewerBehindTheWindowReadsTheStore) {
  EventHub hub;
  FakeStore store;
  JobFeeds::Options options;
  options.window = 8;
  options.max_batch = 5;
  JobFeeds feeds(&hub, store.Reader(), options);
  std::unique_ptr<JobFeeds::Viewer> slow = feeds.Watch(kJob, 0);
  std::unique_ptr<JobFeeds::Viewer> fast = feeds.Watch(kJob, 0);
  for (int s = 1; s <= 40; ++s) store.AppendAndPublish(hub, {Point(s)});
  EXPECT_EQ(Drain(*fast, 40), Range(1, 40));
  EXPECT_EQ(Drain(*slow, 40), Range(1, 40));
}

TEST(JobFeedsTest, AFullBatchSaysMoreIsReady) {
  EventHub hub;
  FakeStore store;
  JobFeeds::Options options;
  options.max_batch = 4;
  JobFeeds feeds(&hub, store.Reader(), options);
  std::unique_ptr<JobFeeds::Viewer> a = feeds.Watch(kJob, 0);
  std::unique_ptr<JobFeeds::Viewer> b = feeds.Watch(kJob, 0);
  for (int s = 1; s <= 6; ++s) store.AppendAndPublish(hub, {Point(s)});
  absl::StatusOr<JobFeeds::Batch> full = a->Next(absl::Seconds(1));
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(full->events, 4);
  EXPECT_TRUE(full->more);
  absl::StatusOr<JobFeeds::Batch> rest = a->Next(absl::Seconds(1));
  ASSERT_TRUE(rest.ok());
  EXPECT_EQ(Seqs(rest->frames), Range(5, 6));
  EXPECT_FALSE(rest->more);
  // The second viewer, at the same place, gets the same frames.
  absl::StatusOr<JobFeeds::Batch> same = b->Next(absl::Seconds(1));
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->frames, full->frames);
  EXPECT_EQ(Drain(*b, 2), Range(5, 6));
}

TEST(JobFeedsTest, GapsAndBareNotificationsAreFilledFromTheStore) {
  EventHub hub;
  FakeStore store;
  JobFeeds feeds(&hub, store.Reader());
  std::unique_ptr<JobFeeds::Viewer> viewer = feeds.Watch(kJob, 0);
  store.AppendAndPublish(hub, {Point(1), Point(2)});
  EXPECT_EQ(Drain(*viewer, 2), Range(1, 2));
  // 3 and 4 are stored but never published; 5 is.
  store.Append(Point(3));
  store.Append(Point(4));
  store.AppendAndPublish(hub, {Point(5)});
  EXPECT_EQ(Drain(*viewer, 3), Range(3, 5));
  // Stored, then only a notification that the log grew (a cancel does it).
  store.Append(Point(6));
  hub.Publish(kJob, {}, 6);
  EXPECT_EQ(Drain(*viewer, 1), Range(6, 6));
}

TEST(JobFeedsTest, EndsAfterTheTerminalEvent) {
  EventHub hub;
  FakeStore store;
  JobFeeds feeds(&hub, store.Reader());
  std::unique_ptr<JobFeeds::Viewer> viewer = feeds.Watch(kJob, 0);
  store.AppendAndPublish(hub, {Point(1), Done(2)});
  absl::StatusOr<JobFeeds::Batch> batch = viewer->Next(absl::Seconds(1));
  ASSERT_TRUE(batch.ok());
  EXPECT_TRUE(batch->terminal);
  EXPECT_EQ(batch->last_seq, 2);
  EXPECT_THAT(batch->frames, ::testing::HasSubstr("event: state_changed"));
  const absl::Time start = absl::Now();
  absl::StatusOr<JobFeeds::Batch> after = viewer->Next(absl::Seconds(5));
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->events, 0);
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(100));
}

TEST(JobFeedsTest, TimesOutEmptyAndShutdownWakesAtOnce) {
  EventHub hub;
  FakeStore store;
  JobFeeds feeds(&hub, store.Reader());
  std::unique_ptr<JobFeeds::Viewer> viewer = feeds.Watch(kJob, 0);
  absl::StatusOr<JobFeeds::Batch> empty = viewer->Next(absl::Milliseconds(50));
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->events, 0);
  std::atomic<bool> cancelled{false};
  std::thread waiter([&] {
    absl::StatusOr<JobFeeds::Batch> b = viewer->Next(absl::Seconds(30));
    cancelled = absl::IsCancelled(b.status());
  });
  absl::SleepFor(absl::Milliseconds(50));
  const absl::Time start = absl::Now();
  feeds.Shutdown();
  waiter.join();
  EXPECT_TRUE(cancelled);
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  // A viewer that comes later is cancelled at once.
  EXPECT_TRUE(
      absl::IsCancelled(feeds.Watch(kJob, 0)->Next(absl::Seconds(5)).status()));
}

TEST(JobFeedsTest, ConcurrentPublishersAndViewersSeeEveryEventOnce) {
  EventHub hub;
  FakeStore store;
  JobFeeds::Options options;
  options.window = 64;
  JobFeeds feeds(&hub, store.Reader(), options);
  constexpr int kEvents = 2000;
  std::vector<std::thread> viewers;
  std::atomic<int> good{0};
  for (int i = 0; i < 8; ++i) {
    viewers.emplace_back([&, i] {
      std::unique_ptr<JobFeeds::Viewer> v = feeds.Watch(kJob, 0);
      if (i % 2 == 1) absl::SleepFor(absl::Milliseconds(20));  // start late
      if (Drain(*v, kEvents) == Range(1, kEvents)) ++good;
    });
  }
  for (int s = 1; s <= kEvents; s += 4) {
    store.AppendAndPublish(
        hub, {Point(s), Point(s + 1), Point(s + 2), Point(s + 3)});
  }
  for (std::thread& t : viewers) t.join();
  EXPECT_EQ(good.load(), 8);
}

}  // namespace
}  // namespace lrtune::server
