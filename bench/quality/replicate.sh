#!/usr/bin/env bash
# The quality study again at seeds 3, 4, 5: a second, independent replicate
# (its own range tests, advice, classic rules and 1cycle oracle grid), then
# the table of both replicates pooled (bench/quality/README.md, "Six seeds").
#
#   bash bench/quality/replicate.sh          # ~1 h on 2 cores; resumes
#
# The settings are settings.json with the range test's seeds moved to 3, 4, 5
# and the triangular-CLR grid off (pooled.py --replicate-settings).
# Writes results-seeds345/ and results-seeds345.md (that replicate alone),
# and results-pooled.md (bench/quality/pooled.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT_B=${OUT_B:-bench/quality/results-seeds345}
mkdir -p "$OUT_B"
SETTINGS_B="$OUT_B/settings.json"
/usr/bin/python3 bench/quality/pooled.py --replicate-settings \
  bench/quality/settings.json "$SETTINGS_B"
SETTINGS="$SETTINGS_B" OUT="$OUT_B" REPORT=bench/quality/results-seeds345.md \
  bash bench/quality/run.sh
/usr/bin/python3 bench/quality/pooled.py bench/quality/settings.json \
  bench/quality/results "$OUT_B" > bench/quality/results-pooled.md
tail -n 4 bench/quality/results-pooled.md
