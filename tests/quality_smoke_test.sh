#!/usr/bin/env bash
# The advice-quality study in small (bench/quality/): one tiny setting through
# every stage of quality_study, then report.py. Checks that each stage writes
# what the next reads, that rules land inside the range test's span, that a
# second run trains nothing again, and that bad usage is refused.
#
#   bash tests/quality_smoke_test.sh path/to/quality_study
set -u
BIN=$1
# shellcheck source=tests/testlib.sh
source "$(dirname "$0")/testlib.sh"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SET=$ROOT/bench/quality/settings_smoke.json
OUT=$tmp/results

mkdir -p "$OUT"
run --settings "$SET" --out "$OUT" --stage curves
check "curves stage exits 0" test "$rc" = 0
check "one curve line" test "$(cat "$OUT"/curves-*.jsonl | wc -l)" = 1
# The ramp runs past divergence; only a NaN loss ends a curve early.
check "three seeds, each up the ramp from 1e-5" $PY -c "
import json, sys
j = json.loads(open(sys.argv[1]).read())
assert len(j['seeds']) == 3, j.keys()
for s in j['seeds']:
    assert 60 <= len(s['lr']) <= 120 and abs(s['lr'][0] - 1e-5) < 1e-12, len(s['lr'])
    assert s['lr'] == sorted(s['lr'])
" "$OUT/curves-0.jsonl"

# Two shards share the grid and the advice.
"$BIN" --settings "$SET" --out "$OUT" --stage train --shard 0/2 2>"$tmp/e0" &
p0=$!
"$BIN" --settings "$SET" --out "$OUT" --stage train --shard 1/2 2>"$tmp/e1"
rc1=$?
wait $p0
rc0=$?
check "both shards exit 0" test "$rc0$rc1" = 00
# 3 grid points x 3 seeds x (1cycle + CLR) = 18 oracle runs, plus the rules'.
check "at least the 18 oracle runs" test "$(cat "$OUT"/runs-*.jsonl | wc -l)" -ge 18
check "no run trained twice" test \
  "$(cat "$OUT"/runs-*.jsonl | $PY -c 'import json,sys; k=[json.loads(l)["key"] for l in sys.stdin]; print(len(k)-len(set(k)))')" = 0
check "advice for lrtune and the four classic rules" test \
  "$($PY -c 'import json,sys; print(len({json.loads(l)["rule"] for l in open(sys.argv[1])}))' "$OUT/advice.jsonl")" = 5
check "lrtune's max_lr inside the ramp" $PY -c "
import json, sys
for l in open(sys.argv[1]):
    a = json.loads(l)
    if a['rule'] == 'lrtune':
        assert all(1e-5 <= v <= 10 for v in a['max_lr']), a
        d = a['detail']
        assert min(d['per_seed_max_lr']) <= d['max_lr'] <= max(d['per_seed_max_lr']), d
" "$OUT/advice.jsonl"

before=$(cat "$OUT"/runs-*.jsonl | wc -l)
run --settings "$SET" --out "$OUT" --stage train
check "a second run trains nothing again" test \
  "$(cat "$OUT"/runs-*.jsonl | wc -l)" = "$before"

$PY "$ROOT/bench/quality/report.py" "$SET" "$OUT" >"$tmp/report.md"
check "report exits 0" test $? = 0
check "report has the setting's row with an oracle and a gap" grep -qE \
  '^\| mlp32-digits-sgdm-b64 \| choose \| 2 \| [0-9.e-]+ (\(edge\) )?\| [0-9.]+ \| [0-9.e-]+ \| -?[0-9.]+ \|' \
  "$tmp/report.md"
check "report summarises the gaps" grep -q '^- all: 1 rows; lrtune gap max' "$tmp/report.md"

# The candidates stage trains the LRs a screen lists (rule_screen.py), here
# the oracle's best grid LR again at fresh seeds, which report.py shows as
# "oracle again".
best=$($PY -c "
import sys
sys.path.insert(0, sys.argv[1])
import report
s = report.Study(sys.argv[2], sys.argv[3])
print(s.oracle(s.settings[0], 'one_cycle', 2)[0])
" "$ROOT/bench/quality" "$SET" "$OUT")
echo "{\"setting\": \"mlp32-digits-sgdm-b64\", \"rule\": \"oracle_again\", \"max_lr\": [$best, $best, $best], \"seeds\": [3, 4, 5]}" \
  >"$OUT/candidates.jsonl"
before=$(cat "$OUT"/runs-*.jsonl | wc -l)
run --settings "$SET" --out "$OUT" --stage candidates
check "candidates stage exits 0" test "$rc" = 0
check "three runs at the fresh seeds" test \
  "$(cat "$OUT"/runs-*.jsonl | wc -l)" = "$((before + 3))"
$PY "$ROOT/bench/quality/report.py" "$SET" "$OUT" >"$tmp/report.md"
check "report gives the oracle again" grep -q \
  "the oracle's own LR at fresh seeds: gap max" "$tmp/report.md"

# Six seeds: a second replicate at seeds 3, 4, 5 (its own curves, advice and
# grid), pooled with the first by pooled.py (bench/quality/replicate.sh).
OUT_B=$tmp/results-b
mkdir -p "$OUT_B"
$PY "$ROOT/bench/quality/pooled.py" --replicate-settings "$SET" "$OUT_B/settings.json"
check "replicate settings at seeds 3, 4, 5 without the CLR grid" $PY -c "
import json, sys
s = json.load(open(sys.argv[1]))['settings'][0]
assert s['job']['range_test']['seeds'] == [3, 4, 5] and s['clr'] is False, s
" "$OUT_B/settings.json"
run --settings "$OUT_B/settings.json" --out "$OUT_B" --stage curves
run --settings "$OUT_B/settings.json" --out "$OUT_B" --stage train
check "the replicate trains" test "$rc" = 0
# Only lrtune's own CLR advice trains triangular runs there (3 seeds x 1
# budget), no grid; every run at seeds 3, 4, 5.
check "the replicate: no CLR grid, seeds 3, 4, 5 only" $PY -c "
import glob, json, sys
runs = [json.loads(l) for f in glob.glob(sys.argv[1] + '/runs-*.jsonl') for l in open(f)]
assert sum(r['schedule'] == 'triangular' for r in runs) <= 3, len(runs)
assert {r['seed'] for r in runs} == {3, 4, 5}, {r['seed'] for r in runs}
" "$OUT_B"
$PY "$ROOT/bench/quality/pooled.py" "$SET" "$OUT" "$OUT_B" >"$tmp/pooled.md"
check "pooled exits 0" test $? = 0
check "pooled has the row and a summary" grep -q '^- all: 1 rows; lrtune gap max' \
  "$tmp/pooled.md"
check "pooled gives the noise floor" grep -q '^- noise floor' "$tmp/pooled.md"
# A replicate pooled with itself is the replicate: report.py's gap.
check "one replicate pooled with itself gives report.py's lrtune gap" $PY -c "
import sys
sys.path.insert(0, sys.argv[1])
import pooled, report
a = next(report.Study(sys.argv[2], sys.argv[3]).rows())
p = next(pooled.rows(sys.argv[2], sys.argv[3], sys.argv[3]))
assert abs(a['lrtune_gap'] - p['lrtune_gap']) < 1e-9, (a, p)
assert abs(p['split_noise']) < 1e-12 and p['oracle_lr'] == a['oracle_lr'], p
" "$ROOT/bench/quality" "$SET" "$OUT"

echo '{"setting": "mlp32-digits-sgdm-b64", "rule": "x"}' >"$OUT/candidates.jsonl"
run --settings "$SET" --out "$OUT" --stage candidates
check "a candidate without max_lr exits 1" test "$rc" = 1
check "and names the line" grep -q 'candidates.jsonl line 1' "$tmp/err"

run --settings "$SET" --out "$OUT" --stage nope
check "a bad stage exits 2" test "$rc" = 2
check "and names the flag" grep -q -- '--stage must be' "$tmp/err"
run --settings "$tmp/missing.json" --out "$OUT" --stage curves
check "a missing settings file exits 1 naming it" test "$rc" = 1
check "and names the file" grep -q 'missing.json' "$tmp/err"
finish
