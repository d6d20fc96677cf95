// The engine's torch-free process settings. Its specs and their rules are
// core/spec.h's.
#include <cstdlib>  // defines __GLIBC__ on glibc

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "worker/engine.h"

namespace lrtune::engine {

void TuneAllocatorForTraining() {
#include <cstdlib>  // defines __GLIBC__ on glibc

#ifdef __GLIBC__
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}

}  // namespace lrtune::engine
