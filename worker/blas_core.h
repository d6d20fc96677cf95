// Which OpenBLAS kernels lrtune's LibTorch runs on: chosen from the CPU's
// features, because OpenBLAS picks by CPU model and falls back to its
// slowest x86-64 kernels (Prescott, SSE3) on a model it does not know.
//
// Debian 12's OpenBLAS 0.3.21 does not know CPUs newer than it (here an
// Intel Xeon of family 6, model 207, with AVX-512): its sgemm then runs
// the MLP 784-256-256-10's step 3.5x slower than with its AVX-512 kernels
// (bench/whole_process.md). OpenBLAS reads OPENBLAS_CORETYPE once, when it
// is loaded; lrtune loads it with LibTorch (engine_loader.cc), so setting
// the variable first is enough. A value the user set is kept.
//
//   ChooseBlasCore();        // before LibTorch (and OpenBLAS) are loaded
//   LRTUNE_RETURN_IF_ERROR(LoadTorchEngine());
#ifndef LRTUNE_WORKER_BLAS_CORE_H_
#define LRTUNE_WORKER_BLAS_CORE_H_

#include <string>

namespace lrtune::engine {

// The features that decide the kernels.
struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  // AVX-512 F, CD, BW, DQ and VL, all usable (the OS saves their state).
  bool avx512_skylake = false;
};

// This CPU's features (x86-64; all false elsewhere). Thread-safe.
CpuFeatures DetectCpuFeatures();

// The OpenBLAS core whose kernels `cpu` runs: "SkylakeX" with the AVX-512
// set, else "Haswell" with AVX2 and FMA, else "" (OpenBLAS's own choice).
// SkylakeX's and Haswell's sgemm kernels are those OpenBLAS uses for every
// CPU with those features that it knows (Zen's are Haswell's).
std::string BlasCoreFor(const CpuFeatures& cpu);

// Sets OPENBLAS_CORETYPE to BlasCoreFor(DetectCpuFeatures()) unless it is
// set to a name already, and returns the variable's value afterwards ("" when
// it stays unset or empty). Call it before OpenBLAS is loaded, and before the
// process starts threads: it calls setenv.
std::string ChooseBlasCore();

// For a binary linked with LibTorch, whose OpenBLAS is loaded (and has read
// OPENBLAS_CORETYPE) before main: when the variable is unset or empty and
// ChooseBlasCore names a core, re-executes this binary (/proc/self/exe) with
// the same arguments and the variable set, so that the new image's OpenBLAS
// loads those kernels (lrtune-worker, lrtune-engine). Returns when there is
// nothing to do, or the exec failed (OpenBLAS's own choice then stands).
// Call it first in main: before threads, before anything to undo.
void ReexecWithBlasCore(char** argv);

// How a CPU job's threads are shared between LibTorch's pool (OpenMP: the
// element-wise ops, and convolutions through oneDNN) and OpenBLAS's (every
// matmul's sgemm). Both pools spin while they wait for work, so given the
// same cores at once each slows the other: on 2 cores, 2 + 2 threads ran
// the MLP 784-32-10's step 4.7x slower than 2 + 1, and a plain PyTorch
// script loses the same (bench/cpu_threads.md). One pool gets the job's
// threads, the other one thread.
struct CpuThreads {
  int torch = 1;
  int blas = 1;
};

// The CPU threads a job gets when it names none (DeviceOptions::threads 0):
// OMP_NUM_THREADS where it is set to a count, else the cores this process
// may run on (its affinity mask), capped by a cgroup v2 CPU quota
// (/sys/fs/cgroup/cpu.max: a container's or a Kubernetes pod's limit).
// At least 1.
int DefaultCpuThreads();
// `cores` capped by a cgroup v2 cpu.max line ("max 100000", or "QUOTA
// PERIOD": ceil(QUOTA / PERIOD) CPUs, at least 1); `cores` where the line
// is empty or malformed.
int CoresUnderQuota(int cores, const std::string& cpu_max);

// `threads` (>= 1) for a model whose work is its matmuls (`gemm_bound`: an
// MLP of more than kCpuMaxPackedParameters, whose sgemm calls OpenBLAS
// splits across threads) or not (a small MLP, whose matmuls are too small
// to split; a CNN, whose convolutions LibTorch's pool runs).
CpuThreads PlanCpuThreads(int threads, bool gemm_bound);

// Sets the thread count of the OpenBLAS loaded in this process
// (openblas_set_num_threads). False, doing nothing, where none is loaded
// (LibTorch on MKL, say) or OPENBLAS_NUM_THREADS is set: the user's count
// stands.
bool SetBlasThreads(int threads);

}  // namespace lrtune::engine

#endif  // LRTUNE_WORKER_BLAS_CORE_H_
