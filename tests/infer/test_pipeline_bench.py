"""``benchmarks/bench_gpu.py --cpu-smoke``: the GPU benchmark's every step runs (toy size, CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_gpu_benchmark_cpu_smoke_writes_every_kind_of_figure(tmp_path):
    jsonl = tmp_path / "smoke.jsonl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_gpu.py"),
                           "--cpu-smoke", "--workdir", str(tmp_path / "w"),
                           "--jsonl", str(jsonl)], env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    recs = [json.loads(line) for line in jsonl.read_text().splitlines()]
    kinds = {r["kind"] for r in recs}
    assert {"env", "slides", "infer", "extrapolate", "train", "done"} <= kinds
    assert not [r for r in recs if "error" in r]
    infer = [r for r in recs if r["kind"] == "infer" and "skipped" not in r]
    assert {r["decode"] for r in infer} == {"cpu", "device"}
    assert {r["arch"] for r in infer} == {"dmmn-m3", "dsmn-s2", "unetpp-effb0"}
    assert all(r["windows_run"] > 0 and r["model_only_windows_per_s"] > 0 for r in infer)
    assert len([r for r in recs if r["kind"] == "train" and r["loss_finite"]]) == 5
