#include "worker/blas_core.h"

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

}  // namespace
}  // namespace lrtune::engine
