#!/usr/bin/env bash
# The advice-quality study, start to finish (bench/quality/README.md):
#
#   bash bench/quality/run.sh              # the whole study (hours on 2 cores)
#   SHARDS=2 ONLY=mlp-fmnist-adam-b128 bash bench/quality/run.sh
#   STAGES=advice bash bench/quality/run.sh   # after a rule change: retrain
#                                              # only where the advice moved
#
# Every stage resumes: runs already in results/ are not trained again.
# Writes results/*.jsonl and results.md (the table of docs/analysis.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD_DIR=${BUILD_DIR:-build}
SETTINGS=${SETTINGS:-bench/quality/settings.json}
OUT=${OUT:-bench/quality/results}
SHARDS=${SHARDS:-$(nproc)}
STAGES=${STAGES:-curves train}
ONLY_FLAG=()
[[ -n ${ONLY:-} ]] && ONLY_FLAG=(--only "$ONLY")

cmake --build "$BUILD_DIR" --target quality_study >/dev/null
mkdir -p "$OUT"
export OMP_NUM_THREADS=1
for stage in $STAGES; do
  pids=()
  for ((i = 0; i < SHARDS; i++)); do
    "$BUILD_DIR/bench/quality_study" --settings "$SETTINGS" --out "$OUT" \
      --stage "$stage" --shard "$i/$SHARDS" "${ONLY_FLAG[@]}" \
      2>>"$OUT/log-$i.txt" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
done
/usr/bin/python3 bench/quality/report.py "$SETTINGS" "$OUT" \
  > "${REPORT:-bench/quality/results.md}"
echo "quality study: $(tail -n 3 "${REPORT:-bench/quality/results.md}" | head -n 1)"
