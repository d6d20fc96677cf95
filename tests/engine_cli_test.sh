#!/usr/bin/env bash
# End-to-end test of `lrtune-engine` as a user runs it: a TorchScript module
# saved from Python (Debian's python3-torch) trained in a range test, the
# text and JSON-lines formats, and bad jobs refused with a reason.
#
#   bash tests/engine_cli_test.sh path/to/lrtune-engine
set -u
BIN=$1
# shellcheck source=tests/testlib.sh
source "$(dirname "$0")/testlib.sh"

# A small MLP scripted and saved by PyTorch in Python (torch.jit.script
# reads the class's source, so the script is a file, not stdin).
cat >"$tmp/make_module.py" <<'PYEOF'
import sys, torch
class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(2, 32)
        self.fc2 = torch.nn.Linear(32, 3)
    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))
torch.manual_seed(0)
torch.jit.save(torch.jit.script(Net()), sys.argv[1])
PYEOF
$PY "$tmp/make_module.py" "$tmp/mlp.pt"
check "python saved a module" test -s "$tmp/mlp.pt"

cat >"$tmp/job.json" <<'JSON'
{"kind": "range_test",
 "model": {"kind": "torchscript", "torchscript_path": "mlp.pt"},
 "data": {"name": "spirals", "samples": 600, "classes": 3},
 "optimizer": {"kind": "adam"}, "batch_size": 32,
 "device": {"device": "cpu", "threads": 1},
 "range_test": {"start_lr": 1e-5, "end_lr": 10, "steps": 120}}
JSON
run --job "$tmp/job.json"
check "torchscript range test exits 0" test "$rc" = 0
check "torchscript range test: points, then a result inside the ramp" $PY -c "
import json
lines = [json.loads(l) for l in open('$tmp/out')]
pts = [l for l in lines if l['type'] == 'point']
res = lines[-1]
assert res['type'] == 'result', res
assert [p['step'] for p in pts] == list(range(len(pts))), 'gap in steps'
assert len(pts) >= 50, len(pts)
r = res['recommendation']
assert 1e-5 <= r['min_lr'] < r['max_lr'] <= 10, r
assert min(p['loss'] for p in pts) < pts[0]['loss'] - 0.05, 'loss never fell'
"
run --job "$tmp/job.json" --format text
check "text format exits 0" test "$rc" = 0
check "text format prints the bounds" grep -q "CLR bounds" "$tmp/out"
check "text format prints progress on stderr" grep -q "step" "$tmp/err"

# Bad jobs and flags.
run --job "$tmp/missing.json"
check "missing job file exits 2" test "$rc" = 2
run --job "$tmp/job.json" --threads many
check "bad --threads exits 2" test "$rc" = 2
check "bad --threads says why" grep -q "threads must be an integer" "$tmp/err"
run --help
check "--help exits 0 and teaches --format" grep -q -- "--format" "$tmp/out"
head -c 300 /dev/urandom >"$tmp/random.pt"
sed 's/mlp.pt/random.pt/' "$tmp/job.json" >"$tmp/bad_module.json"
run --job "$tmp/bad_module.json" --format text
check "random TorchScript file fails the job (exit 1)" test "$rc" = 1
check "random TorchScript file: one clear line" test "$(wc -l <"$tmp/err")" -le 2
check "random TorchScript file names torchscript" grep -qi "torchscript" "$tmp/err"
echo '{"kind": "range_test", "range_test": {"start_lr": -1}}' >"$tmp/neg.json"
run --job "$tmp/neg.json"
check "negative start_lr is an error line" $PY -c "
import json; l = json.loads(open('$tmp/out').read().splitlines()[-1])
assert l['type'] == 'error' and 'start_lr' in l['message'], l"
echo '{"kind": "range_test", "modle": {}}' >"$tmp/typo.json"
run --job "$tmp/typo.json" --format text
check "unknown key is named" grep -q "modle" "$tmp/err"

finish
