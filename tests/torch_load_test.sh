#!/usr/bin/env bash
# How lrtune opens LibTorch (worker/engine_loader.h).
#
# Its placeholders (worker/torch_placeholders.h) change nothing but what is
# mapped: with them, none of the libraries they stand for is loaded; every
# symbol of every library still loaded binds to the library it binds to
# without them (LD_DEBUG=bindings, both ways), a std:: template instance
# excepted, which may bind to another copy of the same code; a range test's
# curve is the same to the last digit; and a placeholder that cannot work
# (one for libc10) costs a second dlopen, not the run.
#
# OpenBLAS runs the kernels of the CPU's features (worker/blas_core.h), or
# those OPENBLAS_CORETYPE names when the user set it.
#
# lrtune-worker, linked with LibTorch, starts again with the variable set
# (ReexecWithBlasCore) and so runs the same kernels.
#
#   bash tests/torch_load_test.sh PROBE LRTUNE PLACEHOLDER_DIR BROKEN_DIR WORKER
set -u
PROBE=$1
BIN=$2
PLACEHOLDERS=$3
BROKEN=$4
WORKER=$5
# shellcheck source=tests/testlib.sh
source "$(dirname "$0")/testlib.sh"
unset LRTUNE_SERVER LRTUNE_TORCH_PLACEHOLDERS OPENBLAS_CORETYPE
export XDG_DATA_HOME="$tmp/xdg" XDG_RUNTIME_DIR="$tmp/run"
export LRTUNE_CACHE_DIR=off
mkdir -p "$XDG_RUNTIME_DIR"

mapfile -t names < <(ls "$PLACEHOLDERS")
echo "${#names[@]} placeholders in $PLACEHOLDERS"
check "the build made placeholders for this LibTorch" test "${#names[@]}" -gt 0

# probe OUT [ENV=VALUE...]: the objects mapped once the module is open, and
# every symbol binding made on the way (LD_DEBUG=bindings, in
# OUT.bindings.*), all of them at load (LD_BIND_NOW): none is left for the
# code that happened to run to make.
probe() {
  local out=$1
  shift
  env "$@" LD_BIND_NOW=1 LD_DEBUG=bindings LD_DEBUG_OUTPUT="$out.bindings" \
    "$PROBE" \
    >"$out" 2>"$out.err"
}
probe "$tmp/on"
check "the module opens with the placeholders" test $? = 0
probe "$tmp/off" LRTUNE_TORCH_PLACEHOLDERS=off
check "the module opens without them" test $? = 0
probe "$tmp/broken" LRTUNE_TORCH_PLACEHOLDERS="$BROKEN"
check "the module opens when a placeholder cannot work (the second try)" \
  test $? = 0
echo "objects mapped: $(lines "$tmp/on") with the placeholders," \
  "$(lines "$tmp/off") without"

# mapped_from NAME FILE: the directories (resolved) NAME was mapped from
mapped_from() {
  awk -F/ -v n="$1" '$NF == n' "$2" | xargs -r -n1 dirname | xargs -r realpath |
    sort -u
}
here=$(realpath "$PLACEHOLDERS")
for name in "${names[@]}"; do
  with=$(mapped_from "$name" "$tmp/on")
  without=$(mapped_from "$name" "$tmp/off")
  check "$name: mapped from the placeholders only" test "$with" = "$here"
  check "$name: without them, the real library" \
    bash -c '[[ -n $1 && $1 != "$2" ]]' _ "$without" "$here"
done
check "fewer objects mapped with them" \
  test "$(lines "$tmp/on")" -lt "$(lines "$tmp/off")"
check "the fallback maps none of them" \
  bash -c "! grep -q -F -e '$PLACEHOLDERS' -e '$BROKEN' '$tmp/broken'"

bindings_agree() {
  $PY - "$tmp/on" "$tmp/off" "$PLACEHOLDERS" <<'PY'
import glob, os, re, sys

on_maps, off_maps, placeholders = sys.argv[1:4]
binding = re.compile(
    r"binding file (\S+) \[\d+\] to (\S+) \[\d+\]: \S+ symbol `([^']+)'")


def bindings(prefix):
    out = {}
    for path in glob.glob(prefix + ".bindings.*"):
        for line in open(path, errors="replace"):
            m = binding.search(line)
            if m:
                out[(os.path.basename(m.group(1)), m.group(3))] = \
                    os.path.basename(m.group(2))
    return out


on, off = bindings(on_maps), bindings(off_maps)
# The real libraries mapped with the placeholders.
kept = {os.path.basename(l.strip()) for l in open(on_maps)} - set(
    os.listdir(placeholders))
std_template = ("_ZNSt", "_ZNKSt", "_ZSt")
checked, moved, bad = 0, 0, []
for (obj, sym), target in off.items():
    if obj not in kept:
        continue  # a library the placeholders kept out
    checked += 1
    now = on.get((obj, sym))
    if now == target:
        continue
    if now is not None and sym.startswith(std_template):
        moved += 1
        continue
    bad.append(f"{obj}: {sym} -> {target} without, {now} with")
print(f"{checked} bindings of the libraries still loaded; {moved} std:: "
      f"template instances bound to another copy; {len(bad)} differ")
for b in bad[:20]:
    print("  " + b)
sys.exit(1 if bad or checked < 1000 else 0)
PY
}
check "every binding is the same with and without the placeholders" \
  bindings_agree

# OpenBLAS's kernels: the CPU's widest (the probe prints OpenBLAS's choice).
want=$($PY - <<'PY'
flags = set()
for line in open("/proc/cpuinfo"):
    if line.startswith("flags"):
        flags = set(line.split(":", 1)[1].split())
        break
skylake = {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"}
print("SkylakeX" if skylake <= flags else
      "Haswell" if {"avx2", "fma"} <= flags else "")
PY
)
core() { sed -n 's/^openblas core: //p' "$1"; }
echo "OpenBLAS: $(core "$tmp/on.err") (this CPU: ${want:-older than Haswell})"
if [[ -n $want ]]; then
  check "OpenBLAS runs this CPU's $want kernels" \
    test "$(core "$tmp/on.err")" = "$want"
fi
probe "$tmp/user" OPENBLAS_CORETYPE=Sandybridge
check "OPENBLAS_CORETYPE set by the user is kept" \
  test "$(core "$tmp/user.err")" = Sandybridge
# The worker's last image: OpenBLAS prints "Core: NAME" when it loads.
worker_core() {
  env "$@" OPENBLAS_VERBOSE=2 "$WORKER" --help 2>&1 | sed -n 's/^Core: //p' |
    tail -1
}
if [[ -n $want ]]; then
  check "lrtune-worker runs this CPU's $want kernels" \
    test "$(worker_core)" = "$want"
fi
check "lrtune-worker keeps the user's OPENBLAS_CORETYPE" \
  test "$(worker_core OPENBLAS_CORETYPE=Sandybridge)" = Sandybridge

# The same range test, curve for curve, three ways.
SMALL=(range-test --model mlp --hidden 32 --dataset spirals --threads 1
       --steps 100 --seeds 2)
run "${SMALL[@]}" --csv "$tmp/on.csv"
check "range-test with the placeholders exit 0" test "$rc" = 0
LRTUNE_TORCH_PLACEHOLDERS=off run "${SMALL[@]}" --csv "$tmp/off.csv"
check "range-test without them exit 0" test "$rc" = 0
LRTUNE_TORCH_PLACEHOLDERS="$BROKEN" run "${SMALL[@]}" --csv "$tmp/broken.csv"
check "range-test with a broken placeholder exit 0" test "$rc" = 0
check "the curves with and without the placeholders are the same" \
  cmp "$tmp/on.csv" "$tmp/off.csv"
check "the curve after the fallback is the same" \
  cmp "$tmp/on.csv" "$tmp/broken.csv"
check "the curve has 2 seeds' points" test "$(lines "$tmp/on.csv")" -gt 100

finish
