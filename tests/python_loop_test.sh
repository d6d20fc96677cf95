#!/usr/bin/env bash
# The lrtune Python package as a user installs and runs it: `pip install`
# of client/python into a throwaway venv (--system-site-packages: Debian's
# python3-torch, python3-grpcio, python3-protobuf; --no-build-isolation
# --no-index: offline, nothing from PyPI), then, with that venv's python:
# client/python/tests/test_range_test.py (RangeTest on the embedded
# service, lrtune.torch.scheduler against `lrtune schedule`, DDP on two
# processes) and tests/python_loop_test.py (a training script of its own
# against a real lrtune-server, killed and restarted mid-test; client- and
# worker-run tests of one model).
#
#   bash tests/python_loop_test.sh LRTUNE_BIN SERVER_BIN WORKER_BIN
set -u
CLI_BIN=$(realpath "$1")
SERVER_BIN=$(realpath "$2")
WORKER_BIN=$(realpath "$3")
BIN=$CLI_BIN
# shellcheck source=tests/testlib.sh
source "$(dirname "$0")/testlib.sh"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export OMP_NUM_THREADS=1
export PYTHONDONTWRITEBYTECODE=1

# A copy of what pip needs (client/python and proto/): an in-tree build
# writes build/ and *.egg-info beside setup.py, which the source tree keeps
# out of.
mkdir -p "$tmp/src/client"
cp -r "$ROOT/client/python" "$tmp/src/client/python"
cp -r "$ROOT/proto" "$tmp/src/proto"
$PY -m venv --system-site-packages "$tmp/venv"
"$tmp/venv/bin/pip" install --no-build-isolation --no-index --no-deps \
  --disable-pip-version-check -q "$tmp/src/client/python" >"$tmp/pip.log" 2>&1
pip_rc=$?
check "pip installs the package offline" test "$pip_rc" = 0
if [ "$pip_rc" != 0 ]; then cat "$tmp/pip.log" >&2; fi
VPY=$tmp/venv/bin/python
# Away from the source tree, so that the installed package is imported.
(cd "$tmp" && $VPY -c 'import lrtune, lrtune.torch
from lrtune.v1 import client_run_pb2
print(lrtune.__file__, lrtune.RangeTest.__name__)') >"$tmp/import.out" 2>&1
check "import lrtune works from the venv" grep -q "site-packages/lrtune/__init__.py RangeTest" "$tmp/import.out"
cat "$tmp/import.out" >&2

export LRTUNE_BIN=$CLI_BIN LRTUNE_SERVER_BIN=$SERVER_BIN LRTUNE_WORKER_BIN=$WORKER_BIN
export XDG_DATA_HOME=$tmp/xdg  # the embedded store, private to this test
unset LRTUNE_SERVER LRTUNE_GEN_DIR

start=$(date +%s.%N)
(cd "$tmp" && $VPY "$ROOT/client/python/tests/test_range_test.py" -v) \
  >"$tmp/unit.log" 2>&1
rc=$?
echo "test_range_test.py: $(echo "$(date +%s.%N) - $start" | bc) s"
check "the RangeTest, scheduler and DDP tests pass" test "$rc" = 0
check "they ran (not skipped)" \
  grep -q "test_two_ranks_share_one_run .* ok$" "$tmp/unit.log"
if [ "$rc" != 0 ]; then cat "$tmp/unit.log" >&2; fi

start=$(date +%s.%N)
(cd "$tmp" && $VPY "$ROOT/tests/python_loop_test.py" -v) \
  >"$tmp/loop.log" 2>&1
rc=$?
echo "python_loop_test.py: $(echo "$(date +%s.%N) - $start" | bc) s"
check "the own-loop, kill and worker comparison tests pass" test "$rc" = 0
# Each prints its figures (its pass is the exit status above).
check "the kill test ran (not skipped)" grep -q "^killed at update" "$tmp/loop.log"
check "the worker comparison ran (not skipped)" grep -q "^worker bounds" "$tmp/loop.log"
check "nothing was skipped" bash -c "! grep -qE \"skipped=|\\.\\.\\. skipped\" '$tmp/loop.log' '$tmp/unit.log'"
grep -E "^(own loop|killed at|worker bounds)" "$tmp/loop.log"
if [ "$rc" != 0 ]; then cat "$tmp/loop.log" >&2; fi

finish
