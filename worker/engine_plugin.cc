// lrtune_torch_engine.so's entry point: the LibTorch engine's functions in a
// table (engine_plugin.h). Everything else in the module is hidden.
#include "worker/engine_plugin.h"

namespace lrtune::engine::internal {
namespace {

EngineApi MakeApi() {
  EngineApi api;
  FillLayout(api.layout);
  api.run_range_test = [](const JobSpec& job, const RangeTestSpec& spec,
                          const Callbacks& callbacks,
                          const CancellationToken* cancel) {
    return RunRangeTest(job, spec, callbacks, cancel);
  };
  api.run_training = [](const JobSpec& job, const TrainSpec& spec,
                        const Callbacks& callbacks,
                        const CancellationToken* cancel) {
    return RunTraining(job, spec, callbacks, cancel);
  };
  api.torch_version = [] { return TorchVersion(); };
  api.describe_device = [](const std::string& device) {
    return DescribeDevice(device);
  };
  return api;
}

}  // namespace
}  // namespace lrtune::engine::internal

extern "C" __attribute__((visibility("default")))
const lrtune::engine::internal::EngineApi*
lrtune_engine_api() {
  static const lrtune::engine::internal::EngineApi api =
      lrtune::engine::internal::MakeApi();
  return &api;
}
