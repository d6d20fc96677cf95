#!/usr/bin/env bash
# Builds lrtune and runs the whole test suite (what .ci/run calls).
#
#   bash scripts/test.sh            # installs packages first (needs root)
#   BUILD_DIR=build-asan CMAKE_ARGS=-DLRTUNE_SANITIZE=ON bash scripts/test.sh
#   FUZZ_SECONDS=0 SANITIZE=0 TSAN=0 bash scripts/test.sh   # only the main build
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}

if [[ $(id -u) -eq 0 ]]; then
  bash scripts/setup.sh
elif command -v sudo >/dev/null; then
  sudo bash scripts/setup.sh
else
  echo "test.sh: not root and no sudo; assuming scripts/setup.sh has run" >&2
fi

# shellcheck disable=SC2086
cmake -S . -B "$BUILD_DIR" -G Ninja ${CMAKE_ARGS:-}
cmake --build "$BUILD_DIR" -j"$(nproc)"
ctest --test-dir "$BUILD_DIR" --output-on-failure -j"$(nproc)"

# Lock discipline: clang's -Wthread-safety over every file that locks.
bash scripts/thread_safety.sh "$BUILD_DIR"

# AddressSanitizer + UBSan over the core, store and coordinator tests (a
# second build without LibTorch). SANITIZE=0 skips it.
if [[ ${SANITIZE:-1} != 0 ]]; then
  bash scripts/sanitize.sh
fi

# ThreadSanitizer over the server's concurrency tests (a third build, clang,
# without LibTorch; scripts/tsan.sh). TSAN=0 skips it.
if [[ ${TSAN:-1} != 0 ]]; then
  bash scripts/tsan.sh
fi

# The fuzz targets (tests/fuzz/, a separate clang build): every seed and
# crash reproducer, then FUZZ_SECONDS of fuzzing per target.
FUZZ_SECONDS=${FUZZ_SECONDS:-45}
if [[ $FUZZ_SECONDS != 0 ]]; then
  FUZZ_SECONDS=$FUZZ_SECONDS bash scripts/fuzz.sh
fi
