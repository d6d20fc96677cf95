#include "worker/blas_core.h"

#include <unistd.h>

#include <cstdlib>

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

}  // namespace lrtune::engine
