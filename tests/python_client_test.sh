#!/usr/bin/env bash
# End-to-end test of the Python client (client/python/) against a real
# lrtune-server and one CPU lrtune-worker on a free loopback port: generates
# the gRPC modules into a temporary directory, then runs
# client/python/tests/test_client.py (range_test_module on a tiny MLP, the
# stream variant, errors naming the field, watch/get/cancel, the example
# training script, the printed summary against `lrtune get`'s when the CLI
# is given) with Debian's python3 (torch, grpcio).
#
#   bash tests/python_client_test.sh path/to/lrtune-server \
#     path/to/lrtune-worker [path/to/lrtune]
set -u
SERVER_BIN=$1
WORKER_BIN=$2
CLI_BIN=${3:-}
BIN=$SERVER_BIN
# shellcheck source=tests/testlib.sh
source "$(dirname "$0")/testlib.sh"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export OMP_NUM_THREADS=1
export PYTHONDONTWRITEBYTECODE=1  # leave the source tree as it is

server_pid=
worker_pid=
stop_service() {
  for pid in $worker_pid $server_pid; do
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  worker_pid=
  server_pid=
}
trap 'stop_service; rm -rf "$tmp"' EXIT

(cd "$ROOT/client/python" && $PY -m lrtune.generate --out "$tmp/gen" \
  --proto "$ROOT/proto" >/dev/null 2>"$tmp/gen.err")
gen_rc=$?
check "the gRPC modules are generated" test "$gen_rc" = 0
check "lrtune_pb2_grpc.py is there" test -s "$tmp/gen/lrtune/v1/lrtune_pb2_grpc.py"
cat "$tmp/gen.err" >&2

port=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$SERVER_BIN" --listen "127.0.0.1:$port" --db "$tmp/server.db" \
  2>"$tmp/server.log" &
server_pid=$!
appears 10 "listening" "$tmp/server.log"
check "the server listens" grep -q "listening" "$tmp/server.log"
"$WORKER_BIN" --server "127.0.0.1:$port" --devices cpu --slots 1 --threads 1 \
  2>"$tmp/worker.log" &
worker_pid=$!

start=$(date +%s.%N)
# unittest takes a file path only relative to the working directory.
(cd "$ROOT/client/python" &&
  LRTUNE_TEST_SERVER="127.0.0.1:$port" LRTUNE_GEN_DIR="$tmp/gen" \
  LRTUNE_TEST_CLI="$CLI_BIN" PYTHONPATH="$ROOT/client/python" \
  $PY -m unittest -v tests/test_client.py) >"$tmp/unittest.log" 2>&1
rc=$?
echo "python client tests: $(echo "$(date +%s.%N) - $start" | bc) s"
check "the Python client tests pass" test "$rc" = 0
check "the live-server tests ran (not skipped)" \
  grep -q "test_range_test_module_streams_points_and_recommends .* ok$" \
  "$tmp/unittest.log"
check "the validation-metric range test ran" \
  grep -q "test_validation_metric_range_test .* ok$" "$tmp/unittest.log"
if [ "$rc" != 0 ]; then
  cat "$tmp/unittest.log" >&2
  echo "--- server log" >&2
  tail -20 "$tmp/server.log" >&2
  echo "--- worker log" >&2
  tail -20 "$tmp/worker.log" >&2
fi

stop_service

finish
