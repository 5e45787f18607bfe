"""Make a synthetic H&E whole-slide image with ground truth.

Writes OUT.tif (pyramidal tiled BigTIFF, levels halved until the longest side is
below 1024 px, mpp in the metadata) and, next to it, OUT.geojson (exhaustive
class polygons), OUT.partial.geojson (DMMN-style partial annotations) and
OUT.mitoses.geojson (mitotic figures as points), all QuPath GeoJSON in level-0
pixels. Classes: Background, Stroma, Carcinoma, Benign, TLS, Necrosis, Adipose.
The slide is a deterministic function of --seed and the size, and is written
tile by tile with bounded memory.
"""

from __future__ import annotations

import argparse

from magnipath.progress import ProgressCallback

NAME = "synth"
HELP = "make a synthetic H&E slide (pyramidal TIFF) with QuPath GeoJSON ground truth"
ORDER = 10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", metavar="OUT.tif", help="output slide path (.tif or .tiff)")
    parser.add_argument("--width", type=int, default=8192,
                        help="level-0 width in pixels (default 8192)")
    parser.add_argument("--height", type=int, default=8192,
                        help="level-0 height in pixels (default 8192)")
    parser.add_argument("--mpp", type=float, default=0.25,
                        help="level-0 resolution in µm per pixel (default 0.25 = 40x; "
                             "magnification = 10 / mpp)")
    parser.add_argument("--seed", type=int, default=0,
                        help="random seed (non-negative integer); same seed and size, "
                             "same slide (default 0)")
    parser.add_argument("--tile", type=int, default=512,
                        help="TIFF tile side in pixels, a multiple of 16 (default 512)")
    parser.add_argument("--compression", choices=("jpeg", "zlib"), default="jpeg",
                        help="tile compression: jpeg (lossy, small) or zlib (lossless) "
                             "(default jpeg)")
    parser.add_argument("--quality", type=int, default=90,
                        help="JPEG quality 1-100 (unitless; default 90)")
    parser.add_argument("--density", type=float, default=1.0,
                        help="multiplier of the number of tissue features (nests, TLS, "
                             "lobules, fat) per mm² of tissue (default 1)")


def run(args: argparse.Namespace, progress: ProgressCallback) -> dict:
    from magnipath.synth import SynthConfig, synthesize

    config = SynthConfig(width=args.width, height=args.height, mpp=args.mpp, seed=args.seed,
                         tile=args.tile, compression=args.compression, quality=args.quality,
                         density=args.density)
    res = synthesize(args.out, config, progress=progress)
    return {
        "slide": str(res.slide),
        "truth": str(res.truth),
        "partial": str(res.partial),
        "mitoses": str(res.mitoses),
        "levels": [list(s) for s in res.levels],
        "mpp": config.mpp,
        "objects": res.n_objects,
        "partial_objects": res.n_partial,
        "n_mitoses": res.n_mitoses,
        "seconds": round(res.seconds, 3),
    }
