#!/usr/bin/env python
"""Cohort engine scaling: 1 vs 2 workers, per-slide overhead, worker memory, 1,000-slide estimate.

Synthetic slides (``magnipath.synth``, 0.5 µm/px) are inferred with a real
DSMN-S2 (base 8, seeded random weights, 256 px windows at 1 µm/px,
tissue-masked) saved as a model folder, through :func:`magnipath.cohort.run_cohort`
on its embedded cluster (one process per worker, torch threads = cores //
workers), objects vectorised into GeoJSON per slide. Emits JSON lines:

* ``single``: the single-slide command (``magnipath infer SLIDE --geojson``, a
  fresh process per slide) on the first slides, with 1 and with ``cores``
  torch threads: its in-process wall time per slide;
* ``cohort``: one line per worker count (1, then 2 by default): wall time, time
  to start the cluster, per-slide task time (infer + vectorise, on the worker),
  scheduler/serialisation overhead per slide ``(run_s x workers - sum of task
  times) / slides`` (it includes the idle tail of the last slides), speed-up;
* ``rss``: peak RSS of each worker after N slides, for the ``--rss-slides`` counts;
* ``estimate``: a paper estimate for 1,000 slides of 100,000 px from the
  measured windows per second.

    python benchmarks/bench_cohort.py --quick            # minutes: 4 slides of 2048 px
    python benchmarks/bench_cohort.py --jsonl benchmarks/results/cohort.jsonl   # 8 x 8192 px
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import emit


def make_model(folder: Path) -> Path:
    import torch

    from magnipath.checkpoint import ModelCard, save_checkpoint
    from magnipath.geometry import TileGeometry
    from magnipath.models import build_model
    from magnipath.synth import SYNTH_CLASSES

    torch.manual_seed(0)
    net = build_model("dsmn-s2", n_classes=SYNTH_CLASSES.n_classes, base=8)
    card = ModelCard(arch="dsmn-s2", arch_kwargs=dict(net.arch_kwargs),
                     class_map=SYNTH_CLASSES.to_dict(),
                     geometry=TileGeometry.single(1.0, 256).to_dict())
    folder.mkdir(parents=True, exist_ok=True)
    save_checkpoint(folder / "best.pt", net, card)
    card.save_json(folder / "model_card.json")
    return folder


def make_slides(folder: Path, n: int, size: int) -> list[Path]:
    from magnipath.synth import SynthConfig, synthesize

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        p = folder / f"s{i:02d}.tif"
        if not p.exists():  # seeds 100+i: the same slides at every size
            synthesize(p, SynthConfig(width=size, height=size, mpp=0.5, seed=100 + i))
        out.append(p)
    return out


_SINGLE = """
import json, sys, time
from magnipath.cli import main
t0 = time.perf_counter()
code = main(["infer", sys.argv[1], "--model", sys.argv[2], "--out", sys.argv[3], "--geojson",
             "--device", "cpu", "--quiet"])
print(json.dumps({"code": code, "seconds": time.perf_counter() - t0}))
"""


def single(slide: Path, model: Path, tmp: Path, threads: int) -> float:
    out = Path(tempfile.mkdtemp(dir=tmp))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    res = subprocess.run([sys.executable, "-c", _SINGLE, str(slide), str(model), str(out)],
                         env=env, capture_output=True, text=True, check=True)
    shutil.rmtree(out, ignore_errors=True)
    return json.loads(res.stdout.strip().splitlines()[-1])["seconds"]


def cohort(slides: list[Path], model: Path, tmp: Path, workers: int) -> dict:
    from magnipath.cohort import CohortSlide, infer_job, run_cohort, slide_name
    from magnipath.infer import InferConfig

    out = Path(tempfile.mkdtemp(dir=tmp))
    cs = [CohortSlide(path=p, name=slide_name(p)) for p in slides]
    t0 = time.perf_counter()
    rep = run_cohort(cs, infer_job(model, out, InferConfig(device="cpu")), out,
                     workers=workers)
    wall = time.perf_counter() - t0
    shutil.rmtree(out, ignore_errors=True)
    rows = rep["slides"]
    task = [r["infer_seconds"] + r["vectorize_seconds"] for r in rows]
    peak: dict[int, float] = {}
    for r in rows:
        for pid, mb in ((r["worker_pid"], r["infer_peak_rss_mb"]),
                        (r["vectorize_worker_pid"], r["vectorize_peak_rss_mb"])):
            peak[pid] = max(peak.get(pid, 0.0), mb)
    run_s = rep["timings"]["run_s"]
    return {"workers": workers, "slides": len(slides), "wall_s": round(wall, 2),
            "cluster_start_s": rep["timings"]["cluster_start_s"], "run_s": run_s,
            "task_s_mean": round(sum(task) / len(task), 3),
            "task_s": [round(t, 3) for t in task],
            "windows_per_slide": rows[0]["windows"],
            "windows_run_total": sum(r["windows_run"] for r in rows),
            "overhead_per_slide_s": round((run_s * workers - sum(task)) / len(slides), 3),
            "worker_peak_rss_mb": sorted(peak.values()),
            "torch_threads_per_worker": rep["cluster"].get("torch_threads_per_worker")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slides", type=int, default=8, help="slides of the scaling run")
    ap.add_argument("--size", type=int, default=8192, help="slide side, level-0 px")
    ap.add_argument("--workers", default="1,2", help="worker counts to compare")
    ap.add_argument("--single", type=int, default=2,
                    help="slides also run with the single-slide command")
    ap.add_argument("--rss-slides", default="4,16", help="cohort sizes of the memory check")
    ap.add_argument("--rss-size", type=int, default=None,
                    help="slide side of the memory check, px (default --size)")
    ap.add_argument("--quick", action="store_true",
                    help="4 slides of 2048 px, memory check on 2 and 4 slides")
    ap.add_argument("--workdir", type=Path, default=None,
                    help="folder for slides and outputs (default a temporary one, removed)")
    ap.add_argument("--jsonl", default=None, help="append the JSON lines to this file")
    args = ap.parse_args()
    if args.quick:
        args.slides, args.size, args.rss_slides, args.rss_size = 4, 2048, "2,4", None
    cores = len(os.sched_getaffinity(0))
    tmp = args.workdir or Path(tempfile.mkdtemp(prefix="magnipath-bench-cohort-"))
    tmp.mkdir(parents=True, exist_ok=True)
    meta = {"bench": "cohort", "size_px": args.size, "slide_mpp": 0.5, "model": "dsmn-s2 base 8",
            "window_px": 256, "model_mpp": 1.0, "seeds": "slides 100+i, model 0",
            "load_avg_start": os.getloadavg()}
    try:
        model = make_model(tmp / "model")
        rss_counts = [int(v) for v in args.rss_slides.split(",")]
        slides = make_slides(tmp / "slides", args.slides, args.size)
        rss_size = args.rss_size or args.size
        rss_slides = (slides if rss_size == args.size and len(slides) >= max(rss_counts)
                      else make_slides(tmp / f"slides{rss_size}", max(rss_counts), rss_size))
        for t in sorted({1, cores}):
            secs = [single(s, model, tmp, t) for s in slides[: args.single]]
            emit({**meta, "kind": "single", "torch_threads": t, "seconds": secs,
                  "mean_s": round(sum(secs) / len(secs), 3),
                  "load_avg": os.getloadavg()}, args.jsonl)
        base = first = None
        for w in [int(v) for v in args.workers.split(",")]:
            r = cohort(slides[: args.slides], model, tmp, w)
            base, first = base or r["run_s"], first or r
            emit({**meta, "kind": "cohort", **r, "speedup_vs_first": round(base / r["run_s"], 3),
                  "load_avg": os.getloadavg()}, args.jsonl)
        for n in rss_counts:
            r = cohort(rss_slides[:n], model, tmp, min(2, cores))
            emit({**meta, "kind": "rss", "slides": n, "size_px": rss_size,
                  "workers": r["workers"],
                  "worker_peak_rss_mb": r["worker_peak_rss_mb"], "load_avg": os.getloadavg()},
                 args.jsonl)
        # paper estimate: 1,000 slides of 100,000 px from the measured windows per second
        # (from the first scaling run: the most slides, no other worker competing)
        win_per_slide = first["windows_run_total"] / first["slides"]
        per_window_core_s = first["task_s_mean"] / win_per_slide * (
            first["torch_threads_per_worker"] or 1)
        big_windows = (100_000 / 2 / 256) ** 2 * 0.5  # 0.5 µm/px -> 1 µm/px, ~50 % tissue
        cpu_core_h = 1000 * big_windows * per_window_core_s / 3600
        emit({**meta, "kind": "estimate", "per_window_core_s": round(per_window_core_s, 4),
              "windows_per_100k_slide": int(big_windows),
              "cpu_core_hours_1000_slides": round(cpu_core_h, 1),
              "cluster_16_nodes_x_32_cores_h": round(cpu_core_h / (16 * 32), 2),
              "note": "GPU figures are not measured here (no GPU on this machine)"},
             args.jsonl)
    finally:
        if args.workdir is None:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
