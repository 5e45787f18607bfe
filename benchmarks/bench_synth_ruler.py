"""The physical magnification ruler on synthetic slides: estimate vs the true µm/px.

For every seed, a synthetic layout (8192 px at 0.25 µm/px, 2 x 2 mm) is made and
two regions are rendered at every ``--mpps`` resolution: a ``--side`` µm square at
the slide centre (whatever tissue lies there) and a ``--tls-side`` µm square on the
largest tertiary lymphoid structure (rich in lymphocytes). Each region goes to
:func:`magnipath.magnification.physical_estimate` (no model). One JSON line per
(seed, region, mpp): truth, estimate, relative error, the median LoG diameter in µm,
and the render time; a last line gives the median and the largest absolute error.

Example::

    .venv/bin/python benchmarks/bench_synth_ruler.py --seeds 1000,1001,7 \\
        --jsonl benchmarks/results/synth_ruler.jsonl --label after
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
    from magnipath.magnification import physical_estimate
    from magnipath.synth import SynthConfig, make_layout, render_region

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="1000,1001,7")
    ap.add_argument("--mpps", default="0.25,0.35,0.5")
    ap.add_argument("--side", type=float, default=600.0, help="centre region side, µm")
    ap.add_argument("--tls-side", type=float, default=300.0, help="TLS region side, µm")
    ap.add_argument("--label", default="", help="a tag stored in every line (before/after)")
    ap.add_argument("--jsonl", help="append the JSON lines to this file")
    args = ap.parse_args(argv)
    errors = []
    for seed in (int(v) for v in args.seeds.split(",")):
        layout = make_layout(SynthConfig(width=8192, height=8192, mpp=0.25, seed=seed))
        regions = [("centre", 4096.0, 4096.0, args.side)]
        tls = [g for n, g in layout.objects if n == "TLS"]
        if tls:
            p = max(tls, key=lambda g: g.area).representative_point()
            regions.append(("tls", p.x, p.y, args.tls_side))
        for where, cx, cy, side_um in regions:
            s = side_um / layout.mpp
            for mpp in (float(v) for v in args.mpps.split(",")):
                t0 = time.perf_counter()
                img = render_region(layout, (cx - s / 2, cy - s / 2, s, s), mpp)
                t_render = time.perf_counter() - t0
                e = physical_estimate(img)
                err = None if e.mpp is None else e.mpp / mpp - 1.0
                if err is not None:
                    errors.append(abs(err))
                emit({"bench": "synth_ruler", "label": args.label, "seed": seed,
                      "region": where, "side_um": side_um, "mpp_true": mpp,
                      "mpp_estimate": e.mpp, "rel_error": err,
                      "log_diameter_um": None if e.diameter_px is None
                      else e.diameter_px * mpp,
                      "n_nuclei": e.n_nuclei, "response": e.response, "reason": e.reason,
                      "render_s": round(t_render, 3)}, args.jsonl)
    emit({"bench": "synth_ruler", "label": args.label, "summary": True, "n": len(errors),
          "median_abs_error": float(np.median(errors)) if errors else None,
          "max_abs_error": float(np.max(errors)) if errors else None}, args.jsonl)


if __name__ == "__main__":
    main()
