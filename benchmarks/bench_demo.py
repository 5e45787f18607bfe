"""The demo over seeds x precisions: held-out quality, minutes, epochs done.

Runs ``magnipath demo --seed S [--no-amp] --json`` as a fresh process for every
seed and precision (``bf16``: mixed precision where the CPU computes bfloat16
natively, else float32 and recorded as such; ``fp32``: ``--no-amp``), optionally
pinned to CPU cores with ``taskset -c`` (``--cores 0`` emulates a machine with
one core). One JSON line per run: held-out mIoU, IoU of every class, whether
every class reached ``--min-class-iou`` and the mIoU ``--min-miou``, minutes of
the whole demo and of each stage, epochs done of the budget, whether the time
cap ended training, the load average before and after, CPU model and cores.

Usage (one command; the lead re-runs the timing on a quiet machine)::

    benchmarks/bench_demo.py --cores 0 --jsonl benchmarks/results/demo_1core.jsonl
    benchmarks/bench_demo.py --cores 0,1 --jsonl benchmarks/results/demo_2cores.jsonl
    benchmarks/bench_demo.py --seeds 0 --precisions fp32 --jobs 2   # quality only, faster

``--jobs N`` runs N demos at once (quality does not depend on it while the time
cap is not hit, but the minutes then do: use ``--jobs 1`` for timing).
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import emit

ROOT = Path(__file__).resolve().parents[1]


def run_one(seed: int, precision: str, args: argparse.Namespace) -> dict:
    """One demo in a fresh process; returns its JSON line."""
    if args.workdir:  # a fixed folder: a rerun reuses the slides made there (same settings)
        out = Path(args.workdir) / f"demo_s{seed}_{precision}"
    else:
        out = Path(tempfile.mkdtemp(prefix=f"bench_demo_s{seed}_{precision}_"))
    cmd = [sys.executable, "-m", "magnipath.cli", "demo", "--out", str(out), "--seed", str(seed),
           "--json", "--quiet", *args.demo_args]
    if precision == "fp32":
        cmd.append("--no-amp")
    if args.cores:
        cmd = ["taskset", "-c", args.cores, *cmd]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT),
                                         env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    minutes = (time.perf_counter() - t0) / 60.0
    record: dict = {"bench": "demo", "seed": seed, "precision": precision,
                    "cores": args.cores or "all", "jobs": args.jobs,
                    "demo_args": args.demo_args, "minutes_wall": round(minutes, 2),
                    "load_before": [round(x, 2) for x in load_before],
                    "load_after": [round(x, 2) for x in os.getloadavg()], "rc": proc.returncode}
    if proc.returncode != 0:
        record["error"] = proc.stderr[-2000:]
        return record
    s = json.loads(proc.stdout)
    iou = s["metrics"]["iou"]
    valid = {k: v for k, v in iou.items() if isinstance(v, float)}
    tr = s["training"]
    record.update({
        "mixed_precision": s["model"]["mixed_precision"], "miou": s["metrics"]["mean_iou"],
        "iou": iou, "min_class_iou": min(valid.values()) if valid else None,
        "meets_target": bool(s["metrics"]["mean_iou"] >= args.min_miou and valid
                             and min(valid.values()) >= args.min_class_iou),
        "minutes_demo": round(s["timings_s"]["total_s"] / 60.0, 2),
        "timings_s": s["timings_s"], "epochs": tr["epochs"], "epochs_done": tr["epochs_done"],
        "stopped_by_time_cap": tr["stopped_by_time_cap"],
        "samples_per_s": s["model"]["samples_per_s"], "slides_reused": s["slides"]["reused"],
    })
    if not args.workdir:
        shutil.rmtree(out, ignore_errors=True)
    return record


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="0,1,2", help="comma-separated demo seeds (default 0,1,2)")
    p.add_argument("--precisions", default="bf16,fp32",
                   help="bf16 (mixed precision where native) and/or fp32 (default both)")
    p.add_argument("--cores", default=None,
                   help="pin each demo to these CPU cores (taskset -c), e.g. 0 or 0,1")
    p.add_argument("--jobs", type=int, default=1, help="demos at once (default 1)")
    p.add_argument("--min-miou", type=float, default=0.85, help="target mIoU (default 0.85)")
    p.add_argument("--min-class-iou", type=float, default=0.6,
                   help="target IoU of every class (default 0.6)")
    p.add_argument("--workdir", default=None,
                   help="folder for the demo folders demo_s<SEED>_<PRECISION> (kept; a rerun "
                        "reuses their slides); default: temporary folders, removed")
    p.add_argument("--jsonl", default=None, help="append the JSON lines to this file")
    p.add_argument("demo_args", nargs="*", help="extra 'magnipath demo' options (after --)")
    args = p.parse_args()
    runs = [(int(s), prec) for s in args.seeds.split(",")
            for prec in args.precisions.split(",")]
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for record in pool.map(lambda r: run_one(r[0], r[1], args), runs):
            emit(record, args.jsonl)


if __name__ == "__main__":
    main()
