"""The grid of target tiles over a slide (level-0 boxes, row-major)."""

from __future__ import annotations

import math

import numpy as np

from magnipath._errors import TilingError
from magnipath.geometry import TileGeometry


def stride_from(target_size: int, stride: int | None, overlap: float) -> int:
    """Stride in target pixels from an explicit ``stride`` or an ``overlap`` fraction.

    ``overlap`` is the fraction of the target side shared by neighbouring
    tiles (0.5 = the TLS paper's 50 %); the stride is
    ``round(target_size * (1 - overlap))``, at least 1 px.
    """
    if stride is not None:
        if int(stride) != stride or stride < 1:
            raise TilingError(f"stride must be a whole number of target pixels >= 1, got {stride}")
        return int(stride)
    if not 0.0 <= overlap < 1.0:
        raise TilingError(f"overlap must be in [0, 1), got {overlap}; 0.5 means 50 % overlap")
    return max(1, round(target_size * (1.0 - overlap)))


def tile_grid(width: int, height: int, slide_mpp: float, geometry: TileGeometry,
              stride_px: int) -> np.ndarray:
    """Level-0 target boxes covering a ``width`` x ``height`` slide, row-major.

    The first tile's top-left corner is level-0 ``(0, 0)``; tiles step by
    ``stride_px`` target pixels (``stride_px * target_mpp / slide_mpp`` level-0
    pixels) until the slide is covered, so tiles of the last row and column may
    reach past the slide's edge (those pixels read as zeros and label as ignore).

    Parameters
    ----------
    width, height : int
        Slide size in level-0 pixels.
    slide_mpp : float
        Level-0 resolution, µm/px.
    geometry : TileGeometry
        Target tile size (target pixels) and resolution (µm/px).
    stride_px : int
        Step between neighbouring tiles in target pixels.

    Returns
    -------
    numpy.ndarray
        float64 ``(N, 4)`` boxes ``(x, y, w, h)`` in level-0 pixels, ordered by
        row (y) then column (x).
    """
    if width <= 0 or height <= 0:
        raise TilingError(f"slide size {width} x {height} px is empty")
    if slide_mpp <= 0 or stride_px < 1:
        raise TilingError(f"invalid slide mpp {slide_mpp} or stride {stride_px}")
    d = geometry.target_mpp / slide_mpp
    side = geometry.target_size * d
    step = stride_px * d

    def n_steps(extent: int) -> int:
        if extent <= side:
            return 1
        return 1 + math.ceil((extent - side) / step - 1e-9)

    xs = np.arange(n_steps(width), dtype=np.float64) * step
    ys = np.arange(n_steps(height), dtype=np.float64) * step
    gy, gx = np.meshgrid(ys, xs, indexing="ij")
    n = gx.size
    return np.stack([gx.ravel(), gy.ravel(), np.full(n, side), np.full(n, side)], axis=1)
