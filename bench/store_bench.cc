// Throughput of JobStore::AppendTaskEvents on a real file in WAL mode with
// synchronous=FULL: each call is one committed (fsynced) transaction, so the
// batch size decides how many points share one fsync.
//
//   build/bench/store_bench --benchmark_filter=Append
//   LRTUNE_BENCH_DIR=/data/tmp build/bench/store_bench   # the disk to test
//
// items_per_second is events stored per second of wall time (fsync waits
// included). Payloads are 64 bytes, about
// the size of a serialized curve point.
#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "server/event_codec.h"
#include "server/job_store.h"

namespace lrtune::server {
namespace {

void BM_AppendTaskEvents(benchmark::State& state) {
  const int batch = static_cast<int>(state.range(0));
  const char* base = std::getenv("LRTUNE_BENCH_DIR");
  std::string tmpl =
      absl::StrCat(base != nullptr ? base : "/tmp", "/store_bench.XXXXXX");
  if (mkdtemp(tmpl.data()) == nullptr) {
    state.SkipWithError("mkdtemp failed");
    return;
  }
  FakeClock clock(absl::FromUnixSeconds(1700000000));
  {
    auto store = JobStore::Open(tmpl + "/bench.db", &clock, JobEventEncoder());
    if (!store.ok()) {
      state.SkipWithError(store.status().ToString().c_str());
      return;
    }
    auto job = (*store)->CreateJob("bench", "range_test", "spec", {"task"});
    auto lease = (*store)->LeaseNextTask("w", absl::Hours(1));
    if (!job.ok() || !lease.ok() || !lease->has_value()) {
      state.SkipWithError("setting up the job failed");
      return;
    }
    std::vector<Event> events(batch, Event{"point", std::string(64, 'p')});
    int64_t next_seq = 0;
    for (auto _ : state) {
      auto seq =
          (*store)->AppendTaskEvents((*lease)->task_id, 1, next_seq, events);
      if (!seq.ok()) {
        state.SkipWithError(seq.status().ToString().c_str());
        break;
      }
      next_seq += batch;
    }
    state.SetItemsProcessed(state.iterations() * batch);
  }
  std::filesystem::remove_all(tmpl);
}
BENCHMARK(BM_AppendTaskEvents)
    ->Arg(1)
    ->Arg(32)
    ->Arg(256)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace lrtune::server

BENCHMARK_MAIN();
