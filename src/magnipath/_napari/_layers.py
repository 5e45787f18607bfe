"""QuPath objects <-> napari Shapes / Points layer data, losslessly.

Frames and units
----------------
Layers made here hold their data in **level-0 pixels** of the slide, ``(y, x)``
(napari's order), placed by :func:`._frames.vector_frame` so that napari's
world coordinates are µm and the vectors lie exactly on a slide image layer
(and layers of different slides line up). Without a known mpp the world unit
is the level-0 pixel.

Per-shape / per-point features (``layer.features``)
---------------------------------------------------
``object_id`` (QuPath UUID; several rows share it for multi-part objects),
``part`` (index of the part in its object), ``classification`` (QuPath path
class name, ``""`` when unclassified), ``object_type`` (``annotation``,
``detection``, ...), ``name`` (the object's own name, ``""`` if none), and one
numeric column per measurement.

Layer metadata (``layer.metadata["magnipath"]``)
------------------------------------------------
``kind`` (``"annotations"``), ``mpp`` (µm per level-0 px, or ``None``),
``source`` (file read), ``class_colors`` (``{name: [r, g, b]}``),
``measurements`` (measurement column names) and ``objects``
(``{object_id: {...}}``: what a layer cannot show — object colour, lock,
metadata, unknown GeoJSON keys — so a read/write round trip loses nothing).

Polygons with holes are single shapes (see :mod:`._polygons`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from shapely.geometry import Point, Polygon
from shapely.geometry.base import BaseGeometry

from magnipath._napari._frames import vector_frame
from magnipath._napari._polygons import encode_polygon
from magnipath._napari._to_objects import (
    Transform,
    flat_parts,
    layer_class_colors,
    layer_class_names,
    layer_to_objects,
    metadata_transform,
    points_to_objects,
    shapes_to_objects,
    transform_to_image,
)
from magnipath.types import RGB
from qupath_bridge._colors import default_class_color
from qupath_bridge.objects import QuPathObject

BASE_COLUMNS = ("object_id", "part", "classification", "object_type", "name")
"""Feature columns every MagniPath Shapes/Points layer has."""
UNCLASSIFIED_COLOR: RGB = (255, 0, 0)
"""Display colour of objects with neither a class nor a colour (QuPath's default red)."""
FACE_ALPHA = 0.25
"""Opacity of polygon faces; edges are opaque."""

__all__ = [
    "BASE_COLUMNS", "Transform", "collect_class_colors", "layer_class_colors",
    "layer_class_names", "layer_to_objects", "metadata_transform", "objects_to_layer_data",
    "points_to_objects", "shapes_to_objects", "transform_to_image",
]


# ---------------------------------------------------------------------------------------------
# objects -> layers
DARK_BACKGROUND: RGB = (38, 41, 48)
"""napari's dark-theme canvas/background colour."""
MIN_CONTRAST = 3.0
"""Least WCAG contrast ratio of a displayed class colour against :data:`DARK_BACKGROUND`."""


def _luminance(rgb: Sequence[float]) -> float:
    """WCAG relative luminance of an sRGB colour given as 0..255 values."""
    lin = [(c / 255 / 12.92) if c / 255 <= 0.04045 else ((c / 255 + 0.055) / 1.055) ** 2.4
           for c in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast_on_dark(rgb: Sequence[float]) -> float:
    """WCAG contrast ratio of ``rgb`` (0..255) against napari's dark background."""
    return (_luminance(rgb) + 0.05) / (_luminance(DARK_BACKGROUND) + 0.05)


def legible_on_dark(rgb: Sequence[float]) -> RGB:
    """``rgb`` (0..255) mixed with white just enough to stand out on the dark theme.

    A colour whose contrast with napari's dark background is below
    :data:`MIN_CONTRAST` (QuPath's dark grey or navy classes, e.g. Necrosis
    (50, 50, 50)) is lightened in steps of 5 % towards white, keeping its hue;
    others are returned unchanged. Only the display changes: the class colour
    kept in the layer's metadata (and written back to QuPath) is the original.
    """
    base = tuple(int(c) for c in rgb[:3])
    out = base
    t = 0.0
    while contrast_on_dark(out) < MIN_CONTRAST and t < 1.0:
        t = min(1.0, t + 0.05)
        out = tuple(round(c + (255 - c) * t) for c in base)
    return out  # type: ignore[return-value]


def _display_color(obj: QuPathObject, class_colors: dict[str, RGB]) -> RGB:
    if obj.classification:
        return legible_on_dark(class_colors[obj.classification])
    return legible_on_dark(obj.color) if obj.color else UNCLASSIFIED_COLOR


def collect_class_colors(objects: Iterable[QuPathObject]) -> dict[str, RGB]:
    """``{class name: (r, g, b)}`` of the classes of ``objects``, first colour seen wins.

    A class that never comes with a colour gets QuPath bridge's stable default.
    """
    out: dict[str, RGB | None] = {}
    for o in objects:
        if o.classification and out.get(o.classification) is None:
            out[o.classification] = tuple(o.class_color) if o.class_color else None  # type: ignore[assignment]
    return {k: v if v is not None else default_class_color(k) for k, v in out.items()}


def _extras(obj: QuPathObject) -> dict[str, Any]:
    e: dict[str, Any] = {}
    if obj.color is not None:
        e["color"] = list(obj.color)
    if obj.is_locked:
        e["is_locked"] = True
    if obj.metadata:
        e["metadata"] = dict(obj.metadata)
    if obj.extra_properties:
        e["extra_properties"] = dict(obj.extra_properties)
    if obj.extra:
        e["extra"] = dict(obj.extra)
    if obj.measurements:
        e["measurements"] = list(obj.measurements)
    return e


def _rows(objs: list[tuple[QuPathObject, int, BaseGeometry]], measurements: list[str]) -> dict:
    feats: dict[str, list] = {c: [] for c in BASE_COLUMNS}
    for m in measurements:
        feats[m] = []
    for obj, part, _ in objs:
        feats["object_id"].append(obj.id)
        feats["part"].append(part)
        feats["classification"].append(obj.classification or "")
        feats["object_type"].append(obj.object_type)
        feats["name"].append(obj.name or "")
        for m in measurements:
            feats[m].append(float(obj.measurements.get(m, math.nan)))
    return feats


def _rgba(colors: Sequence[RGB], alpha: float) -> np.ndarray:
    arr = np.asarray(colors, dtype=float).reshape(-1, 3) / 255.0
    return np.concatenate([arr, np.full((len(arr), 1), alpha)], axis=1)


def objects_to_layer_data(objects: Sequence[QuPathObject], *, mpp: float | None = None,
                          name: str = "annotations", source: str | None = None
                          ) -> list[tuple[Any, dict, str]]:
    """napari layer-data tuples showing ``objects``: a Shapes and/or a Points layer.

    Parameters
    ----------
    objects : sequence of QuPathObject
        Geometries in level-0 pixels (x right, y down).
    mpp : float, optional
        µm per level-0 pixel of the slide the objects belong to; becomes the
        layers' ``scale`` so world coordinates are µm. ``None``: scale 1.
    name : str
        Layer name; the Points layer gets ``" (points)"`` appended when both exist.
    source : str, optional
        File the objects came from, kept in the metadata.

    Returns
    -------
    list of (data, kwargs, layer_type)
        Polygons (holes encoded, see :mod:`._polygons`) and lines go to a
        ``"shapes"`` layer, points to a ``"points"`` layer; data are ``(y, x)``
        level-0 pixels. An empty list when there is nothing to show.
    """
    class_colors = collect_class_colors(objects)
    measurements = sorted({m for o in objects for m in o.measurements} - set(BASE_COLUMNS))
    shapes: list[tuple[QuPathObject, int, BaseGeometry]] = []
    points: list[tuple[QuPathObject, int, BaseGeometry]] = []
    for obj in objects:
        for i, part in enumerate(flat_parts(obj.geometry)):
            (points if isinstance(part, Point) else shapes).append((obj, i, part))
    bounds = [o.geometry.bounds for o in objects if o.geometry is not None
              and not o.geometry.is_empty]
    extent = max((max(b[2] - b[0], b[3] - b[1]) for b in bounds), default=1000.0)
    frame = vector_frame(mpp)

    def meta(rows: list[tuple[QuPathObject, int, BaseGeometry]]) -> dict:
        objs = {o.id: o for o, _, _ in rows}
        return {"magnipath": {
            "kind": "annotations", "mpp": mpp, "source": source,
            "class_colors": {k: list(v) for k, v in class_colors.items()},
            "measurements": measurements,
            "objects": {i: e for i, o in objs.items() if (e := _extras(o))},
        }}

    defaults = {"object_id": "", "part": 0, "object_type": "annotation", "name": "",
                "classification": next(iter(class_colors), ""),
                **dict.fromkeys(measurements, math.nan)}
    out: list[tuple[Any, dict, str]] = []
    if shapes:
        data, types = [], []
        for _, _, g in shapes:
            if isinstance(g, Polygon):
                data.append(encode_polygon(g))
                types.append("polygon")
            else:  # LineString / LinearRing
                data.append(np.asarray(g.coords, dtype=float)[:, ::-1])
                types.append("path")
        colors = [_display_color(o, class_colors) for o, _, _ in shapes]
        face = _rgba(colors, FACE_ALPHA)
        face[[t == "path" for t in types], 3] = 0.0
        out.append((data, {
            "name": name, "shape_type": types, "features": _rows(shapes, measurements),
            "feature_defaults": defaults, "face_color": face, "edge_color": _rgba(colors, 1.0),
            "edge_width": max(1.0, extent / 500.0), **frame,
            "blending": "translucent", "metadata": meta(shapes),
        }, "shapes"))
    if points:
        colors = [_display_color(o, class_colors) for o, _, _ in points]
        pdata = np.asarray([(g.y, g.x) for _, _, g in points], dtype=float).reshape(-1, 2)
        out.append((pdata, {
            "name": f"{name} (points)" if shapes else name,
            "features": _rows(points, measurements), "feature_defaults": defaults,
            "face_color": _rgba(colors, 1.0), "border_color": _rgba(colors, 1.0),
            "size": max(8.0, extent / 150.0), **frame,
            "metadata": meta(points),
        }, "points"))
    return out


