"""Magnification classes, patch geometry, area -> magnification mapping and the fusion.

Pure numpy; no torch. Magnification is ``10 / mpp`` (40x = 0.25 µm/px).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from magnipath._errors import MagnipathError

MAGNIFICATIONS: tuple[float, ...] = (5.0, 8.0, 10.0, 15.0, 20.0, 30.0, 40.0)
"""The classes of Otálora et al.: patches at these magnifications are made from 40x scans."""

PATCH = 224
"""Side of the network input in pixels (at the patch's own magnification)."""

ALPHA = 0.2
"""Default fusion weight of the area branch: ``alpha * area + (1 - alpha) * direct``."""


class MagnificationError(MagnipathError):
    """Magnification data, models or inputs cannot be used (wrong size, missing fields)."""


def check_magnifications(mags: Sequence[float], source: float) -> tuple[float, ...]:
    """Sorted unique positive magnifications, none above ``source`` (the scan's)."""
    out = sorted({float(m) for m in mags})
    if not out or out[0] <= 0 or not all(math.isfinite(m) for m in out):
        raise MagnificationError(f"magnifications must be positive numbers, got {list(mags)}.")
    if out[-1] > source * (1 + 1e-6):
        raise MagnificationError(
            f"magnification {out[-1]:g}x is above the scan's {source:g}x; patches are made "
            "by downsampling only. Drop the higher magnifications or use a finer scan.")
    return tuple(out)


def source_size(magnification: float, *, source_mpp: float = 0.25, patch: int = PATCH) -> float:
    """Side, in level-0 pixels of the source scan, of the region one patch covers.

    Parameters
    ----------
    magnification : float
        Magnification of the patch (``10 / mpp``).
    source_mpp : float
        Level-0 resolution of the scan in µm/px (0.25 = 40x).
    patch : int
        Patch side in output pixels.

    Returns
    -------
    float
        ``patch * (10 / magnification) / source_mpp``; at a 40x source this is
        ``patch * 40 / magnification`` (224 px at 40x, 1792 px at 5x).
    """
    if magnification <= 0 or source_mpp <= 0:
        raise MagnificationError("magnification and source mpp must be positive.")
    return patch * (10.0 / magnification) / source_mpp


def closest_magnification(values: np.ndarray | float,
                          classes: Sequence[float] = MAGNIFICATIONS) -> np.ndarray:
    """Map continuous magnifications to the closest class (minimum absolute difference).

    Ties go to the lower class. NaN stays NaN.

    Examples
    --------
    >>> closest_magnification([6.4, 6.5, 36.0]).tolist()
    [5.0, 5.0, 40.0]
    """
    v = np.asarray(values, dtype=np.float64)
    c = np.asarray(sorted(classes), dtype=np.float64)
    idx = np.argmin(np.abs(v[..., None] - c), axis=-1)
    out = c[idx]
    return np.where(np.isnan(v), np.nan, out)


def class_index(values: np.ndarray, classes: Sequence[float] = MAGNIFICATIONS) -> np.ndarray:
    """Index of each value among ``classes`` (values must be classes, within 1e-6)."""
    v = np.asarray(values, dtype=np.float64)
    c = np.asarray(sorted(classes), dtype=np.float64)
    idx = np.argmin(np.abs(v[..., None] - c), axis=-1)
    if np.any(np.abs(c[idx] - v) > 1e-6):
        bad = v[np.abs(c[idx] - v) > 1e-6][:3].tolist()
        raise MagnificationError(f"values {bad} are not among the classes {c.tolist()}.")
    return idx


def fuse(area_magnification: np.ndarray | float, direct_magnification: np.ndarray | float,
         alpha: float = ALPHA) -> np.ndarray:
    """Linear fusion ``alpha * area + (1 - alpha) * direct`` (Otálora et al., alpha = 0.2).

    Examples
    --------
    >>> float(fuse(30.0, 20.0))
    22.0
    """
    if not 0.0 <= alpha <= 1.0:
        raise MagnificationError(f"fusion weight alpha must lie in [0, 1], got {alpha}.")
    a = np.asarray(area_magnification, dtype=np.float64)
    d = np.asarray(direct_magnification, dtype=np.float64)
    return alpha * a + (1.0 - alpha) * d


@dataclass(frozen=True)
class AreaTable:
    """Mean nucleus area (pixels, at each magnification) of training patches, per class.

    Used twice: by the area regressor (predicted area -> the class whose training
    mean area is closest) and by the non-learning baseline (measured area ->
    class). ``empty_class`` is the class given to a patch with no measurable
    nucleus (the class with the most such patches in training).

    Attributes
    ----------
    magnifications : tuple of float
    mean_areas : tuple of float
        Mean nucleus area in pixels of the patches of each class (NaN: none measured).
    empty_class : float or None
    counts : tuple of int
        Patches per class the means were taken over.
    """

    magnifications: tuple[float, ...]
    mean_areas: tuple[float, ...]
    empty_class: float | None = None
    counts: tuple[int, ...] = ()

    @classmethod
    def fit(cls, areas: np.ndarray, magnifications: np.ndarray,
            classes: Sequence[float] = MAGNIFICATIONS) -> AreaTable:
        """Mean area per class from training patches (NaN areas count as empty patches)."""
        a = np.asarray(areas, dtype=np.float64)
        m = np.asarray(magnifications, dtype=np.float64)
        if a.shape != m.shape:
            raise MagnificationError(f"{a.size} areas for {m.size} magnifications.")
        means, counts, empty = [], [], []
        for c in sorted(classes):
            sel = np.abs(m - c) < 1e-6
            ok = sel & np.isfinite(a)
            means.append(float(a[ok].mean()) if ok.any() else math.nan)
            counts.append(int(ok.sum()))
            empty.append(int((sel & ~np.isfinite(a)).sum()))
        cl = tuple(float(c) for c in sorted(classes))
        empty_class = cl[int(np.argmax(empty))] if max(empty) > 0 else None
        return cls(cl, tuple(means), empty_class, tuple(counts))

    def to_magnification(self, areas: np.ndarray | float) -> np.ndarray:
        """The class whose mean area is closest to each area (ties: lower class).

        A NaN area (no nucleus measured) maps to ``empty_class`` (NaN if none).

        Examples
        --------
        >>> t = AreaTable((10.0, 20.0, 40.0), (100.0, 400.0, 1600.0))
        >>> t.to_magnification([90.0, 260.0, 1000.0, 5000.0]).tolist()
        [10.0, 20.0, 40.0, 40.0]
        """
        a = np.asarray(areas, dtype=np.float64)
        mags = np.asarray(self.magnifications)
        means = np.asarray(self.mean_areas)
        ok = np.isfinite(means)
        if not ok.any():
            raise MagnificationError("the area table has no class with a measured mean area.")
        mags, means = mags[ok], means[ok]
        idx = np.argmin(np.abs(a[..., None] - means), axis=-1)
        out = mags[idx]
        fill = math.nan if self.empty_class is None else self.empty_class
        return np.where(np.isfinite(a), out, fill)

    def to_dict(self) -> dict:
        """JSON-ready form (NaN written as None)."""
        return {"magnifications": list(self.magnifications),
                "mean_areas": [None if math.isnan(v) else v for v in self.mean_areas],
                "empty_class": self.empty_class, "counts": list(self.counts)}

    @classmethod
    def from_dict(cls, d: dict) -> AreaTable:
        """Inverse of :meth:`to_dict`."""
        try:
            return cls(tuple(float(v) for v in d["magnifications"]),
                       tuple(math.nan if v is None else float(v) for v in d["mean_areas"]),
                       None if d.get("empty_class") is None else float(d["empty_class"]),
                       tuple(int(v) for v in d.get("counts", ())))
        except (KeyError, TypeError, ValueError) as e:
            raise MagnificationError(f"area table is malformed ({e}).") from e
