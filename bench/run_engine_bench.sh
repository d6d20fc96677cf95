#!/usr/bin/env bash
# Runs engine_bench and bench/pytorch_loop.py for tiny_mlp, mlp and cnn and
# prints a markdown table (steps/s of each and the ratio), the versions and
# the date.
#
#   bench/run_engine_bench.sh [--device cpu|cuda] [--threads N] [--cuda-graph] [--bf16]
#
# Environment: BUILD_DIR (default build-engine, holding bench/engine_bench),
# PYTHON (default /usr/bin/python3, which has torch).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-engine}
PYTHON=${PYTHON:-/usr/bin/python3}
DEVICE=cpu
THREADS=1
EXTRA=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --device) DEVICE=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --cuda-graph|--bf16) EXTRA+=("$1"); shift ;;
    *) echo "unknown flag $1" >&2; exit 2 ;;
  esac
done
BENCH="$BUILD_DIR/bench/engine_bench"
[[ -x "$BENCH" ]] || { echo "build $BENCH first" >&2; exit 1; }

# Steps per model: a few seconds each on one CPU thread.
declare -A STEPS=([tiny_mlp]=3000 [mlp]=600 [cnn]=100)
if [[ "$DEVICE" == cuda* ]]; then STEPS=([tiny_mlp]=5000 [mlp]=5000 [cnn]=3000); fi

field() { "$PYTHON" -c "import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])['$1'])"; }

echo "| model | engine steps/s | pytorch steps/s | ratio |"
echo "|---|---:|---:|---:|"
for model in tiny_mlp mlp cnn; do
  args=(--model "$model" --device "$DEVICE" --threads "$THREADS"
        --steps "${STEPS[$model]}" --batch 128)
  e=$(OMP_NUM_THREADS=$THREADS "$BENCH" "${args[@]}" "${EXTRA[@]}" | field steps_per_s)
  p=$(OMP_NUM_THREADS=$THREADS "$PYTHON" bench/pytorch_loop.py "${args[@]}" "${EXTRA[@]}" | field steps_per_s)
  "$PYTHON" -c "print('| $model | %.1f | %.1f | %.2fx |' % ($e, $p, $e / $p))"
done
echo
echo "engine: $("$BUILD_DIR/worker/lrtune-engine" --version)"
echo "python: $("$PYTHON" -c 'import torch, sys; print("torch", torch.__version__, "python", sys.version.split()[0])')"
echo "device: $DEVICE, threads: $THREADS, batch 128, SGD, Fashion-MNIST; $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores"
