#!/usr/bin/env bash
# End-to-end test of `lrtune range-test` as a user runs it: the embedded
# default (coordinator and worker inside the CLI's process), the same run
# against a real lrtune-server and lrtune-worker (--server, LRTUNE_SERVER),
# the --json contract, the --csv curve, and the exit codes (2 bad flag,
# 4 unreachable); --dataset FILE.csv[.gz]; the embedded store read later
# (`jobs`, `get`, `watch`); `lrtune grid` and `submit`
# embedded and remote, and their --plot. Every run has its own
# XDG_DATA_HOME. (TLS: tests/client_tls_test.sh; --dataset NAME, data sets
# by reference: tests/dataset_cli_test.sh.)
#
#   bash tests/client_test.sh path/to/lrtune path/to/lrtune-server \
#     path/to/lrtune-worker
set -u
BIN=$1
SERVER_BIN=$2
WORKER_BIN=$3
# shellcheck source=tests/testlib.sh
source "$(dirname "$0")/testlib.sh"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
unset LRTUNE_SERVER
export XDG_DATA_HOME="$tmp/xdg"
export XDG_RUNTIME_DIR="$tmp/run"  # where the embedded socket goes
mkdir -p "$XDG_RUNTIME_DIR"

SMALL=(--model mlp --hidden 32 --dataset spirals --threads 1)

# The --json contract: the keys, and a curve of at least 10 points.
json_ok() {
  $PY -c '
import json, sys
d = json.load(open(sys.argv[1]))
rec = d["recommendation"]
keys = ["min_lr", "max_lr", "stepsize_iterations", "stepsize_epochs",
        "lr_valley", "lr_slide", "lr_minimum", "lr_steep", "lr_steepest",
        "lr_lowest", "one_cycle", "warnings"]
missing = [k for k in ["job_id", "points", "wall_seconds"] if k not in d]
missing += [k for k in keys if k not in rec]
assert not missing, missing
assert d["state"] == "succeeded", d["state"]
assert d["points"] >= 10, d["points"]
assert d["job_id"], d
assert 0 < rec["min_lr"] < rec["max_lr"], rec
assert isinstance(rec["warnings"], list)
assert "max_lr" in rec["one_cycle"]
' "$1"
}

# --- embedded ---
start=$(date +%s.%N)
run range-test "${SMALL[@]}" --steps 100 --json --csv "$tmp/curve.csv"
echo "embedded range test: $(echo "$(date +%s.%N) - $start" | bc) s"
check "embedded exit 0" test "$rc" = 0
cat "$tmp/err" >&2
cp "$tmp/out" "$tmp/embedded.json"
check "embedded --json contract" json_ok "$tmp/embedded.json"
check "embedded prints one line of JSON" test "$(lines "$tmp/out")" = 1
check "embedded stderr is empty on success" test ! -s "$tmp/err"
check "the worker's log goes to embedded.log" \
  grep -q "lrtune-worker: registered" "$XDG_DATA_HOME/lrtune/embedded.log"
check "the store is in XDG_DATA_HOME" test -s "$XDG_DATA_HOME/lrtune/jobs.db"
check "the socket directory is removed" test -z "$(ls -A "$XDG_RUNTIME_DIR")"
check "--csv header" test "$(head -1 "$tmp/curve.csv")" = \
  "seed,step,lr,loss,smoothed"
check "--csv has one row per point" test "$(($(lines "$tmp/curve.csv") - 1))" = \
  "$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["points"])' \
    "$tmp/embedded.json")"
# The range test ran plain SGD (momentum 0): analyze is told so, as it
# cannot read the optimizer from a CSV.
"$BIN" analyze --csv "$tmp/curve.csv" --momentum 0 --json \
  >"$tmp/analyzed.json" 2>&1
check "lrtune analyze reads the --csv curve" test $? = 0
check "analyze finds the same min_lr" $PY -c '
import json, sys
a = json.load(open(sys.argv[1]))["recommendation"]["min_lr"]
b = json.load(open(sys.argv[2]))["min_lr"]
sys.exit(not abs(a - b) <= 1e-9 * abs(a))' "$tmp/embedded.json" "$tmp/analyzed.json"

# Smith's original test: bounds from the validation metric.
run range-test "${SMALL[@]}" --steps 120 --metric val_loss
check "--metric val_loss exit 0" test "$rc" = 0
check "--metric val_loss says what it read" \
  grep -q "read from       val_loss, evaluated every 2 steps on 512 samples" \
  "$tmp/out"
run range-test "${SMALL[@]}" --metric val_accuracy --eval-every 0
check "--eval-every 0 with a validation metric exits 2" test "$rc" = 2
check "and names the flag" grep -q -- "--eval-every must be in" "$tmp/err"

# --plot: a well-formed SVG with the expected series.
svg_ok() {
  $PY - "$1" "$2" <<'PY'
import sys
import xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
seeds = int(sys.argv[2])
ids = {e.get("id") for e in root.iter() if e.get("id")}
want = {"bounds", "axes"} | {f"raw-{s}" for s in range(seeds)} \
    | {f"smoothed-{s}" for s in range(seeds)}
assert root.tag == "{http://www.w3.org/2000/svg}svg", root.tag
assert want <= ids, sorted(want - ids)
assert any(i.startswith("lr-") for i in ids), "no suggestion marked"
for line in root.iter("{http://www.w3.org/2000/svg}polyline"):
    points = line.get("points").split()
    assert len(points) >= 10, (line.get("id"), len(points))
PY
}
run range-test "${SMALL[@]}" --steps 100 --seeds 2 --plot "$tmp/curve.svg"
check "--plot exit 0" test "$rc" = 0
check "--plot writes a well-formed SVG with raw and smoothed curves per seed, the bounds and the suggestions" \
  svg_ok "$tmp/curve.svg" 2

# Commands that train nothing never load LibTorch: the engine is a module
# opened when the embedded service first trains (worker/engine_loader.h).
LD_DEBUG=files run schedule --kind cosine --t-max 10 --steps 3
check "lrtune schedule exit 0" test "$rc" = 0
check "lrtune schedule loads neither LibTorch nor the engine module" \
  bash -c "! grep -E -q 'libtorch_cpu|lrtune_torch_engine' '$tmp/err'"
LD_DEBUG=files run range-test "${SMALL[@]}" --steps 20
check "lrtune range-test loads the engine module (the embedded log has the loader's trace)" \
  grep -q "lrtune_torch_engine.so" "$XDG_DATA_HOME/lrtune/embedded.log"
LRTUNE_TORCH_ENGINE=$tmp/nope.so run range-test "${SMALL[@]}" --steps 20
check "a missing engine module exits 1" test "$rc" = 1
check "a missing engine module is named, with the places tried" grep -q \
  "cannot load the training engine lrtune_torch_engine.so; tried $tmp/nope.so (not there)" \
  "$tmp/err"
check "a missing engine module's error says how to fix it" \
  grep -q "Set LRTUNE_TORCH_ENGINE" "$tmp/err"

# A second run uses the same store: job ids differ, both are kept.
run range-test "${SMALL[@]}" --steps 20 --json
check "second embedded run exit 0" test "$rc" = 0
check "second run is a new job" test "$($PY -c '
import json, sys
print(json.load(open(sys.argv[1]))["job_id"] != json.load(open(sys.argv[2]))["job_id"])' \
  "$tmp/out" "$tmp/embedded.json")" = True

# The embedded store's jobs, read later without a server (no LibTorch).
second=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["job_id"])' "$tmp/out")
run jobs
check "embedded jobs exit 0" test "$rc" = 0
check "embedded jobs lists the second run first" \
  test "$(sed -n 2p "$tmp/out" | cut -d' ' -f1)" = "$second"
first=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["job_id"])' "$tmp/embedded.json")
check "embedded jobs lists the first run too" grep -q "^$first " "$tmp/out"
check "jobs gives a finished range test's bounds" \
  grep -q "^$first .* succeeded .*  max_lr [0-9.e-]*  min_lr [0-9.e-]*$" "$tmp/out"
run get "$second" --plot "$tmp/later.svg"
check "embedded get exit 0" test "$rc" = 0
check "embedded get prints the summary" grep -q "^  CLR bounds " "$tmp/out"
check "embedded get --plot draws the curve" grep -q "<polyline" "$tmp/later.svg"
run watch "$second"
check "embedded watch of a finished job exit 0" test "$rc" = 0
check "watch ends with the summary get prints" grep -q "^  CLR bounds " "$tmp/out"
run get j-nonesuch
check "embedded get of an unknown job exits 2" test "$rc" = 2
check "embedded get of an unknown job names it" grep -q "j-nonesuch not found" "$tmp/err"
run jobs --db "$tmp/none/jobs.db"
check "jobs on a missing store exits 2" test "$rc" = 2
check "jobs on a missing store names it" grep -q "no job store at $tmp/none/jobs.db" "$tmp/err"
check "jobs on a missing store does not create it" test ! -e "$tmp/none"

job_state() {
  $PY -c '
import sqlite3, sys
print(sqlite3.connect(sys.argv[1]).execute(
    "select state from jobs order by num desc limit 1").fetchone()[0])' \
    "$XDG_DATA_HOME/lrtune/jobs.db"
}
wait_for_task() {
  appears 30 "lrtune-worker: slot 0 (cpu): task" "$XDG_DATA_HOME/lrtune/embedded.log"
}
# start_long_run OUT ERR: an embedded range test that runs until stopped,
# in the background ($pid); returns once its task has started.
start_long_run() {
  rm -f "$XDG_DATA_HOME/lrtune/embedded.log"
  "$BIN" range-test "${SMALL[@]}" --steps 1000000 >"$1" 2>"$2" &
  pid=$!
  wait_for_task
}

# While an embedded run holds the store, jobs, get, watch and cancel from
# another process go through its service: the running job is listed,
# followed live and cancelled.
check "a long embedded run starts" start_long_run "$tmp/owner.out" "$tmp/owner.err"
run jobs
check "jobs while an embedded run holds the store exits 0" test "$rc" = 0
live=$(awk 'NR == 2 {print $1}' "$tmp/out")
check "jobs lists the running job" grep -q "^$live  *range-test running" "$tmp/out"
run get "$live" --json
check "get of the running job exits 0" test "$rc" = 0
check "get of the running job says running" grep -q '"JOB_STATE_RUNNING"' "$tmp/out"
run get "$live"
check "get of the running job says how to follow it" \
  grep -q "^range test $live: running, 0/1 tasks done; lrtune watch $live follows it" "$tmp/out"
"$BIN" watch "$live" --json >"$tmp/watch.out" 2>"$tmp/watch.err" &
watcher=$!
check "watch follows the running job's points" \
  appears 10 '"point"' "$tmp/watch.out"
run cancel "$live" --reason "seen enough"
check "cancel of the running job exits 0" test "$rc" = 0
check "cancel says cancelled" grep -q "job $live: cancelled" "$tmp/out"
wait "$watcher"
check "watch ends with the cancelled job, exit 3" test "$?" = 3
wait "$pid"
check "the run cancelled from outside exits 3" test "$?" = 3
check "the run says its job was cancelled, and why" \
  grep -q "job $live was cancelled: seen enough" "$tmp/owner.err"
check "the run's job is cancelled in the store" test "$(job_state)" = cancelled
run jobs
check "jobs gives why a cancelled job ended" \
  grep -q "^$live .* cancelled .*  seen enough$" "$tmp/out"

# Ctrl-C cancels the embedded job and exits 130.
check "a long embedded run starts again" start_long_run "$tmp/out" "$tmp/err"
kill -INT "$pid"
wait "$pid"
rc=$?
check "Ctrl-C exits 130" test "$rc" = 130
check "Ctrl-C says the job was cancelled" grep -q "interrupted; job .* cancelled" "$tmp/err"
check "Ctrl-C leaves the job cancelled in the store" test "$(job_state)" = cancelled
run jobs --limit 1
check "the interrupted job says so" grep -q "  interrupted (Ctrl-C)$" "$tmp/out"

# A killed embedded run's job is cancelled by the next run, not resumed.
check "another long embedded run starts" start_long_run "$tmp/out" "$tmp/err"
live=$("$BIN" jobs | awk 'NR == 2 {print $1}')
rm -f "$tmp/watch.out"
"$BIN" watch "$live" --json >"$tmp/watch.out" 2>"$tmp/watch.err" &
watcher=$!
check "watch follows the run about to be killed" \
  appears 10 '"point"' "$tmp/watch.out"
kill -KILL "$pid"
wait "$pid" 2>/dev/null
# The watch goes on at the store, now free: it cancels the killed run's
# job as a leftover and ends with that, the job's last event.
wait "$watcher"
check "watch of a killed run's job exits 3, the job cancelled" test "$?" = 3
check "watch says it cancelled the job the killed run left" \
  grep -q "^lrtune: cancelled job $live left unfinished by an earlier run$" "$tmp/watch.err"
check "its last event is the cancellation, as abandoned" $PY -c '
import json, sys
last = json.loads(open(sys.argv[1]).read().splitlines()[-1])
assert last["job_id"] == sys.argv[2], last
assert "abandoned" in json.dumps(last), last' "$tmp/watch.out" "$live"
check "every event printed once, in order" $PY -c '
import json, sys
seqs = [int(json.loads(l)["seq"]) for l in open(sys.argv[1])]
assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs[:5]' "$tmp/watch.out"
check "the killed run's job is cancelled in the store" test "$(job_state)" = cancelled
run range-test "${SMALL[@]}" --steps 20
check "the next run succeeds" test "$rc" = 0
check "the next run finds no leftover" bash -c "! grep -q 'left unfinished' '$tmp/err'"
# A watch whose embedded run ends with its job follows it to the end
# (exit 0), whichever comes first: the last event or the run's exit.
for _ in 1 2 3; do
  rm -f "$XDG_DATA_HOME/lrtune/embedded.log"
  "$BIN" range-test "${SMALL[@]}" --steps 5000 --end-lr 0.1 >"$tmp/out" 2>"$tmp/err" &
  pid=$!
  wait_for_task
  short=$("$BIN" jobs 2>/dev/null | awk 'NR == 2 {print $1}')
  "$BIN" watch "$short" >"$tmp/watch.out" 2>"$tmp/watch.err"
  watch_rc=$?
  wait "$pid"
  check "watch of a run that ends exits 0" test "$watch_rc" = 0
  check "and prints the job's result" \
    grep -q "^range test $short: 5000 points in " "$tmp/watch.out"
done

# While `lrtune serve` holds the store (the Python package keeps one for a
# whole session), a command that trains does not wait for it to end: its
# job goes to serve's service and trains in the command's own process.
mkfifo "$tmp/serve.in"
"$BIN" serve <"$tmp/serve.in" >"$tmp/serve.out" 2>"$tmp/serve.err" &
serve_pid=$!
exec 3>"$tmp/serve.in"  # serve runs while this end is open
# printed FILE: FILE has something in it within 5 s.
printed() {
  for _ in $(seq 100); do
    [ -s "$1" ] && return 0
    sleep 0.05
  done
  return 1
}
check "lrtune serve starts on the store" printed "$tmp/serve.out"
check "serve says in the lock file that it hosts guests" \
  grep -q "^hosts-guests$" "$XDG_DATA_HOME/lrtune/jobs.db.lock"
timeout 120 "$BIN" range-test "${SMALL[@]}" --steps 20 >"$tmp/out" 2>"$tmp/err"
rc=$?  # 124: it waited for serve to end
check "a range test while serve holds the store exits 0" test "$rc" = 0
check "it prints its result" grep -q "^  CLR bounds " "$tmp/out"
check "it says where its job went" \
  grep -q "jobs.db is in use by \`lrtune serve\` or \`lrtune dashboard\`: the job goes to its service and trains in this process" "$tmp/err"
guest=$(awk 'NR == 1 {print $3}' "$tmp/out" | tr -d :)
run jobs
check "jobs through serve lists the guest's job, succeeded" \
  grep -q "^$guest  *range-test succeeded" "$tmp/out"
# A guest killed mid-job does not hold up the next one: its job has one
# attempt, and fails once its worker's lease lapses.
check "a long guest run starts" start_long_run "$tmp/out" "$tmp/err"
orphan=$("$BIN" jobs | awk 'NR == 2 {print $1}')
kill -KILL "$pid"
wait "$pid" 2>/dev/null
timeout 120 "$BIN" range-test "${SMALL[@]}" --steps 20 >"$tmp/out" 2>"$tmp/err"
check "the next guest's range test runs at once, exit 0" test "$?" = 0
orphan_failed() {
  for _ in $(seq 300); do
    "$BIN" get "$orphan" 2>/dev/null | grep -q "failed after 1 attempts: .*lease expired" && return 0
    sleep 0.1
  done
  return 1
}
check "the killed guest's job fails when its lease lapses" orphan_failed
# With --ui, a serve without a dashboard (kept for a whole Python session)
# is reported at once, not waited out.
timeout 20 "$BIN" range-test "${SMALL[@]}" --steps 20 --ui >"$tmp/out" 2>"$tmp/err"
check "range-test --ui while serve without a dashboard holds the store exits 1" \
  test "$?" = 1
check "it says the store's service has no dashboard and how to get one" \
  grep -q "jobs.db is served without a dashboard by another process's \`lrtune serve\`.*start \`lrtune dashboard\` before that session" "$tmp/err"
# lrtune dashboard waits for such a store, and Ctrl-C (or a SIGTERM) ends
# the wait at once.
"$BIN" dashboard </dev/null >"$tmp/dash.out" 2>"$tmp/dash.err" &
dash_pid=$!
check "lrtune dashboard waits while serve holds the store" \
  appears 5 "waiting for another embedded lrtune" "$tmp/dash.err"
kill -TERM "$dash_pid"
timeout 5 tail --pid="$dash_pid" -f /dev/null
check "a SIGTERM ends the waiting dashboard within 5 s" test "$?" = 0
wait "$dash_pid"
check "with status 128 + SIGTERM" test "$?" = 143
exec 3>&-  # serve ends
wait "$serve_pid"
check "serve ends when its stdin closes" test "$?" = 0
run get "$guest"
check "the guest's job is in the store after serve ended" test "$rc" = 0

# `lrtune dashboard` serves the store's dashboard until Ctrl-C (whatever
# its stdin); range tests with --ui show there as guests and do not keep a
# dashboard of their own; a second dashboard names the first one's.
"$BIN" dashboard </dev/null >"$tmp/dash.out" 2>"$tmp/dash.err" &
dash_pid=$!
check "lrtune dashboard prints its address" printed "$tmp/dash.out"
url=$(head -1 "$tmp/dash.out")
check "the address is the job list's, with its token" \
  grep -qE "^http://127\.0\.0\.1:[0-9]+/#/\?token=[0-9a-f]{32}$" "$tmp/dash.out"
timeout 120 "$BIN" range-test "${SMALL[@]}" --steps 20 --ui >"$tmp/out" 2>"$tmp/err"
check "range-test --ui under lrtune dashboard exits 0 without waiting" test "$?" = 0
shown=$(awk 'NR == 1 {print $3}' "$tmp/out" | tr -d :)
check "it names its job's page on that dashboard" \
  grep -qF "dashboard at ${url%%/#/*}/#/jobs/$shown?token=${url##*token=}" "$tmp/err"
listed() {
  $PY -c '
import json, sys, urllib.request
base, _, token = sys.argv[1].partition("/#/?token=")
request = urllib.request.Request(base + "/api/jobs",
                                 headers={"Authorization": "Bearer " + token})
with urllib.request.urlopen(request, timeout=10) as r:
    jobs = json.load(r)["jobs"]
sys.exit(0 if any(j["job_id"] == sys.argv[2] for j in jobs) else 1)' "$url" "$shown"
}
check "the dashboard lists the guest's job" listed
timeout 30 "$BIN" dashboard </dev/null >"$tmp/out" 2>"$tmp/err"
check "a second lrtune dashboard exits 0 at once" test "$?" = 0
check "it prints the first one's address" test "$(head -1 "$tmp/out")" = "$url"
kill -INT "$dash_pid"
wait "$dash_pid"
check "Ctrl-C stops lrtune dashboard, exit 0" test "$?" = 0
# A host killed while a guest trains: the guest says its host is gone
# (exit 4) instead of waiting on it.
"$BIN" dashboard </dev/null >"$tmp/dash2.out" 2>"$tmp/dash2.err" &
dash_pid=$!
check "a new lrtune dashboard starts" printed "$tmp/dash2.out"
check "a long guest run starts under it" start_long_run "$tmp/out" "$tmp/err"
kill -KILL "$dash_pid"
wait "$dash_pid" 2>/dev/null
timeout 60 tail --pid="$pid" -f /dev/null
check "the guest ends once its host is killed" test "$?" = 0
wait "$pid"
check "with exit 4" test "$?" = 4
check "saying the store's lrtune stopped answering" grep -q \
  "^lrtune range-test: the lrtune that was using .*jobs.db stopped answering (it ended, or was killed)" "$tmp/err"
run range-test "${SMALL[@]}" --steps 20
check "the next embedded run cancels the job the killed host left" \
  grep -q "cancelled job .* left unfinished" "$tmp/err"

# --- usage errors: exit 2, one line naming the flag ---
run range-test "${SMALL[@]}" --steps 0
check "--steps 0 exits 2" test "$rc" = 2
check "--steps 0 names the flag" grep -q -- "--steps must be in \[2, 1000000\], got 0" "$tmp/err"
check "--steps 0 is one line" test "$(lines "$tmp/err")" = 1
run range-test --steps abc
check "a flag that does not parse exits 2" test "$rc" = 2
check "it names the command and its --help" grep -qx \
  "lrtune range-test: Could not convert: --steps = abc (see lrtune range-test --help)" "$tmp/err"
run frobnicate
check "an unknown command exits 2" test "$rc" = 2
check "it is named, with the commands there are" grep -q \
  "^lrtune: unknown command 'frobnicate'; the commands: schedule, analyze, range-test, .*dashboard (see lrtune --help)$" "$tmp/err"
run range-test --dataset 'no such!'
check "--dataset 'no such!' exits 2" test "$rc" = 2
check "--dataset 'no such!' names the flag and value" grep -q -- "--dataset must be one of .*'no such!'" "$tmp/err"
check "--dataset 'no such!' is one line" test "$(lines "$tmp/err")" = 1
check "--dataset 'no such!' mentions FILE.csv" grep -q "FILE.csv" "$tmp/err"
# A well-formed name is a data set by reference: the (embedded) worker
# does not have it.
run range-test --dataset nope
check "--dataset nope exits 2" test "$rc" = 2
check "--dataset nope names the flag and value" \
  grep -q -- "run.data.name \"nope\" is neither a built-in data set .*(--dataset)" "$tmp/err"
check "--dataset nope is one line" test "$(lines "$tmp/err")" = 1
check "--dataset nope mentions FILE.csv and where the worker looks" \
  grep -q "FILE.csv.*the embedded worker reads data sets from" "$tmp/err"
NO_DATA=(--model mlp --hidden 32 --threads 1)
run range-test "${NO_DATA[@]}" --dataset "$tmp/missing.csv"
check "--dataset missing.csv exits 2" test "$rc" = 2
check "--dataset missing.csv names the flag and the file" \
  grep -q -- "--dataset $tmp/missing.csv: .*missing.csv" "$tmp/err"
check "--dataset missing.csv is one line" test "$(lines "$tmp/err")" = 1
printf '1,2,0\n3,4,1\n5,x,0\n' >"$tmp/bad.csv"
run range-test "${NO_DATA[@]}" --dataset "$tmp/bad.csv"
check "a malformed --dataset file exits 2" test "$rc" = 2
check "a malformed --dataset file is named" grep -q -- "--dataset $tmp/bad.csv" "$tmp/err"
printf '1,2,0\n3,4,1\n' >"$tmp/short.csv"
run range-test "${NO_DATA[@]}" --dataset "$tmp/short.csv"
check "a --dataset file of 2 rows exits 2" test "$rc" = 2
check "a --dataset file of 2 rows says the minimum" grep -q "at least 10 rows" "$tmp/err"
# 1 Mi rows x 16 features: within the engine's limits, over 64 MiB.
$PY -c '
import sys
row = ",".join(["0.5"] * 16) + ",1\n"
with open(sys.argv[1], "w") as f:
    for _ in range(64):
        f.write(row * 16384)' "$tmp/big.csv"
run range-test "${NO_DATA[@]}" --dataset "$tmp/big.csv"
check "a --dataset file over the message limit exits 2" test "$rc" = 2
check "a --dataset file over the limit says the limit" \
  grep -q -- "--dataset $tmp/big.csv: .*over the server's message limit of 64 MiB" "$tmp/err"
rm -f "$tmp/big.csv"
run range-test --steps 3 --steps 4
check "a flag given twice exits 2" test "$rc" = 2
run range-test --optimizer lbfgs
check "--optimizer lbfgs exits 2" test "$rc" = 2
check "--optimizer names the flag" grep -q -- "--optimizer must be" "$tmp/err"
run range-test --hidden 32,x
check "--hidden 32,x exits 2" test "$rc" = 2
run range-test --steps abc
check "--steps abc (CLI11) exits 2" test "$rc" = 2
check "--steps abc names the flag" grep -q -- "--steps" "$tmp/err"
run range-test --model missing.pt
check "--model missing.pt exits 2" test "$rc" = 2
check "--model missing.pt names the file" grep -q "missing.pt" "$tmp/err"

# --- the daemons' usage errors: exit 2, one line naming the program,
# the flag and its --help, as the CLI's ---
"$SERVER_BIN" --bogus >"$tmp/out" 2>"$tmp/err"
check "lrtune-server --bogus exits 2" test "$?" = 2
check "it names the flag and lrtune-server --help, in one line" grep -qx \
  "lrtune-server: The following argument was not expected: --bogus (see lrtune-server --help)" "$tmp/err"
"$WORKER_BIN" --threads many >"$tmp/out" 2>"$tmp/err"
check "lrtune-worker --threads many exits 2" test "$?" = 2
check "it names the flag and lrtune-worker --help" grep -qx \
  "lrtune-worker: Could not convert: --threads = many (see lrtune-worker --help)" "$tmp/err"

# --- unreachable: exit 4, one line naming the server ---
run range-test "${SMALL[@]}" --server 127.0.0.1:1
check "unreachable server exits 4" test "$rc" = 4
check "unreachable names the server" grep -q "server 127.0.0.1:1 unreachable" "$tmp/err"
check "unreachable is one line" test "$(lines "$tmp/err")" = 1
LRTUNE_SERVER=127.0.0.1:1 run range-test "${SMALL[@]}"
check "LRTUNE_SERVER is used" test "$rc" = 4

# --- remote: a real coordinator and worker ---
port=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$SERVER_BIN" --listen "127.0.0.1:$port" --db "$tmp/server.db" \
  2>"$tmp/server.log" &
server_pid=$!
"$WORKER_BIN" --server "127.0.0.1:$port" --threads 1 2>"$tmp/worker.log" &
worker_pid=$!
stop_service() {
  kill "$worker_pid" "$server_pid" 2>/dev/null
  wait "$worker_pid" "$server_pid" 2>/dev/null
}
appears 10 "listening" "$tmp/server.log"
start=$(date +%s.%N)
local_jobs() {
  $PY -c '
import sqlite3, sys
print(sqlite3.connect(sys.argv[1]).execute("select count(*) from jobs").fetchone()[0])' \
    "$XDG_DATA_HOME/lrtune/jobs.db" 2>&1
}
local_jobs_before=$(local_jobs)
run range-test "${SMALL[@]}" --steps 100 --json --server "127.0.0.1:$port"
echo "remote range test: $(echo "$(date +%s.%N) - $start" | bc) s"
check "remote exit 0" test "$rc" = 0
cat "$tmp/err" >&2
cp "$tmp/out" "$tmp/remote.json"
check "remote --json contract" json_ok "$tmp/remote.json"
check "remote and embedded give the same bounds (same seed)" $PY -c '
import json, sys
a = json.load(open(sys.argv[1]))["recommendation"]
b = json.load(open(sys.argv[2]))["recommendation"]
sys.exit(not (a["min_lr"] == b["min_lr"] and a["max_lr"] == b["max_lr"]))' \
  "$tmp/remote.json" "$tmp/embedded.json"
check "remote mode leaves the local store alone" \
  test "$(local_jobs)" = "$local_jobs_before"

LRTUNE_SERVER="127.0.0.1:$port" run range-test "${SMALL[@]}" --seeds 2
check "human output via LRTUNE_SERVER exit 0" test "$rc" = 0
check "human output names the job" grep -q "^range test .*: [0-9]* points in" "$tmp/out"
check "human output has the bounds" grep -q "min_lr" "$tmp/out"
check "no progress line when stderr is not a terminal" \
  test "$(grep -c $'\r' "$tmp/err")" = 0

# jobs, get, watch, cancel on the same server.
export LRTUNE_SERVER="127.0.0.1:$port"
run jobs --json
check "jobs exit 0" test "$rc" = 0
job=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["jobs"][0]["job_id"])' "$tmp/out")
check "jobs lists the remote jobs" test "$($PY -c '
import json, sys
print(len(json.load(open(sys.argv[1]))["jobs"]))' "$tmp/out")" = 2
run get "$job"
check "get exit 0" test "$rc" = 0
check "get shows the bounds" grep -q "CLR bounds" "$tmp/out"
run watch "$job" --after-seq 2 --json
check "watch of a finished job exit 0" test "$rc" = 0
check "watch --after-seq 2 starts at seq 3" test "$($PY -c '
import json, sys
print(json.loads(open(sys.argv[1]).readline())["seq"])' "$tmp/out")" = 3
check "watch ends with the terminal event" \
  grep -q '"state_changed":{"state":"JOB_STATE_SUCCEEDED"' <(tail -1 "$tmp/out")
run cancel "$job"
check "cancel of a succeeded job exits 2" test "$rc" = 2
check "cancel says why" grep -q "already succeeded" "$tmp/err"
run get nope
check "get of an unknown job exits 2" test "$rc" = 2
check "get of an unknown job says so" grep -q "nope not found" "$tmp/err"
# A grid's --plot: well-formed XML, one path per trial, the best marked,
# a legend entry per trial.
grid_svg_ok() {
  $PY - "$1" "$2" <<'PY'
import sys
import xml.etree.ElementTree as ET
ns = "{http://www.w3.org/2000/svg}"
root = ET.parse(sys.argv[1]).getroot()
trials = int(sys.argv[2])
assert root.tag == ns + "svg", root.tag
paths = [p for p in root.iter(ns + "path") if "trial" in p.get("class", "")]
assert len(paths) == trials, (len(paths), trials)
best = [p for p in paths if "best" in p.get("class").split()]
assert len(best) == 1, len(best)
for p in paths:
    assert p.get("d").startswith("M") and p.get("d").count("L") >= 2, p.get("id")
legend = [t for t in root.find(ns + "g[@id='legend']").iter(ns + "text")
          if t.get("class") == "entry"]
assert len(legend) == trials, len(legend)
assert any("(best)" in (t.text or "") for t in legend)
PY
}

# grid and submit: the example spec (YAML, the CLI's enum names), a JSON
# spec, bad specs.
run grid --spec "$ROOT/docs/examples/grid.yaml"
check "grid exit 0" test "$rc" = 0
cat "$tmp/err" >&2
check "grid prints the range test's bounds" grep -q "^range test: min_lr" "$tmp/out"
check "grid prints a row per trial" test "$(grep -c "^[0-9]* *done " "$tmp/out")" = 6
check "grid prints the ranking, 6 trials" test "$(grep -c "^ *[0-9]*\. trial" "$tmp/out")" = 6
check "grid ends succeeded" grep -q "succeeded$" "$tmp/out"
grid_job=$(sed -n 's/^job \([^:]*\): .* tasks$/\1/p' "$tmp/out")
run get "$grid_job" --plot "$tmp/remote_grid.svg"
check "get GRID --plot exit 0" test "$rc" = 0
cat "$tmp/err" >&2
check "get GRID --plot draws one curve per trial" grid_svg_ok "$tmp/remote_grid.svg" 6
run get "$job" --plot "$tmp/rt.svg"
check "get RANGE_TEST --plot exits 0" test "$rc" = 0
check "get RANGE_TEST --plot draws the curve and its bounds" \
  grep -q 'id="smoothed-0"' "$tmp/rt.svg"
check "... with its bounds" grep -q 'id="bounds"' "$tmp/rt.svg"
printf '{"range_test": {"run": {"data": {"name": "spirals"}, "model": {"kind": "mlp", "hidden": [8]}, "optimizer": {"kind": "adamw"}}, "range_test": {"steps": 30, "shape": "linear"}}}' >"$tmp/rt.json"
run submit --spec "$tmp/rt.json" --detach
check "submit --detach exit 0" test "$rc" = 0
check "submit --detach prints the job id" grep -q "^j-" "$tmp/out"
printf 'grid:\n  run: {data: {name: spirals}}\n  grid: [unclosed\n' >"$tmp/bad.yaml"
run grid --spec "$tmp/bad.yaml"
check "malformed YAML exits 2" test "$rc" = 2
check "malformed YAML names the line" grep -q "bad.yaml: line [0-9]*, column" "$tmp/err"
printf 'grid:\n  grid:\n    axis: []\n' >"$tmp/unknown.yaml"
run grid --spec "$tmp/unknown.yaml"
check "an unknown field exits 2" test "$rc" = 2
check "an unknown field is named" grep -q "axis" "$tmp/err"
printf 'grid:\n  run: {model: {kind: mlpp}}\n' >"$tmp/badname.yaml"
run grid --spec "$tmp/badname.yaml"
check "an unknown enum name exits 2" test "$rc" = 2
check "an unknown enum name lists the names" \
  grep -q 'grid.run.model.kind must be one of mlp, cnn, resnet20, torchscript; got "mlpp"' "$tmp/err"
printf '{"range_test": {}}' >"$tmp/notgrid.json"
run grid --spec "$tmp/notgrid.json"
check "grid of a range test spec exits 2" test "$rc" = 2
printf 'grid:\n  run: {data: {name: spirals}}\n  train: {steps: 10}\n  grid: {axes: [{seeds: {values: [1, 1]}}]}\n' >"$tmp/dup.yaml"
run grid --spec "$tmp/dup.yaml"
check "a grid the server refuses exits 2" test "$rc" = 2
check "the server's message names the field" grep -q "grid.grid.axes\[0\].values\[1\] repeats" "$tmp/err"

unset LRTUNE_SERVER
run jobs
check "jobs without a server reads the embedded store" test "$rc" = 0
check "the embedded store has none of the server's jobs" \
  test "$(grep -c "$job" "$tmp/out")" = 0

stop_service

# --- embedded grid and submit: the same commands without --server ---
cat >"$tmp/small_grid.yaml" <<'YAML'
grid:
  run:
    model: {kind: MODEL_KIND_MLP, hidden: [16]}
    data: {name: spirals}
    device: {device: cpu, threads: 1}
  train: {schedule: {kind: SCHEDULE_KIND_ONE_CYCLE}, steps: 30}
  range_test: {steps: 40}
  grid:
    axes:
      - schedules:
          values: [{kind: SCHEDULE_KIND_ONE_CYCLE}, {kind: SCHEDULE_KIND_COSINE}]
      - lr_bounds: {values: [{recommended: {}}]}
      - seeds: {values: [0, 1]}
    objective: {metric: OBJECTIVE_METRIC_VAL_LOSS}
YAML
run grid --spec "$tmp/small_grid.yaml" --plot "$tmp/grid.svg"
check "embedded grid exit 0" test "$rc" = 0
cat "$tmp/err" >&2
check "embedded grid prints a row per trial" test "$(grep -c "^[0-9]* *done " "$tmp/out")" = 4
check "embedded grid prints the ranking, 4 trials" \
  test "$(grep -c "^ *[0-9]*\. trial" "$tmp/out")" = 4
check "embedded grid ends succeeded" grep -q "succeeded$" "$tmp/out"
run jobs --limit 1
check "jobs gives a grid's best trial" \
  grep -q " grid .* succeeded .*  best trial [0-9]*: schedule=" "$tmp/out"
check "embedded grid --plot draws one curve per trial" grid_svg_ok "$tmp/grid.svg" 4
run grid --spec "$tmp/small_grid.yaml" --json
check "embedded grid --json exit 0" test "$rc" = 0
check "embedded grid --json has the ranking" $PY -c '
import json, sys
job = json.load(open(sys.argv[1]))
assert job["state"] == "JOB_STATE_SUCCEEDED", job["state"]
assert len(job["grid_result"]["ranking"]) == 4, job["grid_result"]
assert sorted(t["rank"] for t in job["trials"]) == [1, 2, 3, 4]' "$tmp/out"
# grid --ui: the dashboard at the grid's page while it runs, and after the
# ranking until Ctrl-C (exit 0).
"$BIN" grid --spec "$tmp/small_grid.yaml" --ui >"$tmp/ui.out" 2>"$tmp/ui.err" &
pid=$!
check "grid --ui keeps the dashboard up after the job" \
  appears 90 "^lrtune grid: the dashboard stays up at http://127.0.0.1:" "$tmp/ui.err"
check "grid --ui prints the grid's page" \
  grep -q "^lrtune grid: dashboard at http://127.0.0.1:[0-9]*/#/jobs/j-[0-9a-f]*?token=" "$tmp/ui.err"
check "grid --ui printed the ranking before" grep -q "succeeded$" "$tmp/ui.out"
check "the dashboard serves the grid and its 4 trials" $PY -c '
import json, re, sys, urllib.request
url = re.search(r"dashboard at (\S+)", open(sys.argv[1]).read()).group(1)
base, _, rest = url.partition("/#/jobs/")
job, _, token = rest.partition("?token=")
req = urllib.request.Request(f"{base}/api/jobs/{job}",
                             headers={"Authorization": f"Bearer {token}"})
body = json.load(urllib.request.urlopen(req, timeout=10))
assert len(body["job"]["trials"]) == 4, body["job"].keys()
' "$tmp/ui.err"
kill -INT "$pid"
wait "$pid"
check "grid --ui exits 0 on Ctrl-C" test "$?" = 0
run grid --spec "$tmp/small_grid.yaml" --ui --detach
check "grid --ui --detach exits 2" test "$rc" = 2
check "grid --ui --detach says --detach needs a server" grep -q -- "--detach needs --server" "$tmp/err"

# A trial under a cyclical schedule with early stopping and snapshots,
# through the service: 512 images overfit, the trial stops at a cycle end
# with its best weights, and its outcome reaches the row and the job.
cat >"$tmp/early_stop.yaml" <<'YAML'
grid:
  run:
    model: {kind: mlp, hidden: [256, 256]}
    data: {name: fashion-mnist, subset: 512, validation_subset: 1000}
    optimizer: {kind: sgd, momentum: 0.9}
    batch_size: 128
    device: {device: cpu, threads: 1}
  train:
    schedule: {kind: triangular, base_lr: 0.01, max_lr: 0.1, step_size_up: 5}
    epochs: 60
    early_stopping: {patience: 3}
    snapshot_ensemble: 2
  grid: {axes: [{seeds: {values: [3]}}]}
YAML
run grid --spec "$tmp/early_stop.yaml"
check "early-stopping grid exit 0" test "$rc" = 0
cat "$tmp/err" >&2
check "the trial's row says it stopped early with the best restored" \
  grep -q "stopped early, best at step [0-9]* (restored)" "$tmp/out"
check "the trial's row gives the snapshot ensemble" \
  grep -q "ensemble of 2 snapshots: acc 0\.[0-9]*" "$tmp/out"
run grid --spec "$tmp/early_stop.yaml" --json
check "the stored trial stopped at a cycle end, 3 cycles after its best" $PY -c '
import json, sys
t = json.load(open(sys.argv[1]))["trials"][0]
o = t["outcome"]
steps, best = int(t["steps"]), int(o["early_stopping_best"]["step"])
assert o["stopped_early"] and o["restored_best"], o
assert steps % 10 == 0 and steps - best == 30 and steps < 240, (steps, best)
assert t["final_eval"]["step"] == str(best), t["final_eval"]
assert o["ensemble_size"] == 2 and len(o["snapshots"]) == steps // 10, o' "$tmp/out"

# Ctrl-C cancels an embedded grid as it does a range test.
sed 's/steps: 30}$/steps: 1000000}/' "$tmp/small_grid.yaml" >"$tmp/long_grid.yaml"
rm -f "$XDG_DATA_HOME/lrtune/embedded.log"
"$BIN" grid --spec "$tmp/long_grid.yaml" >"$tmp/out" 2>"$tmp/err" &
pid=$!
check "a long embedded grid starts" wait_for_task
grid_job=$("$BIN" jobs | awk 'NR == 2 {print $1}')
run get "$grid_job"
check "get of a running grid says how to follow it" \
  grep -q "^job $grid_job: running, [0-9]*/[0-9]* tasks done; lrtune watch $grid_job follows it" "$tmp/out"
kill -INT "$pid"
wait "$pid"
rc=$?
check "Ctrl-C on an embedded grid exits 130" test "$rc" = 130
check "Ctrl-C says the grid was cancelled" grep -q "interrupted; job .* cancelled" "$tmp/err"
check "Ctrl-C leaves the grid cancelled in the store" test "$(job_state)" = cancelled
run submit --spec "$tmp/rt.json"
check "embedded submit of a range test exit 0" test "$rc" = 0
check "embedded submit ends succeeded" grep -q "succeeded$" "$tmp/out"
run submit --spec "$tmp/rt.json" --detach
check "embedded submit --detach exits 2" test "$rc" = 2
check "embedded --detach says it needs --server" grep -q -- "--detach needs --server" "$tmp/err"
run grid --spec "$tmp/rt.json" --plot "$tmp/x.svg"
check "grid of a range test spec exits 2 embedded too" test "$rc" = 2
run grid --spec "$tmp/dup.yaml"
check "a grid the embedded service refuses exits 2" test "$rc" = 2
check "the embedded service's message reaches the terminal" \
  grep -q "grid.grid.axes\[0\].values\[1\] repeats" "$tmp/err"

# advise: a range test, then the kinds at multiples of its bounds over the
# budget; the winner as `lrtune schedule` flags that rebuild it.
run advise --budget-epochs 1 --dataset digits --hidden 32 --threads 1 \
  --momentum 0.9 --steps 60 --kinds one_cycle,cosine --multiples 0.5,1,2
check "embedded advise exit 0" test "$rc" = 0
check "advise names the winner for the budget" \
  grep -q "^advice for 1 epoch ([0-9]* steps): schedule=\(one_cycle\|cosine\) bounds=recommended" "$tmp/out"
check "advise says what it tried" grep -q \
  "^tried 6 schedules (2 kinds x 3 multiples of the range test's bounds [0-9.e-]*\.\.[0-9.e-]*), [0-9]* pruned; [0-9]* of [0-9]* trial-steps" "$tmp/out"
cp "$tmp/out" "$tmp/advise.out"
# A winner at an edge of the multiples says a wider search may do better;
# one inside them does not.
winner=$(sed -n 's/^advice for .* bounds=recommended//p' "$tmp/advise.out")
case "$winner" in
  "*2") check "a winner at x2 says the largest multiple" grep -q \
    "^note: the winner is at the largest multiple tried (x2): a larger one may do better; try --multiples 1,2,4$" "$tmp/advise.out" ;;
  "*0.5") check "a winner at x0.5 says the smallest multiple" grep -q \
    "^note: the winner is at the smallest multiple tried (x0.5): a smaller one may do better; try --multiples 0.25,0.5,1$" "$tmp/advise.out" ;;
  *) check "a winner inside the multiples has no note" bash -c "! grep -q '^note:' '$tmp/advise.out'" ;;
esac
read -r -a flags <<<"$(grep -A1 "^advice for" "$tmp/advise.out" | sed -n 's/^  lrtune schedule //p')"
run schedule "${flags[@]}"
check "its schedule flags run as they are: lrtune schedule exit 0" test "$rc" = 0
run advise --budget-epochs 1 --dataset digits --multiples 0,1
check "advise --multiples 0,1 exits 2" test "$rc" = 2
check "it names the flag" grep -q -- "--multiples must be positive numbers" "$tmp/err"
run advise --budget-epochs 1 --dataset digits --kinds zigzag
check "advise --kinds zigzag exits 2" test "$rc" = 2
check "it names the flag and the kind" grep -q -- "--kinds: unknown schedule kind 'zigzag'" "$tmp/err"

# --- --dataset FILE: a CSV in scikit-learn's layout, plain and gzipped ---
SK=/usr/local/share/lrtune/datasets/sklearn
cp "$SK/iris.csv" "$tmp/iris.csv"
gzip -c "$SK/iris.csv" >"$tmp/iris.csv.gz"
FILE_RUN=(--model mlp --hidden 16 --threads 1 --steps 100 --batch-size 16 --start-lr 1e-4
  --json)
run range-test "${FILE_RUN[@]}" --dataset "$tmp/iris.csv"
check "--dataset FILE.csv exit 0" test "$rc" = 0
cat "$tmp/err" >&2
check "--dataset FILE.csv --json contract" json_ok "$tmp/out"
cp "$tmp/out" "$tmp/iris_plain.json"
run range-test "${FILE_RUN[@]}" --dataset "$tmp/iris.csv.gz"
check "--dataset FILE.csv.gz exit 0" test "$rc" = 0
check "plain and gzipped files give the same bounds" $PY -c '
import json, sys
a = json.load(open(sys.argv[1]))["recommendation"]
b = json.load(open(sys.argv[2]))["recommendation"]
sys.exit(not (a["min_lr"] == b["min_lr"] and a["max_lr"] == b["max_lr"]))' \
  "$tmp/out" "$tmp/iris_plain.json"
# A headerless file of our own, named without a '/' in the working dir.
$PY -c '
import math, sys
with open(sys.argv[1], "w") as f:
    for i in range(200):
        c = i % 2
        a = i * 0.1
        f.write(f"{math.cos(a) * (1 + c)},{math.sin(a) * (1 + c)},{c}\n")' "$tmp/rings.csv"
abs_bin=$(readlink -f "$BIN")
(cd "$tmp" && "$abs_bin" range-test "${FILE_RUN[@]}" --dataset rings.csv >"$tmp/out" 2>"$tmp/err")
rc=$?
check "--dataset rings.csv (no header, cwd) exit 0" test "$rc" = 0
cat "$tmp/err" >&2

finish
