// Opens the engine module as lrtune does (engine_loader.h) and prints the
// path of every object then mapped, one a line, and on stderr the kernels
// OpenBLAS chose ("openblas core: Haswell") when it is loaded; exits 0 when
// the module opened, 1 (the loader's error on stderr) when not. For
// tests/torch_load_test.sh.
#include <dlfcn.h>
#include <link.h>
#include <unistd.h>

#include <cstdio>

#include "absl/status/status.h"
#include "worker/engine_loader.h"

int main() {
  const absl::Status status = lrtune::engine::LoadTorchEngine();
  if (!status.ok()) {
    std::fprintf(stderr, "%s\n", status.ToString().c_str());
    std::fflush(stderr);
    _exit(1);
  }
  if (void* blas = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_NOLOAD)) {
    using CoreName = const char* (*)();
    if (auto name =
            reinterpret_cast<CoreName>(dlsym(blas, "openblas_get_corename"))) {
      std::fprintf(stderr, "openblas core: %s\n", name());
    }
  }
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void*) {
        if (info->dlpi_name != nullptr && info->dlpi_name[0] != '\0') {
          std::printf("%s\n", info->dlpi_name);
        }
        return 0;
      },
      nullptr);
  std::fflush(stdout);
  _exit(0);  // LibTorch's static destructors are not under test
}
