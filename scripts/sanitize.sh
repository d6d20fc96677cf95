#!/usr/bin/env bash
# The core, store, coordinator, proto and client-library tests under
# AddressSanitizer + UBSan (a second build without LibTorch, so it stays
# small). A leak, an out-of-bounds access or undefined behaviour fails it.
#
#   bash scripts/sanitize.sh            # build-asan/
#
# ThreadSanitizer is a separate build (scripts/tsan.sh): the two cannot be
# combined in one binary.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${ASAN_BUILD_DIR:-build-asan}
cmake -S . -B "$BUILD_DIR" -G Ninja -DLRTUNE_SANITIZE=ON \
  -DLRTUNE_WITH_TORCH=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
TARGETS=(schedule_test schedule_params_test curve_analysis_test suggestions_test
         curve_csv_test recommendation_format_test grid_test
         early_stopping_test pruning_test proto_test
         job_store_test lease_table_test grid_plan_test coordinator_test
         http_request_test http_server_test dashboard_routes_test
         dashboard_json_test dashboard_feed_test dashboard_test
         client_run_test client_runs_test client_range_test_test)
if grep -q "lrtune_client_test" client/CMakeLists.txt 2>/dev/null; then
  TARGETS+=(lrtune_client_test)
fi
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
exec bash scripts/run_gtests.sh sanitize "$BUILD_DIR" "${TARGETS[@]}"
