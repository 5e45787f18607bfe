"""Polygons with holes <-> napari Shapes vertex lists.

napari Shapes have no separate hole rings, but napari's triangulation drops
every edge that a vertex list walks twice. A polygon with holes is therefore
drawn faithfully as ONE polygon shape whose vertex list walks the exterior
ring, jumps to a hole along a "bridge" edge, walks the hole, and walks the
same bridge back::

    e0 e1 ... e(n-1) | e0 h0 h1 ... h(m-1) h0 | e0 g0 ... g0 | (closes to e0)

The bridges are walked twice, so napari neither fills nor outlines them: the
face shows the hole and the edges show every ring. :func:`decode_polygon`
inverts this: it removes the edges walked twice, splits the rest into rings
and combines them by the even-odd rule (the rule napari fills with).

All vertex arrays here are ``(N, 2)`` in ``(y, x)`` order (napari's), in
whatever frame the caller uses (MagniPath's layers use level-0 pixels).
"""

from __future__ import annotations

from collections import Counter
from functools import reduce

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry
from shapely.geometry.polygon import orient

ELLIPSE_VERTICES = 64
"""Vertices of the polygon that stands for a napari ellipse."""


def _ring_yx(coords) -> np.ndarray:
    xy = np.asarray(coords, dtype=float)[:-1]  # shapely rings repeat the first vertex
    return xy[:, ::-1]


def encode_polygon(poly: Polygon) -> np.ndarray:
    """Vertex list ``(N, 2)`` in ``(y, x)`` of one napari polygon drawing ``poly``.

    Parameters
    ----------
    poly : shapely.geometry.Polygon
        A polygon, possibly with holes, in the caller's frame (x right, y down).

    Returns
    -------
    numpy.ndarray
        ``(N, 2)`` float array, ``(y, x)``: the exterior ring, then for each
        hole a bridge from the exterior's first vertex to the hole's first
        vertex, the hole ring, and the way back (see the module docstring).
        Without holes this is just the exterior ring (first vertex not repeated).
    """
    poly = orient(poly, 1.0)  # exterior counter-clockwise, holes clockwise (x right, y up)
    ext = _ring_yx(poly.exterior.coords)
    parts = [ext]
    for hole in poly.interiors:
        h = _ring_yx(hole.coords)
        if len(h) < 3:
            continue
        parts.append(np.concatenate([ext[:1], h, h[:1]]))
    return np.concatenate(parts) if len(parts) > 1 else ext


def _edge_key(a: tuple[float, float], b: tuple[float, float]) -> tuple:
    return (a, b) if a <= b else (b, a)


def split_rings(vertices_yx: np.ndarray) -> list[np.ndarray]:
    """Split a closed napari vertex list into its rings (edges walked twice removed).

    Parameters
    ----------
    vertices_yx : numpy.ndarray
        ``(N, 2)`` vertices in ``(y, x)``; the list closes implicitly from the
        last vertex back to the first.

    Returns
    -------
    list of numpy.ndarray
        Rings as ``(M, 2)`` arrays in ``(x, y)`` (shapely's order), each with
        at least three distinct vertices, in the order they are walked.
    """
    pts = [tuple(map(float, p[::-1])) for p in np.asarray(vertices_yx, dtype=float)]
    # drop consecutive duplicates (also across the implicit closing edge)
    dedup = [p for i, p in enumerate(pts) if i == 0 or p != pts[i - 1]]
    while len(dedup) > 1 and dedup[-1] == dedup[0]:
        dedup.pop()
    n = len(dedup)
    if n < 3:
        return []
    edges = [(dedup[i], dedup[(i + 1) % n]) for i in range(n)]
    counts = Counter(_edge_key(a, b) for a, b in edges)
    kept = [(a, b) for a, b in edges if counts[_edge_key(a, b)] % 2 == 1]
    rings: list[list[tuple[float, float]]] = []
    current: list[tuple[float, float]] = []
    for a, b in kept:
        if current and current[-1] != a:
            rings.append(current)
            current = []
        if not current:
            current = [a]
        current.append(b)
        if b == current[0]:
            rings.append(current)
            current = []
    if current:
        rings.append(current)
    out = []
    for r in rings:
        ring = np.asarray(r, dtype=float)
        if len({tuple(p) for p in ring}) >= 3:
            out.append(ring)
    return out


def decode_polygon(vertices_yx: np.ndarray) -> BaseGeometry:
    """Inverse of :func:`encode_polygon`: the polygon a napari vertex list shows.

    Parameters
    ----------
    vertices_yx : numpy.ndarray
        ``(N, 2)`` vertices in ``(y, x)`` of one napari polygon (or rectangle).

    Returns
    -------
    shapely geometry
        A valid Polygon (holes rebuilt) or MultiPolygon, by the even-odd rule
        over the rings; an empty Polygon when nothing with an area is left.
        Coordinates are ``(x, y)`` in the caller's frame.
    """
    rings = split_rings(vertices_yx)
    polys = []
    for r in rings:
        p = Polygon(r)
        if not p.is_valid:
            p = shapely.make_valid(p, method="structure", keep_collapsed=False)
        if not p.is_empty and p.area > 0:
            polys.append(p)
    if not polys:
        return Polygon()
    if len(polys) == 1:
        geom = polys[0]
    else:
        geom = reduce(lambda a, b: a.symmetric_difference(b), polys)
    return _polygonal(geom)


def _polygonal(geom: BaseGeometry) -> BaseGeometry:
    if isinstance(geom, Polygon):
        return geom
    parts = [g for g in getattr(geom, "geoms", []) if isinstance(g, Polygon) and g.area > 0]
    for g in getattr(geom, "geoms", []):
        if isinstance(g, MultiPolygon):
            parts.extend(p for p in g.geoms if p.area > 0)
    if not parts:
        return Polygon()
    return parts[0] if len(parts) == 1 else MultiPolygon(parts)


def ellipse_polygon(corners_yx: np.ndarray, n: int = ELLIPSE_VERTICES) -> Polygon:
    """The polygon (``n`` vertices) inscribed in a napari ellipse's bounding box.

    Parameters
    ----------
    corners_yx : numpy.ndarray
        ``(4, 2)`` corners of the (possibly rotated) bounding box, ``(y, x)``,
        in walking order, as napari stores an ellipse.
    n : int
        Number of vertices.

    Returns
    -------
    shapely.geometry.Polygon
        In ``(x, y)`` of the caller's frame.
    """
    c = np.asarray(corners_yx, dtype=float)[:, ::-1]
    centre = c.mean(axis=0)
    a = (c[1] - c[0]) / 2.0
    b = (c[3] - c[0]) / 2.0
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)[:, None]
    return Polygon(centre + np.cos(t) * a + np.sin(t) * b)
