#!/usr/bin/env bash
# The GPU check, one command, <= 6 minutes, on a machine with an NVIDIA GPU, its own Python 3.12
# and torch (2.11 at last look) and no package index:
#   1. the GPU-marked tests, 2. tests/infer on CUDA (device "auto" picks it),
#   3. benchmarks/bench_gpu.py: whole-slide inference (dmmn-m3 / dsmn-s2 / unetpp-effb0 at paper
#      width; 16384 and 32768 px synthetic JPEG slides; fp32/bf16; batch 32/128/auto; CPU vs
#      device JPEG decoding), model-only throughput, efficiency, stage times, peak memory, NVML
#      utilisation, a 100,000 px extrapolation, training steps of the five architectures.
# One JSON line per figure in $JSONL (default benchmarks/results/<date>_gpu.jsonl) and stdout.
# Wheels the machine lacks (benchmarks/gpu_wheels.sh fetches them where PyPI is reachable) are
# installed from .whl/ when present. Usage:
#   benchmarks/gpu.sh               # on the GPU machine (carry .whl)
#   benchmarks/gpu.sh --cpu-smoke   # here, on a CPU: the same steps at toy size
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
SMOKE=0
[ "${1:-}" = "--cpu-smoke" ] && SMOKE=1
if ls .whl/*.whl >/dev/null 2>&1 && [ $SMOKE = 0 ]; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || { echo "gpu.sh: installing .whl/ failed" >&2; exit 1; }
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}
JSONL=${JSONL:-benchmarks/results/$(date -u +%Y-%m-%dT%H%M)_gpu$([ $SMOKE = 1 ] && echo _smoke).jsonl}
mkdir -p "$(dirname "$JSONL")"
T0=$(date +%s)
"$PY" -c "import magnipath.infer, magnipath.train, magnipath.infer._jpeg" \
  || { echo "gpu.sh: the core does not import with this Python/torch" >&2; exit 1; }

tests() {  # name, timeout, pytest args...: one JSON line with the counts
  local name=$1 limit=$2; shift 2
  local xml; xml=$(mktemp --suffix .xml)
  local t=$(date +%s)
  # -o filterwarnings: the ini names pydantic, which the GPU image lacks
  timeout "$limit" "$PY" -m pytest -q -p no:cacheprovider -o addopts="" \
    -o "filterwarnings=ignore::DeprecationWarning" --junitxml "$xml" "$@" \
    > "$xml.log" 2>&1
  local rc=$?
  "$PY" - "$xml" "$name" "$rc" "$(( $(date +%s) - t ))" "$JSONL" <<'PYEOF'
import json, sys, xml.etree.ElementTree as ET
path, name, rc, secs, out = sys.argv[1:]
rec = {"bench": "gpu", "kind": "tests", "suite": name, "rc": int(rc), "seconds": int(secs)}
try:
    s = ET.parse(path).getroot()
    s = s if s.tag == "testsuite" else s.find("testsuite")
    rec.update({k: int(s.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")})
    rec["failed"] = [f"{c.get('classname')}::{c.get('name')}" for c in s.iter("testcase")
                     if c.find("failure") is not None or c.find("error") is not None][:20]
except Exception as e:  # timeout or crash: no report
    rec["error"] = f"no junit report ({type(e).__name__})"
line = json.dumps(rec)
print(line)
open(out, "a").write(line + "\n")
PYEOF
  [ $rc = 0 ] || tail -20 "$xml.log" >&2
}

if [ $SMOKE = 1 ]; then
  tests pipeline 300 tests/infer/test_pipeline.py tests/infer/test_pipeline_device.py -m "not slow"
  "$PY" benchmarks/bench_gpu.py --cpu-smoke --jsonl "$JSONL" --budget-s 600
else
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >&2 || true
  tests gpu-marked 90 -m gpu tests/infer tests/train
  tests infer-on-cuda 100 -m "not slow and not qupath" tests/infer
  LEFT=$(( 350 - ($(date +%s) - T0) ))
  timeout $(( LEFT > 60 ? LEFT : 60 )) "$PY" benchmarks/bench_gpu.py --jsonl "$JSONL" \
    --budget-s $(( LEFT > 100 ? LEFT - 50 : 50 ))
fi
echo "gpu.sh: $(( $(date +%s) - T0 )) s; results: $JSONL" >&2
