"""Make a synthetic H&E whole-slide image with ground truth.

Writes OUT.tif (pyramidal tiled BigTIFF, levels halved until the longest side is
below 1024 px, mpp in the metadata) and, next to it, OUT.geojson (exhaustive
class polygons), OUT.partial.geojson (DMMN-style partial annotations) and
OUT.mitoses.geojson (mitotic figures as points), all QuPath GeoJSON in level-0
pixels. Classes: Background, Stroma, Carcinoma, Benign, TLS, Necrosis, Adipose.
The slide is a deterministic function of --seed and the size, and is written
tile by tile with bounded memory.

--stain NAME (reference, faded, intense, scanner-b, yellow) and the options after
it change only how the slide looks (stain vectors, staining intensity, glass
tint, illumination, optical blur, JPEG quality): the same --seed and size give
the same layout and ground truth under every stain, e.g. to make held-out test
slides "from another lab":

    magnipath synth a.tif --seed 7 && magnipath synth a_b.tif --seed 7 --stain scanner-b
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
    parser.add_argument("--quality", type=int, default=None,
                        help="JPEG quality 1-100 (unitless; default 90, or the --stain "
                             "preset's)")
    parser.add_argument("--density", type=float, default=1.0,
                        help="multiplier of the number of tissue features (nests, TLS, "
                             "lobules, fat) per mm² of tissue (default 1)")
    from magnipath.synth._scanner import SCANNER_PRESETS

    g = parser.add_argument_group("stain and scanner (appearance only; same seed, same layout)")
    g.add_argument("--stain", default="reference", metavar="NAME",
                   help=f"stain/scanner preset: {', '.join(SCANNER_PRESETS)} "
                        "(default reference); the options below override it")
    g.add_argument("--h-vector", metavar="R,G,B",
                   help="haematoxylin optical-density direction (r, g, b), e.g. 0.65,0.70,0.29")
    g.add_argument("--e-vector", metavar="R,G,B",
                   help="eosin optical-density direction (r, g, b), e.g. 0.07,0.99,0.11")
    g.add_argument("--h-intensity", type=float, metavar="F",
                   help="haematoxylin staining intensity factor (1 = standard)")
    g.add_argument("--e-intensity", type=float, metavar="F",
                   help="eosin staining intensity factor (1 = standard)")
    g.add_argument("--brightness", type=float, metavar="F",
                   help="illumination factor, 0.5-1.5 (1 = white glass at 255)")
    g.add_argument("--background-tint", metavar="R,G,B",
                   help="optical density of the bare glass per channel, e.g. 0.02,0.05,0.16 "
                        "for a yellow tint")
    g.add_argument("--blur-um", type=float, metavar="UM",
                   help="Gaussian optical blur, standard deviation in µm (default 0)")


def _vector(text: str | None, option: str) -> tuple[float, float, float] | None:
    from magnipath.synth import SynthError

    if text is None:
        return None
    try:
        v = tuple(float(p) for p in text.replace(";", ",").split(","))
    except ValueError:
        v = ()
    if len(v) != 3:
        raise SynthError(f"{option} {text!r}: give three numbers R,G,B (optical densities), "
                         "e.g. 0.65,0.70,0.29")
    return v  # type: ignore[return-value]


def scanner_from_args(args: argparse.Namespace):
    """The :class:`~magnipath.synth.Scanner` of ``--stain`` and its override options."""
    from magnipath.synth import get_scanner

    return get_scanner(args.stain).replace(
        h_vector=_vector(args.h_vector, "--h-vector"),
        e_vector=_vector(args.e_vector, "--e-vector"), h_scale=args.h_intensity,
        e_scale=args.e_intensity, brightness=args.brightness,
        glass=_vector(args.background_tint, "--background-tint"), blur_um=args.blur_um,
        quality=args.quality).validate()


def run(args: argparse.Namespace, progress: ProgressCallback) -> dict:
    from magnipath.synth import SynthConfig, synthesize

    scanner = scanner_from_args(args)
    config = SynthConfig(width=args.width, height=args.height, mpp=args.mpp, seed=args.seed,
                         tile=args.tile, compression=args.compression,
                         quality=90 if args.quality is None else args.quality,
                         density=args.density, scanner=scanner)
    res = synthesize(args.out, config, progress=progress)
    return {
        "slide": str(res.slide),
        "truth": str(res.truth),
        "partial": str(res.partial),
        "mitoses": str(res.mitoses),
        "levels": [list(s) for s in res.levels],
        "mpp": config.mpp,
        "stain": scanner.to_dict(),
        "objects": res.n_objects,
        "partial_objects": res.n_partial,
        "n_mitoses": res.n_mitoses,
        "seconds": round(res.seconds, 3),
    }
