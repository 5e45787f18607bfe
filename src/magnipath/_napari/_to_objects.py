"""napari Shapes / Points layers -> QuPath objects (the inverse of :mod:`._layers`).

Coordinates are mapped from a layer's data frame to level-0 pixels by a
:data:`Transform`: either from the layer's own metadata (the writer's case) or
onto a slide image layer through both layers' scale and translate (the
widgets' case). See :mod:`._layers` for the features and metadata read here.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from shapely.geometry import (
    GeometryCollection,
    LineString,
    MultiLineString,
    MultiPoint,
    MultiPolygon,
    Point,
    Polygon,
)
from shapely.geometry.base import BaseGeometry

from magnipath._napari._polygons import decode_polygon, ellipse_polygon
from magnipath.types import RGB
from qupath_bridge.objects import QuPathObject

if TYPE_CHECKING:  # pandas is imported when first needed: opening a slide does not pay for it
    import pandas as pd

Transform = tuple[np.ndarray, np.ndarray]
"""``(scale_yx, offset_yx)``: level-0 ``(y, x)`` = data ``(y, x)`` * scale + offset."""


def flat_parts(geom: BaseGeometry) -> list[BaseGeometry]:
    """Non-empty single-part geometries of ``geom`` (multi-parts and collections flattened)."""
    if isinstance(geom, MultiPolygon | MultiLineString | MultiPoint | GeometryCollection):
        out: list[BaseGeometry] = []
        for g in geom.geoms:
            out.extend(flat_parts(g))
        return out
    return [] if geom is None or geom.is_empty else [geom]


def magnipath_metadata(attributes: dict) -> dict:
    """``attributes["metadata"]["magnipath"]`` or ``{}``."""
    meta = attributes.get("metadata") or {}
    mp = meta.get("magnipath") if isinstance(meta, dict) else None
    return mp if isinstance(mp, dict) else {}


def metadata_transform(attributes: dict) -> Transform:
    """Data -> level-0 transform of a layer from its own state (no image needed).

    Parameters
    ----------
    attributes : dict
        A layer's state (``layer.as_layer_data_tuple()[1]``, or napari's writer
        ``attributes``).

    Returns
    -------
    Transform
        For a layer made by MagniPath (``metadata["magnipath"]`` present), the
        inverse of :func:`._frames.vector_frame`: level-0 px =
        (data * scale + translate) / mpp + 0.5 (mpp 1 when unknown). For any
        other layer the data coordinates are taken as level-0 pixels (identity;
        half a pixel off for shapes drawn over a slide image, whose data
        coordinates are pixel centres; the widgets use
        :func:`transform_to_image`, which is exact).
    """
    meta = magnipath_metadata(attributes)
    if not meta:
        return np.ones(2), np.zeros(2)
    m = float(meta.get("mpp") or 1.0)
    scale = np.asarray(attributes.get("scale", (1.0, 1.0)), dtype=float)[-2:]
    translate = np.asarray(attributes.get("translate", (0.0, 0.0)), dtype=float)[-2:]
    return scale / m, translate / m + 0.5


def transform_to_image(layer: Any, image_layer: Any) -> Transform:
    """Data -> level-0 transform of ``layer`` onto ``image_layer``'s level 0.

    Parameters
    ----------
    layer, image_layer : napari layers
        The annotations layer and the (multiscale) slide image layer; only
        ``scale`` and ``translate`` are used (rotation/shear are not supported).

    Returns
    -------
    Transform
        level-0 ``(y, x)`` of the image = data ``(y, x)`` * scale + offset, with
        the image's data coordinates taken as pixel centres (see :mod:`._frames`).
    """
    s = np.asarray(layer.scale, dtype=float)[-2:]
    t = np.asarray(layer.translate, dtype=float)[-2:]
    si = np.asarray(image_layer.scale, dtype=float)[-2:]
    ti = np.asarray(image_layer.translate, dtype=float)[-2:]
    return s / si, (t - ti) / si + 0.5


def _to_level0(arr: np.ndarray, transform: Transform) -> np.ndarray:
    """``(N, >=2)`` data -> ``(N, 2)`` level-0 ``(x, y)``."""
    yx = np.asarray(arr, dtype=float).reshape(-1, np.asarray(arr).shape[-1])[:, -2:]
    yx = yx * transform[0] + transform[1]
    return yx[:, ::-1]


def _feature(features: pd.DataFrame, col: str, i: int, default: Any) -> Any:
    if col not in features.columns:
        return default
    v = features[col].iloc[i]
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return default
    return v


def _class_colors_from(attributes: dict, features: pd.DataFrame, color_key: str) -> dict:
    known = {k: tuple(int(c) for c in v)
             for k, v in (magnipath_metadata(attributes).get("class_colors") or {}).items()}
    colors = np.asarray(attributes.get(color_key, np.zeros((0, 4))), dtype=float)
    if "classification" in features.columns and colors.ndim == 2 and len(colors):
        for i, name in enumerate(features["classification"]):
            if isinstance(name, str) and name and name not in known and i < len(colors):
                known[name] = tuple(round(c * 255) for c in colors[i, :3])
    return known


def _assemble(rows: list[tuple[str, int, dict, BaseGeometry]], attributes: dict,
              class_colors: dict[str, RGB], measurements: list[str]) -> list[QuPathObject]:
    registry = magnipath_metadata(attributes).get("objects") or {}
    order: list[str] = []
    groups: dict[str, list[tuple[dict, BaseGeometry]]] = {}
    seen: set[tuple[str, int]] = set()
    for oid, part, info, geom in rows:
        if not oid or (oid, part) in seen:  # drawn in napari, or a copied id
            oid = str(uuid.uuid4())
        seen.add((oid, part))
        if oid not in groups:
            order.append(oid)
            groups[oid] = []
        groups[oid].append((info, geom))
    objects = []
    for oid in order:
        info, _ = groups[oid][0]
        geoms = [g for _, g in groups[oid] if g is not None and not g.is_empty]
        if not geoms:
            continue
        extra = registry.get(oid, {})
        cls = info["classification"] or None
        had = set(extra.get("measurements", []))
        meas = {m: float(v) for m in measurements
                if (v := info["measurements"].get(m, math.nan)) is not None
                and (not math.isnan(float(v)) or m in had)}
        objects.append(QuPathObject(
            geometry=_merge(geoms), object_type=info["object_type"] or "annotation",
            classification=cls, class_color=class_colors.get(cls) if cls else None,
            name=info["name"] or None,
            color=tuple(extra["color"]) if extra.get("color") else None,
            is_locked=bool(extra.get("is_locked", False)), measurements=meas,
            metadata=dict(extra.get("metadata", {})), id=oid,
            extra_properties=dict(extra.get("extra_properties", {})),
            extra=dict(extra.get("extra", {}))))
    return objects


def _merge(geoms: list[BaseGeometry]) -> BaseGeometry:
    flat = [p for g in geoms for p in flat_parts(g)]
    if len(flat) == 1:
        return flat[0]
    if all(isinstance(g, Polygon) for g in flat):
        return MultiPolygon(flat)
    if all(isinstance(g, LineString) for g in flat):
        return MultiLineString(flat)
    if all(isinstance(g, Point) for g in flat):
        return MultiPoint(flat)
    return GeometryCollection(flat)


def _row_info(features: pd.DataFrame, i: int, measurements: list[str]) -> dict:
    return {"classification": str(_feature(features, "classification", i, "") or ""),
            "object_type": str(_feature(features, "object_type", i, "annotation")),
            "name": str(_feature(features, "name", i, "") or ""),
            "measurements": {m: _feature(features, m, i, math.nan) for m in measurements}}


def _features_of(attributes: dict, n: int) -> pd.DataFrame:
    import pandas as pd

    f = attributes.get("features")
    f = pd.DataFrame(f) if f is not None else pd.DataFrame(index=range(n))
    return f.reset_index(drop=True)


def shapes_to_objects(data: Sequence[np.ndarray], attributes: dict, *,
                      transform: Transform | None = None) -> list[QuPathObject]:
    """QuPath objects of a Shapes layer (inverse of :func:`objects_to_layer_data`).

    Parameters
    ----------
    data : sequence of numpy.ndarray
        The layer's data, one ``(N, D)`` vertex array per shape (last two axes
        ``(y, x)``).
    attributes : dict
        The layer's state: ``shape_type``, ``features``, ``edge_color``, ``metadata``...
    transform : Transform, optional
        Data -> level-0 transform; default :func:`metadata_transform`.

    Returns
    -------
    list of QuPathObject
        Geometries in level-0 pixels. Polygons and rectangles keep their holes,
        ellipses become 64-vertex polygons, lines and paths become LineStrings;
        shapes sharing an ``object_id`` become one multi-part object. Shapes
        drawn in napari (no or a duplicated ``object_id``) get new ids. Class
        colours come from the metadata, else from the shape's edge colour.
    """
    transform = metadata_transform(attributes) if transform is None else transform
    n = len(data)
    types = list(attributes.get("shape_type") or ["polygon"] * n)
    features = _features_of(attributes, n)
    class_colors = _class_colors_from(attributes, features, "edge_color")
    measurements = [m for m in magnipath_metadata(attributes).get("measurements", [])
                    if m in features.columns]
    rows = []
    for i, verts in enumerate(data):
        xy = _to_level0(verts, transform)
        t = types[i]
        if t in ("polygon", "rectangle"):
            geom = decode_polygon(xy[:, ::-1])
        elif t == "ellipse":
            geom = ellipse_polygon(xy[:, ::-1])
        else:  # line, path
            geom = LineString(xy) if len(xy) >= 2 else None
        oid = str(_feature(features, "object_id", i, "") or "")
        part = int(_feature(features, "part", i, 0))
        rows.append((oid, part, _row_info(features, i, measurements), geom))
    return _assemble(rows, attributes, class_colors, measurements)


def points_to_objects(data: np.ndarray, attributes: dict, *,
                      transform: Transform | None = None) -> list[QuPathObject]:
    """QuPath point objects of a Points layer (rows sharing an ``object_id`` -> MultiPoint).

    Parameters
    ----------
    data : numpy.ndarray
        ``(N, D)`` point coordinates, last two axes ``(y, x)``.
    attributes : dict
        The layer's state (``features``, ``face_color``, ``metadata``...).
    transform : Transform, optional
        Data -> level-0 transform; default :func:`metadata_transform`.

    Returns
    -------
    list of QuPathObject
        Point / MultiPoint geometries in level-0 pixels.
    """
    transform = metadata_transform(attributes) if transform is None else transform
    arr = np.asarray(data, dtype=float)
    features = _features_of(attributes, len(arr))
    class_colors = _class_colors_from(attributes, features, "face_color")
    measurements = [m for m in magnipath_metadata(attributes).get("measurements", [])
                    if m in features.columns]
    xy = _to_level0(arr, transform) if len(arr) else np.zeros((0, 2))
    rows = [(str(_feature(features, "object_id", i, "") or ""),
             int(_feature(features, "part", i, 0)),
             _row_info(features, i, measurements), Point(*xy[i])) for i in range(len(xy))]
    return _assemble(rows, attributes, class_colors, measurements)


def layer_to_objects(layer: Any, image_layer: Any | None = None) -> list[QuPathObject]:
    """QuPath objects of a napari Shapes or Points layer, in level-0 pixels.

    Parameters
    ----------
    layer : napari.layers.Shapes or napari.layers.Points
        The annotations.
    image_layer : napari.layers.Image, optional
        The slide: coordinates are mapped onto its level 0 through both layers'
        scale and translate. Without it, :func:`metadata_transform` is used.
    """
    data, attributes, layer_type = layer.as_layer_data_tuple()
    transform = transform_to_image(layer, image_layer) if image_layer is not None else None
    if layer_type == "points":
        return points_to_objects(data, attributes, transform=transform)
    return shapes_to_objects(data, attributes, transform=transform)


def layer_class_names(layer: Any) -> list[str]:
    """Class names a Shapes/Points layer uses, in order of first appearance (no ``""``)."""
    meta = magnipath_metadata({"metadata": layer.metadata})
    names: list[str] = list(meta.get("class_colors") or {})
    feats = layer.features
    if "classification" in feats.columns:
        for n in feats["classification"]:
            if isinstance(n, str) and n and n not in names:
                names.append(n)
    return names


def layer_class_colors(layer: Any) -> dict[str, RGB]:
    """``{class name: (r, g, b)}`` of a Shapes/Points layer (metadata, else shape colours)."""
    _, attributes, layer_type = layer.as_layer_data_tuple()
    key = "face_color" if layer_type == "points" else "edge_color"
    return _class_colors_from(attributes, _features_of(attributes, 0), key)
