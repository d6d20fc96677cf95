#!/usr/bin/env bash
# The server's concurrency tests under ThreadSanitizer: the coordinator
# driven from many threads without gRPC (clients submitting, cancelling and
# reading while workers lease through the long poll, report, heartbeat and
# complete, and the sweeper runs: coordinator_concurrency_test), the lease
# table (concurrent renews, grants and sweeps), the job store (concurrent
# appends), the per-job locks (job_locks_test: a counter only a job's lock
# guards), client-driven runs of several jobs reported from many threads
# (client_runs_concurrency_test) and core/sync.h's own test. A separate clang build without
# LibTorch (build-tsan/) of only those targets; a data race or a
# lock-order inversion fails it. auth_test and metrics_test run on one
# thread, so TSan would add nothing there but the coordinator's build.
#
#   bash scripts/tsan.sh                # build-tsan/
#
# Our locks are lrtune::Mutex / Notification (core/sync.h), built on
# pthread, which TSan intercepts. Debian's Abseil, protobuf and gRPC are
# not instrumented, so TSan cannot see their synchronization.
#
# coordinator_test is left out (coordinator_concurrency_test covers the
# coordinator's own locks): it drives the coordinator through an
# in-process gRPC server, and TSan reports some 3,500 races in it, all in
# gRPC's own hand-offs (message buffers, reactors, protobuf parsing and
# absl's deadlock graph, passed between gRPC threads under gRPC's
# uninstrumented locks). Suppressing them would take `race:grpc`,
# `race:google::protobuf` and `called_from_lib:` for gRPC, which would
# hide races in our reactors too. It passes under TSan with report_bugs=0.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${TSAN_BUILD_DIR:-build-tsan}
cmake -S . -B "$BUILD_DIR" -G Ninja -DLRTUNE_WITH_TORCH=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_CXX_FLAGS="-fsanitize=thread -fno-omit-frame-pointer" \
  -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread >/dev/null
# Without gRPC: Debian's libgrpc is not built for TSan, whose reports on
# its threads are false (dashboard_test starts a gRPC server, so it is not
# here; its feed and HTTP server are).
TARGETS=(sync_test lease_table_test job_store_test job_locks_test
  coordinator_concurrency_test dashboard_feed_test http_server_test
  client_runs_concurrency_test)
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 ${TSAN_OPTIONS:-}"
exec bash scripts/run_gtests.sh tsan "$BUILD_DIR" "${TARGETS[@]}"
