// service_bench: the coordinator's curve-point path on loopback -- curve
// points ingested (ReportPoints acknowledged) and streamed (received by a
// WatchJob watcher) per second, and the latency from a worker sending a
// point to a watcher receiving it.
//
//   build-bench/bench/service_bench                     # batches 1, 32, 256
//   build-bench/bench/service_bench --batches=1024 --points=400000
//
// Nothing is mocked: one process holds a JobStore on a SQLite file (WAL,
// synchronous=FULL, the store's defaults), a Coordinator with its sweeper,
// and the real gRPC services on 127.0.0.1:<free port>; the worker and each
// watcher are gRPC clients on TCP connections of their own. The worker sends
// one batch at a time, the next as soon as the previous one is acknowledged,
// so ingestion is bounded by one fsynced commit per batch plus a round trip.
//
// Latency is taken per point against one steady clock (same process): the
// worker stamps every record of a batch just before the RPC, the watcher
// stamps each point as it reads it. A second run with a watcher that sleeps
// after every event checks the coordinator's promise that a slow watcher
// never holds back ingestion.
//
// With --viewers=N the coordinator also serves the web dashboard
// (server/dashboard.h) and N dashboard viewers read the job's Server-Sent
// Events stream over HTTP, each on a TCP connection and a thread of its
// own, as browser tabs would: the latency from a report to each viewer's
// receipt of the point, and ingestion with them against without them
// (bench/dashboard_bench.md). --report-interval-ms paces the worker as a
// real one (it reports every 100 ms) instead of sending back to back.
//
// The benchmark checks itself: it exits 1 when the watcher's stream (or a
// viewer's) skips, repeats or reorders an event, or loses a point. Figures
// and the command that produced them are in bench/service_bench.md.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/status_macros.h"
#include "grpcpp/grpcpp.h"
#include "lrtune/v1/lrtune.grpc.pb.h"
#include "lrtune/v1/worker.grpc.pb.h"
#include "server/coordinator.h"
#include "server/dashboard.h"
#include "server/event_codec.h"
#include "server/grpc_services.h"
#include "server/job_store.h"

namespace lrtune::server {
namespace {

struct Options {
  std::vector<int> batches = {1, 32, 256};  // records per ReportPoints
  int64_t points = 0;                       // per run; 0: AutoPoints(batch)
  std::string db_dir;          // "": a fresh directory under $TMPDIR or /tmp
  int slow_batch = 256;        // batch of the run with a slow watcher; 0: none
  int slow_delay_us = 1000;    // the slow watcher's sleep after each event
  int repeat = 1;              // runs of each configuration, a row each
  int viewers = 0;             // dashboard viewers of the job; 0: none
  int viewer_nice = 0;         // the viewers' threads' nice value
  int report_interval_ms = 0;  // the worker's pause between reports
};

// Sizes a run to a few seconds on a 2-core machine: small batches pay one
// fsynced commit per few points, so they get few points.
int64_t AutoPoints(int batch) {
  return std::clamp<int64_t>(int64_t{batch} * 1250, 2000, 200000);
}

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

absl::Status FromGrpc(const grpc::Status& status, absl::string_view what) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      absl::StrCat(what, ": ", status.error_message()));
}

void SetDeadline(grpc::ClientContext* context, absl::Duration d) {
  context->set_deadline(absl::ToChronoTime(absl::Now() + d));
}

void RemoveDb(const std::string& path) {
  for (const char* suffix : {"", "-wal", "-shm"}) {
    std::remove(absl::StrCat(path, suffix).c_str());
  }
}

// The coordinator as lrtune-server runs it, listening on a free loopback
// port. Destruction stops the server, then the coordinator, then the store.
class LoopbackCoordinator {
 public:
  static absl::StatusOr<std::unique_ptr<LoopbackCoordinator>> Start(
      const std::string& db_path, bool dashboard) {
    auto self = std::unique_ptr<LoopbackCoordinator>(new LoopbackCoordinator);
    LRTUNE_ASSIGN_OR_RETURN(self->store_, JobStore::Open(db_path, SystemClock(),
                                                         JobEventEncoder()));
    self->coordinator_ = std::make_unique<Coordinator>(
        self->store_.get(), SystemClock(), CoordinatorOptions{});
    self->lrtune_ =
        std::make_unique<LrTuneService>(self->coordinator_.get(), &self->auth_);
    self->hub_ = std::make_unique<WorkerHubService>(self->coordinator_.get());
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &self->port_);
    builder.RegisterService(self->lrtune_.get());
    builder.RegisterService(self->hub_.get());
    self->server_ = builder.BuildAndStart();
    if (self->server_ == nullptr || self->port_ == 0) {
      return absl::UnavailableError("cannot listen on 127.0.0.1:0");
    }
    self->coordinator_->StartSweeper();
    if (dashboard) {
      DashboardOptions options;
      options.http.address = "127.0.0.1:0";
      options.chart_js = "/dev/null";  // no page is drawn here
      self->dashboard_ = std::make_unique<DashboardServer>(
          self->coordinator_.get(), &self->auth_, options);
      LRTUNE_RETURN_IF_ERROR(self->dashboard_->Start());
    }
    return self;
  }

  ~LoopbackCoordinator() {
    if (dashboard_ != nullptr) dashboard_->Stop();
    if (server_ != nullptr) {
      server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
    }
    if (coordinator_ != nullptr) coordinator_->StopSweeper();
  }
  LoopbackCoordinator(const LoopbackCoordinator&) = delete;
  LoopbackCoordinator& operator=(const LoopbackCoordinator&) = delete;

  // A channel with a TCP connection of its own: gRPC shares connections
  // between channels with equal arguments, and a worker and a watcher are
  // separate processes in production.
  int dashboard_port() const { return dashboard_->port(); }

  std::shared_ptr<grpc::Channel> NewChannel() const {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    return grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port_),
                                     grpc::InsecureChannelCredentials(), args);
  }

 private:
  LoopbackCoordinator() = default;

  // Members are destroyed bottom-up: server, services, coordinator, store.
  std::unique_ptr<JobStore> store_;
  std::unique_ptr<Coordinator> coordinator_;
  LocalAuthenticator auth_;
  std::unique_ptr<LrTuneService> lrtune_;
  std::unique_ptr<WorkerHubService> hub_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<DashboardServer> dashboard_;
  int port_ = 0;
};

// Reads a job's WatchJob stream from seq 1 on its own thread, stamping each
// point as it arrives and checking that seqs are gap-free and every step
// arrives once. Results are read after Done() has been notified.
class Watcher {
 public:
  Watcher(std::shared_ptr<grpc::Channel> channel, std::string job_id,
          int64_t points, absl::Duration delay_per_event)
      : stub_(v1::LrTune::NewStub(std::move(channel))),
        job_id_(std::move(job_id)),
        delay_(delay_per_event),
        receipt_ns_(points, 0) {
    thread_ = std::thread([this] { Read(); });
  }
  // Cancels the stream if it is still open and joins the thread.
  ~Watcher() {
    context_.TryCancel();
    thread_.join();
  }
  Watcher(const Watcher&) = delete;
  Watcher& operator=(const Watcher&) = delete;

  // Notified once the first event (seq 1, accepted) has arrived, or the
  // stream has ended: from then on the watcher is subscribed to live events.
  absl::Notification& Ready() { return ready_; }
  absl::Notification& Done() { return done_; }
  void Cancel() { context_.TryCancel(); }

  // After Done(): OK when the stream was gap-free and no step came twice;
  // a watcher that must have every point also checks points_received().
  const absl::Status& status() const { return status_; }
  int64_t points_received() const { return points_received_; }
  int64_t events_received() const { return last_seq_; }
  const std::vector<int64_t>& receipt_ns() const { return receipt_ns_; }
  const grpc::Status& stream_status() const { return stream_status_; }

 private:
  void Read() {
    v1::WatchJobRequest request;
    request.set_job_id(job_id_);
    request.set_after_seq(0);
    std::unique_ptr<grpc::ClientReader<v1::JobEvent>> reader =
        stub_->WatchJob(&context_, request);
    v1::JobEvent event;
    while (reader->Read(&event)) {
      const int64_t now = NowNs();
      if (!ready_.HasBeenNotified()) ready_.Notify();
      status_ = Take(event, now);
      if (!status_.ok()) {
        // Drain what is in flight, so that Finish() does not wait on it.
        context_.TryCancel();
        while (reader->Read(&event)) {
        }
        break;
      }
      if (delay_ > absl::ZeroDuration()) absl::SleepFor(delay_);
    }
    stream_status_ = reader->Finish();
    if (!ready_.HasBeenNotified()) ready_.Notify();
    done_.Notify();
  }

  absl::Status Take(const v1::JobEvent& event, int64_t now) {
    if (event.seq() != static_cast<uint64_t>(last_seq_) + 1) {
      return absl::DataLossError(
          absl::StrCat("watch stream: event seq ", event.seq(), " after ",
                       last_seq_, " (a gap, a repeat or out of order)"));
    }
    last_seq_ = static_cast<int64_t>(event.seq());
    if (!event.has_point()) return absl::OkStatus();
    const int64_t step = event.point().point().step();
    if (step < 0 || step >= static_cast<int64_t>(receipt_ns_.size())) {
      return absl::DataLossError(
          absl::StrCat("watch stream: step ", step, " was never reported"));
    }
    if (receipt_ns_[step] != 0) {
      return absl::DataLossError(
          absl::StrCat("watch stream: step ", step, " arrived twice"));
    }
    receipt_ns_[step] = now;
    ++points_received_;
    return absl::OkStatus();
  }

  std::unique_ptr<v1::LrTune::Stub> stub_;
  const std::string job_id_;
  const absl::Duration delay_;
  grpc::ClientContext context_;  // TryCancel is thread-safe
  absl::Notification ready_;
  absl::Notification done_;
  // Written by the reading thread only, read after done_.
  std::vector<int64_t> receipt_ns_;  // by step; 0: not received
  int64_t points_received_ = 0;
  int64_t last_seq_ = 0;
  absl::Status status_;
  grpc::Status stream_status_;
  std::thread thread_;  // last: starts once every field is built
};

// A dashboard viewer: reads the job's event stream over HTTP from seq 1 on
// its own thread and TCP connection, as a browser tab does, stamping each
// point as its bytes arrive and checking that seqs are gap-free and every
// step arrives once. Results are read after Done() has been notified.
class SseViewer {
 public:
  // `nice`: the reading thread's nice value (19 stands in for browsers on
  // other machines: they take no CPU from the coordinator).
  SseViewer(int port, std::string job_id, int64_t points, int nice)
      : port_(port),
        job_id_(std::move(job_id)),
        nice_(nice),
        receipt_ns_(points, 0) {
    thread_ = std::thread([this] { Read(); });
  }
  ~SseViewer() {
    Cancel();
    thread_.join();
    close(fd_);
  }
  SseViewer(const SseViewer&) = delete;
  SseViewer& operator=(const SseViewer&) = delete;

  absl::Notification& Ready() { return ready_; }
  absl::Notification& Done() { return done_; }
  void Cancel() {
    if (fd_ >= 0) shutdown(fd_, SHUT_RDWR);
  }
  const absl::Status& status() const { return status_; }
  int64_t points_received() const { return points_received_; }
  const std::vector<int64_t>& receipt_ns() const { return receipt_ns_; }

 private:
  void Read() {
    pthread_setname_np(pthread_self(), "sse-viewer");
    if (nice_ != 0) setpriority(PRIO_PROCESS, gettid(), nice_);
    status_ = Stream();
    if (!ready_.HasBeenNotified()) ready_.Notify();
    done_.Notify();
  }

  absl::Status Stream() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr = {};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port_));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      return absl::UnavailableError("viewer: cannot connect");
    }
    const std::string request =
        absl::StrCat("GET /api/jobs/", job_id_,
                     "/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Accept: text/event-stream\r\n\r\n");
    if (send(fd_, request.data(), request.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(request.size())) {
      return absl::UnavailableError("viewer: cannot send");
    }
    std::string buffer;
    bool head = true;
    char chunk[1 << 16];
    for (;;) {
      const ssize_t n = recv(fd_, chunk, sizeof(chunk), 0);
      if (n <= 0) {
        return absl::DataLossError(absl::StrCat(
            "viewer: the stream ended before the job, after seq ", last_seq_));
      }
      const int64_t now = NowNs();
      buffer.append(chunk, static_cast<size_t>(n));
      if (head) {
        const size_t end = buffer.find("\r\n\r\n");
        if (end == std::string::npos) continue;
        if (buffer.compare(0, 12, "HTTP/1.1 200") != 0) {
          return absl::UnavailableError(
              absl::StrCat("viewer: ", buffer.substr(0, buffer.find('\r'))));
        }
        buffer.erase(0, end + 4);
        head = false;
      }
      // Frames are taken in place and the buffer trimmed once per read:
      // erasing each frame from its front would cost the reader more than
      // the server spends sending it.
      size_t start = 0;
      size_t frame_end;
      while ((frame_end = buffer.find("\n\n", start)) != std::string::npos) {
        absl::string_view frame(buffer.data() + start, frame_end - start);
        bool terminal = false;
        LRTUNE_RETURN_IF_ERROR(Take(frame, now, &terminal));
        if (terminal) return absl::OkStatus();
        start = frame_end + 2;
      }
      buffer.erase(0, start);
    }
  }

  // One frame: `id: N\nevent: KIND\ndata: ...`, or a comment. A points
  // frame holds the points `first`..N as [trial,seed,step,...] elements.
  absl::Status Take(absl::string_view frame, int64_t now, bool* terminal) {
    if (frame.empty() || frame[0] == ':') return absl::OkStatus();
    int64_t seq = 0;
    const size_t eol = frame.find('\n');
    if (frame.substr(0, 4) != "id: " || eol == absl::string_view::npos ||
        !absl::SimpleAtoi(frame.substr(4, eol - 4), &seq)) {
      return absl::DataLossError(
          absl::StrCat("viewer: a frame without id: ", frame.substr(0, 40)));
    }
    int64_t first = seq;
    const bool points = frame.substr(eol + 1, 14) == "event: points\n";
    constexpr absl::string_view kFirst = "data: {\"first\":";
    const size_t at = frame.find(kFirst);
    if (points && (at == absl::string_view::npos ||
                   !absl::SimpleAtoi(
                       frame.substr(at + kFirst.size(),
                                    frame.find(',', at) - at - kFirst.size()),
                       &first))) {
      return absl::DataLossError("viewer: a points frame without first");
    }
    if (first != last_seq_ + 1 || seq < first) {
      return absl::DataLossError(absl::StrCat("viewer: events ", first, "..",
                                              seq, " after ", last_seq_));
    }
    last_seq_ = seq;
    if (!ready_.HasBeenNotified()) ready_.Notify();
    if (frame.find("event: state_changed") != absl::string_view::npos &&
        frame.find("JOB_STATE_SUCCEEDED") != absl::string_view::npos) {
      *terminal = true;
    }
    if (!points) return absl::OkStatus();
    // Each element: [trial,seed,step,...]; the step is its third number.
    int64_t count = 0;
    size_t open = frame.find("[[");
    if (open == absl::string_view::npos) {
      return absl::DataLossError("viewer: a points frame without points");
    }
    for (++open;; ++count) {
      const size_t close = frame.find(']', open);
      if (close == absl::string_view::npos) {
        return absl::DataLossError("viewer: a truncated points frame");
      }
      // The third field, between the second and third commas.
      const size_t c1 = frame.find(',', open);
      const size_t c2 = c1 < close ? frame.find(',', c1 + 1) : close;
      const size_t c3 = c2 < close ? frame.find(',', c2 + 1) : close;
      int64_t step = -1;
      if (c3 >= close ||
          !absl::SimpleAtoi(frame.substr(c2 + 1, c3 - c2 - 1), &step) ||
          step < 0 || step >= static_cast<int64_t>(receipt_ns_.size()) ||
          receipt_ns_[step] != 0) {
        return absl::DataLossError(
            absl::StrCat("viewer: step ", step, " unexpected or twice"));
      }
      receipt_ns_[step] = now;
      ++points_received_;
      if (close + 1 >= frame.size() || frame[close + 1] != ',') {
        ++count;
        break;
      }
      open = close + 2;
    }
    if (count != seq - first + 1) {
      return absl::DataLossError(absl::StrCat(
          "viewer: ", count, " points in frame ", first, "..", seq));
    }
    return absl::OkStatus();
  }

  const int port_;
  const std::string job_id_;
  const int nice_;
  std::atomic<int> fd_{-1};
  absl::Notification ready_;
  absl::Notification done_;
  // Written by the reading thread only, read after done_.
  std::vector<int64_t> receipt_ns_;
  int64_t points_received_ = 0;
  int64_t last_seq_ = 0;
  absl::Status status_;
  std::thread thread_;  // last: starts once every field is built
};

// Submits a one-seed range test of `points` steps: the coordinator does not
// read the spec beyond validating it, since no engine runs here.
absl::StatusOr<v1::Job> SubmitRangeTest(v1::LrTune::Stub* client,
                                        int64_t points) {
  v1::SubmitJobRequest request;
  v1::RangeTestJob* job = request.mutable_range_test();
  job->mutable_run()->mutable_data()->set_name("spirals");
  job->mutable_range_test()->set_start_lr(1e-5);
  job->mutable_range_test()->set_end_lr(1.0);
  job->mutable_range_test()->set_steps(std::max<int64_t>(points, 2));
  job->mutable_range_test()->add_seeds(7);
  v1::Job response;
  grpc::ClientContext context;
  SetDeadline(&context, absl::Seconds(10));
  LRTUNE_RETURN_IF_ERROR(
      FromGrpc(client->SubmitJob(&context, request, &response), "SubmitJob"));
  return response;
}

// Registers a one-slot CPU worker and leases the job's only task.
absl::StatusOr<v1::Task> LeaseTask(v1::WorkerHub::Stub* worker) {
  v1::RegisterRequest reg;
  reg.set_hostname("service_bench");
  reg.mutable_capabilities()->add_devices()->set_name("cpu");
  reg.mutable_capabilities()->set_threads(1);
  reg.mutable_capabilities()->add_slots()->set_device("cpu");
  v1::RegisterResponse registered;
  {
    grpc::ClientContext context;
    SetDeadline(&context, absl::Seconds(10));
    LRTUNE_RETURN_IF_ERROR(
        FromGrpc(worker->Register(&context, reg, &registered), "Register"));
  }
  v1::AcquireTaskRequest request;
  request.set_worker_id(registered.worker_id());
  request.mutable_wait()->set_seconds(5);
  v1::AcquireTaskResponse response;
  grpc::ClientContext context;
  SetDeadline(&context, absl::Seconds(10));
  LRTUNE_RETURN_IF_ERROR(FromGrpc(
      worker->AcquireTask(&context, request, &response), "AcquireTask"));
  if (!response.has_task()) {
    return absl::DeadlineExceededError("AcquireTask: no task within 5 s");
  }
  return response.task();
}

struct SendTimes {
  std::vector<int64_t> send_ns;  // by record seq: when its batch was sent
  std::vector<int64_t> ack_ns;   // per batch: ReportPoints round trip
  int64_t first_send_ns = 0;
  int64_t last_ack_ns = 0;
};

// Reports `points` curve points in batches of `batch`, one RPC in flight,
// and checks every acknowledgement.
absl::Status SendPoints(v1::WorkerHub::Stub* worker, const v1::Task& task,
                        int64_t points, int batch, absl::Duration pause,
                        SendTimes* times) {
  times->send_ns.assign(points, 0);
  times->ack_ns.clear();
  v1::ReportPointsRequest request;
  request.set_task_id(task.task_id());
  request.set_attempt_id(task.attempt_id());
  for (int64_t first = 0; first < points; first += batch) {
    const int64_t count = std::min<int64_t>(batch, points - first);
    request.clear_records();
    for (int64_t seq = first; seq < first + count; ++seq) {
      v1::TaskRecord* record = request.add_records();
      record->set_seq(seq);
      v1::CurvePoint* point = record->mutable_point();
      point->set_step(seq);
      point->set_lr(1e-5 * static_cast<double>(seq + 1));
      point->set_loss(2.0 - 1e-6 * static_cast<double>(seq));
      point->set_smoothed(2.0 - 1e-6 * static_cast<double>(seq));
      point->set_elapsed_s(1e-3 * static_cast<double>(seq));
    }
    v1::ReportPointsResponse response;
    grpc::ClientContext context;
    SetDeadline(&context, absl::Seconds(30));
    const int64_t sent = NowNs();
    std::fill(times->send_ns.begin() + first,
              times->send_ns.begin() + first + count, sent);
    if (first == 0) times->first_send_ns = sent;
    LRTUNE_RETURN_IF_ERROR(FromGrpc(
        worker->ReportPoints(&context, request, &response), "ReportPoints"));
    const int64_t acked = NowNs();
    if (pause > absl::ZeroDuration()) absl::SleepFor(pause);
    times->ack_ns.push_back(acked - sent);
    times->last_ack_ns = acked;
    if (response.acked_seq() != first + count - 1) {
      return absl::DataLossError(
          absl::StrCat("ReportPoints: acked_seq ", response.acked_seq(),
                       ", expected ", first + count - 1));
    }
  }
  return absl::OkStatus();
}

// Ends the task, and with it the job and the watchers' streams.
absl::Status CompleteTask(v1::WorkerHub::Stub* worker, const v1::Task& task,
                          int64_t points) {
  v1::CompleteTaskRequest request;
  request.set_task_id(task.task_id());
  request.set_attempt_id(task.attempt_id());
  request.set_final_seq(points - 1);
  v1::Recommendation* rec =
      request.mutable_range_test()->mutable_recommendation();
  rec->set_min_lr(1e-3);
  rec->set_max_lr(1e-2);
  rec->set_stepsize_iterations(400);
  rec->set_lr_valley(3e-3);
  rec->set_points_used(points);
  rec->set_seeds(1);
  request.mutable_range_test()->set_steps_run(points);
  v1::CompleteTaskResponse response;
  grpc::ClientContext context;
  SetDeadline(&context, absl::Seconds(30));
  return FromGrpc(worker->CompleteTask(&context, request, &response),
                  "CompleteTask");
}

// Nearest-rank percentile of sorted values.
double Percentile(const std::vector<int64_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  const size_t rank = static_cast<size_t>(
      std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  return static_cast<double>(
      sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1]);
}

struct RunResult {
  int batch = 0;
  int64_t points = 0;
  bool slow_watcher = false;
  double ingest_per_s = 0;  // points / (last ack - first send)
  double stream_per_s = 0;  // points / (last receipt - first send)
  double ack_p50_us = 0;    // ReportPoints round trip
  double latency_p50_us = 0;
  double latency_p99_us = 0;
  double latency_max_us = 0;
  int64_t slow_events = 0;  // events the slow watcher read before it stopped
  int viewers = 0;          // dashboard viewers
  double view_p50_us = 0;   // report to a viewer's receipt, all viewers
  double view_p99_us = 0;
  double view_max_us = 0;
};

absl::StatusOr<RunResult> RunOnce(const Options& options, int batch,
                                  int64_t points, bool slow_watcher) {
  const std::string db_path =
      absl::StrCat(options.db_dir, "/service_bench_b", batch,
                   slow_watcher ? "_slow" : "", ".db");
  RemoveDb(db_path);
  RunResult result;
  result.batch = batch;
  result.points = points;
  result.slow_watcher = slow_watcher;
  SendTimes times;
  std::vector<int64_t> receipt_ns;
  {
    LRTUNE_ASSIGN_OR_RETURN(
        std::unique_ptr<LoopbackCoordinator> server,
        LoopbackCoordinator::Start(db_path, options.viewers > 0));
    auto client = v1::LrTune::NewStub(server->NewChannel());
    auto worker = v1::WorkerHub::NewStub(server->NewChannel());
    LRTUNE_ASSIGN_OR_RETURN(v1::Job job, SubmitRangeTest(client.get(), points));
    LRTUNE_ASSIGN_OR_RETURN(v1::Task task, LeaseTask(worker.get()));
    // Declared after the server: destroyed (cancelled, joined) before it.
    Watcher watcher(server->NewChannel(), job.job_id(), points,
                    absl::ZeroDuration());
    std::unique_ptr<Watcher> slow;
    if (slow_watcher) {
      slow =
          std::make_unique<Watcher>(server->NewChannel(), job.job_id(), points,
                                    absl::Microseconds(options.slow_delay_us));
    }
    std::vector<std::unique_ptr<SseViewer>> viewers;
    for (int i = 0; i < options.viewers; ++i) {
      viewers.push_back(std::make_unique<SseViewer>(
          server->dashboard_port(), job.job_id(), points, options.viewer_nice));
    }
    // Subscribed watchers see points live; a later one would start from
    // the store and measure catch-up instead.
    for (Watcher* w : {&watcher, slow.get()}) {
      if (w != nullptr &&
          !w->Ready().WaitForNotificationWithTimeout(absl::Seconds(10))) {
        return absl::DeadlineExceededError("a watcher got no event in 10 s");
      }
    }
    for (auto& v : viewers) {
      if (!v->Ready().WaitForNotificationWithTimeout(absl::Seconds(10))) {
        return absl::DeadlineExceededError("a viewer got no event in 10 s");
      }
    }
    LRTUNE_RETURN_IF_ERROR(
        SendPoints(worker.get(), task, points, batch,
                   absl::Milliseconds(options.report_interval_ms), &times));
    LRTUNE_RETURN_IF_ERROR(CompleteTask(worker.get(), task, points));
    if (!watcher.Done().WaitForNotificationWithTimeout(absl::Seconds(120))) {
      return absl::DeadlineExceededError(
          absl::StrCat("the watcher's stream did not end within 120 s of the "
                       "last point (",
                       watcher.points_received(), " of ", points, " so far)"));
    }
    LRTUNE_RETURN_IF_ERROR(watcher.status());
    LRTUNE_RETURN_IF_ERROR(
        FromGrpc(watcher.stream_status(), "WatchJob stream"));
    if (watcher.points_received() != points) {
      return absl::DataLossError(absl::StrCat("the watcher received ",
                                              watcher.points_received(), " of ",
                                              points, " points"));
    }
    if (slow != nullptr) {
      slow->Cancel();
      slow->Done().WaitForNotification();
      // Cancelled by us, so only what it read is checked: gap-free.
      LRTUNE_RETURN_IF_ERROR(slow->status());
      result.slow_events = slow->events_received();
    }
    receipt_ns = watcher.receipt_ns();
    std::vector<int64_t> view_latency;
    for (auto& v : viewers) {
      if (!v->Done().WaitForNotificationWithTimeout(absl::Seconds(120))) {
        return absl::DeadlineExceededError(
            "a viewer's stream did not end within 120 s");
      }
      LRTUNE_RETURN_IF_ERROR(v->status());
      if (v->points_received() != points) {
        return absl::DataLossError(absl::StrCat("a viewer received ",
                                                v->points_received(), " of ",
                                                points, " points"));
      }
      for (int64_t i = 0; i < points; ++i) {
        view_latency.push_back(v->receipt_ns()[i] - times.send_ns[i]);
      }
    }
    if (!view_latency.empty()) {
      std::sort(view_latency.begin(), view_latency.end());
      result.viewers = options.viewers;
      result.view_p50_us = Percentile(view_latency, 50) / 1e3;
      result.view_p99_us = Percentile(view_latency, 99) / 1e3;
      result.view_max_us = static_cast<double>(view_latency.back()) / 1e3;
    }
  }
  RemoveDb(db_path);

  std::vector<int64_t> latency(points);
  for (int64_t i = 0; i < points; ++i) {
    latency[i] = receipt_ns[i] - times.send_ns[i];
  }
  std::sort(latency.begin(), latency.end());
  std::sort(times.ack_ns.begin(), times.ack_ns.end());
  const int64_t last_receipt =
      *std::max_element(receipt_ns.begin(), receipt_ns.end());
  const double n = static_cast<double>(points);
  result.ingest_per_s =
      n / (1e-9 * static_cast<double>(times.last_ack_ns - times.first_send_ns));
  result.stream_per_s =
      n / (1e-9 * static_cast<double>(last_receipt - times.first_send_ns));
  result.ack_p50_us = Percentile(times.ack_ns, 50) / 1e3;
  result.latency_p50_us = Percentile(latency, 50) / 1e3;
  result.latency_p99_us = Percentile(latency, 99) / 1e3;
  result.latency_max_us = static_cast<double>(latency.back()) / 1e3;
  return result;
}

void PrintHeader(bool viewers) {
  std::cout << absl::StrFormat("%6s %7s %-7s %11s %11s %8s %8s %8s %8s %9s",
                               "batch", "points", "watch", "ingest/s",
                               "stream/s", "ack p50", "lat p50", "lat p99",
                               "lat max", "slow read");
  if (viewers) {
    std::cout << absl::StrFormat(" %7s %8s %8s %8s", "viewers", "view p50",
                                 "view p99", "view max");
  }
  std::cout << absl::StrFormat("\n%6s %7s %-7s %11s %11s %8s %8s %8s %8s %9s",
                               "", "", "", "points", "points", "us", "us", "us",
                               "us", "events");
  if (viewers) {
    std::cout << absl::StrFormat(" %7s %8s %8s %8s", "", "us", "us", "us");
  }
  std::cout << "\n";
}

void PrintRow(const RunResult& r) {
  std::cout << absl::StrFormat(
      "%6d %7d %-7s %11.0f %11.0f %8.0f %8.0f %8.0f %8.0f %9s", r.batch,
      r.points, r.slow_watcher ? "1+slow" : "1", r.ingest_per_s, r.stream_per_s,
      r.ack_p50_us, r.latency_p50_us, r.latency_p99_us, r.latency_max_us,
      r.slow_watcher ? absl::StrCat(r.slow_events) : std::string("-"));
  if (r.viewers > 0) {
    std::cout << absl::StrFormat(" %7d %8.0f %8.0f %8.0f", r.viewers,
                                 r.view_p50_us, r.view_p99_us, r.view_max_us);
  }
  std::cout << "\n";
  std::cout.flush();
}

int RunBench(Options options) {
  bool own_dir = false;
  if (options.db_dir.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl =
        absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/service_bench.XXXXXX");
    if (mkdtemp(tmpl.data()) == nullptr) {
      std::cerr << "service_bench: cannot create a directory " << tmpl << "\n";
      return 1;
    }
    options.db_dir = tmpl;
    own_dir = true;
  }
  // Each run is (batch, with a slow watcher?); the slow run follows the
  // same batch without one, so the two are measured back to back.
  std::vector<std::pair<int, bool>> runs;
  for (int batch : options.batches) runs.push_back({batch, false});
  if (options.slow_batch > 0) {
    const auto plain = std::find(runs.begin(), runs.end(),
                                 std::make_pair(options.slow_batch, false));
    if (plain == runs.end()) {
      runs.push_back({options.slow_batch, false});
      runs.push_back({options.slow_batch, true});
    } else {
      runs.insert(plain + 1, {options.slow_batch, true});
    }
  }
  std::cout << "service_bench: store in " << options.db_dir
            << " (WAL, synchronous=FULL), gRPC on 127.0.0.1; slow watcher "
            << options.slow_delay_us << " us per event";
  if (options.viewers > 0) {
    std::cout << "; " << options.viewers
              << " dashboard viewers (HTTP event streams)";
  }
  if (options.report_interval_ms > 0) {
    std::cout << "; the worker pauses " << options.report_interval_ms
              << " ms between reports";
  }
  std::cout << "\n";
  PrintHeader(options.viewers > 0);
  int rc = 0;
  for (const auto& [batch, slow] : runs) {
    const int64_t points =
        options.points > 0 ? options.points : AutoPoints(batch);
    for (int i = 0; i < options.repeat && rc == 0; ++i) {
      absl::StatusOr<RunResult> result = RunOnce(options, batch, points, slow);
      if (!result.ok()) {
        std::cerr << "service_bench: FAILED at batch " << batch
                  << (slow ? " with a slow watcher" : "") << ": "
                  << result.status() << "\n";
        rc = 1;
      } else {
        PrintRow(*result);
      }
    }
    if (rc != 0) break;
  }
  if (own_dir) {
    std::error_code ignored;
    std::filesystem::remove_all(options.db_dir, ignored);
  }
  return rc;
}

}  // namespace
}  // namespace lrtune::server

int main(int argc, char** argv) {
  lrtune::server::Options options;
  CLI::App app{
      "service_bench: curve points ingested and streamed per second, and "
      "report-to-watcher latency, through the coordinator on loopback"};
  app.add_option("--batches", options.batches,
                 "records per ReportPoints, one run each (1..4096)")
      ->delimiter(',')
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  app.add_option("--points", options.points,
                 "points per run; 0: 1250 x batch, within [2000, 200000]")
      ->check(CLI::Range(int64_t{0}, int64_t{1000000}))
      ->capture_default_str();
  app.add_option("--db-dir", options.db_dir,
                 "directory for the SQLite files (the disk under test); "
                 "empty: a fresh one under $TMPDIR or /tmp")
      ->capture_default_str();
  app.add_option("--slow-batch", options.slow_batch,
                 "batch of the extra run with a slow second watcher; 0: none")
      ->check(CLI::Range(0, 4096))
      ->capture_default_str();
  app.add_option("--repeat", options.repeat,
                 "runs of each configuration, a row each (shows the noise)")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  app.add_option("--slow-delay-us", options.slow_delay_us,
                 "the slow watcher's sleep after each event, microseconds")
      ->check(CLI::Range(0, 1000000))
      ->capture_default_str();
  app.add_option("--viewers", options.viewers,
                 "dashboard viewers reading the job's event stream over HTTP "
                 "in every run; 0: no dashboard")
      ->check(CLI::Range(0, 200))
      ->capture_default_str();
  app.add_option("--viewer-nice", options.viewer_nice,
                 "nice value of the viewers' reading threads; 19 stands in "
                 "for browsers on other machines (no CPU taken from the "
                 "coordinator)")
      ->check(CLI::Range(0, 19))
      ->capture_default_str();
  app.add_option("--report-interval-ms", options.report_interval_ms,
                 "the worker's pause after each acknowledged report (a real "
                 "worker reports every 100 ms); 0: back to back")
      ->check(CLI::Range(0, 10000))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  return lrtune::server::RunBench(options);
}
