#!/usr/bin/env bash
# From a fresh Debian 12 machine to a learning-rate recommendation:
# installs what lrtune needs (scripts/setup.sh, as root), builds the `lrtune`
# CLI, then runs the main job with no server to start: `lrtune range-test`
# runs a coordinator and a worker inside its own process (the embedded
# default; docs/cli.md) for an LR range test on Fashion-MNIST (MLP
# 784-256-256-10, SGD momentum 0.9, 1e-6 -> 10 over 300 steps, 3 seeds) and
# prints the recommended bounds, stepsize, suggestions and how much the
# seeds agree. The job store goes to $XDG_DATA_HOME/lrtune/jobs.db. The
# Python package is pip-installed into .venv, offline (`import lrtune`).
#
#   sudo bash scripts/quickstart.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}

if [[ $(id -u) -eq 0 ]]; then
  bash scripts/setup.sh
else
  sudo bash scripts/setup.sh
fi
cmake -S . -B "$BUILD_DIR" -G Ninja >/dev/null
echo "quickstart: building lrtune (a few minutes the first time)"
cmake --build "$BUILD_DIR" -j"$(nproc)" --target lrtune >/dev/null
echo "quickstart: the Python package into .venv (pip, offline)"
python3 -m venv --system-site-packages .venv
.venv/bin/pip install --no-build-isolation --no-index --no-deps \
  --disable-pip-version-check -q ./client/python

echo
echo "== A schedule: 1cycle to 0.1 over 20 steps (PyTorch's values) =="
"$BUILD_DIR/client/lrtune" schedule --kind one_cycle --max-lr 0.1 --total-steps 20

echo
echo "== An LR range test on Fashion-MNIST (embedded coordinator + worker) =="
"$BUILD_DIR/client/lrtune" range-test --model mlp --dataset fashion-mnist \
  --hidden 256,256 --optimizer sgd --momentum 0.9 --batch-size 128 \
  --start-lr 1e-6 --end-lr 10 --steps 300 --seeds 3

echo
echo "Next: docs/cli.md; \`$BUILD_DIR/client/lrtune range-test --help\`;"
echo "add --json for one JSON object, --server HOST:PORT for a coordinator;"
echo "\`$BUILD_DIR/client/lrtune analyze --csv CURVE.csv\` reads a curve from any framework."
echo "\`$BUILD_DIR/client/lrtune jobs\` lists the stored runs; \`lrtune get JOB --plot curve.svg\` draws one."
echo "In your own PyTorch loop: PATH=$PWD/$BUILD_DIR/client:\$PATH .venv/bin/python, then"
echo "\`with lrtune.RangeTest(model, optimizer) as rt: ... rt.step(loss)\` (client/python/README.md)."
