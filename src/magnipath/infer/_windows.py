"""The sliding-window plan: windows on the output grid, grouped by output chunk.

Frames
------
*Output pixels* are pixels of the label map at the model's target resolution
(``target_mpp``); output pixel ``(r, c)`` covers level-0
``[x0 + c*d, x0 + (c+1)*d) x [y0 + r*d, y0 + (r+1)*d)`` with ``d = target_mpp /
slide_mpp`` and ``(x0, y0)`` the level-0 origin of the region. Windows and
chunks are given in output pixels as ``(row, col)`` of their top-left corner.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DEFAULT_CHUNK = 1024
"""Target side of an output chunk, output pixels (rounded to a multiple of the window)."""


@dataclass(frozen=True)
class WindowPlan:
    """Where the windows of a run lie and which output chunk each one feeds.

    Attributes
    ----------
    out_shape : (int, int)
        Label map ``(height, width)`` in output pixels.
    size, stride : int
        Window side and step in output pixels.
    chunk : int
        Side of an output chunk in output pixels (written to zarr as one unit).
    windows : ndarray
        ``(N, 2)`` int64 top-left ``(row, col)`` of every window, row-major:
        window ``i * len(col_starts) + j`` starts at ``(row_starts[i], col_starts[j])``.
    row_starts, col_starts : ndarray
        Sorted window starts along y and x, output pixels.
    """

    out_shape: tuple[int, int]
    size: int
    stride: int
    chunk: int
    windows: np.ndarray
    row_starts: np.ndarray
    col_starts: np.ndarray

    @property
    def chunk_grid(self) -> tuple[int, int]:
        """Number of chunks along ``(y, x)``."""
        h, w = self.out_shape
        return (math.ceil(h / self.chunk), math.ceil(w / self.chunk))

    def chunk_extent(self, cy: int, cx: int) -> tuple[int, int, int, int]:
        """``(row0, row1, col0, col1)`` of chunk ``(cy, cx)`` in output pixels (ends exclusive)."""
        h, w = self.out_shape
        return (cy * self.chunk, min((cy + 1) * self.chunk, h),
                cx * self.chunk, min((cx + 1) * self.chunk, w))

    def windows_of_chunk(self, cy: int, cx: int) -> np.ndarray:
        """Indices (into :attr:`windows`, ascending) of the windows that overlap chunk ``(cy, cx)``.

        Computed from the sorted starts, so the cost is independent of the number
        of windows in the slide.
        """
        r0, r1, c0, c1 = self.chunk_extent(cy, cx)

        def hit(starts: np.ndarray, lo: int, hi: int) -> np.ndarray:
            # starts s with s < hi and s + size > lo
            a = int(np.searchsorted(starts, lo - self.size, side="right"))
            b = int(np.searchsorted(starts, hi, side="left"))
            return np.arange(a, b, dtype=np.int64)

        rows, cols = hit(self.row_starts, r0, r1), hit(self.col_starts, c0, c1)
        return (rows[:, None] * len(self.col_starts) + cols[None, :]).ravel()


def _starts(n: int, size: int, stride: int) -> np.ndarray:
    """Window starts from 0 so that the last window reaches ``n`` (zero padding beyond)."""
    last = max(n - size, 0)
    starts = np.arange(0, last + 1, stride, dtype=np.int64)
    if starts[-1] < last:
        starts = np.append(starts, starts[-1] + stride)
    return starts


def plan_windows(out_shape: tuple[int, int], size: int, stride: int,
                 chunk: int | None = None) -> WindowPlan:
    """Plan windows of ``size`` every ``stride`` output pixels from the top-left corner.

    Parameters
    ----------
    out_shape : (int, int)
        Label map ``(height, width)``, output pixels.
    size : int
        Window (target tile) side, output pixels.
    stride : int
        Step between windows, output pixels, ``1..size``. With ``stride == size``
        (the DMMN setting) windows tile the map without overlap; the last window
        of a row or column may run past the map (zero padding beyond the slide).
    chunk : int, optional
        Output chunk side, output pixels (default ~1024). Without overlap it is
        rounded to a multiple of ``size`` so that every window feeds exactly one
        chunk and is predicted once.

    Returns
    -------
    WindowPlan

    Raises
    ------
    ValueError
        ``stride`` outside ``1..size``, or a non-positive ``size``, ``chunk`` or shape.
    """
    if size <= 0 or min(out_shape) <= 0:
        raise ValueError(f"window size and map shape must be positive, got {size}, {out_shape}")
    if stride <= 0 or stride > size:
        raise ValueError(f"stride must be in 1..{size} output pixels, got {stride}")
    if chunk is not None and chunk <= 0:
        raise ValueError(f"chunk must be a positive number of output pixels, got {chunk}")
    want = DEFAULT_CHUNK if chunk is None else int(chunk)
    if stride == size:
        chunk = size * max(1, round(want / size))
    else:
        chunk = want
    ys, xs = _starts(out_shape[0], size, stride), _starts(out_shape[1], size, stride)
    grid = np.stack(np.meshgrid(ys, xs, indexing="ij"), axis=-1).reshape(-1, 2)
    return WindowPlan((int(out_shape[0]), int(out_shape[1])), int(size), int(stride), int(chunk),
                      grid.astype(np.int64), ys, xs)


def blend_weights(size: int, stride: int) -> np.ndarray:
    """Per-pixel weight of a window's prediction, ``(size, size)`` float32, ``(y, x)``.

    Without overlap every pixel has weight 1. With overlap a raised-cosine
    (Hann) window gives the centre of each window more say than its rim, which
    removes seams; a small floor keeps pixels at the slide border, seen by one
    window only, defined.
    """
    if stride >= size:
        return np.ones((size, size), np.float32)
    t = (np.arange(size) + 0.5) / size
    w1 = 0.5 - 0.5 * np.cos(2 * np.pi * t)
    w = np.outer(w1, w1).astype(np.float32)
    return np.maximum(w, 1e-3)
