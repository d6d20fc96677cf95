#!/usr/bin/env bash
# End-to-end test of the `lrtune` CLI's server-free commands, run as a user
# runs them: output, exit codes, and one-line errors on bad input.
#
#   bash tests/cli_test.sh path/to/lrtune
set -u
BIN=$1
# shellcheck source=tests/testlib.sh
source "$(dirname "$0")/testlib.sh"

# --- schedule ---
run schedule --kind one_cycle --max-lr 0.1 --total-steps 100 --csv
check "one_cycle exit 0" test "$rc" = 0
check "one_cycle header + 100 rows" test "$(lines "$tmp/out")" = 101
check "one_cycle header" test "$(head -1 "$tmp/out")" = "step,lr,momentum"
check "one_cycle first lr is max_lr/25 with momentum 0.95" \
  $PY -c "import sys; s,l,m=open('$tmp/out').read().split()[1].split(','); \
sys.exit(not(abs(float(l)-0.004)<1e-15 and abs(float(m)-0.95)<1e-15))"
check "one_cycle peak at step 29" $PY -c "
import csv,sys
rows=list(csv.DictReader(open('$tmp/out')))
lrs=[float(r['lr']) for r in rows]
sys.exit(not(lrs.index(max(lrs))==29 and abs(max(lrs)-0.1)<1e-12))"

# WSD with the general warm-up: 4 LinearLR steps, then 20 steps of wsd
# whose last 5 cool down (linear) to 0.
run schedule --kind wsd --base-lr 0.2 --total-steps 20 --cooldown-steps 5 \
  --cooldown linear --warmup-steps 4 --csv
check "wsd exit 0" test "$rc" = 0
check "wsd: warm-up 4 + 20 steps" test "$(lines "$tmp/out")" = 25
check "wsd: warm-up from 0.02, stable at 0.2, linear cooldown to 0.04" \
  $PY -c "
import csv,sys
lrs=[float(r['lr']) for r in csv.DictReader(open('$tmp/out'))]
ok = abs(lrs[0]-0.02)<1e-12 and all(abs(x-0.2)<1e-12 for x in lrs[4:19]) \
  and abs(lrs[19]-0.2)<1e-12 and abs(lrs[23]-0.2*(1-4/5))<1e-12
sys.exit(not ok)"
run schedule --kind fractal --base-lr 0.01 --fractal-period 4 \
  --fractal-kappa 100 --steps 8 --csv
check "fractal: 8 steps" test "$(lines "$tmp/out")" = 9
check "fractal: its period of 4 repeats" $PY -c "
import csv,sys
lrs=[float(r['lr']) for r in csv.DictReader(open('$tmp/out'))]
sys.exit(not(lrs[:4]==lrs[4:] and max(lrs)>0.1 and min(lrs)>0.01))"
run schedule --kind fractal --fractal-period 6
check "fractal: a period that is no power of 2 names the flag" \
  grep -q -- "--fractal-period must be a power of 2" "$tmp/err"
run schedule --kind wsd --total-steps 10 --cooldown sqrt
check "wsd: a bad cooldown shape exits 2" test "$rc" = 2
check "wsd: the error lists the shapes" \
  grep -q -- "--cooldown: 'sqrt' is not one of linear, cosine, 1-sqrt" "$tmp/err"

# Growth and decay profiles: a cyclic exp profile rises from eta_min to
# base_lr over t0 steps and falls back over the next t0; a rex growth as a
# cosine's warm-up starts at the warm-up's first LR.
run schedule --kind profile --profile exp --profile-mode cyclic --t0 4 \
  --eta-min 0.01 --base-lr 0.1 --steps 9 --csv
check "profile exit 0" test "$rc" = 0
check "cyclic profile: trough, peak at t0, trough at 2 t0, symmetric" $PY -c "
import csv,sys
lrs=[float(r['lr']) for r in csv.DictReader(open('$tmp/out'))]
ok = abs(lrs[0]-0.01)<1e-15 and abs(lrs[4]-0.1)<1e-15 and abs(lrs[8]-0.01)<1e-15 \
  and all(abs(lrs[4-i]-lrs[4+i])<1e-15 for i in range(5)) and lrs[1]<lrs[2]<lrs[3]
sys.exit(not ok)"
run schedule --kind cosine --t-max 10 --warmup-steps 5 --warmup-shape rex \
  --warmup-start-factor 0.1 --base-lr 0.2 --steps 6 --csv
check "rex warm-up: from 0.02, concave, then the cosine's base_lr" $PY -c "
import csv,sys
lrs=[float(r['lr']) for r in csv.DictReader(open('$tmp/out'))]
ok = abs(lrs[0]-0.02)<1e-15 and abs(lrs[5]-0.2)<1e-15 \
  and lrs[1]-lrs[0] > lrs[4]-lrs[3] > 0
sys.exit(not ok)"
run schedule --kind profile --profile square --t0 3
check "profile: a bad shape names --profile and the shapes" \
  grep -q -- "--profile: 'square' is not one of linear, cosine, exp, rex" "$tmp/err"
run schedule --kind profile --steps 3
check "profile: a missing half-cycle names --t0" \
  grep -q -- "--t0 must be >= 1, got 0" "$tmp/err"

# Booleans are flags: --three-phase on its own, --no-X to turn a default off.
run schedule --kind one_cycle --max-lr 0.1 --total-steps 30 --three-phase --csv
check "--three-phase alone is a flag" test "$rc" = 0
check "three-phase one_cycle ends at max_lr/25/1e4" $PY -c "
import csv,sys
lrs=[float(r['lr']) for r in csv.DictReader(open('$tmp/out'))]
sys.exit(not abs(lrs[-1]-0.1/25/1e4)<1e-15)"
run schedule --kind triangular --base-lr 0.01 --max-lr 0.1 --step-size-up 2 \
  --steps 3 --no-cycle-momentum --csv
check "--no-cycle-momentum leaves the momentum column empty" \
  test "$(cut -d, -f3 "$tmp/out" | sed 1d | sort -u)" = ""

run schedule --kind cosine --t-max 10 --steps 5
check "cosine table has 5 lines" test "$(lines "$tmp/out")" = 5
check "cosine has no momentum column" \
  test "$(awk '{print NF}' "$tmp/out" | sort -u)" = 2

run schedule --kind multistep --milestones 2,4,4 --gamma 0.5 --steps 6 --csv
check "multistep repeated milestone decays twice" \
  test "$(sed -n 6p "$tmp/out" | cut -d, -f2)" = "0.012500000000000001"

run schedule --kind cosine --t-max 4 --warmup-steps 2 --steps 4 --csv
check "warmup then cosine restarts at step 2" \
  test "$(sed -n 4p "$tmp/out" | cut -d, -f2)" = "0.10000000000000001"

# --- schedule: bad input ---
run schedule --kind zigzag --steps 3
check "unknown kind exits 2" test "$rc" = 2
check "unknown kind names the value" grep -q "unknown schedule kind 'zigzag'" "$tmp/err"
check "unknown kind is one line" test "$(lines "$tmp/err")" = 1
run schedule --kind step --step-size 2 --steps -4
check "negative steps exits 2" test "$rc" = 2
check "negative steps says so" grep -q "steps must be >= 0" "$tmp/err"
run schedule --kind exponential --gamma 0.9
check "unbounded without --steps exits 2" test "$rc" = 2
run schedule --kind one_cycle --max-lr 0.1 --total-steps 10 --steps 11
check "beyond the length exits 2" test "$rc" = 2
check "beyond the length says so" grep -q "beyond the schedule's length" "$tmp/err"
run schedule --kind triangular --base-lr 0.1 --max-lr 0.01 --steps 3
# Errors name the flags the user typed.
check "max below base names both flags" \
  grep -q -- "--max-lr (0.01) must be >= --base-lr (0.1)" "$tmp/err"
run schedule --kind one_cycle --max-lr 0.1
check "a missing length names --total-steps" \
  grep -q -- "--total-steps must be >= 1, got 0" "$tmp/err"
run schedule --kind cosine --t-max 0 --warmup-steps 3
check "under a warm-up, the schedule's own flag" \
  grep -q -- "--t-max must be >= 1, got 0" "$tmp/err"
run schedule --kind step --gamma fast --steps 3
check "non-numeric flag names it" \
  grep -q -- "--gamma: 'fast' is not a number" "$tmp/err"
run schedule --kind step --no-such-flag 3
check "unknown flag exits 2" test "$rc" = 2
run
check "no command at all exits 2" test "$rc" = 2
check "and prints the help, the commands in it" \
  grep -q "^Usage: lrtune \[OPTIONS\] SUBCOMMAND$" "$tmp/err"
check "the help lists range-test" grep -q "^  range-test " "$tmp/err"

# --- analyze: a clean U-shaped curve (min near lr 1e-2, diverges after) ---
$PY - "$tmp/curve.csv" <<'PYEOF'
import math, random, sys
random.seed(7)
n = 200
with open(sys.argv[1], "w") as f:
    f.write("step,lr,loss\n")
    for i in range(n):
        lr = 1e-6 * (10 / 1e-6) ** (i / (n - 1))
        x = math.log10(lr)
        loss = 2.3 - 2.0 / (1 + math.exp(-(x + 4) * 3)) + 0.5 * math.exp(3 * (x + 2))
        f.write(f"{i},{lr!r},{loss + random.gauss(0, 0.01)!r}\n")
PYEOF
run analyze --csv "$tmp/curve.csv" --iters-per-epoch 100 --json
check "analyze exit 0" test "$rc" = 0
check "analyze json keys and bounds" $PY -c "
import json, sys
r = json.load(open('$tmp/out'))
for k in ['min_lr','max_lr','stepsize_iterations','lr_valley','lr_slide','lr_minimum',
          'lr_steep','lr_steepest','lr_lowest','warnings']:
    assert k in r, k
# fastai's suggestions are lagged: its minimum/10 x 10 is right of the
# zero-lag lowest point.
assert r['lr_minimum'] * 10 > r['lr_lowest'], r
assert 1e-6 <= r['min_lr'] < r['max_lr'] <= 1e-1, r
assert 3 <= r['max_lr'] / r['min_lr'] <= 10 + 1e-9, r
assert r['stepsize_iterations'] == 400, r
"
# fastai reads its curve from num_it // 10 on: a test planned for 2000
# steps of which 200 were recorded leaves fastai nothing to read (as
# lr_find would), while lrtune's own positions stay.
run analyze --csv "$tmp/curve.csv" --planned-steps 2000 --json
check "analyze --planned-steps sets fastai's window" $PY -c "
import json
a = json.load(open('$tmp/out'))
assert all(a[k] is None for k in ['lr_valley','lr_slide','lr_minimum','lr_steep']), a
assert a['lr_lowest'] is not None and a['max_lr'] > 0, a
"
run analyze --csv "$tmp/curve.csv"
check "analyze text names the bounds" grep -q "CLR bounds" "$tmp/out"
"$BIN" analyze --csv - --json <"$tmp/curve.csv" >"$tmp/out2" 2>/dev/null
check "analyze reads stdin" $PY -c "import json; json.load(open('$tmp/out2'))"

# --- analyze: bad input ---
run analyze --csv "$tmp/missing.csv"
check "missing file exits 2" test "$rc" = 2
check "missing file one line" test "$(lines "$tmp/err")" = 1
check "missing file named" grep -q "missing.csv" "$tmp/err"
printf 'lr,loss\n0.001,2.3\n0.002,abc\n' >"$tmp/bad.csv"
run analyze --csv "$tmp/bad.csv"
check "text in a number column exits 2" test "$rc" = 2
check "text in a number column names line and column" \
  grep -q "line 3.*loss" "$tmp/err"
printf 'rate,loss\n0.001,2.3\n' >"$tmp/nolr.csv"
run analyze --csv "$tmp/nolr.csv"
check "missing lr column exits 2" test "$rc" = 2
check "missing lr column named" grep -q "lr" "$tmp/err"
run analyze --csv "$tmp/curve.csv" --smoothing 1.5
check "a bad option exits 2" test "$rc" = 2
check "a bad option names the flag typed" \
  grep -q -- "--smoothing must be in \[0, 1), got 1.5" "$tmp/err"
run analyze --csv "$tmp/curve.csv" --stepsize-k 1
check "--stepsize-k named as typed" grep -q -- "--stepsize-k must be in" "$tmp/err"

# --- help ---
run --help
check "--help exits 0" test "$rc" = 0
run schedule --help
check "schedule --help lists --max-lr" grep -q -- "--max-lr" "$tmp/out"
run
check "no command exits 2" test "$rc" = 2

finish
