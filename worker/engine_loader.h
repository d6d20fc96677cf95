// Opening the LibTorch engine on demand (engine_plugin.h says why).
//
// Linking lrtune_engine_lazy instead of lrtune_engine gives engine.h's
// training functions (RunRangeTest, RunTraining, TorchVersion,
// DescribeDevice) without LibTorch at start-up: the first call opens
// lrtune_torch_engine.so, after the placeholders for the libraries LibTorch
// never uses (torch_placeholders.h) and with OpenBLAS's kernels chosen for
// the CPU (blas_core.h), and forwards to it.
//
//   LRTUNE_RETURN_IF_ERROR(LoadTorchEngine());  // optional: fail early
//   auto result = engine::RunRangeTest(job, spec, callbacks);
//
// When the module cannot be opened, RunRangeTest and RunTraining return
// FailedPrecondition naming every path tried and why, TorchVersion says
// "unavailable", and DescribeDevice reports the bare device name.
#ifndef LRTUNE_WORKER_ENGINE_LOADER_H_
#define LRTUNE_WORKER_ENGINE_LOADER_H_

#include "absl/status/status.h"

namespace lrtune::engine {

// Opens the module once per process (the first call does the work, which
// takes as long as loading LibTorch; concurrent callers wait for it) and
// returns the outcome, the same one on every call. Thread-safe, but the
// first call sets OPENBLAS_CORETYPE (ChooseBlasCore, blas_core.h) with
// setenv: make it before starting threads that read the environment.
absl::Status LoadTorchEngine();

}  // namespace lrtune::engine

#endif  // LRTUNE_WORKER_ENGINE_LOADER_H_
