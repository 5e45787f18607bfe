"""Tissue detection: Otsu threshold on a low-resolution image, then morphological clean-up.

The method of the DMMN paper (an Otsu mask on a low level to skip background):
the slide is read at ``mpp`` (default 8 µm/px, ~1.25x), each pixel's colour
saturation ``(max - min) / max`` is thresholded with Otsu's method (white glass
is unsaturated; black, zero-padded pixels are never tissue), then objects and
holes smaller than given areas in µm² are removed / filled.

:class:`TissueMask` answers "what fraction of this level-0 box is tissue?" for
one box or, vectorised through an integral image, for many.

Examples
--------
>>> from magnipath.slide import open_slide                  # doctest: +SKIP
>>> from magnipath.tissue import detect_tissue               # doctest: +SKIP
>>> with open_slide("slide.tif") as s:                       # doctest: +SKIP
...     tissue = detect_tissue(s)
>>> tissue.fraction((0, 0, 1024, 1024))                      # doctest: +SKIP
0.42
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from magnipath._errors import MagnipathError
from magnipath.slide import Slide
from magnipath.types import Box

MIN_OTSU_SATURATION = 0.05
"""Otsu thresholds below this saturation are raised to it, so that a slide of bare
glass (saturation noise only) yields no tissue."""

DARK_LIMIT = 25
"""Pixels whose brightest channel is at most this (0-255) are black: padding or ink."""


@dataclass(eq=False)
class TissueMask:
    """A boolean tissue mask of a slide with the geometry to query it in level-0 pixels.

    Attributes
    ----------
    mask : numpy.ndarray
        ``(y, x)`` bool, True on tissue; pixel ``(r, c)`` covers the level-0
        square ``[c*d, (c+1)*d) x [r*d, (r+1)*d)`` with ``d = downsample``.
    mpp : float
        µm per mask pixel.
    slide_mpp : float
        µm per level-0 pixel of the slide.
    slide_shape : tuple of int
        Level-0 ``(height, width)`` of the slide.
    threshold : float or None
        The saturation threshold used (0-1), when known.
    """

    mask: np.ndarray
    mpp: float
    slide_mpp: float
    slide_shape: tuple[int, int]
    threshold: float | None = None
    _integral: np.ndarray | None = field(default=None, init=False, repr=False)

    @property
    def downsample(self) -> float:
        """Level-0 pixels per mask pixel (``mpp / slide_mpp``)."""
        return self.mpp / self.slide_mpp

    def _clip(self, x0: np.ndarray, y0: np.ndarray, x1: np.ndarray, y1: np.ndarray):
        """Level-0 edges clipped to the slide, then converted and clipped to mask pixels."""
        h0, w0 = self.slide_shape
        mh, mw = self.mask.shape
        d = self.downsample
        u0, u1 = (np.clip(np.clip(v, 0, w0) / d, 0, mw) for v in (x0, x1))
        v0, v1 = (np.clip(np.clip(v, 0, h0) / d, 0, mh) for v in (y0, y1))
        return u0, v0, u1, v1

    def fraction(self, box: Box) -> float:
        """Tissue fraction of a level-0 box, weighted by area.

        Parameters
        ----------
        box : tuple of float
            ``(x, y, width, height)`` in level-0 pixels; the part outside the
            slide counts as no tissue.

        Returns
        -------
        float
            Tissue area / box area, in [0, 1]; 0 for an empty box.
        """
        x, y, w, h = (float(v) for v in box)
        if w <= 0 or h <= 0:
            return 0.0
        u0, v0, u1, v1 = (float(a) for a in self._clip(x, y, x + w, y + h))
        if u1 <= u0 or v1 <= v0:
            return 0.0
        cols = np.arange(math.floor(u0), math.ceil(u1))
        rows = np.arange(math.floor(v0), math.ceil(v1))
        wx = np.minimum(u1, cols + 1) - np.maximum(u0, cols)
        wy = np.minimum(v1, rows + 1) - np.maximum(v0, rows)
        window = self.mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].astype(np.float64)
        area = float(wy @ window @ wx)
        return min(1.0, area * self.downsample**2 / (w * h))

    def fractions(self, boxes: np.ndarray) -> np.ndarray:
        """Tissue fractions of many level-0 boxes at once (an integral image).

        Parameters
        ----------
        boxes : numpy.ndarray
            ``(N, 4)`` rows of ``(x, y, width, height)`` in level-0 pixels.

        Returns
        -------
        numpy.ndarray
            ``(N,)`` float64, equal to :meth:`fraction` of each box.
        """
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        x, y, w, h = b.T
        u0, v0, u1, v1 = self._clip(x, y, x + w, y + h)
        area = (self._area_to(u1, v1) - self._area_to(u0, v1)
                - self._area_to(u1, v0) + self._area_to(u0, v0))
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = area * self.downsample**2 / (w * h)
        frac = np.where((w > 0) & (h > 0), frac, 0.0)
        return np.clip(frac, 0.0, 1.0)

    def _area_to(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Tissue area (mask pixels) of ``[0, u) x [0, v)``: bilinear in the integral image."""
        if self._integral is None:
            mh, mw = self.mask.shape
            dtype = np.int32 if mh * mw < 2**31 else np.int64
            integral = np.zeros((mh + 1, mw + 1), dtype)
            np.cumsum(np.cumsum(self.mask, axis=0, dtype=dtype), axis=1, out=integral[1:, 1:])
            self._integral = integral
        ii = self._integral
        mh, mw = self.mask.shape
        if mh == 0 or mw == 0:
            return np.zeros_like(u)
        j = np.minimum(np.floor(u).astype(np.int64), mw - 1)
        i = np.minimum(np.floor(v).astype(np.int64), mh - 1)
        s, t = u - j, v - i
        return ((1 - s) * (1 - t) * ii[i, j] + s * (1 - t) * ii[i, j + 1]
                + (1 - s) * t * ii[i + 1, j] + s * t * ii[i + 1, j + 1])


def _remove_small(mask: np.ndarray, min_px: float) -> np.ndarray:
    """Drop 8-connected True components with fewer than ``min_px`` pixels."""
    if min_px <= 1 or not mask.any():
        return mask
    labels, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    keep = sizes >= min_px
    keep[0] = False
    return keep[labels]


def _fill_small_holes(mask: np.ndarray, max_px: float) -> np.ndarray:
    """Fill 4-connected False components smaller than ``max_px`` not touching the border."""
    if max_px <= 1 or mask.all():
        return mask
    labels, n = ndimage.label(~mask)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    fill = sizes < max_px
    fill[0] = False
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    fill[border] = False
    return mask | fill[labels]


def saturation(rgb: np.ndarray) -> np.ndarray:
    """HSV saturation ``(max - min) / max`` of a ``(y, x, 3)`` uint8 image, float32 in [0, 1]."""
    hi = rgb.max(axis=2).astype(np.float32)
    lo = rgb.min(axis=2).astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(hi > 0, (hi - lo) / hi, 0.0).astype(np.float32)


def detect_tissue(slide: Slide, *, mpp: float = 8.0, threshold: float | None = None,
                  min_object_um2: float = 5000.0, min_hole_um2: float = 5000.0) -> TissueMask:
    """Find tissue with Otsu's threshold on a low-resolution image of ``slide``.

    Parameters
    ----------
    slide : Slide
        An open slide.
    mpp : float
        Resolution of the mask in µm per pixel (default 8, about 1.25x); a
        value finer than the scan is raised to the scan's.
    threshold : float, optional
        Saturation threshold in [0, 1] to use instead of Otsu's.
    min_object_um2 : float
        Tissue pieces smaller than this area (µm²) are dropped.
    min_hole_um2 : float
        Holes in tissue smaller than this area (µm²) are filled.

    Returns
    -------
    TissueMask
        The mask at ``mpp`` with its geometry; query it in level-0 pixels.
    """
    from skimage.filters import threshold_otsu

    if mpp <= 0 or not math.isfinite(mpp):
        raise MagnipathError(f"tissue mpp must be a positive number of µm per pixel, got {mpp}.")
    if threshold is not None and not 0 <= threshold <= 1:
        raise MagnipathError(f"tissue threshold is a saturation in [0, 1], got {threshold}.")
    mpp = max(float(mpp), slide.mpp)
    rgb = slide.thumbnail(mpp)
    valid = rgb.max(axis=2) > DARK_LIMIT
    sat = ndimage.gaussian_filter(saturation(rgb), sigma=1.0, mode="nearest")
    if threshold is None:
        values = sat[valid]
        if values.size < 2 or values.min() == values.max():
            threshold = 1.0
        else:
            threshold = max(float(threshold_otsu(values)), MIN_OTSU_SATURATION)
    mask = (sat > threshold) & valid
    px_area = mpp * mpp  # µm² per mask pixel
    mask = _remove_small(mask, min_object_um2 / px_area)
    mask = _fill_small_holes(mask, min_hole_um2 / px_area)
    return TissueMask(mask, mpp, slide.mpp, slide.shape, threshold=float(threshold))
