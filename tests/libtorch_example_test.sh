#!/usr/bin/env bash
# The LibTorch example (client/examples/libtorch_range_test.cc) against the
# embedded coordinator of `lrtune serve`: serve prints its target, the
# example trains to the coordinator's stop and prints the recommendation,
# and serve ends when its stdin closes.
#
#   bash tests/libtorch_example_test.sh LRTUNE_BIN EXAMPLE_BIN
set -u
BIN=$1
EXAMPLE=$2
# shellcheck source=tests/testlib.sh
source "$(dirname "$0")/testlib.sh"
export OMP_NUM_THREADS=1

mkfifo "$tmp/stdin"
"$BIN" serve --db "$tmp/jobs.db" <"$tmp/stdin" >"$tmp/target" 2>"$tmp/serve.err" &
serve_pid=$!
exec 3>"$tmp/stdin"  # serve runs while this end is open
for _ in $(seq 100); do
  [ -s "$tmp/target" ] && break
  sleep 0.05
done
target=$(head -1 "$tmp/target")
check "lrtune serve prints a unix target" grep -q "^unix:/" "$tmp/target"

"$EXAMPLE" --server "$target" --steps 200 >"$tmp/out" 2>"$tmp/err"
rc=$?
check "the example succeeds" test "$rc" = 0
check "it prints bounds" grep -q "min_lr .* max_lr " "$tmp/out"
check "the coordinator stopped it at divergence" grep -q "diverged at step" "$tmp/out"
cat "$tmp/out" "$tmp/err" >&2

exec 3>&-  # stdin ends: serve stops
for _ in $(seq 100); do
  kill -0 "$serve_pid" 2>/dev/null || break
  sleep 0.05
done
check "lrtune serve ends when its stdin closes" bash -c "! kill -0 $serve_pid 2>/dev/null"
wait "$serve_pid"
check "and exits 0" test "$?" = 0
check "its socket is gone" test ! -S "${target#unix:}"
finish
