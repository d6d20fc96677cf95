#!/usr/bin/env bash
# From a fresh Debian 12 machine to a learning-rate recommendation:
# installs what lrtune needs (scripts/setup.sh, as root), builds the `lrtune`
# CLI and the training engine, then runs the main job: an LR range test on
# Fashion-MNIST (MLP 784-256-256-10, SGD momentum 0.9, 1e-6 -> 10 over 300
# steps, 3 seeds) and prints the recommended bounds, stepsize, suggestions
# and how much the seeds agree.
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
echo "quickstart: building lrtune and lrtune-engine (a few minutes the first time)"
cmake --build "$BUILD_DIR" -j"$(nproc)" --target lrtune lrtune-engine >/dev/null

echo
echo "== A schedule: 1cycle to 0.1 over 20 steps (PyTorch's values) =="
"$BUILD_DIR/client/lrtune" schedule --kind one_cycle --max-lr 0.1 --total-steps 20

echo
echo "== An LR range test on Fashion-MNIST (docs/examples/range-test.json) =="
"$BUILD_DIR/worker/lrtune-engine" --job docs/examples/range-test.json --format text

echo
echo "Next: docs/examples/ has more jobs; \`$BUILD_DIR/client/lrtune --help\`;"
echo "\`$BUILD_DIR/client/lrtune analyze --csv CURVE.csv\` reads a curve from any framework."
