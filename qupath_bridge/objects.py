"""The object model shared by the GeoJSON dialect and the paquo bridge."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from shapely.geometry.base import BaseGeometry

OBJECT_TYPES = ("annotation", "detection", "tile", "cell")
"""QuPath object types that MagniPath reads and writes."""


@dataclass
class QuPathObject:
    """One QuPath object with its geometry in level-0 pixel coordinates.

    Attributes
    ----------
    geometry : shapely geometry
        Polygon, MultiPolygon (holes are holes), Point, MultiPoint or LineString,
        in level-0 pixels of the image (x right, y down).
    object_type : str
        ``annotation``, ``detection``, ``tile`` or ``cell``.
    classification : str or None
        Path class name (derived classes joined with ``": "``), ``None`` if unclassified.
    class_color : (r, g, b) or None
        Colour of the path class; QuPath refuses a class with a name and no colour.
    name : str or None
        The object's own name.
    color : (r, g, b) or None
        The object's own colour (QuPath ``properties.color``).
    is_locked : bool
    measurements : dict of str -> float
    metadata : dict of str -> str
    id : str
        UUID string.
    extra_properties : dict
        Unknown entries of ``properties``, kept so a read-write round trip loses nothing.
    extra : dict
        Unknown top-level Feature entries, kept likewise.
    """

    geometry: BaseGeometry
    object_type: str = "annotation"
    classification: str | None = None
    class_color: tuple[int, int, int] | None = None
    name: str | None = None
    color: tuple[int, int, int] | None = None
    is_locked: bool = False
    measurements: dict[str, float] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    extra_properties: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
