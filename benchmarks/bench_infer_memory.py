#!/usr/bin/env python
"""Peak memory of whole-slide inference versus slide size (goal: < 2 GB and flat).

For every SLIDE (e.g. synthetic slides of 16384², 32768² and 100,000² px made
with ``magnipath synth``) a fresh Python process runs
:func:`magnipath.infer.infer_slide` with a tiny model (one 3x3 convolution, so
the cost is reading, stitching and writing, not compute) at 0.5 µm/px, 256 px
windows, batch 8, tissue-masked, into a temporary folder, and reports its
resident set size: after imports, the sampled peak (every 20 ms) of the setup
and tissue detection, RSS when the windows start, the sampled peak from there to
the end (reads, model, stitching, writing, pyramid), and the lifetime peak
(``ru_maxrss``), plus wall time, windows and the store size.

One JSON line per slide (``_common.emit``); ``--jsonl FILE`` appends them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import PeakSampler, emit, peak_rss_mb, rss_mb


def run_one(args) -> dict:
    import torch

    from magnipath.checkpoint import ModelCard
    from magnipath.geometry import TileGeometry
    from magnipath.infer import InferConfig, infer_slide
    from magnipath.slide import open_slide
    from magnipath.synth import SYNTH_CLASSES

    class TinyNet(torch.nn.Module):
        """One 3x3 convolution: MagniPath's calling convention at almost no compute."""

        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, SYNTH_CLASSES.n_classes, 3, padding=1)

        def forward(self, inputs):
            return self.conv(inputs[0])

    torch.manual_seed(0)
    card = ModelCard(arch="tiny-conv", arch_kwargs={}, class_map=SYNTH_CLASSES.to_dict(),
                     geometry=TileGeometry.single(args.mpp, args.patch).to_dict())
    with open_slide(args.slide) as s:
        dims = [s.width, s.height]
    out = Path(tempfile.mkdtemp(prefix="magnipath-mem-", dir=args.tmp))
    rss0 = rss_mb()
    phase: dict = {}

    def progress(ev) -> None:  # the first "infer" event comes after the tissue mask
        if ev.stage == "infer" and "setup" not in phase:
            phase["setup"] = ps.peak  # peak of setup + tissue detection
            phase["rss_at_windows_start"] = rss_mb()
            ps.peak = phase["rss_at_windows_start"]  # from here: windows, writing, pyramid

    try:
        with PeakSampler() as ps:
            t0 = time.perf_counter()
            res = infer_slide(args.slide, (TinyNet(), card), out,
                              InferConfig(batch_size=args.batch_size, device="cpu",
                                          workers=args.workers), progress=progress)
            wall = time.perf_counter() - t0
        store_mb = sum(p.stat().st_size for p in res.store.rglob("*") if p.is_file()) / 2**20
    finally:
        shutil.rmtree(out, ignore_errors=True)
    t = res.timings
    return {"bench": "infer_memory", "slide": Path(args.slide).name, "slide_dims_l0": dims,
            "slide_gpx": round(dims[0] * dims[1] / 1e9, 3), "mpp": args.mpp,
            "patch": args.patch, "batch": args.batch_size, "workers": args.workers,
            "label_shape": list(res.out_shape), "n_windows_grid": res.n_windows,
            "n_windows_run": res.windows_run, "n_skipped": res.n_skipped,
            "wall_s": round(wall, 1), "windows_per_s": round(res.windows_run / wall, 1),
            "tissue_s": round(t.get("tissue_s", 0.0), 1), "pyramid_s": round(t["pyramid_s"], 1),
            "read_s_summed_over_threads": round(t["read_s_summed_over_threads"], 1),
            "store_mb": round(store_mb, 1), "rss_after_imports_mb": round(rss0, 1),
            "setup_tissue_peak_rss_mb": round(phase.get("setup", float("nan")), 1),
            "rss_at_windows_start_mb": round(phase.get("rss_at_windows_start", float("nan")), 1),
            "windows_peak_rss_mb": round(ps.peak, 1),
            "run_peak_rss_mb": round(max(ps.peak, phase.get("setup", 0.0)), 1),
            "peak_rss_mb": round(peak_rss_mb(), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("slides", nargs="+", metavar="SLIDE")
    ap.add_argument("--mpp", type=float, default=0.5, help="target µm/px (0.5 = 20x)")
    ap.add_argument("--patch", type=int, default=256, help="window side, target px")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2, help="reader threads")
    ap.add_argument("--tmp", default=None, help="folder for the temporary prediction stores")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--jsonl", default=None)
    args = ap.parse_args()
    if args.one:  # child process: one slide, one JSON line on stdout
        args.slide = args.slides[0]
        print(json.dumps(run_one(args)), flush=True)
        return
    for slide in args.slides:  # a fresh process per slide: RSS peaks do not mix
        cmd = [sys.executable, __file__, slide, "--one", "--mpp", str(args.mpp), "--patch",
               str(args.patch), "--batch-size", str(args.batch_size), "--workers",
               str(args.workers)] + (["--tmp", args.tmp] if args.tmp else [])
        done = subprocess.run(cmd, check=True, capture_output=True, text=True)
        emit(json.loads(done.stdout.strip().splitlines()[-1]), args.jsonl)


if __name__ == "__main__":
    main()
