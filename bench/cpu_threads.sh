#!/usr/bin/env bash
# How a CPU job's threads are split between LibTorch's pool and OpenBLAS's
# (worker/blas_core.h), measured: engine_bench's training steps per second
# for each model, with lrtune's split (--threads N, and the default 0), with
# every split forced through OPENBLAS_NUM_THREADS (which lrtune leaves
# alone, giving LibTorch the job's count), the same with a build from
# before the split (BEFORE_BUILD), and plain PyTorch (bench/pytorch_loop.py)
# at torch.set_num_threads(N). Medians of --rounds runs, configurations
# interleaved round by round. Prints a markdown table (bench/cpu_threads.md).
#
#   bench/cpu_threads.sh [--rounds 5] [--threads N]      # N: default nproc
#
# Environment: BUILD_DIR (default build), BEFORE_BUILD (optional: a build
# folder of an older commit), PYTHON (default /usr/bin/python3, with torch).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
BEFORE_BUILD=${BEFORE_BUILD:-}
PYTHON=${PYTHON:-/usr/bin/python3}
ROUNDS=5
N=$(nproc)
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --threads) N=$2; shift 2 ;;
    *) echo "unknown flag $1" >&2; exit 2 ;;
  esac
done
BENCH="$BUILD_DIR/bench/engine_bench"
[[ -x "$BENCH" ]] || { echo "build $BENCH first" >&2; exit 1; }
unset OPENBLAS_NUM_THREADS OMP_NUM_THREADS
# Every side on the kernels lrtune's binaries choose by the CPU's features
# (worker/blas_core.h; bench/whole_process.md): AVX-512 or AVX2.
if [[ -z "${OPENBLAS_CORETYPE:-}" ]]; then
  if grep -q avx512bw /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX
  elif grep -q avx2 /proc/cpuinfo; then export OPENBLAS_CORETYPE=Haswell; fi
fi

declare -A STEPS=([tiny_mlp]=1500 [mlp]=300 [cnn]=30)
MODELS=(tiny_mlp mlp cnn)
# label|command prefix|engine_bench or pytorch
CONFIGS=(
  "lrtune --threads 0 (default)|$BENCH|0|"
  "lrtune --threads 1|$BENCH|1|"
  "lrtune --threads $N|$BENCH|$N|"
  "forced: torch $N, OpenBLAS 1|$BENCH|$N|1"
  "forced: torch 1, OpenBLAS $N|$BENCH|1|$N"
  "forced: torch $N, OpenBLAS $N|$BENCH|$N|$N"
)
if [[ -n "$BEFORE_BUILD" ]]; then
  CONFIGS+=("before: --threads 0|$BEFORE_BUILD/bench/engine_bench|0|"
            "before: --threads $N|$BEFORE_BUILD/bench/engine_bench|$N|")
fi
CONFIGS+=("PyTorch, set_num_threads(1)|pytorch|1|"
          "PyTorch, set_num_threads($N)|pytorch|$N|")

declare -A RES
run() {  # model label bin threads blas
  local model=$1 bin=$3 threads=$4 blas=$5 env=()
  [[ -n "$blas" ]] && env=(OPENBLAS_NUM_THREADS="$blas")
  if [[ "$bin" == pytorch ]]; then
    env "${env[@]}" "$PYTHON" bench/pytorch_loop.py --model "$model" \
      --threads "$threads" --steps "${STEPS[$model]}" --subset 20000 2>&1 |
      tail -1 | grep -o '"steps_per_s": *[0-9.]*' | grep -o '[0-9.]*$'
  else
    env "${env[@]}" "$bin" --model "$model" --device cpu --threads "$threads" \
      --steps "${STEPS[$model]}" --batch 128 --subset 20000 2>&1 |
      tail -1 | grep -o '"steps_per_s":[0-9.]*' | cut -d: -f2
  fi
}
for ((r = 0; r < ROUNDS; r++)); do
  for model in "${MODELS[@]}"; do
    for c in "${CONFIGS[@]}"; do
      IFS='|' read -r label bin threads blas <<< "$c"
      RES["$model|$label"]+=" $(run "$model" "$label" "$bin" "$threads" "$blas")"
    done
  done
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {printf "%.0f", a[int((NR+1)/2)]}'; }

echo "| training steps/s (batch 128) | MLP 784-32-10 | MLP 784-256-256-10 | CNN |"
echo "|---|---:|---:|---:|"
for c in "${CONFIGS[@]}"; do
  IFS='|' read -r label _ <<< "$c"
  row="| $label |"
  for model in "${MODELS[@]}"; do
    # shellcheck disable=SC2086
    row+=" $(median ${RES["$model|$label"]}) |"
  done
  echo "$row"
done
echo
echo "OpenBLAS kernels: ${OPENBLAS_CORETYPE:-OpenBLAS default}; N = $N threads"
echo "$("$PYTHON" -c 'import torch; print("torch", torch.__version__)' 2>/dev/null)"
echo "medians of $ROUNDS rounds; $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
