#include "worker/blas_core.h"

#include <dlfcn.h>

#include <cstdlib>

#include "gtest/gtest.h"

namespace lrtune::engine {
namespace {

TEST(BlasCoreTest, TheWidestKernelsTheCpuRuns) {
  CpuFeatures cpu;
  EXPECT_EQ(BlasCoreFor(cpu), "");
  cpu.avx2 = true;
  EXPECT_EQ(BlasCoreFor(cpu), "");  // Haswell's kernels need FMA too
  cpu.fma = true;
  EXPECT_EQ(BlasCoreFor(cpu), "Haswell");
  cpu.avx512_skylake = true;
  EXPECT_EQ(BlasCoreFor(cpu), "SkylakeX");
}

TEST(BlasCoreTest, AValueTheUserSetIsKept) {
  setenv("OPENBLAS_CORETYPE", "Sandybridge", 1);
  EXPECT_EQ(ChooseBlasCore(), "Sandybridge");
  EXPECT_STREQ(std::getenv("OPENBLAS_CORETYPE"), "Sandybridge");
  unsetenv("OPENBLAS_CORETYPE");
}

TEST(BlasCoreTest, AnEmptyValueIsNoChoice) {
  setenv("OPENBLAS_CORETYPE", "", 1);
  const std::string core = BlasCoreFor(DetectCpuFeatures());
  EXPECT_EQ(ChooseBlasCore(), core);
  EXPECT_STREQ(std::getenv("OPENBLAS_CORETYPE"), core.c_str());
  unsetenv("OPENBLAS_CORETYPE");
}

TEST(BlasCoreTest, UnsetItBecomesThisCpusCore) {
  unsetenv("OPENBLAS_CORETYPE");
  const std::string core = BlasCoreFor(DetectCpuFeatures());
  EXPECT_EQ(ChooseBlasCore(), core);
  const char* value = std::getenv("OPENBLAS_CORETYPE");
  if (core.empty()) {
    EXPECT_EQ(value, nullptr);
  } else {
    ASSERT_NE(value, nullptr);
    EXPECT_EQ(value, core);
  }
  unsetenv("OPENBLAS_CORETYPE");
}

TEST(CpuThreadsTest, OnePoolGetsTheThreadsTheOtherOne) {
  for (const bool gemm_bound : {false, true}) {
    const CpuThreads one = PlanCpuThreads(1, gemm_bound);
    EXPECT_EQ(one.torch, 1);
    EXPECT_EQ(one.blas, 1);
  }
  // A small MLP or a CNN: LibTorch's pool (convolutions, element-wise ops).
  CpuThreads plan = PlanCpuThreads(8, /*gemm_bound=*/false);
  EXPECT_EQ(plan.torch, 8);
  EXPECT_EQ(plan.blas, 1);
  // A large MLP: OpenBLAS splits its matmuls.
  plan = PlanCpuThreads(8, /*gemm_bound=*/true);
  EXPECT_EQ(plan.torch, 1);
  EXPECT_EQ(plan.blas, 8);
}

TEST(CpuThreadsTest, ACgroupQuotaCapsTheCores) {
  EXPECT_EQ(CoresUnderQuota(8, "max 100000\n"), 8);
  EXPECT_EQ(CoresUnderQuota(8, "200000 100000\n"), 2);
  EXPECT_EQ(CoresUnderQuota(8, "150000 100000\n"), 2);  // 1.5 CPUs
  EXPECT_EQ(CoresUnderQuota(8, "50000 100000\n"), 1);
  EXPECT_EQ(CoresUnderQuota(2, "800000 100000\n"), 2);  // the mask is less
  for (const char* bad : {"", "max", "abc 100000", "100000 0", "-5 100000"}) {
    EXPECT_EQ(CoresUnderQuota(4, bad), 4) << bad;
  }
}

TEST(CpuThreadsTest, OmpNumThreadsIsTheDefaultWhereSet) {
  setenv("OMP_NUM_THREADS", "3", 1);
  EXPECT_EQ(DefaultCpuThreads(), 3);
  setenv("OMP_NUM_THREADS", "two", 1);  // not a count: the cores
  EXPECT_GE(DefaultCpuThreads(), 1);
  unsetenv("OMP_NUM_THREADS");
  EXPECT_GE(DefaultCpuThreads(), 1);
}

// The OpenBLAS that LibTorch loads (Debian's libopenblas0-pthread, which
// scripts/setup.sh installs), opened here as LibTorch would.
TEST(CpuThreadsTest, SetsTheLoadedOpenBlasUnlessTheUserSetACount) {
  unsetenv("OPENBLAS_NUM_THREADS");
  void* lib = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_GLOBAL);
  ASSERT_NE(lib, nullptr) << dlerror();
  using GetThreads = int (*)();
  auto get =
      reinterpret_cast<GetThreads>(dlsym(lib, "openblas_get_num_threads"));
  ASSERT_NE(get, nullptr);
  ASSERT_TRUE(SetBlasThreads(1));
  EXPECT_EQ(get(), 1);
  ASSERT_TRUE(SetBlasThreads(2));
  EXPECT_EQ(get(), 2);
  setenv("OPENBLAS_NUM_THREADS", "3", 1);
  EXPECT_FALSE(SetBlasThreads(1));
  EXPECT_EQ(get(), 2);
  unsetenv("OPENBLAS_NUM_THREADS");
  dlclose(lib);
}

}  // namespace
}  // namespace lrtune::engine
