#!/usr/bin/env bash
# Whole-process range tests, side by side in one run: `lrtune range-test`
# (embedded: store, coordinator and worker in the CLI's process) against a
# plain PyTorch range test (bench/pytorch_loop.py --range-test: interpreter,
# import, data, test), and lrtune's K seeds packed against unpacked. Every
# figure is the median of --repeat runs, the two sides alternating. Prints
# markdown tables, the versions and the date (bench/whole_process.md).
#
#   bench/whole_process.sh [--repeat 5] [--seeds "1 3 8"] [--whole-only]
#
# --whole-only skips the packing table (for a build from before --no-pack:
# BUILD_DIR=old-build bench/whole_process.sh --whole-only).
#
# Fashion-MNIST, first 20,000 training images, batch 128, 300 steps, LR
# 1e-7 -> 10, one CPU thread, SGD. Environment: BUILD_DIR (default build,
# holding client/lrtune), PYTHON (default /usr/bin/python3, with torch).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
PYTHON=${PYTHON:-/usr/bin/python3}
REPEAT=5
SEEDS="1 3 8"
WHOLE_ONLY=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --repeat) REPEAT=$2; shift 2 ;;
    --seeds) SEEDS=$2; shift 2 ;;
    --whole-only) WHOLE_ONLY=1; shift ;;
    *) echo "unknown flag $1" >&2; exit 2 ;;
  esac
done
LRTUNE="$BUILD_DIR/client/lrtune"
[[ -x "$LRTUNE" ]] || { echo "build $LRTUNE first" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export XDG_DATA_HOME="$work/data" XDG_RUNTIME_DIR="$work/run"
export LRTUNE_CACHE_DIR="$work/cache" OMP_NUM_THREADS=1
mkdir -p "$XDG_RUNTIME_DIR"

COMMON=(--dataset fashion-mnist --subset 20000 --batch-size 128 --steps 300
        --threads 1 --device cpu)

# seconds CMD...: wall-clock seconds of one run of CMD (output discarded).
seconds() {
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc
}
hidden_of() { [[ $1 == mlp ]] && echo 256,256 || echo 32; }  # MLP widths
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
spread() { printf '%s\n' "$@" | sort -g | awk 'NR==1{a=$1} {b=$1} END {printf "%.2f-%.2f", a, b}'; }
lrtune_rt() { "$LRTUNE" range-test "${COMMON[@]}" "$@"; }
pytorch_rt() {
  "$PYTHON" bench/pytorch_loop.py --range-test --subset 20000 --batch 128 \
    --steps 300 --threads 1 "$@"
}

# Warm the page cache and the decoded-data cache once, and read which
# OpenBLAS kernels each side runs (OPENBLAS_VERBOSE=2 prints "Core: NAME";
# lrtune's embedded stderr goes to embedded.log). lrtune chooses them by the
# CPU's features (worker/blas_core.h), PyTorch leaves it to OpenBLAS, which
# falls back to its slowest on a CPU model it does not know; the "same
# kernels" columns give PyTorch lrtune's.
OPENBLAS_VERBOSE=2 lrtune_rt --hidden 32 >/dev/null 2>&1
LRTUNE_BLAS=$(sed -n 's/^Core: //p' "$XDG_DATA_HOME/lrtune/embedded.log" | head -1)
PYTORCH_BLAS=$(OPENBLAS_VERBOSE=2 "$PYTHON" -c 'import torch' 2>&1 |
  sed -n 's/^Core: //p' | head -1)
pytorch_rt --model tiny_mlp >/dev/null

echo "| command that trains nothing | wall |"
echo "|---|---:|"
for cmd in "--help" "schedule --kind cosine --t-max 10 --steps 3" "jobs" \
           "range-test --help"; do
  t=()
  for ((i = 0; i < REPEAT; i++)); do
    # shellcheck disable=SC2086
    t+=("$(seconds "$LRTUNE" $cmd)")
  done
  "$PYTHON" -c "print('| \`lrtune $cmd\` | %.0f ms |' % ($(median "${t[@]}") * 1000))"
done
echo

echo "| model | seeds | lrtune | lrtune, no data cache | PyTorch | PyTorch / lrtune | PyTorch, same kernels | that / lrtune |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for model in tiny_mlp mlp; do
  hidden=$(hidden_of "$model")
  for k in 1 3; do
    l=() c=() p=() q=()
    for ((i = 0; i < REPEAT; i++)); do
      l+=("$(seconds lrtune_rt --hidden "$hidden" --seeds "$k")")
      c+=("$(LRTUNE_CACHE_DIR=off seconds lrtune_rt --hidden "$hidden" --seeds "$k")")
      p+=("$(seconds pytorch_rt --model "$model" --seeds "$k")")
      q+=("$(OPENBLAS_CORETYPE=$LRTUNE_BLAS seconds pytorch_rt --model "$model" --seeds "$k")")
    done
    lm=$(median "${l[@]}") cm=$(median "${c[@]}") pm=$(median "${p[@]}")
    qm=$(median "${q[@]}")
    "$PYTHON" -c "print('| $model (784-$hidden-10) | $k | %.2f s ($(spread "${l[@]}")) | %.2f s | %.2f s ($(spread "${p[@]}")) | %.2fx | %.2f s ($(spread "${q[@]}")) | %.2fx |' % ($lm, $cm, $pm, $pm / $lm, $qm, $qm / $lm))"
  done
done

if [[ $WHOLE_ONLY == 0 ]]; then
  echo
  echo "K seeds in one lrtune range test, packed (the default) and unpacked"
  echo "(--no-pack), whole process:"
  echo
  echo "| model | seeds | packed | unpacked | packed / one seed |"
  echo "|---|---:|---:|---:|---:|"
  for model in tiny_mlp mlp; do
    hidden=$(hidden_of "$model")
    one=
    for k in $SEEDS; do
      pk=() up=()
      for ((i = 0; i < REPEAT; i++)); do
        pk+=("$(seconds lrtune_rt --hidden "$hidden" --seeds "$k")")
        up+=("$(seconds lrtune_rt --hidden "$hidden" --seeds "$k" --no-pack)")
      done
      pm=$(median "${pk[@]}") um=$(median "${up[@]}")
      [[ -z $one ]] && one=$pm
      "$PYTHON" -c "print('| $model (784-$hidden-10) | $k | %.2f s | %.2f s | %.2fx |' % ($pm, $um, $pm / $one))"
    done
  done
fi
echo
echo "OpenBLAS kernels: lrtune ${LRTUNE_BLAS:-?}, PyTorch ${PYTORCH_BLAS:-?} (same kernels: ${LRTUNE_BLAS:-?})"
echo "lrtune: $("$LRTUNE" --version 2>&1 | head -1)"
echo "python: $("$PYTHON" -c 'import torch, sys; print("torch", torch.__version__, "python", sys.version.split()[0])')"
echo "medians of $REPEAT runs (min-max in brackets); $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc --all) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), family $(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | xargs) model $(grep -m1 '^model\s' /proc/cpuinfo | cut -d: -f2 | xargs)); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
