"""Writers of small real slides (tifffile) for the slide and tissue tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile


def textured(height: int, width: int, seed: int = 0, channels: int = 3) -> np.ndarray:
    """A ``(y, x, c)`` uint8 image with gradients and noise (so averages are informative)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([120 + 80 * np.sin(xx / 17.0), 120 + 80 * np.cos(yy / 11.0),
                     (xx + yy) % 256 * 0.5 + 60, 200 + 0 * xx], -1)[..., :channels]
    noise = rng.integers(-40, 40, (height, width, channels))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def pyramid(img: np.ndarray, n_levels: int, factor: int = 2) -> list[np.ndarray]:
    """Levels made by strided subsampling (any content will do; it is read back as written)."""
    levels = [img]
    for _ in range(n_levels - 1):
        levels.append(np.ascontiguousarray(levels[-1][::factor, ::factor]))
    return levels


def write_generic(path: Path, levels: list[np.ndarray], *, tile: int = 128,
                  compression: str | None = "zlib", resolution: float | None = None,
                  unit: str = "CENTIMETER", description: str | None = None,
                  photometric: str | None = None) -> Path:
    """A tiled TIFF with the levels as successive top-level IFDs (reduced: NewSubfileType=1).

    ``resolution`` is pixels per ``unit``; ``None`` writes no resolution unit (NONE).
    """
    photometric = photometric or ("rgb" if levels[0].ndim == 3 and levels[0].shape[2] >= 3
                                  else "minisblack")
    with tifffile.TiffWriter(path) as tw:
        for i, lv in enumerate(levels):
            kw: dict = {}
            if i == 0:
                if resolution is not None:
                    kw.update(resolution=(resolution, resolution), resolutionunit=unit)
                if description is not None:
                    kw["description"] = description
            else:
                kw["subfiletype"] = 1
            extras = ["unassalpha"] if lv.ndim == 3 and lv.shape[2] == 4 else None
            tw.write(lv, tile=(tile, tile), compression=compression, photometric=photometric,
                     extrasamples=extras, metadata=None, **kw)
    return path


def write_ome(path: Path, levels: list[np.ndarray], *, tile: int = 128,
              compression: str = "zlib", physical_size: float | None = 0.5,
              unit: str = "µm") -> Path:
    """An OME-TIFF with the reduced levels as SubIFDs of level 0."""
    meta: dict = {"axes": "YXS"}
    if physical_size is not None:
        meta.update(PhysicalSizeX=physical_size, PhysicalSizeXUnit=unit,
                    PhysicalSizeY=physical_size, PhysicalSizeYUnit=unit)
    with tifffile.TiffWriter(path, ome=True) as tw:
        tw.write(levels[0], tile=(tile, tile), compression=compression, photometric="rgb",
                 subifds=len(levels) - 1, metadata=meta)
        for lv in levels[1:]:
            tw.write(lv, tile=(tile, tile), compression=compression, photometric="rgb",
                     subfiletype=1)
    return path


def level_data(path: Path, level: int) -> np.ndarray:
    """The decoded pixels of one level as tifffile reads them (the reference)."""
    with tifffile.TiffFile(path) as tf:
        return tf.series[0].levels[level].asarray()
