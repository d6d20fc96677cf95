#!/usr/bin/env bash
# The dashboard benchmark (bench/dashboard_bench.md): service_bench with and
# without 50 dashboard viewers of the job, interleaved round by round so
# that a shared machine's load falls on every configuration alike.
#
#   bash bench/dashboard_bench.sh [BUILD_DIR]     # default: build
#
# Per round: ingestion with the worker reporting back to back (batches of
# 32 and 256 points) with no viewers, with 50 viewers at nice 19 (browsers
# elsewhere: they take no CPU from the coordinator) and with 50 viewers at
# nice 0 (browsers on the same two cores); then the worker paced as a real
# one (256 points every 100 ms; 32 points every 10 ms), without and with
# 50 viewers: report-to-viewer latency.
set -euo pipefail
B=${1:-build}/bench/service_bench
for r in 1 2 3 4; do
  echo "== round $r: ingestion, back to back"
  $B --batches=32,256 --points=40000 --slow-batch=0 | tail -2 | sed 's/$/   no viewers/'
  $B --batches=32,256 --points=40000 --slow-batch=0 --viewers=50 --viewer-nice=19 | tail -2 | sed 's/$/   viewers nice 19/'
  $B --batches=32,256 --points=40000 --slow-batch=0 --viewers=50 | tail -2 | sed 's/$/   viewers nice 0/'
  echo "== round $r: paced as a worker reports"
  $B --batches=256 --points=7680 --slow-batch=0 --report-interval-ms=100 | tail -1 | sed 's/$/   no viewers/'
  $B --batches=256 --points=7680 --slow-batch=0 --report-interval-ms=100 --viewers=50 | tail -1
  $B --batches=32 --points=9600 --slow-batch=0 --report-interval-ms=10 | tail -1 | sed 's/$/   no viewers/'
  $B --batches=32 --points=9600 --slow-batch=0 --report-interval-ms=10 --viewers=50 | tail -1
done
