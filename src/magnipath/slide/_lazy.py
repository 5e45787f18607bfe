"""A lazy ``(y, x, 3)`` array-like over one slide level, for napari multiscale layers."""

from __future__ import annotations

from typing import Any

import numpy as np


class LazyLevel:
    """Array-like view of one level of a slide; indexing reads only what is asked.

    Supports basic indexing (integers, slices with steps, ``...``) as napari
    uses it; pixels are read through :meth:`Slide.read_level` (zero outside).

    Parameters
    ----------
    slide : Slide
        The open slide.
    level : int
        Level index.
    """

    dtype = np.dtype(np.uint8)
    ndim = 3

    def __init__(self, slide: Any, level: int) -> None:
        self._slide = slide
        self._level = level
        h, w = slide.levels[level].shape
        self.shape = (h, w, 3)

    @property
    def size(self) -> int:
        return self.shape[0] * self.shape[1] * 3

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        if any(k is Ellipsis for k in key):
            i = next(i for i, k in enumerate(key) if k is Ellipsis)
            key = key[:i] + (slice(None),) * (3 - len(key) + 1) + key[i + 1:]
        key = key + (slice(None),) * (3 - len(key))
        ys, xs, cs = key
        y_int, x_int = not isinstance(ys, slice), not isinstance(xs, slice)
        ys = slice(int(ys), int(ys) + 1) if y_int else ys
        xs = slice(int(xs), int(xs) + 1) if x_int else xs
        (y0, y1, sy), (x0, x1, sx) = ys.indices(self.shape[0]), xs.indices(self.shape[1])
        if sy <= 0 or sx <= 0:
            return np.asarray(self)[key]  # rare: reversed slices read everything
        h, w = max(0, y1 - y0), max(0, x1 - x0)
        arr = self._slide.read_level(self._level, y0, x0, h, w)[::sy, ::sx]
        out = arr[:, :, cs]
        if y_int and x_int:
            return out[0, 0]
        if y_int:
            return out[0]
        if x_int:
            return out[:, 0]
        return out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        arr = self._slide.read_level(self._level, 0, 0, self.shape[0], self.shape[1])
        return arr if dtype is None else arr.astype(dtype)
