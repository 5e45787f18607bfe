#!/usr/bin/env bash
# Tiling benchmark, MagniPath beside TIAToolbox on the same slides, in one run.
# Needs the TIAToolbox venv of ../shared/peers/tiatoolbox (setup_venv.sh; /tmp/tiabench/venv).
# Usage: benchmarks/run_tiling.sh [SIZE...]   (default: 16384 32768)
# Env: WORK (slide folder, synth$SIZE.tif; existing slides are reused, e.g. WORK=/tmp/mpbench
# for its synth100k.tif), ANNOT (annotation suffix for the dataset run: geojson = exhaustive,
# partial.geojson = DMMN-style partial), TIA_PY=none skips TIAToolbox. Every JSON line carries
# per-stage RSS (stages_rss_mb) and an RSS trace along the run (rss_trace).
set -euo pipefail
cd "$(dirname "$0")/.."
PEER=${PEER:-../shared/peers/tiatoolbox}
TIA_PY=${TIA_PY:-/tmp/tiabench/venv/bin/python}
WORK=${WORK:-/tmp/magnipath-bench}
JSONL=${JSONL:-benchmarks/results/$(date -u +%Y-%m-%dT%H%M)_tiling.jsonl}
mkdir -p "$WORK" "$(dirname "$JSONL")"
ANNOT=${ANNOT:-geojson}
SIZES=${*:-16384 32768}
for size in $SIZES; do
  slide=$WORK/synth$size.tif
  [ -f "$slide" ] || .venv/bin/magnipath synth "$slide" --width "$size" --height "$size" --seed 7 --json --quiet >> "$JSONL"
  if [ -x "$TIA_PY" ]; then
    (cd "$PEER" && "$TIA_PY" bench_tiling.py "$slide" --stride 256 --mask otsu --jsonl "$OLDPWD/$JSONL" 2>/dev/null >/dev/null) || echo "TIAToolbox run failed" >&2
  fi
  .venv/bin/python benchmarks/bench_tiling.py "$slide" --stride 256 --mask otsu --jsonl "$JSONL" >/dev/null
  .venv/bin/python benchmarks/bench_tiling.py "$slide" --stride 256 --mask otsu --dmmn --jsonl "$JSONL" >/dev/null
  .venv/bin/python benchmarks/bench_tiling.py "$slide" --mode dataset --dmmn --annotations "${slide%.tif}.$ANNOT" --jsonl "$JSONL" >/dev/null
done
echo "results: $JSONL"
