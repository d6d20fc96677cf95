// The training engine as a loadable module: the seam that keeps LibTorch out
// of processes that train nothing.
//
// `lrtune` links the engine's torch-free half (engine_spec.cc) and
// engine_loader.cc, which implements engine.h's training functions by
// opening lrtune_torch_engine.so (engine_plugin.cc + the LibTorch engine) the
// first time one of them is called. `lrtune schedule`, `jobs` and `--help`
// never load LibTorch, so they start in milliseconds instead of ~0.6 s.
// lrtune-worker and the benchmarks link the engine directly.
//
//   const EngineApi* api = lrtune_engine_api();   // in the module
//   if (!ApiMatches(*api)) ...                    // in the loader
//
// Both sides are built from one tree by one compiler, so the engine's structs
// cross the boundary as they are; the sizes recorded in EngineApi catch a
// module left over from another build.
#ifndef LRTUNE_WORKER_ENGINE_PLUGIN_H_
#define LRTUNE_WORKER_ENGINE_PLUGIN_H_

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "worker/engine.h"

namespace lrtune::engine::internal {

// Bump when a function is added to or changes in EngineApi.
inline constexpr int kEngineApiVersion = 1;

// The name of the module's entry point (extern "C", below).
inline constexpr char kEngineApiSymbol[] = "lrtune_engine_api";

// The module's file name; the loader looks for it in $LRTUNE_TORCH_ENGINE
// (a path), beside the executable, in ../lib/lrtune/ from it, then where the
// build put it.
inline constexpr char kEngineModuleName[] = "lrtune_torch_engine.so";

// The directory beside the module that holds the placeholders opened before
// it (torch_placeholders.h); $LRTUNE_TORCH_PLACEHOLDERS names another, or
// "off" for none. The build writes it (worker/CMakeLists.txt).
inline constexpr char kPlaceholderDirName[] = "lrtune_torch_placeholders";

struct EngineApi {
  int version = kEngineApiVersion;
  // sizeof the structs that cross the boundary, as the module saw them.
  size_t layout[6] = {};
  absl::StatusOr<RangeTestResult> (*run_range_test)(
      const JobSpec&, const RangeTestSpec&, const Callbacks&,
      const CancellationToken*) = nullptr;
  absl::StatusOr<TrainResult> (*run_training)(
      const JobSpec&, const TrainSpec&, const Callbacks&,
      const CancellationToken*) = nullptr;
  std::string (*torch_version)() = nullptr;
  DeviceInfo (*describe_device)(const std::string&) = nullptr;
};

// The layout this side of the boundary sees (EngineApi::layout).
inline void FillLayout(size_t (&layout)[6]) {
  layout[0] = sizeof(JobSpec);
  layout[1] = sizeof(RangeTestSpec);
  layout[2] = sizeof(TrainSpec);
  layout[3] = sizeof(Callbacks);
  layout[4] = sizeof(RangeTestResult);
  layout[5] = sizeof(TrainResult);
}

// Whether a module's table fits the caller: same version, same layouts, and
// every function set.
inline bool ApiMatches(const EngineApi& api) {
  size_t mine[6];
  FillLayout(mine);
  for (int i = 0; i < 6; ++i) {
    if (api.layout[i] != mine[i]) return false;
  }
  return api.version == kEngineApiVersion && api.run_range_test != nullptr &&
         api.run_training != nullptr && api.torch_version != nullptr &&
         api.describe_device != nullptr;
}

}  // namespace lrtune::engine::internal

// Defined by the module (engine_plugin.cc): its table, valid for the life of
// the process. Thread-safe.
extern "C" const lrtune::engine::internal::EngineApi* lrtune_engine_api();

#endif  // LRTUNE_WORKER_ENGINE_PLUGIN_H_
