"""Mitosis points -> probability maps ``pi = exp(-a d)`` -> positive tiles (Pearce, paper 001).

Points are level-0 pixels ``(x, y)``. A tile of ``size`` output pixels covering
the level-0 box ``(x, y, w, h)`` (downsample ``d = w / size``) gets the map of
:func:`magnipath.tiling.point_probability_map` in its own pixel frame (``a`` per
output pixel, ``d_k`` the distance from a pixel centre to point ``k``); the tile
is positive when the map's maximum exceeds the user's threshold.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np

from magnipath._errors import AnnotationError
from magnipath.tiling import point_probability_map

MITOSIS_CLASS = "Mitosis"


def load_points(source: str | os.PathLike | Sequence | np.ndarray | None, *,
                point_class: str | None = MITOSIS_CLASS) -> np.ndarray:
    """Mitosis points as a float64 ``(K, 2)`` array of level-0 ``(x, y)``.

    Parameters
    ----------
    source : path, list of QuPathObject, array or None
        A QuPath GeoJSON file, objects read from a QuPath project
        (:meth:`qupath_bridge.project.Project.read_objects`), or an ``(K, 2)``
        array of ``(x, y)`` (napari Points are ``(y, x)``: swap the columns).
        ``None`` gives no points.
    point_class : str or None
        Keep objects of this class only (``None``: every Point/MultiPoint, and
        the centroid of any other geometry of class ``Mitosis``).

    Raises
    ------
    AnnotationError
        Missing or unreadable file, or an array that is not ``(K, 2)``.
    """
    if source is None:
        return np.zeros((0, 2))
    if isinstance(source, np.ndarray):
        a = np.asarray(source, dtype=np.float64)
        if a.size == 0:
            return np.zeros((0, 2))
        if a.ndim != 2 or a.shape[1] != 2 or not np.all(np.isfinite(a)):
            raise AnnotationError(f"points must be a finite (K, 2) array of (x, y), got "
                                  f"shape {a.shape}.")
        return a
    if isinstance(source, str | os.PathLike):
        from qupath_bridge.errors import QuPathBridgeError
        from qupath_bridge.geojson import read_geojson

        p = os.fspath(source)
        if not os.path.isfile(p):
            raise AnnotationError(f"points file {p} does not exist; give the GeoJSON of the "
                                  "mitosis points (e.g. NAME.mitoses.geojson).")
        try:
            source = read_geojson(p)
        except QuPathBridgeError as e:
            raise AnnotationError(f"cannot read the mitosis points {p}: {e}") from e
    pts: list[tuple[float, float]] = []
    for o in source:
        g = o.geometry
        if g is None or g.is_empty:
            continue
        if point_class is not None and o.classification != point_class:
            continue
        if g.geom_type == "Point":
            pts.append((g.x, g.y))
        elif g.geom_type == "MultiPoint":
            pts.extend((q.x, q.y) for q in g.geoms if not q.is_empty)
        elif point_class is not None or o.classification == MITOSIS_CLASS:
            c = g.centroid
            pts.append((c.x, c.y))
    return np.asarray(pts, dtype=np.float64).reshape(-1, 2)


def tile_probabilities(points_xy: np.ndarray, boxes: np.ndarray, size: int,
                       a: float) -> np.ndarray:
    """Maximum of the point probability map inside every tile.

    Parameters
    ----------
    points_xy : numpy.ndarray
        ``(K, 2)`` level-0 ``(x, y)``.
    boxes : numpy.ndarray
        ``(N, 4)`` level-0 tile boxes ``(x, y, w, h)`` (square, ``w = h``).
    size : int
        Tile side in output pixels (the map's resolution).
    a : float
        Decay per output pixel of ``exp(-a d)``.

    Returns
    -------
    numpy.ndarray
        float32 ``(N,)`` in [0, 1]: ``max exp(-a d)`` over the tile's pixel centres.
    """
    pts = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    out = np.zeros(len(b), dtype=np.float32)
    if len(pts) == 0 or len(b) == 0:
        return out
    if not a > 0 or not math.isfinite(a):
        raise AnnotationError(f"point decay a must be positive, got {a}.")
    d = b[:, 2] / size
    reach = 20.0 / a * d  # exp(-20) ~ 2e-9: farther points cannot matter
    for i in range(len(b)):
        x, y, w, h = b[i]
        near = ((pts[:, 0] > x - reach[i]) & (pts[:, 0] < x + w + reach[i])
                & (pts[:, 1] > y - reach[i]) & (pts[:, 1] < y + h + reach[i]))
        if near.any():
            local = (pts[near] - (x, y)) / d[i]
            out[i] = point_probability_map(local, (size, size), a).max()
    return out


def positive_tiles(probabilities: np.ndarray, threshold: float) -> np.ndarray:
    """Tile labels: 1 where the map's maximum exceeds ``threshold`` (strictly), else 0."""
    if not 0.0 <= threshold < 1.0:
        raise AnnotationError(f"the positive-tile threshold must lie in [0, 1), got {threshold}.")
    return (np.asarray(probabilities) > threshold).astype(np.uint8)
