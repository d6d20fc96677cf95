#!/usr/bin/env bash
# The GPU check: builds the engine (LRTUNE_ENGINE_ONLY: core/ + worker/ +
# its benchmark; no gRPC) against the machine's CUDA LibTorch and measures it
# side by side with a plain PyTorch eager loop on the same GPU and model.
#
# Run on a GPU machine from the repository root, with Abseil, nlohmann-json,
# zlib and Fashion-MNIST unpacked into .gpu-deps/ by scripts/gpu_deps.sh:
#
#   OUT=/tmp/out bash scripts/gpu_check.sh
#
# Writes $OUT/gpu_table.md (the table, with date, GPU and versions) and logs.
set -uo pipefail
OUT=${OUT:-/tmp/lrtune-gpu}
WORK=$(mktemp -d)  # intermediate files; $OUT keeps only the report files
mkdir -p "$OUT"
ROOT=$(pwd)
DEPS=$ROOT/.gpu-deps
PY=${PYTHON:-python3}
BUILD=${BUILD_DIR:-build-gpu}
log() { echo "[$(date +%T)] $*" | tee -a "$WORK/steps.log"; }

TORCH_PREFIX=$($PY -c 'import torch; print(torch.utils.cmake_prefix_path)')
log "torch $($PY -c 'import torch; print(torch.__version__, torch.version.cuda)') at $TORCH_PREFIX"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader \
  | tee "$WORK/gpu.txt"

[[ -d /usr/local/cuda/bin ]] && export PATH=/usr/local/cuda/bin:$PATH
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
export LD_LIBRARY_PATH=$DEPS/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
export LRTUNE_DATA_DIR=$DEPS/datasets
log "configure"
cmake -S . -B "$BUILD" -DLRTUNE_ENGINE_ONLY=ON -DLRTUNE_WERROR=OFF \
  -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" \
  -Dabsl_DIR="$DEPS/usr/lib/x86_64-linux-gnu/cmake/absl" \
  -Dnlohmann_json_DIR="$DEPS/usr/share/cmake/nlohmann_json" \
  -DZLIB_INCLUDE_DIR="$DEPS/zlib/include" \
  -DZLIB_LIBRARY="$DEPS/zlib/lib/libz.a" >"$WORK/configure.log" 2>&1 \
  || { log "configure failed"; tail -40 "$WORK/configure.log"; exit 1; }
grep -E "lrtune engine" "$WORK/configure.log" | tee -a "$WORK/steps.log"
log "build"
cmake --build "$BUILD" -j"$(nproc)" --target lrtune-engine engine_bench \
  >"$OUT/build.log" 2>&1 || { log "build failed"; grep -E "error" "$OUT/build.log" | head -40; exit 1; }
log "built"

BENCH=$BUILD/bench/engine_bench
STEPS=${STEPS:-1000}
# row LABEL MODEL ENGINE_FLAGS... : engine, PyTorch DataLoader loop (what a
# typical user writes) and PyTorch with the data on the device (no loader).
row() {
  local label=$1 model=$2
  shift 2
  local e p d
  e=$(timeout 120 "$BENCH" --model "$model" --device cuda --steps "$STEPS" \
      --batch 128 "$@" 2>>"$WORK/bench.err" | tail -1)
  p=$(timeout 120 $PY bench/pytorch_loop.py --model "$model" --device cuda \
      --steps "$STEPS" --batch 128 "$@" 2>>"$WORK/bench.err" | tail -1)
  d=$(timeout 120 $PY bench/pytorch_device_loop.py --model "$model" \
      --device cuda --steps "$STEPS" --batch 128 \
      $([[ " $* " == *" --bf16 "* ]] && echo --bf16) 2>>"$WORK/bench.err" | tail -1)
  echo "$label|$e|$p|$d" >>"$WORK/raw.txt"
  $PY - "$label" "$e" "$p" "$d" <<'PYEOF' | tee -a "$WORK/rows.md"
import json, sys
label, *runs = sys.argv[1:]
def rate(line):
    try:
        return json.loads(line)["steps_per_s"]
    except Exception:
        return float("nan")
e, p, d = (rate(r) for r in runs)
print(f"| {label} | {e:.0f} | {p:.0f} | {d:.0f} | {e / p:.2f}x | {e / d:.2f}x |")
PYEOF
}
# Range tests on Fashion-MNIST through the standalone engine: the curve must
# be complete (one point per step until divergence) on every CUDA path.
rt() {  # rt LABEL DEVICE_JSON
  cat >"$WORK/job.json" <<JSON
{"kind": "range_test", "model": {"kind": "cnn"},
 "data": {"name": "fashion-mnist", "subset": 20000},
 "optimizer": {"kind": "sgd", "momentum": 0.9}, "batch_size": 128,
 "device": $2,
 "range_test": {"start_lr": 1e-6, "end_lr": 10, "steps": 300, "seeds": [0, 1, 2]}}
JSON
  timeout 120 "$BUILD/worker/lrtune-engine" --job "$WORK/job.json" \
    >"$WORK/rt.jsonl" 2>>"$WORK/bench.err"
  local rc=$?
  $PY - "$1" "$rc" "$WORK/rt.jsonl" <<'PYEOF' | tee -a "$OUT/range_tests.md"
import collections, json, sys
label, rc, path = sys.argv[1:]
pts = collections.defaultdict(list)
res = None
for line in open(path):
    o = json.loads(line)
    if o["type"] == "point":
        pts[o["seed"]].append(o)
    elif o["type"] == "result":
        res = o
    elif o["type"] == "error":
        print(f"| {label} | error: {o} |")
if res:
    r = res["recommendation"]
    seeds = "; ".join(
        f"seed {s}: {len(p)} points, steps {p[0]['step']}..{p[-1]['step']} "
        f"(gap-free: {[q['step'] for q in p] == list(range(len(p)))}), "
        f"loss {p[0]['loss']:.3f} -> min {min(q['loss'] for q in p):.3f}, "
        f"diverged_at {res['per_seed'][s]['diverged_at']}"
        for s, p in sorted(pts.items()))
    print(f"| {label} (rc {rc}) | min_lr {r['min_lr']:.3g}, max_lr "
          f"{r['max_lr']:.3g}, spread {r['spread_decades']:.2f} decades | "
          f"{seeds} |")
PYEOF
}
log "range tests (cuda)"
echo "| range test, CNN, 3 seeds, 300 steps | recommendation | curves |" >"$OUT/range_tests.md"
echo "|---|---|---|" >>"$OUT/range_tests.md"
rt "eager" '{"device": "cuda"}'
rt "CUDA graph" '{"device": "cuda", "cuda_graph": true}'
rt "bf16 autocast" '{"device": "cuda", "bf16": true}'

log "bench"
: >"$WORK/rows.md"
row "tiny MLP 784-32-10" tiny_mlp
row "MLP 784-256-256-10" mlp
row "CNN" cnn
row "tiny MLP, CUDA graph" tiny_mlp --cuda-graph
row "MLP, CUDA graph" mlp --cuda-graph
row "CNN, CUDA graph" cnn --cuda-graph
row "CNN, bf16 autocast" cnn --bf16

# Packed seeds (worker/packed_models.cc): K = 32 range-test curves of one
# model as one batched model, against one curve; steps/s counts all K.
log "packing"
: >"$WORK/pack.md"
pack_row() {  # pack_row LABEL MODEL FLAGS...
  local label=$1 model=$2
  shift 2
  local one k32
  one=$(timeout 120 "$BENCH" --model "$model" --device cuda --steps "$STEPS" \
        --batch 128 "$@" 2>>"$WORK/bench.err" | tail -1)
  k32=$(timeout 300 "$BENCH" --model "$model" --device cuda --steps "$STEPS" \
        --batch 128 --seeds 32 "$@" 2>>"$WORK/bench.err" | tail -1)
  $PY - "$label" "$one" "$k32" <<'PYEOF' | tee -a "$WORK/pack.md"
import json, sys
label, one, k32 = sys.argv[1:]
def rate(line):
    try:
        return json.loads(line)["steps_per_s"]
    except Exception:
        return float("nan")
a, b = rate(one), rate(k32)
print(f"| {label} | {a:.0f} | {b:.0f} | {b / a:.1f}x |")
PYEOF
}
pack_row "tiny MLP 784-32-10" tiny_mlp
pack_row "MLP 784-256-256-10" mlp
pack_row "CNN" cnn
pack_row "tiny MLP, CUDA graph" tiny_mlp --cuda-graph
pack_row "MLP, CUDA graph" mlp --cuda-graph

{
  echo "GPU check, $(date -u +%F): $(cat "$WORK/gpu.txt")"
  echo "PyTorch $($PY -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda)'), $STEPS steps per run"
  echo
  echo "Batch 128, SGD, LR ramp, loss read every step; steps/s (higher is better)."
  echo
  echo "| run | lrtune engine | PyTorch DataLoader loop | PyTorch data-on-device loop | engine / DataLoader | engine / on-device |"
  echo "|---|---|---|---|---|---|"
  cat "$WORK/rows.md"
  echo
  echo "Packed seeds: one curve against K = 32 packed curves of the same model;"
  echo "seed-steps/s (target: 10x one curve's throughput)."
  echo
  echo "| model | 1 curve | 32 packed | gain |"
  echo "|---|---|---|---|"
  cat "$WORK/pack.md"
  echo
  cat "$OUT/range_tests.md"
} >"$OUT/gpu_table.md"
cat "$OUT/gpu_table.md"
