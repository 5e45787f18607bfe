#!/usr/bin/env python
"""Tiling benchmark: patch extraction and whole tile datasets on one slide.

``--mode extract`` reads every 256 px target patch at ``--mpp`` (20x) with
``--stride``, optionally only where the Otsu tissue mask has tissue (a patch is
kept when it touches tissue, like TIAToolbox's default ``min_mask_ratio=0``),
optionally with the DMMN context inputs (10x and 5x, 256 px each) — the same
job as TIAToolbox's ``bench_tiling.py`` in ``shared/peers/tiatoolbox``. Reads
run in a pool of ``--workers`` threads; each patch is dropped after a checksum.

``--mode dataset`` runs ``magnipath.tiling.make_dataset`` (labels rasterised
from GeoJSON, zarr writing) into a temporary folder.

Memory per stage: ``stages`` gives the RSS (MB) after each setup step and the
peak within it; ``rss_trace`` samples the RSS at every tenth of the tiles, so a
memory that grows along the slide shows as a rising trace (bounded caches
level off). ``--trace-setup`` also runs tracemalloc over the setup (tissue
mask, grid) and reports its traced peak and biggest allocation sites.

Prints one JSON line (see ``_common.emit``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import PeakSampler, emit, peak_rss_mb, rss_mb


def _top_allocations(snapshot, n: int = 5) -> list[str]:
    stats = snapshot.statistics("lineno")[:n]
    return [f"{st.traceback[0].filename.rsplit('/', 2)[-1]}:{st.traceback[0].lineno} "
            f"{st.size / 2**20:.1f} MB" for st in stats]


class _Trace:
    """RSS at every tenth of ``total`` items, and the peak of a stage."""

    def __init__(self, total: int) -> None:
        self.total, self.points, self._next = max(int(total), 1), [], 0.0
        self.done = 0
        self._lock = threading.Lock()

    def tick(self) -> None:
        with self._lock:
            self.done += 1
            if self.done / self.total >= self._next:
                self.points.append([round(self.done / self.total, 2), round(rss_mb(), 1)])
                self._next += 0.1


def extract(args) -> dict:
    import tracemalloc

    import numpy as np

    from magnipath.geometry import TileGeometry
    from magnipath.slide import open_slide
    from magnipath.tiling import tile_grid
    from magnipath.tissue import detect_tissue

    rss0 = rss_mb()
    geometry = (TileGeometry.dmmn(args.mpp, args.patch) if args.dmmn
                else TileGeometry.single(args.mpp, args.patch))
    stages: dict = {}
    traced: dict = {}
    if args.trace_setup:
        tracemalloc.start()
    t0 = time.perf_counter()
    with PeakSampler() as ps_setup:
        slide = (open_slide(args.slide) if args.cache_mb is None
                 else open_slide(args.slide, cache_bytes=int(args.cache_mb * 2**20)))
        stages["open"] = round(rss_mb(), 1)
        boxes = tile_grid(slide.width, slide.height, slide.mpp, geometry, args.stride)
        n_grid = len(boxes)
        stages["grid"] = round(rss_mb(), 1)
        if args.mask == "otsu":
            with PeakSampler() as ps_mask:
                mask = detect_tissue(slide)
                boxes = boxes[mask.fractions(boxes) > 0]
            stages["tissue"] = round(rss_mb(), 1)
            stages["tissue_peak"] = round(ps_mask.peak, 1)
            stages["mask_shape"] = list(mask.mask.shape)
    setup_s = time.perf_counter() - t0
    stages["setup_peak"] = round(ps_setup.peak, 1)
    if args.trace_setup:
        cur, peak = tracemalloc.get_traced_memory()
        traced = {"setup_traced_peak_mb": round(peak / 2**20, 1),
                  "setup_traced_now_mb": round(cur / 2**20, 1),
                  "setup_top_now": _top_allocations(tracemalloc.take_snapshot())}
        tracemalloc.stop()
    trace = _Trace(len(boxes))

    def read(b):
        ins = geometry.input_boxes(tuple(b), slide.mpp)
        arr = [slide.read_region(ib, mpp=inp.mpp, out_shape=(inp.size, inp.size))
               for ib, inp in zip(ins, geometry.inputs, strict=True)]
        trace.tick()
        return int(arr[0][args.patch // 2, args.patch // 2, 1]), all(
            a.shape == (args.patch, args.patch, 3) for a in arr)

    with PeakSampler() as ps:
        t1 = time.perf_counter()
        with ThreadPoolExecutor(args.workers) as pool:
            results = list(pool.map(read, boxes, chunksize=16))
        read_s = time.perf_counter() - t1
    cache = getattr(slide, "cache", None)
    return {"bench": "tiling", "mode": "extract", "slide": Path(args.slide).name,
            "slide_dims_l0": [slide.width, slide.height], "slide_mpp": slide.mpp,
            "read_mpp": args.mpp, "patch": args.patch, "stride": args.stride,
            "mask": args.mask, "context": "dmmn 20x/10x/5x" if args.dmmn else "none",
            "n_inputs": geometry.n_inputs, "workers": args.workers,
            "n_patches": len(boxes), "n_patches_unmasked_grid": n_grid,
            "shapes_ok": all(ok for _, ok in results),
            "checksum": int(np.sum([c for c, _ in results])),
            "setup_s": round(setup_s, 3), "read_s": round(read_s, 3),
            "patches_per_s": round(len(boxes) / read_s, 1),
            "input_images_per_s": round(len(boxes) * geometry.n_inputs / read_s, 1),
            "rss_start_mb": round(rss0, 1), "read_peak_rss_mb": round(ps.peak, 1),
            "stages_rss_mb": stages, "rss_trace": trace.points,
            "cache_mb": round(cache.nbytes / 2**20, 1) if cache is not None else None,
            "cache_bound_mb": round(cache.max_bytes / 2**20, 1) if cache is not None else None,
            "cache_hits": getattr(cache, "hits", None),
            "cache_misses": getattr(cache, "misses", None), **traced,
            "peak_rss_mb": round(peak_rss_mb(), 1)}


def dataset(args) -> dict:
    from magnipath.geometry import TileGeometry
    from magnipath.synth import SYNTH_CLASSES
    from magnipath.tiling import SlideSource, TilingConfig, make_dataset

    rss0 = rss_mb()
    geometry = (TileGeometry.dmmn(args.mpp, args.patch) if args.dmmn
                else TileGeometry.single(args.mpp, args.patch))
    tmp = Path(tempfile.mkdtemp(prefix="magnipath-bench-"))
    stages: dict = {}
    trace: list = []

    def progress(p) -> None:
        if p.stage == "tissue":  # annotations loaded and indexed, grid + tissue mask done
            stages["setup_done"] = round(rss_mb(), 1)
            stages["setup_s"] = round(time.perf_counter() - t0, 2)
        elif p.stage == "tile" and p.total and (
                not trace or p.done / p.total >= trace[-1][0] + 0.1 or p.done == p.total):
            trace.append([round(p.done / p.total, 2), round(rss_mb(), 1)])

    try:
        with PeakSampler() as ps:
            t0 = time.perf_counter()
            summary = make_dataset(
                [SlideSource(Path(args.slide), annotations=args.annotations)], tmp / "ds",
                class_map=SYNTH_CLASSES,
                config=TilingConfig(geometry=geometry, stride=args.stride, min_tissue=1e-9,
                                    split=(1.0, 0.0, 0.0), workers=args.workers),
                progress=progress)
            wall = time.perf_counter() - t0
        size_mb = sum(p.stat().st_size for p in (tmp / "ds").rglob("*") if p.is_file()) / 2**20
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    n = summary["n_tiles"]
    return {"bench": "tiling", "mode": "dataset", "slide": Path(args.slide).name,
            "annotations": Path(args.annotations).name if args.annotations else None,
            "read_mpp": args.mpp, "patch": args.patch, "stride": args.stride,
            "context": "dmmn 20x/10x/5x" if args.dmmn else "none", "workers": args.workers,
            "n_tiles": n, "wall_s": round(wall, 2), "tiles_per_s": round(n / wall, 1),
            "dataset_mb": round(size_mb, 1), "rss_start_mb": round(rss0, 1),
            "stages_rss_mb": stages, "rss_trace": trace,
            "run_peak_rss_mb": round(ps.peak, 1), "peak_rss_mb": round(peak_rss_mb(), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("slide")
    ap.add_argument("--mode", choices=["extract", "dataset"], default="extract")
    ap.add_argument("--patch", type=int, default=256, help="target patch side, px")
    ap.add_argument("--stride", type=int, default=256, help="target px")
    ap.add_argument("--mpp", type=float, default=0.5, help="target µm/px (0.5 = 20x)")
    ap.add_argument("--mask", choices=["none", "otsu"], default="otsu")
    ap.add_argument("--dmmn", action="store_true", help="add the 10x and 5x context inputs")
    ap.add_argument("--workers", type=int, default=2, help="reader threads")
    ap.add_argument("--annotations", default=None, help="GeoJSON for --mode dataset")
    ap.add_argument("--cache-mb", type=float, default=None,
                    help="decoded-tile cache bound for --mode extract, MiB (default: the "
                         "library's, 256)")
    ap.add_argument("--trace-setup", action="store_true",
                    help="tracemalloc over the setup of --mode extract (slower setup)")
    ap.add_argument("--label", default=None, help="free text stored in the JSON line")
    ap.add_argument("--jsonl", default=None)
    args = ap.parse_args()
    record = extract(args) if args.mode == "extract" else dataset(args)
    if args.label:
        record["label"] = args.label
    emit(record, args.jsonl)


if __name__ == "__main__":
    main()
