"""Geometry side of QuPath GeoJSON: parsing, QuPath-safe repair, serialising."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import shapely
from shapely.geometry import GeometryCollection, MultiPoint, MultiPolygon, Polygon, shape
from shapely.geometry.base import BaseGeometry

from qupath_bridge.errors import QuPathBridgeError

GEOMETRY_TYPES = ("Point", "MultiPoint", "LineString", "MultiLineString", "Polygon",
                  "MultiPolygon", "GeometryCollection")
"""GeoJSON geometry types QuPath reads and writes (ROIs: points, lines, areas)."""


def _polygonal_parts(geom: BaseGeometry) -> list[Polygon]:
    if isinstance(geom, Polygon):
        return [] if geom.is_empty else [geom]
    if isinstance(geom, MultiPolygon | GeometryCollection):
        out: list[Polygon] = []
        for g in geom.geoms:
            out.extend(_polygonal_parts(g))
        return out
    return []


def _has_empty_part(geom: BaseGeometry) -> bool:
    if hasattr(geom, "geoms"):
        return any(g.is_empty or _has_empty_part(g) for g in geom.geoms)
    return False


def repair_geometry(geom: BaseGeometry) -> tuple[BaseGeometry, bool]:
    """Make a geometry acceptable to QuPath; report whether it had to change.

    Parameters
    ----------
    geom : shapely geometry
        Any geometry in level-0 pixels.

    Returns
    -------
    geometry : shapely geometry
        For a Polygon/MultiPolygon: the input itself when it is valid and has no
        empty part, otherwise ``shapely.make_valid(geom, method="structure")``
        reduced to its non-empty polygonal parts (a Polygon, a MultiPolygon, or an
        empty Polygon when nothing with an area is left; lines and points that a
        collapsed ring leaves behind are dropped). Holes stay holes. Multi-part
        points and collections lose their empty parts; other geometries are
        returned unchanged.
    repaired : bool
        ``True`` when the returned geometry differs from the input.
    """
    if isinstance(geom, Polygon | MultiPolygon):
        if geom.is_empty or (geom.is_valid and not _has_empty_part(geom)):
            return geom, False
        fixed = shapely.make_valid(geom, method="structure", keep_collapsed=False)
        parts = _polygonal_parts(fixed)
        if not parts:
            return Polygon(), True
        return (parts[0] if len(parts) == 1 else MultiPolygon(parts)), True
    if isinstance(geom, MultiPoint) and _has_empty_part(geom):
        return MultiPoint([g for g in geom.geoms if not g.is_empty]), True
    if isinstance(geom, GeometryCollection) and not geom.is_empty:
        parts, changed = [], False
        for g in geom.geoms:
            fixed, ch = repair_geometry(g)
            changed |= ch or fixed.is_empty
            if not fixed.is_empty:
                parts.append(fixed)
        return (GeometryCollection(parts), True) if changed else (geom, False)
    return geom, False


def geometry_from_json(g: Any, where: str) -> BaseGeometry:
    if not isinstance(g, dict):
        raise QuPathBridgeError(f"{where}: 'geometry' must be a GeoJSON geometry object, "
                                f"got {type(g).__name__}")
    gtype = g.get("type")
    if gtype not in GEOMETRY_TYPES:
        raise QuPathBridgeError(f"{where}: geometry type {gtype!r} is not supported "
                                f"(QuPath writes {', '.join(GEOMETRY_TYPES)})")
    try:
        if gtype == "Polygon":
            return _polygon(g["coordinates"])
        if gtype == "MultiPolygon":
            parts = [_polygon(p) for p in g["coordinates"]]
            return MultiPolygon(parts) if parts else MultiPolygon()
        return shape(g)
    except Exception as e:  # shapely and numpy raise several types for malformed coordinates
        raise QuPathBridgeError(f"{where}: malformed {gtype} coordinates: {e}") from e


def _polygon(rings: list) -> Polygon:
    """Polygon from GeoJSON rings via numpy (``shape`` builds it point by point: slow)."""
    if not rings:
        return Polygon()
    arrays = [np.asarray(r, dtype=np.float64) for r in rings]
    if any(a.ndim != 2 or a.shape[1] not in (2, 3) for a in arrays):
        raise ValueError("each ring must be a list of [x, y] positions")
    return shapely.polygons(shapely.linearrings(arrays[0]),
                            holes=[shapely.linearrings(a) for a in arrays[1:]] or None)


def geometry_extra(g: dict) -> dict[str, Any]:
    return {k: v for k, v in g.items() if k not in ("type", "coordinates", "geometries")}



def geometry_json(geom: BaseGeometry) -> dict[str, Any]:
    """GeoJSON geometry dict (written by GEOS: fast, full precision)."""
    return json.loads(shapely.to_geojson(geom))
