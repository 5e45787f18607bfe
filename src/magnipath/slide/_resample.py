"""Resampling of RGB uint8 regions: exact box averaging and antialiased resizing."""

from __future__ import annotations

import numpy as np
from PIL import Image


def box_reduce(arr: np.ndarray, k: int) -> np.ndarray:
    """Average ``k x k`` blocks of a ``(y, x, c)`` uint8 array (rounding halves up).

    ``arr`` must have a height and width divisible by ``k``; the result has
    shape ``(y // k, x // k, c)``. Output pixel ``(r, c)`` is the mean of
    input pixels ``[r*k, (r+1)*k) x [c*k, (c+1)*k)``.
    """
    if k == 1:
        return arr
    h, w, c = arr.shape
    acc = np.uint16 if k * k * 255 < 2**16 else np.uint32
    blocks = arr.reshape(h // k, k, w // k, k, c)
    total = blocks.sum(axis=(1, 3), dtype=acc)
    n = k * k
    return ((total + n // 2) // n).astype(np.uint8)


def resize_box(src: np.ndarray, box: tuple[float, float, float, float],
               out_shape: tuple[int, int]) -> np.ndarray:
    """Resample the window ``box`` of ``src`` to ``out_shape`` with an antialiasing filter.

    Parameters
    ----------
    src : numpy.ndarray
        ``(y, x, 3)`` uint8 source pixels.
    box : tuple of float
        ``(x0, y0, x1, y1)`` in ``src`` pixel coordinates (pixel ``i`` spans
        ``[i, i+1)``); must lie inside ``src``.
    out_shape : tuple of int
        ``(height, width)`` of the output.

    Returns
    -------
    numpy.ndarray
        ``(height, width, 3)`` uint8. Downscaling uses Pillow's box filter (an
        area average, antialiased); upscaling uses bilinear interpolation.
    """
    h, w = out_shape
    scale = max((box[2] - box[0]) / w, (box[3] - box[1]) / h)
    resample = Image.Resampling.BOX if scale >= 1.0 else Image.Resampling.BILINEAR
    img = Image.fromarray(np.ascontiguousarray(src))  # (y, x, 3) uint8 -> RGB
    return np.array(img.resize((w, h), resample=resample, box=box))
