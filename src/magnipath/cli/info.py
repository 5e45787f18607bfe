"""Show what MagniPath reads from a slide: its pyramid levels (shape, downsample), its
resolution in µm per pixel and where that came from, its magnification (10 / mpp)
and the backend that reads it.

Example: magnipath info slide.tif --json
"""

from __future__ import annotations

import argparse
import warnings
from typing import Any

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


def run(args: argparse.Namespace, progress: ProgressCallback | None = None) -> dict[str, Any]:
    """Open the slide and return its description as a summary dict."""
    from magnipath.slide import open_slide

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = open_slide(args.slide, mpp=args.mpp, backend=args.backend)
    with s:
        return {
            "slide": str(s.path),
            "backend": s.backend,
            "width": s.width,
            "height": s.height,
            "mpp": round(s.mpp, 6),
            "mpp_source": s.mpp_source,
            "magnification": round(s.magnification, 4),
            "objective_power": s.objective_power,
            "levels": [{"index": lv.index, "shape": list(lv.shape),
                        "downsample": round(lv.downsample, 6),
                        "mpp": round(s.mpp * lv.downsample, 6)} for lv in s.levels],
            "warnings": [str(w.message) for w in caught],
        }
