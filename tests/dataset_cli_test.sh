#!/usr/bin/env bash
# `lrtune` with data sets by reference, as a user runs it: sets written with
# the lines docs/engine.md gives (from NumPy and from PyTorch), used by name
# by `lrtune range-test --dataset NAME` embedded (the worker in the CLI
# finds them in $LRTUNE_DATA_DIR) and against a real lrtune-server and
# lrtune-worker --data-dir; `lrtune grid --dataset NAME` with epoch budgets
# planned from the set's size; names no worker has, and a broken set the
# worker leaves out, saying why.
#
#   bash tests/dataset_cli_test.sh path/to/lrtune path/to/lrtune-server \
#     path/to/lrtune-worker
set -u
BIN=$1
SERVER_BIN=$2
WORKER_BIN=$3
# shellcheck source=tests/testlib.sh
source "$(dirname "$0")/testlib.sh"
unset LRTUNE_SERVER LRTUNE_DATA_DIR
export XDG_DATA_HOME="$tmp/xdg"
export XDG_RUNTIME_DIR="$tmp/run"
mkdir -p "$XDG_RUNTIME_DIR" "$tmp/np" "$tmp/pt"

# Three separable blobs in 8 dims: 600 rows, 480 of them training.
cat >"$tmp/blobs.py" <<'PYEOF'
import numpy as np
rng = np.random.default_rng(0)
y = rng.integers(0, 3, size=600)
x = rng.normal(size=(600, 8)) + 3.0 * np.eye(3, 8)[y]
PYEOF
# docs/engine.md, "From NumPy" (x: features [N, ...], y: labels [N]).
(cd "$tmp/np" && $PY - <<'PYEOF'
exec(open("../blobs.py").read())
import json, os, numpy as np
os.makedirs("data/mine", exist_ok=True)
np.save("data/mine/x.npy", x.astype(np.float32)); np.save("data/mine/y.npy", y.astype(np.int64))
json.dump({"shape": list(x.shape[1:]), "dtype": "float32", "classes": 3}, open("data/mine/manifest.json", "w"))
PYEOF
)
check "the NumPy lines write a set" test -s "$tmp/np/data/mine/manifest.json"
# docs/engine.md, "From PyTorch" (x: float tensor [N, ...], y: long [N]).
(cd "$tmp/pt" && $PY - <<'PYEOF'
exec(open("../blobs.py").read())
import torch
x, y = torch.from_numpy(x).float(), torch.from_numpy(y)
import json, os, numpy as np
os.makedirs("data/mine", exist_ok=True)
np.save("data/mine/x.npy", x.float().numpy()); np.save("data/mine/y.npy", y.long().numpy())
json.dump({"shape": list(x.shape[1:]), "dtype": "float32", "classes": int(y.max()) + 1}, open("data/mine/manifest.json", "w"))
PYEOF
)
check "the PyTorch lines write the same set" \
  cmp -s "$tmp/np/data/mine/x.npy" "$tmp/pt/data/mine/x.npy"

RUN=(--model mlp --hidden 16 --threads 1 --steps 60 --batch-size 32
  --start-lr 1e-4 --json)
state_ok() {
  $PY -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["state"] == "succeeded", d["state"]
assert d["points"] >= 10, d["points"]
rec = d["recommendation"]
assert 0 < rec["min_lr"] < rec["max_lr"], rec' "$1"
}

# --- embedded: the CLI's worker reads $LRTUNE_DATA_DIR ---
export LRTUNE_DATA_DIR="$tmp/np/data"
run range-test "${RUN[@]}" --dataset mine
check "embedded --dataset NAME exit 0" test "$rc" = 0
cat "$tmp/err" >&2
check "embedded --dataset NAME succeeds with bounds" state_ok "$tmp/out"
run range-test "${RUN[@]}" --dataset other
check "embedded, a name the worker lacks exits 2" test "$rc" = 2
check "the refusal lists the worker's sets" \
  grep -q -- "run.data.name \"other\" is neither .*the registered worker has mine (--dataset)" "$tmp/err"
check "the refusal says where the embedded worker looks" \
  grep -q "the embedded worker reads data sets from $tmp/np/data" "$tmp/err"
cat >"$tmp/grid.yaml" <<'YAML'
grid:
  run:
    model: {kind: mlp, hidden: [16]}
    data: {name: iris}
    batch_size: 32
    device: {device: cpu, threads: 1}
  train:
    schedule: {kind: cosine, base_lr: 0.05}
  grid:
    axes:
      - budgets: {values: [{epochs: 1}, {epochs: 2}]}
YAML
run grid --spec "$tmp/grid.yaml" --dataset mine --json
check "embedded grid --dataset NAME exit 0" test "$rc" = 0
cat "$tmp/err" >&2
check "epoch budgets are planned from the set: 480 rows / 32 = 15 steps" $PY -c '
import json, sys
job = json.load(open(sys.argv[1]))
assert job["state"] == "JOB_STATE_SUCCEEDED", job["state"]
assert job["grid"]["run"]["data"]["description"]["train_samples"] == "600"
steps = sorted(int(t["train"]["steps"]) for t in job["trials"])
assert steps == [15, 30], steps' "$tmp/out"
unset LRTUNE_DATA_DIR

# --- remote: lrtune-worker --data-dir, a broken set beside the good one ---
mkdir -p "$tmp/pt/data/broken"
echo '{"shape": [8], "classes": 3}' >"$tmp/pt/data/broken/manifest.json"
port=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$SERVER_BIN" --listen "127.0.0.1:$port" --db "$tmp/server.db" \
  2>"$tmp/server.log" &
server_pid=$!
"$WORKER_BIN" --server "127.0.0.1:$port" --threads 1 \
  --data-dir "$tmp/pt/data" 2>"$tmp/worker.log" &
worker_pid=$!
trap 'kill "$worker_pid" "$server_pid" 2>/dev/null; rm -rf "$tmp"' EXIT
appears 20 "data sets: mine" "$tmp/worker.log"
check "the worker reports its set when it registers" \
  grep -q "data sets: mine" "$tmp/worker.log"
check "the worker says why it left the broken set out" \
  grep -q "left out broken: .*broken/manifest.json: \"dtype\" is required" \
  "$tmp/worker.log"
export LRTUNE_SERVER="127.0.0.1:$port"
run range-test "${RUN[@]}" --dataset mine
check "remote --dataset NAME exit 0" test "$rc" = 0
cat "$tmp/err" >&2
check "remote --dataset NAME succeeds with bounds" state_ok "$tmp/out"
cp "$tmp/out" "$tmp/remote.json"
check "the same set from NumPy and PyTorch gives the same bounds" $PY -c '
import json, sys
a = json.load(open(sys.argv[1]))["recommendation"]
b = json.load(open(sys.argv[2]))["recommendation"]
sys.exit(not (a["min_lr"] == b["min_lr"] and a["max_lr"] == b["max_lr"]))' \
  "$tmp/remote.json" <(LRTUNE_DATA_DIR="$tmp/np/data" LRTUNE_SERVER= \
    "$BIN" range-test "${RUN[@]}" --dataset mine 2>/dev/null)
run range-test "${RUN[@]}" --dataset broken
check "remote, the broken set is refused" test "$rc" = 2
check "remote refusal lists only the usable sets" \
  grep -q "the registered worker has mine (--dataset)" "$tmp/err"
run grid --spec "$tmp/grid.yaml" --dataset mine
check "remote grid --dataset NAME exit 0" test "$rc" = 0
check "remote grid ends succeeded" grep -q "succeeded$" "$tmp/out"

kill "$worker_pid" "$server_pid" 2>/dev/null
wait "$worker_pid" "$server_pid" 2>/dev/null
finish
