"""Show what MagniPath reads from a slide: its pyramid levels (shape, downsample), its
resolution in µm per pixel and where that came from, its magnification (10 / mpp)
and the backend that reads it.

When the file gives no resolution, mpp and magnification are reported as unknown
(null) and, unless --no-estimate, an ESTIMATE from the pixels is added
(mpp_estimate, magnification_estimate; mpp_estimate_source says how it was made:
"estimated (baseline)" without a model, "estimated (fusion, model NAME)" with
--estimate-model). Check an estimate before passing it on with --mpp.

Example: magnipath info slide.tif --json
"""

from __future__ import annotations

import argparse
import shlex
import warnings
from pathlib import Path
from typing import Any

from magnipath._errors import SlideError
from magnipath.progress import ProgressCallback

NAME = "info"
HELP = "show a slide's levels, resolution (µm/px), magnification and backend"
ORDER = 5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``info`` options to ``parser``."""
    parser.add_argument("slide", help="the slide file (pyramidal TIFF, SVS, OME-TIFF; MRXS, "
                        "NDPI... with openslide installed)")
    parser.add_argument("--mpp", type=float, default=None,
                        help="level-0 resolution in µm per pixel, overriding the file's "
                             "metadata (needed when it has none; 0.25 = 40x, 0.5 = 20x)")
    parser.add_argument("--backend", choices=["auto", "tifffile", "openslide"], default="auto",
                        help="reader to use (default: auto)")
    parser.add_argument("--no-estimate", action="store_true",
                        help="when the file has no mpp, do not estimate it from the pixels")
    parser.add_argument("--estimate-model", type=Path, default=None, metavar="MODEL_DIR",
                        help="magnification model folder ('magnipath magnification train') "
                             "for the estimate (default: the non-learning baseline)")
    parser.add_argument("--estimate-tiles", type=int, default=16, metavar="N",
                        help="tissue tiles of 224 level-0 px that vote in the estimate "
                             "(count, default 16)")
    parser.add_argument("--device", default="cpu",
                        help="torch device of --estimate-model (cpu, cuda, auto...)")


def run(args: argparse.Namespace, progress: ProgressCallback | None = None) -> dict[str, Any]:
    """Open the slide and return its description as a summary dict."""
    from magnipath.slide import open_slide

    known = True
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            s = open_slide(args.slide, mpp=args.mpp, backend=args.backend)
        except SlideError:
            if args.mpp is not None:
                raise
            # readable with an mpp given (any will do for the pyramid): only the mpp is missing
            s = open_slide(args.slide, mpp=1.0, backend=args.backend)
            known = False
    with s:
        out: dict[str, Any] = {
            "slide": str(s.path),
            "backend": s.backend,
            "width": s.width,
            "height": s.height,
            "mpp": round(s.mpp, 6) if known else None,
            "mpp_source": s.mpp_source if known else "unknown (not in the file's metadata)",
            "magnification": round(s.magnification, 4) if known else None,
            "objective_power": s.objective_power,
            "levels": [{"index": lv.index, "shape": list(lv.shape),
                        "downsample": round(lv.downsample, 6),
                        "mpp": round(s.mpp * lv.downsample, 6) if known else None}
                       for lv in s.levels],
            "warnings": [str(w.message) for w in caught],
        }
    if not known:
        out.update(_estimate(args, progress))
    return out


def _estimate(args: argparse.Namespace, progress: ProgressCallback | None) -> dict[str, Any]:
    """The summary lines of a slide without mpp: the estimate, or how to get one."""
    slide = shlex.quote(str(args.slide))
    suggest = f"magnipath magnification suggest-mpp {slide} [--model MODEL_DIR]"
    if args.no_estimate:
        return {"mpp_estimate": None,
                "note": f"the file gives no mpp; estimate it from the pixels with '{suggest}' "
                        "or 'magnipath info' without --no-estimate, or give it with --mpp"}
    from magnipath.magnification._suggest import suggest_mpp

    mpp, details = suggest_mpp(args.slide, args.estimate_model, n_tiles=args.estimate_tiles,
                               device=args.device, progress=progress)
    out: dict[str, Any] = {
        "mpp_estimate": round(mpp, 6) if mpp is not None else None,
        "magnification_estimate": details.get("magnification") if mpp is not None else None,
        "mpp_estimate_source": details["mpp_source"],
        "estimate_votes": details.get("votes", {}),
        "estimate_tiles": details.get("n_tiles", 0),
    }
    if mpp is None:
        out["note"] = (f"the file gives no mpp and none could be estimated from its pixels "
                       f"({details.get('note')}); give the scan resolution with --mpp")
    else:
        out["note"] = (f"the file gives no mpp; mpp_estimate is an ESTIMATE from the pixels "
                       f"({details['mpp_source']}), not a measurement: check it (scanner, "
                       f"objective) before passing it on, e.g. 'magnipath infer {slide} "
                       f"--mpp {mpp:.4g} ...', or let infer/tile estimate it themselves with "
                       "--mpp estimate[:MODEL_DIR] (tile: --mpp-override estimate)")
    return out
