"""The backend-independent slide: levels, resolution, and ``read_region``.

A backend (tifffile, openslide) only reads raw pixels of one pyramid level
(:meth:`Slide._read_level`); choosing the level, resampling the remainder and
zero padding live here, so every backend behaves the same.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from magnipath._errors import SlideError
from magnipath.slide._resample import box_reduce, resize_box
from magnipath.types import Box
from magnipath.units import resolve_mpp

LEVEL_TOLERANCE = 1e-3
"""Relative tolerance when matching a requested downsample to a level's."""

UPSAMPLE_TOLERANCE = 0.01
"""A target mpp at most this much (relative) finer than level 0 is not an upsample."""

THUMBNAIL_BLOCK_PX = 2048
"""Thumbnails are read in blocks whose source region is about this many pixels a side."""

_ALIGN_TOLERANCE = 1e-3  # level pixels: a box corner this close to the grid is on it
_EXACT_TOLERANCE = 1e-6  # relative: a scale this close to an integer is that integer


class SlideWarning(UserWarning):
    """A slide can be read but something about it is worth knowing (e.g. no pyramid)."""


@dataclass(frozen=True)
class Level:
    """One level of a slide's resolution pyramid.

    Attributes
    ----------
    index : int
        Position in :attr:`Slide.levels` (0 = full resolution).
    shape : tuple of int
        ``(height, width)`` in this level's pixels.
    downsample : float
        Level-0 pixels per pixel of this level (1.0 for level 0).
    """

    index: int
    shape: tuple[int, int]
    downsample: float


def level_downsample(shape0: tuple[int, int], shape: tuple[int, int]) -> float:
    """Level-0 pixels per pixel of a level of ``shape`` (both ``(height, width)``).

    When the level is an integer reduction ``k`` of level 0 (each side is the
    floor or the ceiling of level 0's side divided by ``k``, as pyramid writers
    make them) the downsample is exactly ``k``; otherwise it is the mean of the
    two side ratios.
    """
    ratios = [a / b for a, b in zip(shape0, shape, strict=True)]
    k = round(sum(ratios) / 2)
    if k >= 1 and all(b in (a // k, -(-a // k)) for a, b in zip(shape0, shape, strict=True)):
        return float(k)
    return sum(ratios) / 2


class Slide:
    """A whole-slide image opened lazily; read it at any resolution.

    Use :func:`magnipath.slide.open_slide` to make one. Coordinates are
    level-0 pixels unless a name says otherwise; boxes are ``(x, y, width,
    height)``; arrays are ``(y, x, 3)`` uint8 RGB. Reads are thread-safe.

    Attributes
    ----------
    path : pathlib.Path
        The slide file.
    backend : str
        ``"tifffile"`` or ``"openslide"``.
    mpp : float
        Level-0 resolution in µm per pixel (the override if one was given).
    mpp_source : str
        Where :attr:`mpp` came from: ``"ome"``, ``"aperio"``,
        ``"tiff-resolution"``, ``"openslide"`` or ``"override"``.
    levels : list of Level
        The pyramid, finest first.
    objective_power : float or None
        The scanner's nominal objective from the metadata (Aperio ``AppMag``,
        ``openslide.objective-power``), when present; informative only.
    """

    backend: str = ""

    def __init__(self, path: Path, *, mpp: float, mpp_source: str, levels: list[Level],
                 objective_power: float | None = None) -> None:
        self.path = Path(path)
        self.mpp = float(mpp)
        self.mpp_source = mpp_source
        self.levels = levels
        self.objective_power = objective_power
        self._closed = False

    # -- resolution -------------------------------------------------------------
    @property
    def magnification(self) -> float:
        """Level-0 magnification, ``10 / mpp`` (40x = 0.25 µm/px)."""
        return 10.0 / self.mpp

    @property
    def height(self) -> int:
        """Level-0 height in pixels."""
        return self.levels[0].shape[0]

    @property
    def width(self) -> int:
        """Level-0 width in pixels."""
        return self.levels[0].shape[1]

    @property
    def shape(self) -> tuple[int, int]:
        """Level-0 ``(height, width)`` in pixels."""
        return self.levels[0].shape

    def best_level(self, downsample: float) -> Level:
        """The coarsest level whose downsample is at most ``downsample``.

        ``downsample`` is in level-0 pixels per output pixel; a level within a
        relative tolerance of 1e-3 above it still counts. Level 0 is returned
        for downsamples below 1.
        """
        best = self.levels[0]
        for lv in self.levels:
            if lv.downsample <= downsample * (1 + LEVEL_TOLERANCE) and \
                    lv.downsample > best.downsample:
                best = lv
        return best

    # -- reading ----------------------------------------------------------------
    def read_level(self, level: int, y0: int, x0: int, height: int, width: int) -> np.ndarray:
        """Raw pixels of one pyramid level, zero-padded outside it.

        Parameters
        ----------
        level : int
            Index into :attr:`levels`.
        y0, x0 : int
            Top-left corner in **that level's** pixels (may be negative).
        height, width : int
            Size of the region in that level's pixels.

        Returns
        -------
        numpy.ndarray
            ``(height, width, 3)`` uint8 RGB (alpha dropped, grey repeated).
        """
        self._check_open()
        if not 0 <= level < len(self.levels):
            raise SlideError(f"{self.path}: level {level} does not exist; the slide has "
                             f"levels 0..{len(self.levels) - 1}.")
        height, width = int(height), int(width)
        if height < 0 or width < 0:
            raise SlideError(f"{self.path}: region size must not be negative, got "
                             f"height={height}, width={width}.")
        if height == 0 or width == 0:
            return np.zeros((height, width, 3), np.uint8)
        return self._read_level(level, int(y0), int(x0), height, width)

    def read_region(self, box: Box, *, mpp: float | None = None,
                    magnification: float | None = None,
                    out_shape: tuple[int, int] | None = None,
                    allow_upsample: bool = False) -> np.ndarray:
        """Read a level-0 box at a target resolution.

        Parameters
        ----------
        box : tuple of float
            ``(x, y, width, height)`` in level-0 pixels; fractions allowed; may
            extend beyond the slide (zero padding).
        mpp, magnification : float, optional
            Target resolution as µm per output pixel or as magnification
            (``10 / mpp``); at most one. Default: level 0's.
        out_shape : tuple of int, optional
            ``(height, width)`` of the output in output pixels; default
            ``(round(height / d), round(width / d))`` with ``d = mpp / slide.mpp``.
        allow_upsample : bool
            Allow a target finer than level 0 (beyond 1 % tolerance).

        Returns
        -------
        numpy.ndarray
            ``(y, x, 3)`` uint8. Output pixel ``(r, c)`` covers the level-0
            square ``[x + c*d, x + (c+1)*d) x [y + r*d, y + (r+1)*d)``. Read
            from the coarsest level not coarser than ``d``; when ``d`` equals
            an integer multiple ``k`` of that level's downsample and the box is
            on its grid the result is exact (``k = 1``: the stored pixels;
            otherwise the mean of ``k x k`` blocks, halves rounded up), else it
            is resampled with an antialiasing filter.

        Raises
        ------
        SlideError
            Bad box or resolution, an upsample not allowed, or unreadable data.
        """
        self._check_open()
        try:
            x, y, w, h = (float(v) for v in box)
        except (TypeError, ValueError):
            raise SlideError(f"{self.path}: box must be (x, y, width, height) in level-0 "
                             f"pixels, got {box!r}.") from None
        if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
            raise SlideError(f"{self.path}: box {box!r} must be finite with positive width "
                             "and height (level-0 pixels).")
        if mpp is None and magnification is None:
            target = self.mpp
        else:
            try:
                target = resolve_mpp(mpp=mpp, magnification=magnification)
            except ValueError as e:
                raise SlideError(f"{self.path}: target resolution: {e}.") from None
        d = target / self.mpp
        if d < 1 - UPSAMPLE_TOLERANCE and not allow_upsample:
            raise SlideError(
                f"{self.path}: the target {target:.4g} µm/px ({10 / target:.3g}x) is finer "
                f"than the scan ({self.mpp:.4g} µm/px, {self.magnification:.3g}x); "
                "choose a lower magnification or allow upsampling (allow_upsample=True, "
                "--allow-upsample).")
        if out_shape is None:
            oh, ow = max(1, round(h / d)), max(1, round(w / d))
        else:
            oh, ow = (int(v) for v in out_shape)
            if oh <= 0 or ow <= 0:
                raise SlideError(f"{self.path}: out_shape must be positive, got {out_shape!r}.")
        return self._read_resampled(x, y, d, oh, ow)

    def _read_resampled(self, x: float, y: float, d: float, oh: int, ow: int) -> np.ndarray:
        level = self.best_level(d)
        ds = level.downsample
        f = d / ds  # level pixels per output pixel
        xs, ys = x / ds, y / ds
        k = round(f)
        on_grid = (abs(xs - round(xs)) < _ALIGN_TOLERANCE
                   and abs(ys - round(ys)) < _ALIGN_TOLERANCE)
        if k >= 1 and abs(f - k) <= _EXACT_TOLERANCE * k and on_grid:
            src = self._read_level(level.index, round(ys), round(xs), oh * k, ow * k)
            return box_reduce(src, k)
        margin = math.ceil(f) + 1
        ix0, iy0 = math.floor(xs) - margin, math.floor(ys) - margin
        ix1, iy1 = math.ceil(xs + ow * f) + margin, math.ceil(ys + oh * f) + margin
        src = self._read_level(level.index, iy0, ix0, iy1 - iy0, ix1 - ix0)
        window = (xs - ix0, ys - iy0, xs - ix0 + ow * f, ys - iy0 + oh * f)
        return resize_box(src, window, (oh, ow))

    def thumbnail(self, mpp: float) -> np.ndarray:
        """The whole slide at ``mpp`` µm per pixel, read in bounded-memory blocks.

        Returns
        -------
        numpy.ndarray
            ``(y, x, 3)`` uint8 of shape ``(round(height * slide.mpp / mpp),
            round(width * slide.mpp / mpp))``; pixel ``(r, c)`` covers the level-0
            square starting at ``(c * d, r * d)``, ``d = mpp / slide.mpp``.
        """
        self._check_open()
        d = float(mpp) / self.mpp
        if d < 1 - UPSAMPLE_TOLERANCE:
            raise SlideError(f"{self.path}: a thumbnail at {mpp} µm/px would be finer than "
                             f"the scan ({self.mpp:.4g} µm/px).")
        oh, ow = max(1, round(self.height / d)), max(1, round(self.width / d))
        f = d / self.best_level(d).downsample
        block = max(16, int(THUMBNAIL_BLOCK_PX / max(f, 1.0)))
        out = np.zeros((oh, ow, 3), np.uint8)
        for r0 in range(0, oh, block):
            for c0 in range(0, ow, block):
                bh, bw = min(block, oh - r0), min(block, ow - c0)
                out[r0:r0 + bh, c0:c0 + bw] = self._read_resampled(c0 * d, r0 * d, d, bh, bw)
        return out

    # -- backend hooks ------------------------------------------------------------
    def _read_level(self, level: int, y0: int, x0: int, height: int,
                    width: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def zarr_levels(self) -> list[Any]:  # pragma: no cover - abstract
        """Lazy ``(y, x, 3)`` uint8 array-likes, one per level, finest first (for napari)."""
        raise NotImplementedError

    def _close(self) -> None:  # pragma: no cover - abstract
        pass

    def _open_kwargs(self) -> dict[str, Any]:
        return {"backend": self.backend,
                "mpp": self.mpp if self.mpp_source == "override" else None}

    # -- lifetime ---------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise SlideError(f"{self.path}: the slide was closed; open it again.")

    def close(self) -> None:
        """Release the file handles and the decoded-tile cache."""
        if not self._closed:
            self._closed = True
            self._close()

    def __enter__(self) -> Slide:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __reduce__(self) -> tuple:
        # pickled slides (e.g. sent to worker processes) reopen the file
        from magnipath.slide import open_slide

        return (functools.partial(open_slide, **self._open_kwargs()), (os.fspath(self.path),))

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.path.name!r} {self.width}x{self.height} "
                f"{self.mpp:.4g} µm/px ({self.mpp_source}) levels={len(self.levels)} "
                f"backend={self.backend}>")
