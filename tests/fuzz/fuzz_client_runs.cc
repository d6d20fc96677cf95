// The coordinator's reading of a client's reports (server/client_runs.cc),
// fed a ReportLossesRequest in protobuf text format. One client-driven job
// (2 runs of 64 steps) on an in-memory store lives across inputs, and a new
// one replaces it once its run 0 is over; an input that leaves run_id or
// attempt_id unset reports to run 0's current attempt, so the checks are
// reached. Every answer must be OK or a refusal naming what is wrong
// (INVALID_ARGUMENT, RESOURCE_EXHAUSTED, NOT_FOUND, FAILED_PRECONDITION),
// and whatever was sent, run 0's stored curve must stay steps 0, 1, 2, ...
// each once, never more than it acknowledged.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"
#include "lrtune/v1/client_run.pb.h"
#include "server/clock.h"
#include "server/coordinator.h"
#include "server/event_codec.h"
#include "server/job_store.h"

namespace {

class Quiet final : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int, int, const std::string&) override {}
};

using lrtune::server::Coordinator;
using lrtune::server::JobStore;
namespace v1 = lrtune::v1;

struct World {
  std::unique_ptr<JobStore> store;
  std::unique_ptr<Coordinator> coordinator;
  v1::RangeTestRun run;
  int jobs = 0;  // in this store; a fresh one every kJobsPerStore
};
// The in-memory store keeps every job: start over now and then, so that a
// long fuzzing run's memory stays flat.
constexpr int kJobsPerStore = 200;

void Check(bool ok) {
  if (!ok) std::abort();
}

void OpenStore(World& w) {
  w.coordinator.reset();
  w.store.reset();
  auto store = JobStore::Open(":memory:", lrtune::server::SystemClock(),
                              lrtune::server::JobEventEncoder());
  Check(store.ok());
  w.store = *std::move(store);
  w.coordinator = std::make_unique<Coordinator>(
      w.store.get(), lrtune::server::SystemClock(),
      lrtune::server::CoordinatorOptions{});
  w.jobs = 0;
}

void NewJob(World& w) {
  if (++w.jobs > kJobsPerStore) OpenStore(w);
  v1::SubmitJobRequest submit;
  v1::RangeTestSpec& rt = *submit.mutable_range_test()->mutable_range_test();
  rt.set_driver(v1::RANGE_DRIVER_CLIENT);
  rt.set_steps(64);
  rt.add_seeds(1);
  rt.add_seeds(2);
  auto job = w.coordinator->SubmitJob("fuzz", submit);
  Check(job.ok());
  v1::JoinRangeTestRequest join;
  join.set_job_id(job->job_id());
  join.set_client_id("fuzzer");
  auto run = w.coordinator->JoinRangeTest("fuzz", join);
  Check(run.ok());
  w.run = *run;
}

World& TheWorld() {
  static World* w = [] {
    auto* world = new World;
    OpenStore(*world);
    NewJob(*world);
    return world;
  }();
  return *w;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > (1 << 14)) return 0;
  const std::string text(reinterpret_cast<const char*>(data), size);
  v1::ReportLossesRequest request;
  google::protobuf::TextFormat::Parser parser;
  parser.AllowPartialMessage(true);
  Quiet quiet;
  parser.RecordErrorsTo(&quiet);
  if (!parser.ParseFromString(text, &request)) return 0;
  World& w = TheWorld();
  if (request.run_id().empty()) request.set_run_id(w.run.run_id());
  if (request.attempt_id() == 0) request.set_attempt_id(w.run.attempt_id());

  const absl::StatusOr<v1::ReportLossesResponse> answer =
      w.coordinator->ReportLosses("fuzz", request);
  const absl::Status& s = answer.status();
  Check(s.ok() || absl::IsInvalidArgument(s) || absl::IsResourceExhausted(s) ||
        absl::IsNotFound(s) || absl::IsFailedPrecondition(s));

  // Run 0's curve: consecutive steps from 0, at most what was acknowledged.
  auto task = w.store->GetTask(w.run.run_id());
  Check(task.ok());
  auto events = w.coordinator->ReadEvents(w.run.job_id(), 0, 1000);
  Check(events.ok());
  int64_t next = 0;
  for (const v1::JobEvent& e : *events) {
    if (!e.has_point() || e.point().point().seed_index() != 0) continue;
    Check(e.point().point().step() == next++);
  }
  Check(next <= task->last_acked_seq + 1);
  if (answer.ok() && answer->directive() == v1::RUN_DIRECTIVE_STOP) {
    NewJob(w);
  }
  return 0;
}
