#include "worker/blas_core.h"

#include <dlfcn.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

namespace lrtune::engine {

CpuFeatures DetectCpuFeatures() {
  CpuFeatures f;
#if defined(__x86_64__) && defined(__GNUC__)
  // libgcc's checks include the OS's (XGETBV): AVX state saved, and the
  // AVX-512 state for the avx512* features.
  __builtin_cpu_init();
  f.avx2 = __builtin_cpu_supports("avx2");
  f.fma = __builtin_cpu_supports("fma");
  f.avx512_skylake =
      __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
      __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
#endif
  return f;
}

std::string BlasCoreFor(const CpuFeatures& cpu) {
  if (cpu.avx512_skylake) return "SkylakeX";
  if (cpu.avx2 && cpu.fma) return "Haswell";
  return "";
}

std::string ChooseBlasCore() {
  constexpr char kVar[] = "OPENBLAS_CORETYPE";
  const char* set = std::getenv(kVar);
  if (set != nullptr && set[0] != '\0') return set;
  // Unset, or empty: OpenBLAS 0.3.21 takes an empty name for the first of
  // its table (Cooperlake), which is no choice at all.
  const std::string core = BlasCoreFor(DetectCpuFeatures());
  if (!core.empty()) setenv(kVar, core.c_str(), /*overwrite=*/1);
  return core;
}

void ReexecWithBlasCore(char** argv) {
  const char* set = std::getenv("OPENBLAS_CORETYPE");
  if (set != nullptr && set[0] != '\0') return;
  if (ChooseBlasCore().empty()) return;
  execv("/proc/self/exe", argv);
}

int CoresUnderQuota(int cores, const std::string& cpu_max) {
  // "max PERIOD", or "QUOTA PERIOD" in microseconds: QUOTA / PERIOD CPUs.
  std::istringstream in(cpu_max);
  std::string quota;
  double period = 0;
  if (!(in >> quota >> period) || quota == "max" || !(period > 0)) {
    return cores;
  }
  char* end = nullptr;
  const double q = std::strtod(quota.c_str(), &end);
  if (end == quota.c_str() || *end != '\0' || !(q > 0)) return cores;
  return std::max(1, std::min(cores, static_cast<int>(std::ceil(q / period))));
}

int DefaultCpuThreads() {
  if (const char* omp = std::getenv("OMP_NUM_THREADS")) {
    char* end = nullptr;
    const long n = std::strtol(omp, &end, 10);
    if (end != omp && *end == '\0' && n > 0) return static_cast<int>(n);
  }
  int cores = static_cast<int>(std::thread::hardware_concurrency());
  cpu_set_t mask;
  if (sched_getaffinity(0, sizeof(mask), &mask) == 0) {
    cores = CPU_COUNT(&mask);
  }
  std::ifstream file("/sys/fs/cgroup/cpu.max");
  std::stringstream cpu_max;
  cpu_max << file.rdbuf();
  return std::max(CoresUnderQuota(cores, cpu_max.str()), 1);
}

CpuThreads PlanCpuThreads(int threads, bool gemm_bound) {
  CpuThreads plan;
  if (threads <= 1) return plan;
  (gemm_bound ? plan.blas : plan.torch) = threads;
  return plan;
}

bool SetBlasThreads(int threads) {
  const char* set = std::getenv("OPENBLAS_NUM_THREADS");
  if (set != nullptr && set[0] != '\0') return false;
  using SetThreads = void (*)(int);
  using GetThreads = int (*)();
  // Debian's libblas.so.3 (openblas-pthread) forwards to libopenblas.so.0,
  // which holds the thread pool; RTLD_NOLOAD finds it only if loaded.
  void* lib = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_NOLOAD);
  void* handle = lib != nullptr ? lib : RTLD_DEFAULT;
  void* set_sym = dlsym(handle, "openblas_set_num_threads");
  void* get_sym = dlsym(handle, "openblas_get_num_threads");
  const bool found = set_sym != nullptr && get_sym != nullptr;
  // Only a change is written: slots starting jobs at once mostly ask for
  // the count there is, and OpenBLAS reads it at every call.
  if (found && reinterpret_cast<GetThreads>(get_sym)() != threads) {
    reinterpret_cast<SetThreads>(set_sym)(threads);
  }
  if (lib != nullptr) dlclose(lib);  // only the count NOLOAD added
  return found;
}

}  // namespace lrtune::engine
