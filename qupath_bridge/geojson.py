"""QuPath's GeoJSON dialect: read everything QuPath 0.2-0.6 writes, write what 0.4-0.6 reads.

What QuPath writes (0.4+), one Feature per object::

    {"type": "Feature", "id": "<uuid>",
     "geometry": {"type": "Polygon", "coordinates": [...]},       # level-0 pixels
     "properties": {"objectType": "annotation",                   # detection, cell, tile...
                    "name": "...", "color": [r, g, b],
                    "classification": {"name": "Tumor", "color": [r, g, b]},
                    "isLocked": true,
                    "measurements": {"Area µm^2": 12.5, "Mean": "NaN"},
                    "metadata": {"key": "value"}}}

Files hold a ``FeatureCollection``, a bare list of Features or one Feature,
optionally gzip-compressed (``.json.gz``). The reader also accepts what older
QuPath versions and other tools wrote: derived classes as
``{"names": [...], "color"}``, a classification given as a plain string,
``colorRGB`` / packed signed ARGB integer colours, measurement lists
``[{"name", "value"}]``, the legacy ``object_type`` key (in ``properties`` or at
the Feature's top level, as TIAToolbox writes it), the QuPath 0.2 ``id`` that
names the Java class (``"PathAnnotationObject"``), and a ``metadata`` key that
appears twice in one ``properties`` object (QuPath 0.5+; the two are merged).
Unknown keys are kept in :attr:`QuPathObject.extra_properties` /
:attr:`QuPathObject.extra` and written back unchanged.

Every polygonal geometry written is valid (QuPath 0.6 rejects self-intersecting
polygons): :func:`repair_geometry` fixes it with ``shapely.make_valid`` (the
``structure`` method: shells are unioned, holes subtracted) and keeps only the
non-empty polygonal parts. Holes stay holes. Coordinates are level-0 pixels
(x right, y down) in and out; nothing is rescaled.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry

from qupath_bridge._colors import default_class_color
from qupath_bridge._features import (
    GEOMETRY_EXTRA_KEY,
    feature_to_object,
    flatten_children,
    merge_duplicate_keys,
)
from qupath_bridge._geometry import GEOMETRY_TYPES, geometry_json, repair_geometry
from qupath_bridge._perms import default_file_mode
from qupath_bridge.errors import QuPathBridgeError
from qupath_bridge.objects import QuPathObject

__all__ = [
    "GEOMETRY_EXTRA_KEY",
    "GEOMETRY_TYPES",
    "dumps_geojson",
    "feature_to_object",
    "flatten_children",
    "loads_geojson",
    "object_to_feature",
    "read_geojson",
    "repair_geometry",
    "write_geojson",
]


# ---------------------------------------------------------------------------------------------
# reading
def loads_geojson(text: str, *, source: str = "<string>") -> list[QuPathObject]:
    """Parse QuPath GeoJSON text into objects (see the module docstring for the forms).

    Parameters
    ----------
    text : str
        A FeatureCollection, a single Feature, a list of Features or a bare geometry
        (read as one annotation). Coordinates are level-0 pixels.
    source : str
        Name used in error messages.
    """
    try:
        data = json.loads(text, object_pairs_hook=merge_duplicate_keys)
    except json.JSONDecodeError as e:
        raise QuPathBridgeError(f"{source}: not valid JSON ({e})") from e
    if isinstance(data, list):
        features = data
    elif isinstance(data, dict) and data.get("type") == "FeatureCollection":
        features = data.get("features")
        if not isinstance(features, list):
            raise QuPathBridgeError(f"{source}: FeatureCollection has no 'features' list")
    elif isinstance(data, dict) and data.get("type") == "Feature":
        features = [data]
    elif isinstance(data, dict) and data.get("type") in GEOMETRY_TYPES:
        features = [{"type": "Feature", "geometry": data, "properties": {}}]
    else:
        got = (f"type {data['type']!r}" if isinstance(data, dict) and "type" in data else
               f"a JSON object with keys {sorted(map(str, data))[:8]}" if isinstance(data, dict)
               else f"JSON {json.dumps(data)[:40]}")
        raise QuPathBridgeError(f"{source}: expected a GeoJSON FeatureCollection, Feature or "
                                f"list of Features, got {got}")
    return [feature_to_object(f, source=source, index=i) for i, f in enumerate(features)]


def read_geojson(path: str | os.PathLike) -> list[QuPathObject]:
    """Read a QuPath GeoJSON file (``.geojson``, ``.json``, gzip-compressed or not).

    Parameters
    ----------
    path : str or PathLike
        The file; gzip is recognised by its content, whatever the suffix.

    Returns
    -------
    list of QuPathObject
        In file order, geometries in level-0 pixels as stored (not repaired; use
        :func:`repair_geometry` before rasterising).

    Raises
    ------
    QuPathBridgeError
        When the file cannot be read or a feature is malformed; the message
        names the file and the feature index.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        text = raw.decode("utf-8-sig")
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise QuPathBridgeError(f"{p}: cannot read the GeoJSON file ({e})") from e
    return loads_geojson(text, source=str(p))



# ---------------------------------------------------------------------------------------------
# writing
def _measurement_json(v: float) -> float | str:
    v = float(v)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return v


def _properties(obj: QuPathObject) -> dict[str, Any]:
    props: dict[str, Any] = {"objectType": obj.object_type}
    if obj.name is not None:
        props["name"] = obj.name
    if obj.color is not None:
        props["color"] = list(obj.color)
    if obj.classification:
        color = obj.class_color or default_class_color(obj.classification)
        names = obj.classification.split(": ")
        key: dict[str, Any] = {"names": names} if len(names) > 1 else {"name": names[0]}
        props["classification"] = {**key, "color": list(color)}
    if obj.is_locked:
        props["isLocked"] = True
    if obj.measurements:
        props["measurements"] = {str(k): _measurement_json(v) for k, v in obj.measurements.items()}
    if obj.metadata:
        props["metadata"] = {str(k): str(v) for k, v in obj.metadata.items()}
    props.update(obj.extra_properties)
    return props


def object_to_feature(obj: QuPathObject) -> dict:
    """The GeoJSON Feature QuPath would write for ``obj`` (geometry repaired if needed).

    Parameters
    ----------
    obj : QuPathObject
        Geometry in level-0 pixels.

    Raises
    ------
    QuPathBridgeError
        When the geometry is missing or empty (also after repair).
    """
    feature, _ = _feature(obj, 0)
    return feature


def _parts(obj: QuPathObject, index: int) -> tuple[BaseGeometry, dict, dict, dict, bool]:
    if obj.geometry is None or obj.geometry.is_empty:
        raise QuPathBridgeError(f"object {index} ({obj.id}): the geometry is empty")
    geom, repaired = repair_geometry(obj.geometry)
    if geom.is_empty:
        raise QuPathBridgeError(f"object {index} ({obj.id}): the geometry has no area left "
                                "after repairing it")
    extra = dict(obj.extra)
    gextra = extra.pop(GEOMETRY_EXTRA_KEY, None) or {}
    return geom, gextra, _properties(obj), extra, repaired


def _feature(obj: QuPathObject, index: int) -> tuple[dict, bool]:
    geom, gextra, props, extra, repaired = _parts(obj, index)
    gjson = geometry_json(geom)
    gjson.update(gextra)
    feature = {"type": "Feature", "id": obj.id, "geometry": gjson, "properties": props}
    feature.update(extra)
    return feature, repaired


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _feature_text(obj: QuPathObject, index: int) -> tuple[str, bool]:
    """Compact JSON of one Feature; the geometry is written by GEOS (fast, full precision)."""
    geom, gextra, props, extra, repaired = _parts(obj, index)
    gtext = shapely.to_geojson(geom)
    if gextra:
        gtext = gtext[:-1] + "," + _compact(gextra)[1:]
    text = ('{"type":"Feature","id":' + _compact(obj.id) + ',"geometry":' + gtext
            + ',"properties":' + _compact(props))
    if extra:
        text += "," + _compact(extra)[1:-1]
    return text + "}", repaired


def dumps_geojson(objects: Iterable[QuPathObject], *, indent: int | None = None,
                  stats: dict[str, int] | None = None) -> str:
    """Serialise objects as a QuPath FeatureCollection.

    Parameters
    ----------
    objects : iterable of QuPathObject
        Geometries in level-0 pixels.
    indent : int, optional
        JSON indentation; ``None`` writes compact JSON.
    stats : dict, optional
        Filled with ``{"written": n, "repaired": k, "dropped_empty": m}``: features
        written, invalid polygons repaired, and objects left out because their
        geometry was empty or had no area left after repair.
    """
    features: list = []
    repaired = dropped = 0
    make = _feature if indent is not None else _feature_text
    for i, obj in enumerate(objects):
        try:
            f, rep = make(obj, i)
        except QuPathBridgeError:
            dropped += 1
            continue
        repaired += rep
        features.append(f)
    if stats is not None:
        stats.update(written=len(features), repaired=repaired, dropped_empty=dropped)
    if indent is None:
        return '{"type":"FeatureCollection","features":[' + ",".join(features) + "]}"
    return json.dumps({"type": "FeatureCollection", "features": features}, indent=indent,
                      ensure_ascii=False)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if hasattr(os, "fchmod"):  # mkstemp's 0600 would stay after the rename
            os.fchmod(fd, default_file_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_geojson(objects: Iterable[QuPathObject], path: str | os.PathLike, *,
                  indent: int | None = None, stats: dict[str, int] | None = None) -> Path:
    """Write objects to a QuPath GeoJSON file, atomically (temporary file, then rename).

    Parameters
    ----------
    objects : iterable of QuPathObject
        Geometries in level-0 pixels; invalid polygons are repaired, objects with
        an empty geometry are left out (see ``stats``).
    path : str or PathLike
        Output file; a name ending in ``.gz`` is gzip-compressed.
    indent : int, optional
        JSON indentation; ``None`` writes compact JSON.
    stats : dict, optional
        Filled as in :func:`dumps_geojson`.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    p = Path(path)
    data = dumps_geojson(objects, indent=indent, stats=stats).encode("utf-8")
    if p.name.endswith(".gz"):
        data = gzip.compress(data, compresslevel=6, mtime=0)
    try:
        _atomic_write_bytes(p, data)
    except OSError as e:
        raise QuPathBridgeError(f"{p}: cannot write the GeoJSON file ({e})") from e
    return p
