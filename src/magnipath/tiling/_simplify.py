"""Exact simplification of big polygons for rasterising one window (speed, same pixels).

The scanline rasteriser (:mod:`magnipath.rasterize`) spends time on every
vertex of a polygon, even far from the tile. For a window ``W`` (level-0
box), a run of consecutive ring vertices that all lie strictly in one of the
four open half-planes outside ``W`` (left of, right of, above or below it) can
be replaced by the chord joining the run's first and last vertices:

* above/below: neither the run nor the chord crosses a pixel-centre row of
  ``W``;
* left/right: per pixel-centre row the run and the chord cross the row the
  same number of times modulo 2 (a path's crossings of a line telescope to
  "do its ends lie on different sides"), always outside ``W``'s columns, so
  the even-odd spans inside ``W`` are unchanged.

Only original vertices are kept (no new coordinates are computed), so the
rasterised pixels inside any tile contained in ``W`` are bit-for-bit those of
the original polygon. A ring lying entirely in one outside half-plane is
dropped (it covers no pixel centre of ``W``).
"""

from __future__ import annotations

import numpy as np
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

MIN_VERTICES = 64
"""Polygons with fewer vertices are used as they are."""


def _ring(coords: np.ndarray, window: tuple[float, float, float, float]) -> np.ndarray | None:
    x0, y0, x1, y1 = window
    c = coords[:-1] if len(coords) > 1 and np.array_equal(coords[0], coords[-1]) else coords
    code = np.full(len(c), -1, dtype=np.int8)
    code[c[:, 1] > y1] = 3          # below
    code[c[:, 1] < y0] = 2          # above
    code[c[:, 0] > x1] = 1          # right
    code[c[:, 0] < x0] = 0          # left (the last assignment wins: one code per vertex)
    if len(c) == 0 or (code[0] >= 0 and (code == code[0]).all()):
        return None
    drop = (code >= 0) & (np.roll(code, 1) == code) & (np.roll(code, -1) == code)
    kept = c[~drop]
    return np.concatenate([kept, kept[:1]])


def _polygon(p: Polygon, window: tuple[float, float, float, float]) -> Polygon | None:
    shell = _ring(np.asarray(p.exterior.coords), window)
    if shell is None:
        return None
    holes = [h for h in (_ring(np.asarray(r.coords), window) for r in p.interiors)
             if h is not None]
    return Polygon(shell, holes)


def simplify_for_window(geom: BaseGeometry,
                        window: tuple[float, float, float, float]) -> BaseGeometry | None:
    """A polygon that rasterises exactly like ``geom`` inside ``window``, with fewer vertices.

    Parameters
    ----------
    geom : Polygon or MultiPolygon
        Level-0 pixels.
    window : (x0, y0, x1, y1)
        Level-0 bounds; tiles rasterised with the result must lie inside it with
        a margin of at least one output pixel.

    Returns
    -------
    shapely geometry or None
        ``None`` when ``geom`` covers no pixel centre of the window. The result
        may be self-intersecting; the rasteriser's even-odd rule does not mind.
    """
    if isinstance(geom, Polygon):
        return _polygon(geom, window)
    if isinstance(geom, MultiPolygon):
        parts = [q for q in (_polygon(p, window) for p in geom.geoms) if q is not None]
        return MultiPolygon(parts) if parts else None
    return geom


def edge_bounds(geom: BaseGeometry) -> np.ndarray:
    """float64 ``(E, 4)`` bounds ``(xmin, ymin, xmax, ymax)`` of every ring edge of ``geom``."""
    rings: list[np.ndarray] = []
    polys = geom.geoms if isinstance(geom, MultiPolygon) else [geom]
    for p in polys:
        if isinstance(p, Polygon) and not p.is_empty:
            rings.append(np.asarray(p.exterior.coords))
            rings.extend(np.asarray(r.coords) for r in p.interiors)
    if not rings:
        return np.zeros((0, 4))
    out = []
    for c in rings:
        a, b = c[:-1], c[1:]
        out.append(np.concatenate([np.minimum(a, b), np.maximum(a, b)], axis=1))
    return np.concatenate(out)


def boundary_meets(bounds: np.ndarray, window: tuple[float, float, float, float]) -> bool:
    """Whether an edge's bounding box meets ``window`` (x0, y0, x1, y1); conservative.

    When no edge comes near a window, every pixel centre in it is on the same
    side of the polygon (inside or outside): its rasterisation is constant there.
    """
    x0, y0, x1, y1 = window
    return bool(np.any((bounds[:, 2] >= x0) & (bounds[:, 0] <= x1)
                       & (bounds[:, 3] >= y0) & (bounds[:, 1] <= y1)))
