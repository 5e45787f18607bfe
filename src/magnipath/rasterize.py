"""Polygons (level-0 pixels) -> label masks at any resolution, pixel-exact.

The rule for boundary pixels
----------------------------
Output pixel ``(r, c)`` covers the level-0 square
``[x0 + c*d, x0 + (c+1)*d) x [y0 + r*d, y0 + (r+1)*d)`` with ``d`` the
downsample (level-0 pixels per output pixel). It belongs to a polygon when its
**centre** ``(x0 + (c + 0.5)*d, y0 + (r + 0.5)*d)`` lies inside the polygon by
the even-odd rule, with holes excluded. A centre lying exactly on an edge
belongs to the polygon on the edge's left/top side (the half-open "top-left"
rule), so two polygons sharing an edge never both claim a pixel and never both
miss it. Later shapes overwrite earlier ones.

This is the one rasteriser of MagniPath: tiling labels, evaluation and the
vectoriser's round trip all use it.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from shapely.geometry import GeometryCollection, MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from magnipath.types import Box


def _rings(geom: BaseGeometry) -> list[np.ndarray]:
    if isinstance(geom, Polygon):
        if geom.is_empty:
            return []
        return [np.asarray(geom.exterior.coords)] + [np.asarray(r.coords) for r in geom.interiors]
    if isinstance(geom, MultiPolygon | GeometryCollection):
        out: list[np.ndarray] = []
        for g in geom.geoms:
            out.extend(_rings(g))
        return out
    return []  # points and lines cover no pixel centre


def _spans(geom: BaseGeometry, box: Box, downsample: float, h: int, w: int
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Row and [start, end) column of every run of pixel centres inside ``geom``.

    Indices are in the full ``(h, w)`` output frame; ``None`` when no ring crosses a
    pixel-centre row.
    """
    x0, y0 = box[0], box[1]
    rows_all, xs_all = [], []
    for ring in _rings(geom):
        if len(ring) < 4:
            continue
        p = (ring[:-1] - (x0, y0)) / downsample  # output-pixel frame, centres at i + 0.5
        q = np.roll(p, -1, axis=0)
        ymin = np.minimum(p[:, 1], q[:, 1])
        ymax = np.maximum(p[:, 1], q[:, 1])
        r0 = np.clip(np.ceil(ymin - 0.5), 0, h).astype(np.int64)
        r1 = np.clip(np.ceil(ymax - 0.5), 0, h).astype(np.int64)
        n = r1 - r0
        keep = n > 0
        if not keep.any():
            continue
        p, q, r0, n = p[keep], q[keep], r0[keep], n[keep]
        edge = np.repeat(np.arange(len(n)), n)
        offs = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
        rows = r0[edge] + offs
        yc = rows + 0.5
        x1, y1, x2, y2 = p[edge, 0], p[edge, 1], q[edge, 0], q[edge, 1]
        xs = x1 + (yc - y1) * (x2 - x1) / (y2 - y1)
        rows_all.append(rows)
        xs_all.append(xs)
    if not rows_all:
        return None
    rows = np.concatenate(rows_all)
    xs = np.concatenate(xs_all)
    order = np.lexsort((xs, rows))
    rows, xs = rows[order], xs[order]
    starts = np.clip(np.ceil(xs[0::2] - 0.5), 0, w).astype(np.int64)
    ends = np.clip(np.ceil(xs[1::2] - 0.5), 0, w).astype(np.int64)
    return rows[0::2], starts, ends


def _fill(r: np.ndarray, starts: np.ndarray, ends: np.ndarray, shape: tuple[int, int]
          ) -> np.ndarray:
    """Boolean ``shape`` mask of the union of the runs (indices relative to the mask)."""
    diff = np.zeros((shape[0], shape[1] + 1), dtype=np.int32)
    np.add.at(diff, (r, starts), 1)
    np.add.at(diff, (r, ends), -1)
    return np.cumsum(diff, axis=1)[:, :shape[1]] > 0


def polygon_mask(geom: BaseGeometry, box: Box, downsample: float,
                 out_shape: tuple[int, int]) -> np.ndarray:
    """Boolean ``(y, x)`` mask of the pixel centres inside ``geom``.

    Parameters
    ----------
    geom : shapely geometry
        Polygon or MultiPolygon in level-0 pixel coordinates; holes are holes.
    box : Box
        ``(x, y, w, h)`` in level-0 pixels; only ``x`` and ``y`` (the origin) are used.
    downsample : float
        Level-0 pixels per output pixel.
    out_shape : (int, int)
        Output ``(height, width)`` in output pixels.
    """
    h, w = out_shape
    spans = _spans(geom, box, downsample, h, w)
    if spans is None:
        return np.zeros((h, w), dtype=bool)
    return _fill(*spans, (h, w))


def rasterize(shapes: Iterable[tuple[BaseGeometry, int]], box: Box, downsample: float,
              out_shape: tuple[int, int] | None = None, *, fill: int = 255,
              dtype: np.dtype | type = np.uint8) -> np.ndarray:
    """Burn ``(geometry, value)`` pairs into a ``(y, x)`` label array.

    Parameters
    ----------
    shapes : iterable of (geometry, int)
        Polygons/MultiPolygons in level-0 pixels with their label value; later
        ones overwrite earlier ones. Points and lines are ignored.
    box : Box
        Region ``(x, y, w, h)`` in level-0 pixels.
    downsample : float
        Level-0 pixels per output pixel (slide mpp / output mpp inverse:
        ``output_mpp / slide_mpp``).
    out_shape : (int, int), optional
        ``(height, width)`` of the output; default ``round(h / d), round(w / d)``.
    fill : int
        Value of pixels no shape covers (the ignore index by default).

    Returns
    -------
    numpy.ndarray
        Label array ``(y, x)``; see the module docstring for the boundary rule.
    """
    if out_shape is None:
        out_shape = (round(box[3] / downsample), round(box[2] / downsample))
    out = np.full(out_shape, fill, dtype=dtype)
    bx = (box[0], box[1], box[0] + out_shape[1] * downsample, box[1] + out_shape[0] * downsample)
    for geom, value in shapes:
        if geom is None or geom.is_empty:
            continue
        gx0, gy0, gx1, gy1 = geom.bounds
        if gx1 <= bx[0] or gy1 <= bx[1] or gx0 >= bx[2] or gy0 >= bx[3]:
            continue
        # fill only the window the geometry covers: the same spans as polygon_mask, so
        # the same pixels, without a full-size temporary per shape
        spans = _spans(geom, box, downsample, out_shape[0], out_shape[1])
        if spans is None:
            continue
        r, starts, ends = spans
        keep = ends > starts
        if not keep.any():
            continue
        r, starts, ends = r[keep], starts[keep], ends[keep]
        r0, r1, c0, c1 = int(r.min()), int(r.max()) + 1, int(starts.min()), int(ends.max())
        win = _fill(r - r0, starts - c0, ends - c0, (r1 - r0, c1 - c0))
        out[r0:r1, c0:c1][win] = value
    return out
