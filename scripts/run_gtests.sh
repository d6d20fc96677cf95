#!/usr/bin/env bash
# Builds test binaries in a configured build directory and runs each one,
# its output in BUILD_DIR/TARGET.log; a failure prints the log's tail.
# Shared by the sanitizer stages (sanitize.sh, tsan.sh), which set their
# *SAN_OPTIONS first.
#
#   bash scripts/run_gtests.sh LABEL BUILD_DIR TARGET...
set -euo pipefail
LABEL=$1
BUILD_DIR=$2
shift 2
cmake --build "$BUILD_DIR" -j"$(nproc)" --target "$@"
failed=0
for t in "$@"; do
  bin=$(find "$BUILD_DIR" -name "$t" -type f -perm -u+x | head -n 1)
  if ! "$bin" --gtest_brief=1 >"$BUILD_DIR/$t.log" 2>&1; then
    echo "$LABEL: $t FAILED (log: $BUILD_DIR/$t.log)" >&2
    tail -n 60 "$BUILD_DIR/$t.log" >&2
    failed=1
  else
    echo "$LABEL: $t ok"
  fi
done
exit $failed
