"""Annotations -> label tiles and point probability maps.

Rules (also in ``docs/dataset-format.md``):

* Polygons (Polygon, MultiPolygon, polygonal parts of a GeometryCollection)
  with a classification become labels; an invalid polygon is repaired with
  ``shapely.make_valid`` (counted as ``invalid_repaired``); a polygon reaching
  outside the image is clipped to it (counted as ``clipped``; one entirely
  outside is dropped and counted as ``outside``).
* Unclassified polygons are skipped (counted as ``unclassified_skipped``);
  lines are skipped (``lines_skipped``); TMA cores and the root object too.
* Polygons are painted largest area first (stable for equal areas), so a
  region drawn inside another keeps its class whatever the file order.
* Points: Point/MultiPoint geometries, any object whose class is the point
  class (non-point geometries count by their centroid), and every object of a
  separate points file (only those of the point class when one is given).
  Their classes need not be in the class map. Points of another class than
  the point class (when one is given) are skipped (``points_skipped``).
"""

from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry import GeometryCollection, MultiPoint, MultiPolygon, Point, Polygon
from shapely.geometry.base import BaseGeometry

from magnipath._errors import AnnotationError
from magnipath.classes import ClassMap
from magnipath.rasterize import rasterize
from magnipath.tiling._simplify import (
    MIN_VERTICES,
    boundary_meets,
    edge_bounds,
    simplify_for_window,
)
from magnipath.types import Box

_SKIPPED_TYPES = frozenset({"tmaCore", "tma_core", "root"})
_FLOAT16_ZERO = 17.33  # exp(-x) < 2**-25 rounds to 0 in float16 for x > 17.33
_MISSING = object()

PIECE_CACHE_BYTES = 16 * 2**20
"""Bound (approximate bytes: vertices + edge bounds) of the simplified pieces kept per slide.

Tiles go row-major, so the pieces in use are those of one or two rows of
windows; older ones are dropped least-recently-used first (a piece needed again
is recomputed, identically). Without a bound they grew with the slide area
(~70 MB on a 100,000² px slide with the DMMN-style partial annotations).
"""


def _piece_bytes(value: tuple[BaseGeometry, np.ndarray | None] | None) -> int:
    """Approximate memory of one cached piece: 24 bytes per vertex + its edge bounds."""
    if value is None:
        return 64
    piece, bounds = value
    return 64 + 24 * int(shapely.get_num_coordinates(piece)) + (
        0 if bounds is None else bounds.nbytes)


def load_objects(src: str | os.PathLike | Sequence | None, what: str) -> list:
    """QuPath objects from a GeoJSON path, a list of objects, or None (empty list)."""
    if src is None:
        return []
    if isinstance(src, str | os.PathLike):
        from qupath_bridge.errors import QuPathBridgeError
        from qupath_bridge.geojson import read_geojson

        path = Path(src)
        if not path.is_file():
            raise AnnotationError(f"{what} file {path} does not exist; check the path")
        try:
            return read_geojson(path)
        except QuPathBridgeError as e:
            raise AnnotationError(f"cannot read {what} {path}: {e}") from e
    return list(src)


def _polygonal(geom: BaseGeometry) -> BaseGeometry | None:
    if isinstance(geom, Polygon | MultiPolygon):
        return geom
    if isinstance(geom, GeometryCollection):
        parts: list[Polygon] = []
        for g in geom.geoms:
            p = _polygonal(g)
            if p is not None:
                parts.extend(p.geoms if isinstance(p, MultiPolygon) else [p])
        return MultiPolygon(parts) if parts else None
    return None


def _is_point(geom: BaseGeometry) -> bool:
    return isinstance(geom, Point | MultiPoint)


def label_class_names(objects: Sequence, point_class: str | None) -> dict[str, tuple | None]:
    """Classes of the label polygons in ``objects`` -> their colour (first one seen)."""
    out: dict[str, tuple | None] = {}
    for o in objects:
        if o.object_type in _SKIPPED_TYPES or o.classification is None:
            continue
        if o.classification == point_class or _polygonal(o.geometry) is None:
            continue
        out.setdefault(o.classification, o.class_color)
    return out


def has_points(objects: Sequence, point_class: str | None) -> bool:
    """Whether an annotation list holds point annotations (see the module docstring)."""
    return any(o.object_type not in _SKIPPED_TYPES and
               (o.classification == point_class if point_class is not None
                else _is_point(o.geometry)) for o in objects)


@dataclass
class AnnotationCounts:
    """What happened to the annotations of one slide (all counts are objects)."""

    polygons: int = 0
    points: int = 0
    invalid_repaired: int = 0
    clipped: int = 0
    outside: int = 0
    unclassified_skipped: int = 0
    lines_skipped: int = 0
    points_skipped: int = 0

    def add(self, other: AnnotationCounts) -> None:
        for k in self.__dataclass_fields__:
            setattr(self, k, getattr(self, k) + getattr(other, k))

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _point_coords(geom: BaseGeometry) -> np.ndarray:
    if isinstance(geom, Point):
        return np.asarray([[geom.x, geom.y]]) if not geom.is_empty else np.zeros((0, 2))
    if isinstance(geom, MultiPoint):
        return np.asarray([[g.x, g.y] for g in geom.geoms if not g.is_empty]).reshape(-1, 2)
    if geom.is_empty:
        return np.zeros((0, 2))
    c = geom.centroid
    return np.asarray([[c.x, c.y]])


@dataclass
class SlideLabels:
    """Label polygons and points of one slide, indexed for fast per-tile queries.

    Attributes
    ----------
    shapes : list of (geometry, int)
        Polygons in level-0 pixels with their class index, in paint order.
    points : numpy.ndarray
        float64 ``(K, 2)`` point coordinates ``(x, y)`` in level-0 pixels.
    counts : AnnotationCounts
    """

    shapes: list[tuple[BaseGeometry, int]]
    points: np.ndarray
    counts: AnnotationCounts = field(default_factory=AnnotationCounts)

    def __post_init__(self) -> None:
        self._tree = shapely.STRtree([g for g, _ in self.shapes]) if self.shapes else None
        if self._tree is not None:  # build now: STRtree builds lazily, not thread-safe then
            self._tree.query(shapely.box(0, 0, 1, 1))
        self._classes = np.asarray([v for _, v in self.shapes], dtype=np.int64)
        self._big = {i for i, (g, _) in enumerate(self.shapes)
                     if shapely.get_num_coordinates(g) > MIN_VERTICES}
        self._cell: float | None = None
        self._pieces: OrderedDict[tuple[int, int, int],
                                  tuple[BaseGeometry, np.ndarray] | None] = OrderedDict()
        self._piece_sizes: dict[tuple[int, int, int], int] = {}
        self._pieces_bytes = 0
        self._pieces_lock = threading.Lock()
        self.max_piece_bytes = PIECE_CACHE_BYTES

    def _piece(self, k: int, box: Box,
               downsample: float) -> tuple[BaseGeometry, np.ndarray | None] | None:
        """Shape ``k`` simplified exactly for a window holding ``box``, with its edge bounds.

        Windows (see ``_simplify``) are cells of side ``2 * cell`` every ``cell``
        level-0 px, so any tile plus a one-output-pixel margin fits in one; pieces
        are cached (least recently used dropped beyond ``max_piece_bytes``). Small
        shapes come back as they are (edge bounds ``None``).
        """
        geom = self.shapes[k][0]
        x, y, w, h = box
        m = downsample
        if self._cell is None:
            self._cell = max(2048.0, 2.0 * (max(w, h) + 2 * m))
        c = self._cell
        if k not in self._big or max(w, h) + 2 * m > c:
            return geom, None
        i, j = int(np.floor((x - m) / c)), int(np.floor((y - m) / c))
        key = (k, i, j)
        with self._pieces_lock:
            got = self._pieces.get(key, _MISSING)
            if got is not _MISSING:
                self._pieces.move_to_end(key)
                return got
        # outside the lock: a race only computes a piece twice (identically)
        piece = simplify_for_window(geom, (i * c, j * c, (i + 2) * c, (j + 2) * c))
        value = None if piece is None else (piece, edge_bounds(piece))
        size = _piece_bytes(value)
        with self._pieces_lock:
            if key not in self._pieces:
                self._pieces[key] = value
                self._piece_sizes[key] = size
                self._pieces_bytes += size
                while self._pieces_bytes > self.max_piece_bytes and len(self._pieces) > 1:
                    old, _ = self._pieces.popitem(last=False)
                    self._pieces_bytes -= self._piece_sizes.pop(old)
        return value

    def clear_cache(self) -> None:
        """Forget the simplified pieces (call when done with the slide)."""
        with self._pieces_lock:
            self._pieces.clear()
            self._piece_sizes.clear()
            self._pieces_bytes = 0

    def candidates(self, box: Box) -> np.ndarray:
        """Indices (paint order) of the shapes whose bounds meet the level-0 ``box``."""
        if self._tree is None:
            return np.zeros(0, dtype=np.int64)
        x, y, w, h = box
        return np.sort(self._tree.query(shapely.box(x, y, x + w, y + h)))

    def classes_near(self, box: Box) -> set[int]:
        """Class indices of the shapes whose bounds meet the level-0 ``box``."""
        return set(self._classes[self.candidates(box)].tolist())

    def label(self, box: Box, downsample: float, size: int, ignore_index: int) -> np.ndarray:
        """uint8 ``(size, size)`` label of the level-0 ``box`` (see :mod:`magnipath.rasterize`).

        Equal, pixel for pixel, to ``rasterize(self.shapes, box, downsample, (size, size),
        fill=ignore_index)``, only faster: big shapes are simplified for the tile's
        window, and shapes whose boundary stays away from the tile are painted as a
        constant (their one pixel-centre test decides inside or outside).
        """
        idx = self.candidates(box)
        if len(idx) == 0:
            return np.full((size, size), ignore_index, dtype=np.uint8)
        x, y = box[0], box[1]
        d = downsample
        ext = (x - d, y - d, x + (size + 1) * d, y + (size + 1) * d)
        base, partial = ignore_index, []
        for i in idx:
            got = self._piece(int(i), box, d)
            if got is None:
                continue
            piece, bounds = got
            value = self.shapes[i][1]
            if bounds is not None and not boundary_meets(bounds, ext):
                if rasterize([(piece, 1)], (x, y, d, d), d, (1, 1), fill=0)[0, 0]:
                    base, partial = value, []      # covers the tile: earlier shapes vanish
                continue
            partial.append((piece, value))
        out = np.full((size, size), base, dtype=np.uint8)
        if partial:
            top = rasterize(partial, box, d, (size, size), fill=ignore_index)
            np.copyto(out, top, where=top != ignore_index)
        return out

    def points_map(self, box: Box, downsample: float, size: int,
                   a: float) -> tuple[np.ndarray, int]:
        """Probability map of the points for a level-0 ``box`` and the points inside it."""
        x, y, w, h = box
        if len(self.points) == 0:
            return np.zeros((size, size), dtype=np.float32), 0
        margin = _FLOAT16_ZERO / a * downsample
        px, py = self.points[:, 0], self.points[:, 1]
        near = ((px >= x - margin) & (px < x + w + margin)
                & (py >= y - margin) & (py < y + h + margin))
        inside = int(np.count_nonzero((px >= x) & (px < x + w) & (py >= y) & (py < y + h)))
        local = (self.points[near] - (x, y)) / downsample
        return point_probability_map(local, (size, size), a), inside


def build_slide_labels(objects: Sequence, point_objects: Sequence, class_map: ClassMap,
                       width: int, height: int, point_class: str | None) -> SlideLabels:
    """Repair, clip and index the annotations of one slide.

    Parameters
    ----------
    objects : sequence of QuPathObject
        Annotations in level-0 pixels (polygons -> labels, points -> points).
    point_objects : sequence of QuPathObject
        Objects of a separate points file (level-0 pixels).
    class_map : ClassMap
        Must contain every label class (checked beforehand by the caller).
    width, height : int
        Slide size in level-0 pixels; annotations are clipped to it.
    point_class : str or None
        Class name of point annotations, if any.
    """
    from qupath_bridge.geojson import repair_geometry

    counts = AnnotationCounts()
    image = shapely.box(0, 0, width, height)
    shapes: list[tuple[BaseGeometry, int, float]] = []
    pts: list[np.ndarray] = []
    for o in objects:
        if o.object_type in _SKIPPED_TYPES or o.geometry is None or o.geometry.is_empty:
            continue
        geom = o.geometry
        if (o.classification is not None and o.classification == point_class) or (
                _is_point(geom) and (point_class is None or o.classification == point_class)):
            pts.append(_point_coords(geom))
            continue
        poly = _polygonal(geom)
        if poly is None:
            if _is_point(geom):
                counts.points_skipped += 1
            else:
                counts.lines_skipped += 1
            continue
        if o.classification is None:
            counts.unclassified_skipped += 1
            continue
        poly, repaired = repair_geometry(poly)
        counts.invalid_repaired += bool(repaired)
        if poly.is_empty:
            continue
        x0, y0, x1, y1 = poly.bounds
        if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
            poly = _polygonal(shapely.clip_by_rect(poly, 0, 0, width, height))
            if poly is None or poly.is_empty or not poly.intersects(image):
                counts.outside += 1
                continue
            counts.clipped += 1
        counts.polygons += 1
        shapes.append((poly, class_map.index_of(o.classification), poly.area))
    for o in point_objects:
        if o.object_type in _SKIPPED_TYPES or o.geometry is None:
            continue
        if point_class is None or o.classification == point_class:
            pts.append(_point_coords(o.geometry))
        else:
            counts.points_skipped += 1
    points = np.concatenate(pts) if pts else np.zeros((0, 2))
    inside = ((points[:, 0] >= 0) & (points[:, 0] < width)
              & (points[:, 1] >= 0) & (points[:, 1] < height))
    counts.outside += int(np.count_nonzero(~inside))
    points = points[inside]
    counts.points = len(points)
    order = sorted(range(len(shapes)), key=lambda i: -shapes[i][2])
    return SlideLabels([(shapes[i][0], shapes[i][1]) for i in order], points, counts)


def point_probability_map(points_xy_target_px: np.ndarray, shape: tuple[int, int],
                          a: float) -> np.ndarray:
    """Point probability map ``pi = max_k exp(-a * d_k)`` (Pearce; METHODS.md 001).

    Parameters
    ----------
    points_xy_target_px : numpy.ndarray
        ``(K, 2)`` points ``(x, y)`` in the tile's own pixel frame: pixel
        ``(r, c)`` covers ``[c, c+1) x [r, r+1)`` and its centre is
        ``(c + 0.5, r + 0.5)``. Points may lie outside the tile.
    shape : (int, int)
        Output ``(height, width)`` in target pixels.
    a : float
        Decay per target pixel (> 0); ``d_k`` is the Euclidean distance, in
        target pixels, from a pixel centre to point ``k``.

    Returns
    -------
    numpy.ndarray
        float32 ``(height, width)`` in [0, 1]; 1 at a point, zeros without points.
    """
    if not a > 0 or not math.isfinite(a):
        raise ValueError(f"point decay a must be positive, got {a}")
    h, w = shape
    pts = np.asarray(points_xy_target_px, dtype=np.float64).reshape(-1, 2)
    if len(pts) == 0:
        return np.zeros((h, w), dtype=np.float32)
    yc = np.arange(h, dtype=np.float64)[:, None] + 0.5
    xc = np.arange(w, dtype=np.float64)[None, :] + 0.5
    d2 = np.full((h, w), np.inf)
    for px, py in pts:
        np.minimum(d2, (xc - px) ** 2 + (yc - py) ** 2, out=d2)
    return np.exp(-a * np.sqrt(d2)).astype(np.float32)
