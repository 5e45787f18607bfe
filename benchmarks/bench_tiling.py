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

Prints one JSON line (see ``_common.emit``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import PeakSampler, emit, peak_rss_mb, rss_mb


def extract(args) -> dict:
    import numpy as np

    from magnipath.geometry import TileGeometry
    from magnipath.slide import open_slide
    from magnipath.tiling import tile_grid
    from magnipath.tissue import detect_tissue

    rss0 = rss_mb()
    geometry = (TileGeometry.dmmn(args.mpp, args.patch) if args.dmmn
                else TileGeometry.single(args.mpp, args.patch))
    t0 = time.perf_counter()
    slide = open_slide(args.slide)
    boxes = tile_grid(slide.width, slide.height, slide.mpp, geometry, args.stride)
    n_grid = len(boxes)
    if args.mask == "otsu":
        mask = detect_tissue(slide)
        boxes = boxes[mask.fractions(boxes) > 0]
    setup_s = time.perf_counter() - t0

    def read(b):
        ins = geometry.input_boxes(tuple(b), slide.mpp)
        arr = [slide.read_region(ib, mpp=inp.mpp, out_shape=(inp.size, inp.size))
               for ib, inp in zip(ins, geometry.inputs, strict=True)]
        return int(arr[0][args.patch // 2, args.patch // 2, 1]), all(
            a.shape == (args.patch, args.patch, 3) for a in arr)

    with PeakSampler() as ps:
        t1 = time.perf_counter()
        with ThreadPoolExecutor(args.workers) as pool:
            results = list(pool.map(read, boxes, chunksize=16))
        read_s = time.perf_counter() - t1
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
            "peak_rss_mb": round(peak_rss_mb(), 1)}


def dataset(args) -> dict:
    from magnipath.geometry import TileGeometry
    from magnipath.synth import SYNTH_CLASSES
    from magnipath.tiling import SlideSource, TilingConfig, make_dataset

    rss0 = rss_mb()
    geometry = (TileGeometry.dmmn(args.mpp, args.patch) if args.dmmn
                else TileGeometry.single(args.mpp, args.patch))
    tmp = Path(tempfile.mkdtemp(prefix="magnipath-bench-"))
    try:
        with PeakSampler() as ps:
            t0 = time.perf_counter()
            summary = make_dataset(
                [SlideSource(Path(args.slide), annotations=args.annotations)], tmp / "ds",
                class_map=SYNTH_CLASSES,
                config=TilingConfig(geometry=geometry, stride=args.stride, min_tissue=1e-9,
                                    split=(1.0, 0.0, 0.0), workers=args.workers))
            wall = time.perf_counter() - t0
        size_mb = sum(p.stat().st_size for p in (tmp / "ds").rglob("*") if p.is_file()) / 2**20
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    n = summary["n_tiles"]
    return {"bench": "tiling", "mode": "dataset", "slide": Path(args.slide).name,
            "read_mpp": args.mpp, "patch": args.patch, "stride": args.stride,
            "context": "dmmn 20x/10x/5x" if args.dmmn else "none", "workers": args.workers,
            "n_tiles": n, "wall_s": round(wall, 2), "tiles_per_s": round(n / wall, 1),
            "dataset_mb": round(size_mb, 1), "rss_start_mb": round(rss0, 1),
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
    ap.add_argument("--jsonl", default=None)
    args = ap.parse_args()
    emit(extract(args) if args.mode == "extract" else dataset(args), args.jsonl)


if __name__ == "__main__":
    main()
