#!/usr/bin/env bash
# Inference benchmarks: MagniPath beside TIAToolbox's SemanticSegmentor on the same slide and
# the same U-Net, then DSMN-S2 / DMMN-M3 throughput, then peak memory versus slide size.
# Needs the TIAToolbox venv of ../shared/peers/tiatoolbox (setup_venv.sh; /tmp/tiabench/venv).
# Usage: benchmarks/run_inference.sh [SIZE...]   (memory sizes; default: 16384 32768)
set -euo pipefail
cd "$(dirname "$0")/.."
PEER=${PEER:-../shared/peers/tiatoolbox}
TIA_PY=${TIA_PY:-/tmp/tiabench/venv/bin/python}
WORK=${WORK:-/tmp/mpbench}
JSONL=${JSONL:-benchmarks/results/$(date -u +%Y-%m-%dT%H%M)_inference.jsonl}
mkdir -p "$WORK" "$(dirname "$JSONL")"
slide() {  # synthetic slide of SIZE^2 px at 0.25 µm/px (40x), seed 7, JPEG tiles, BigTIFF
  local s=$WORK/synth$1.tif
  [ -f "$s" ] || .venv/bin/magnipath synth "$s" --width "$1" --height "$1" --seed 7 --json --quiet >&2
  echo "$s"
}
S16=$(slide 16384)
uptime >&2
if [ -x "$TIA_PY" ]; then
  (cd "$PEER" && "$TIA_PY" bench_segmentation.py "$S16" --out "$WORK/tia_seg" --jsonl "$OLDPWD/$JSONL" 2>/dev/null >/dev/null) || echo "TIAToolbox run failed" >&2
fi
.venv/bin/python benchmarks/bench_segmentation.py "$S16" --peer-unet --jsonl "$JSONL" >/dev/null
for arch in dsmn-s2 dmmn-m3; do
  .venv/bin/python benchmarks/bench_segmentation.py "$S16" --arch "$arch" --jsonl "$JSONL" >/dev/null
done
SLIDES=()
for size in ${*:-16384 32768}; do SLIDES+=("$(slide "$size")"); done
.venv/bin/python benchmarks/bench_infer_memory.py "${SLIDES[@]}" --jsonl "$JSONL" >/dev/null
uptime >&2
echo "results: $JSONL"
