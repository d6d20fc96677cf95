#!/usr/bin/env bash
# A range test on a big data set by reference, through a real lrtune-server
# and lrtune-worker: scripts/make_dataset.py writes ROWS x FEATURES float32
# features and int64 labels with NumPy into a data directory, the worker
# reports the set when it registers, and `lrtune range-test --dataset big`
# runs --repeat times, each followed by the same test on the built-in
# Fashion-MNIST cut to as many training rows (in memory, for the time per
# step). While it trains the worker's /proc status is read
# every 50 ms: RssAnon (its own memory, what a copy of the set would add),
# RssFile (pages of files it maps, the set's among them: the page cache's,
# dropped under pressure) and VmHWM (peak of both). Prints a markdown table
# (bench/large_dataset.md).
#
#   bench/large_dataset.sh [--rows 70000] [--features 784] [--steps 300]
#                          [--repeat 3]
#
# Environment: BUILD_DIR (default build), PYTHON (default /usr/bin/python3,
# with NumPy), DATA_DIR (default: a temporary directory, removed after).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
PYTHON=${PYTHON:-/usr/bin/python3}
ROWS=70000
FEATURES=784
STEPS=300
REPEAT=3
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rows) ROWS=$2; shift 2 ;;
    --features) FEATURES=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --repeat) REPEAT=$2; shift 2 ;;
    *) echo "unknown flag $1" >&2; exit 2 ;;
  esac
done
for b in client/lrtune server/lrtune-server worker/lrtune-worker; do
  [[ -x "$BUILD_DIR/$b" ]] || { echo "build $BUILD_DIR/$b first" >&2; exit 1; }
done
work=$(mktemp -d)
DATA_DIR=${DATA_DIR:-$work/data}
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
export XDG_DATA_HOME="$work/xdg" OMP_NUM_THREADS=1
unset LRTUNE_SERVER

start=$(date +%s.%N)
"$PYTHON" scripts/make_dataset.py "$DATA_DIR" big --rows "$ROWS" \
  --features "$FEATURES"
made=$(echo "$(date +%s.%N) - $start" | bc)
bytes=$(($(stat -c %s "$DATA_DIR/big/x.npy") + $(stat -c %s "$DATA_DIR/big/y.npy")))

port=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BUILD_DIR/server/lrtune-server" --listen "127.0.0.1:$port" \
  --db "$work/jobs.db" 2>"$work/server.log" &
pids+=($!)
"$BUILD_DIR/worker/lrtune-worker" --server "127.0.0.1:$port" --threads 1 \
  --data-dir "$DATA_DIR:/usr/local/share/lrtune/datasets" \
  2>"$work/worker.log" &
worker=$!
pids+=("$worker")
for _ in $(seq 300); do
  grep -q "data sets: big" "$work/worker.log" && break
  sleep 0.1
done
grep -q "data sets: big" "$work/worker.log" ||
  { cat "$work/worker.log" >&2; exit 1; }

kb() { awk -v f="$1:" '$1 == f {print $2}' "/proc/$worker/status"; }
idle_anon=$(kb RssAnon)
echo "| run | data set | wall (s) | points | worker RssAnon idle -> peak (MB) | RssFile peak (MB) | VmHWM (MB) |"
echo "|---|---|---|---|---|---|---|"
# Each repeat runs the set by reference, then (for the time per step) the
# built-in Fashion-MNIST cut to as many training rows, which the engine
# holds decoded in memory (or maps from its data cache).
runs=()
for r in $(seq "$REPEAT"); do runs+=("big" "fashion-mnist"); done
r=0
for dataset in "${runs[@]}"; do
  r=$((r + 1))
  extra=()
  [[ $dataset == fashion-mnist ]] && extra=(--subset $((ROWS - ROWS / 5)))
  : >"$work/samples"
  (while kill -0 "$worker" 2>/dev/null; do
     echo "$(kb RssAnon) $(kb RssFile)" >>"$work/samples"
     sleep 0.05
   done) &
  sampler=$!
  "$BUILD_DIR/client/lrtune" range-test --server "127.0.0.1:$port" \
    --dataset "$dataset" "${extra[@]}" --model mlp --steps "$STEPS" \
    --threads 1 --device cpu --json >"$work/out.json"
  kill "$sampler" 2>/dev/null || true
  wait "$sampler" 2>/dev/null || true
  read -r wall points < <("$PYTHON" -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["state"] == "succeeded", d
print("%.1f %d" % (d["wall_seconds"], d["points"]))' "$work/out.json")
  anon=$(sort -n -k1 "$work/samples" | tail -1 | awk '{print $1}')
  file=$(sort -n -k2 "$work/samples" | tail -1 | awk '{print $2}')
  echo "| $r | $dataset | $wall | $points | $((idle_anon / 1024)) -> $((anon / 1024)) | $((file / 1024)) | $(($(kb VmHWM) / 1024)) |"
done
echo
printf 'set: %d x %d float32 + int64 labels = %d MB, written by NumPy in %.1f s\n' \
  "$ROWS" "$FEATURES" $((bytes / 1000000)) "$made"
echo "range test: $STEPS steps, batch 128, mlp $FEATURES-256-256-10, 1 CPU thread"
echo "$(getconf _NPROCESSORS_ONLN) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(date -u +%F)"
