// engine.h's training functions for processes that link the engine's
// torch-free half only: they open lrtune_torch_engine.so on first use.
#include "worker/engine_loader.h"

#include <dlfcn.h>
#include <limits.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "worker/blas_core.h"
#include "worker/engine.h"
#include "worker/engine_plugin.h"
#include "worker/torch_placeholders.h"

#ifndef LRTUNE_ENGINE_CUDA
#define LRTUNE_ENGINE_CUDA 1  // unknown: ask the module
#endif

namespace lrtune::engine {
namespace {

using internal::EngineApi;

// The directory of this executable, "" when /proc is not there.
std::string ExecutableDir() {
  char buf[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return "";
  std::string path(buf, static_cast<size_t>(n));
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "" : path.substr(0, slash);
}

std::vector<std::string> CandidatePaths() {
  const char* env = std::getenv("LRTUNE_TORCH_ENGINE");
  if (env != nullptr && env[0] != '\0') return {env};
  std::vector<std::string> paths;
  const std::string dir = ExecutableDir();
  if (!dir.empty()) {
    paths.push_back(absl::StrCat(dir, "/", internal::kEngineModuleName));
    paths.push_back(
        absl::StrCat(dir, "/../lib/lrtune/", internal::kEngineModuleName));
  }
#ifdef LRTUNE_TORCH_ENGINE_BUILD_PATH
  paths.push_back(LRTUNE_TORCH_ENGINE_BUILD_PATH);
#endif
  return paths;
}

// The placeholders for the module at `module_path`: $LRTUNE_TORCH_PLACEHOLDERS
// ("off": none), else those beside the module.
std::string PlaceholderDir(const std::string& module_path) {
  const char* env = std::getenv("LRTUNE_TORCH_PLACEHOLDERS");
  if (env != nullptr && env[0] != '\0') {
    return std::string(env) == "off" ? "" : env;
  }
  const size_t slash = module_path.rfind('/');
  const std::string dir =
      slash == std::string::npos ? "." : module_path.substr(0, slash);
  return absl::StrCat(dir, "/", internal::kPlaceholderDirName);
}

// dlopen(path) with LibTorch's placeholders open; should a library need one
// of them after all (dlopen fails while relocating, before any initializer
// has run), they are closed and the module opened without them. nullptr
// and `*error` set when neither opens it.
void* OpenModule(const std::string& path, std::string* error) {
  const std::string dir = PlaceholderDir(path);
  TorchPlaceholders placeholders;
  if (!dir.empty()) placeholders = TorchPlaceholders::Open(dir);
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr && placeholders.size() > 0) {
    placeholders.Close();
    handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  }
  if (handle == nullptr) {
    const char* why = dlerror();
    *error = why != nullptr ? why : "dlopen failed";
  }
  return handle;
}

struct Loaded {
  const EngineApi* api = nullptr;
  absl::Status status;
};

const Loaded& Load() {
  static const Loaded* loaded = [] {
    auto* l = new Loaded;
    ChooseBlasCore();  // before LibTorch loads OpenBLAS
    std::vector<std::string> tried;
    for (const std::string& path : CandidatePaths()) {
      if (access(path.c_str(), R_OK) != 0) {
        tried.push_back(absl::StrCat(path, " (not there)"));
        continue;
      }
      std::string why;
      void* handle = OpenModule(path, &why);
      if (handle == nullptr) {
        tried.push_back(absl::StrCat(path, " (", why, ")"));
        continue;
      }
      using Entry = const EngineApi* (*)();
      auto entry =
          reinterpret_cast<Entry>(dlsym(handle, internal::kEngineApiSymbol));
      const EngineApi* api = entry == nullptr ? nullptr : entry();
      if (api == nullptr || !internal::ApiMatches(*api)) {
        tried.push_back(absl::StrCat(
            path, " (built from another lrtune: rebuild it with this one)"));
        continue;  // the handle stays open: its code may already be running
      }
      l->api = api;
      return l;
    }
    l->status = absl::FailedPreconditionError(absl::StrCat(
        "cannot load the training engine ", internal::kEngineModuleName,
        "; tried ", absl::StrJoin(tried, ", "),
        ". Set LRTUNE_TORCH_ENGINE to its path, or build the target "
        "lrtune_torch_engine"));
    return l;
  }();
  return *loaded;
}

}  // namespace

absl::Status LoadTorchEngine() { return Load().status; }

absl::StatusOr<RangeTestResult> RunRangeTest(const JobSpec& job,
                                             const RangeTestSpec& spec,
                                             const Callbacks& callbacks,
                                             const CancellationToken* cancel) {
  const Loaded& l = Load();
  if (l.api == nullptr) return l.status;
  return l.api->run_range_test(job, spec, callbacks, cancel);
}

absl::StatusOr<TrainResult> RunTraining(const JobSpec& job,
                                        const TrainSpec& spec,
                                        const Callbacks& callbacks,
                                        const CancellationToken* cancel) {
  const Loaded& l = Load();
  if (l.api == nullptr) return l.status;
  return l.api->run_training(job, spec, callbacks, cancel);
}

std::string TorchVersion() {
  const Loaded& l = Load();
  if (l.api == nullptr) return "unavailable (the engine module did not load)";
  return l.api->torch_version();
}

DeviceInfo DescribeDevice(const std::string& device) {
  // The CPU needs nothing from LibTorch (engine.cc describes it by name),
  // and neither does a GPU when the module was built without CUDA.
  if (device.rfind("cuda", 0) != 0 || !LRTUNE_ENGINE_CUDA) {
    return DeviceInfo{device, "", 0, ""};
  }
  const Loaded& l = Load();
  if (l.api == nullptr) return DeviceInfo{device, "", 0, ""};
  return l.api->describe_device(device);
}

}  // namespace lrtune::engine
