#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz/ with clang (ASan + UBSan) and
# runs each for FUZZ_SECONDS (default 60) on a copy of its seed corpus,
# FUZZ_JOBS (default: the cores) at a time.
# Every seed, including the crash reproducers kept in the corpus, runs
# first; a crash, a sanitizer report or a leak fails this script and leaves
# the reproducer in $FUZZ_OUT (default build-fuzz/artifacts).
#
#   bash scripts/fuzz.sh                 # all targets, 60 s each
#   FUZZ_SECONDS=600 bash scripts/fuzz.sh submit_job
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${FUZZ_BUILD_DIR:-build-fuzz}
SECONDS_EACH=${FUZZ_SECONDS:-60}
OUT=${FUZZ_OUT:-$BUILD_DIR/artifacts}
TARGETS=("$@")
if [[ ${#TARGETS[@]} -eq 0 ]]; then
  TARGETS=(curve_csv schedule job_json submit_job spec_file dashboard_request
           npy_header dataset_manifest client_runs)
fi

mkdir -p "$BUILD_DIR"
if ! { CC=clang CXX=clang++ cmake -S . -B "$BUILD_DIR" -G Ninja \
         -DLRTUNE_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo &&
       cmake --build "$BUILD_DIR" -j"$(nproc)" \
         --target "${TARGETS[@]/#/fuzz_}"; } >"$BUILD_DIR/build.log" 2>&1; then
  echo "fuzz: building the targets failed (tail of $BUILD_DIR/build.log):" >&2
  tail -n 30 "$BUILD_DIR/build.log" >&2
  exit 1
fi
mkdir -p "$OUT"

# fuzz_one T: runs target T on a copy of its corpus; its output goes to
# $OUT/T.log, its exit status to $OUT/T.rc.
fuzz_one() {
  local t=$1 work rc=0
  work=$(mktemp -d)
  cp -r "tests/fuzz/corpus/$t/." "$work/"
  "$BUILD_DIR/tests/fuzz/fuzz_$t" -max_total_time="$SECONDS_EACH" \
    -max_len=16384 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$OUT/$t-" "$work" >"$OUT/$t.log" 2>&1 || rc=$?
  echo "$rc" >"$OUT/$t.rc"
  rm -rf "$work"
}

# Each fuzzer is one process on one core: FUZZ_JOBS (default: the cores)
# of them run side by side, so CI's wall time is the targets' seconds
# divided by the cores, not their sum.
JOBS=${FUZZ_JOBS:-$(nproc)}
# A status left by an earlier run must not pass for this one: a target
# whose subshell dies before writing its own (no .rc) counts as failed.
for t in "${TARGETS[@]}"; do rm -f "$OUT/$t.rc"; done
for t in "${TARGETS[@]}"; do
  while (( $(jobs -rp | wc -l) >= JOBS )); do wait -n || true; done
  echo "fuzz: $t for ${SECONDS_EACH}s ($(ls "tests/fuzz/corpus/$t" | wc -l) seeds)"
  fuzz_one "$t" &
done
wait

failed=0
for t in "${TARGETS[@]}"; do
  if [[ $(cat "$OUT/$t.rc" 2>/dev/null) != 0 ]]; then
    echo "fuzz: $t FAILED; reproducer and log in $OUT/ (tail below)" >&2
    tail -n 30 "$OUT/$t.log" >&2
    failed=1
  else
    grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb" \
      "$OUT/$t.log" | sed "s/^/fuzz: $t /"
  fi
done
exit $failed
