"""Label maps -> polygons with holes (QuPath objects), exact on pixel edges.

Geometry
--------
Label pixel ``(r, c)`` covers the level-0 square
``[ox + c*d, ox + (c+1)*d) x [oy + r*d, oy + (r+1)*d)`` (``d`` the downsample,
``(ox, oy)`` the origin). Every object's outline runs along these pixel edges,
so :func:`magnipath.rasterize.rasterize` (pixel-centre rule) of the objects at
the same origin and downsample gives back exactly the label map: the round trip
is pixel-exact, holes included. Objects of different classes that touch share
their edges exactly (no gap, no overlap).

Objects
-------
One object per **4-connected** component and class: pixels that touch only at a
corner are separate objects (a diagonal pair gives two squares); a component
may still touch itself or its holes at a corner (valid in QuPath/JTS). Holes
(anything not of the component's class enclosed by it, including other
classes' islands) are interior rings, never separate filled polygons.

Large label maps
----------------
A label map larger than ``chunk_size`` in either direction (a numpy array, or a
zarr array that does not fit in memory) is read block by block. Pieces of the
same class that share at least one pixel edge across a block seam are unioned,
so objects are identical (as point sets) to those of the in-memory path: no
cut, no duplicate. Boundaries are traced from pixel edges with numpy only (no
connected-component labelling): the cost grows with the number of boundary
edges, not with the number of pixels, beyond two comparisons per pixel.

Measurements (per object, before simplification)
------------------------------------------------
``Area µm^2``  pixel count x (d x slide_mpp)^2 (exactly the polygon's area).
``Perimeter µm``  length of the pixel-edge outline, shell plus holes; for curved
outlines this staircase length exceeds the smooth perimeter (up to 4/pi).
``Mean probability``  (only with ``probabilities``) mean over the object's pixels
of the probability of its class, 0..1.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import shapely

from magnipath._errors import MagnipathError
from magnipath.classes import IGNORE_INDEX, ClassMap
from magnipath.progress import CancelCallback, ProgressCallback, check_cancel, report
from magnipath.vectorize._blocks import probability_layout, row_prefix
from magnipath.vectorize._merge import merge_pieces
from magnipath.vectorize._trace import OUTSIDE, Pieces, trace_block
from qupath_bridge.objects import OBJECT_TYPES, QuPathObject

__all__ = ["VectorizeError", "vectorize"]

AREA = "Area µm^2"
PERIMETER = "Perimeter µm"
MEAN_PROBABILITY = "Mean probability"


class VectorizeError(MagnipathError):
    """A label map or probability map cannot be vectorised as asked."""


def _check(labels: Any, probabilities: Any, slide_mpp: float, downsample: float,
           chunk_size: int, simplify_um: float, min_area_um2: float,
           object_type: str) -> str | None:
    shape = getattr(labels, "shape", None)
    dtype = getattr(labels, "dtype", None)
    if shape is None or len(shape) != 2:
        raise VectorizeError(f"labels must be a 2-D (y, x) array, got shape {shape}")
    if dtype is None or np.dtype(dtype).kind not in "iub":
        raise VectorizeError(f"labels must hold integer class values, got dtype {dtype}; "
                             "take the argmax of a probability map first")
    for name, v in (("slide_mpp", slide_mpp), ("downsample", downsample)):
        if not (isinstance(v, int | float) and np.isfinite(v) and v > 0):
            raise VectorizeError(f"{name} must be a positive number (µm/px resp. level-0 px "
                                 f"per label pixel), got {v!r}")
    if not (isinstance(chunk_size, int) and chunk_size >= 16):
        raise VectorizeError(
            f"chunk_size must be an integer >= 16 label pixels, got {chunk_size!r}")
    if simplify_um < 0 or min_area_um2 < 0:
        raise VectorizeError("simplify_um and min_area_um2 must be >= 0 (µm and µm²)")
    if object_type not in OBJECT_TYPES:
        raise VectorizeError(f"object_type must be one of {OBJECT_TYPES}, got {object_type!r}")
    if probabilities is None:
        return None
    try:
        layout = probability_layout(probabilities, tuple(shape))
    except ValueError as e:
        raise VectorizeError(str(e)) from e
    pk = np.dtype(probabilities.dtype)
    if pk != np.uint8 and pk.kind != "f":
        raise VectorizeError(f"probabilities must be uint8 (0..255) or float (0..1), got {pk}")
    return layout


def _reading_order(value: np.ndarray, geoms: np.ndarray) -> np.ndarray:
    """Sort by class, then top row, then the leftmost vertex on that row.

    That vertex is the corner of the object's top-left pixel, which no other object
    of the same class has, so the order is total and the same whatever the blocks.
    """
    if len(geoms) == 0:
        return np.zeros(0, dtype=np.int64)
    xy, idx = shapely.get_coordinates(shapely.get_exterior_ring(geoms), return_index=True)
    top = shapely.bounds(geoms)[:, 1]
    on_top = xy[:, 1] == top[idx]
    left = np.full(len(geoms), np.inf)
    np.minimum.at(left, idx[on_top], xy[on_top, 0])
    return np.lexsort((left, top, value))


def _keep_function(wanted: np.ndarray | None, ignore: int):
    if wanted is None:
        return lambda v: (v != OUTSIDE) & (v != ignore)
    return lambda v: np.isin(v, wanted)


def _names(values: np.ndarray, class_map: ClassMap | None
           ) -> dict[int, tuple[str, tuple[int, int, int] | None]]:
    out: dict[int, tuple[str, tuple[int, int, int] | None]] = {}
    for v in np.unique(values).tolist():
        spec = None
        if class_map is not None:
            try:
                spec = class_map.by_index(int(v))
            except KeyError:
                spec = None
        out[int(v)] = (spec.name, tuple(spec.color)) if spec else (str(v), None)  # type: ignore[assignment]
    return out


def vectorize(labels: Any, *, origin: tuple[float, float] = (0.0, 0.0), downsample: float = 1.0,
              slide_mpp: float, class_map: ClassMap | None = None,
              classes: Iterable[int] | None = None, simplify_um: float = 0.0,
              min_area_um2: float = 0.0, probabilities: Any = None,
              object_type: str = "annotation", chunk_size: int = 4096,
              progress: ProgressCallback | None = None,
              cancel: CancelCallback | None = None,
              workers: int | None = None) -> list[QuPathObject]:
    """Turn a label map into QuPath objects: one per 4-connected component and class.

    Parameters
    ----------
    labels : (y, x) integer or boolean array, numpy or zarr
        Class value per label pixel (a boolean mask is class 1 on class 0). Read in
        ``chunk_size`` blocks when larger.
    origin : (x, y)
        Level-0 pixel position of the label map's top-left pixel corner.
    downsample : float
        Level-0 pixels per label pixel (``label_mpp / slide_mpp``).
    slide_mpp : float
        Level-0 resolution, µm/px; used for measurements, ``simplify_um`` and
        ``min_area_um2``.
    class_map : ClassMap, optional
        Names and colours of the classes by value; values not in it are named
        ``str(value)`` (colour left to the writer). Its ``ignore_index`` is not
        vectorised by default.
    classes : iterable of int, optional
        Label values to vectorise; default every value present except the ignore
        index (``class_map.ignore_index``, else 255).
    simplify_um : float
        Douglas-Peucker tolerance in µm (topology preserving, per object, after
        merging); 0 keeps the exact pixel-edge outline. Simplified neighbours no
        longer share edges exactly.
    min_area_um2 : float
        Objects with a smaller area (µm², pixel count based, after merging) are dropped.
    probabilities : array, optional
        ``(C, y, x)`` or ``(y, x, C)`` class probabilities, or ``(y, x)`` the
        probability of each pixel's own class; uint8 (0..255 = 0..1) or float
        (0..1); numpy or zarr, same ``(y, x)`` grid as ``labels``. Adds
        ``Mean probability`` (NaN for a class value >= C).
    object_type : str
        QuPath object type of the output (``annotation``, ``detection``...).
    chunk_size : int
        Block side in label pixels for large inputs (memory ~ 20 bytes per pixel
        of a block).
    progress, cancel : callables, optional
        Progress events (stage ``"vectorize"``, one per block); ``cancel()``
        returning True stops with :class:`magnipath._errors.Cancelled`.
    workers : int, optional
        Threads that read and trace blocks concurrently (default: the CPU count,
        at most 4); the result does not depend on it.

    Returns
    -------
    list of QuPathObject
        Geometries in level-0 pixels (Polygon, with holes), sorted by class value
        then top-left position, with the measurements listed in the module docstring.
    """
    layout = _check(labels, probabilities, slide_mpp, downsample, chunk_size, simplify_um,
                    min_area_um2, object_type)
    ignore = class_map.ignore_index if class_map is not None else IGNORE_INDEX
    wanted = None if classes is None else np.unique(np.asarray(list(classes), dtype=np.int64))
    h, w = (int(s) for s in labels.shape)
    keep = _keep_function(wanted, ignore)
    grid = [(r, c) for r in range(0, h, chunk_size) for c in range(0, w, chunk_size)]
    org = (float(origin[0]), float(origin[1]))

    def one_block(rc: tuple[int, int]) -> Pieces | None:
        r0, c0 = rc
        rows, cols = slice(r0, min(r0 + chunk_size, h)), slice(c0, min(c0 + chunk_size, w))
        block = np.asarray(labels[rows, cols])
        if block.dtype == np.bool_:
            block = block.view(np.uint8)
        lo, hi = block.min(), block.max()
        if lo == hi and not keep(np.array([lo], dtype=np.int64))[0]:
            return None  # uniform and not vectorised
        srow = None if layout is None else row_prefix(probabilities, layout, block, rows, cols)
        return trace_block(block, keep, srow, offset=(r0, c0), origin=org,
                           downsample=float(downsample))

    n_workers = max(1, min(workers if workers else (os.cpu_count() or 1), 4, len(grid)))
    blocks: list[Pieces] = []
    with ThreadPoolExecutor(n_workers) as pool:  # numpy and zarr release the GIL
        try:
            for i, pieces in enumerate(pool.map(one_block, grid)):
                check_cancel(cancel)
                if pieces is not None:
                    blocks.append(pieces)
                report(progress, "vectorize", i + 1, len(grid))
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    check_cancel(cancel)
    value, count, prob, geoms = merge_pieces(blocks)
    return _objects(value, count, prob, geoms, layout=layout, probabilities=probabilities,
                    downsample=float(downsample), slide_mpp=float(slide_mpp),
                    class_map=class_map, simplify_um=simplify_um, min_area_um2=min_area_um2,
                    object_type=object_type)


def _objects(value: np.ndarray, count: np.ndarray, prob: np.ndarray | None, geoms: np.ndarray,
             *, layout: str | None, probabilities: Any, downsample: float, slide_mpp: float,
             class_map: ClassMap | None, simplify_um: float, min_area_um2: float,
             object_type: str) -> list[QuPathObject]:
    px_um2 = (downsample * slide_mpp) ** 2
    area = count * px_um2
    keep = np.flatnonzero(area >= min_area_um2) if min_area_um2 > 0 else np.arange(len(count))
    value, count, area, geoms = value[keep], count[keep], area[keep], geoms[keep]
    perimeter = shapely.length(geoms) * slide_mpp if len(geoms) else np.zeros(0)
    mean: np.ndarray | None = None
    if prob is not None:
        scale = 255.0 if np.dtype(probabilities.dtype) == np.uint8 else 1.0
        mean = prob[keep] / np.maximum(count, 1) / scale
        if layout in ("cyx", "yxc"):
            n_cls = probabilities.shape[0] if layout == "cyx" else probabilities.shape[2]
            mean[(value < 0) | (value >= n_cls)] = np.nan
    order = _reading_order(value, geoms)
    if simplify_um > 0 and len(geoms):
        geoms = shapely.simplify(geoms, simplify_um / slide_mpp, preserve_topology=True)
    names = _names(value, class_map)
    out: list[QuPathObject] = []
    for i in order.tolist():
        name, color = names[int(value[i])]
        meas = {AREA: float(area[i]), PERIMETER: float(perimeter[i])}
        if mean is not None:
            meas[MEAN_PROBABILITY] = float(mean[i])
        out.append(QuPathObject(geometry=geoms[i], object_type=object_type, classification=name,
                                class_color=color, measurements=meas))
    return out
