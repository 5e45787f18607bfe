"""Reading QuPath Features: every form QuPath 0.2-0.6 (and TIAToolbox) writes."""

from __future__ import annotations

import dataclasses
import json
import math
import uuid
from collections.abc import Iterable
from typing import Any

from qupath_bridge._colors import parse_color
from qupath_bridge._geometry import geometry_extra, geometry_from_json
from qupath_bridge.errors import QuPathBridgeError
from qupath_bridge.objects import QuPathObject

_LEGACY_CLASS_IDS = {"PathAnnotationObject": "annotation", "PathDetectionObject": "detection",
                     "PathCellObject": "cell", "PathTileObject": "tile",
                     "TMACoreObject": "tmaCore", "PathRootObject": "root"}
_TYPE_NAMES = frozenset({"annotation", "detection", "cell", "tile", "tmaCore", "tma_core", "root",
                         "unknown", *_LEGACY_CLASS_IDS})
GEOMETRY_EXTRA_KEY = "__geometry__"
"""Key of :attr:`QuPathObject.extra` holding members of the GeoJSON geometry object other
than ``type``/``coordinates``/``geometries`` (QuPath's ``plane`` and ``isEllipse``); they are
written back into the geometry object, not at the Feature's top level."""
_PROPS_KNOWN = frozenset({"objectType", "object_type", "classification", "name", "color",
                          "isLocked", "measurements", "metadata"})
_TOP_KNOWN = frozenset({"type", "id", "geometry", "properties", "objectType", "object_type"})


def _where(source: str, index: int) -> str:
    return f"{source}: feature {index}"


def _class_name(c: dict, where: str) -> str | None:
    if "names" in c:
        names = c["names"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise QuPathBridgeError(f"{where}: classification 'names' must be a list of strings")
        return ": ".join(names) or None
    name = c.get("name")
    if name is not None and not isinstance(name, str):
        raise QuPathBridgeError(f"{where}: classification 'name' must be a string")
    parent = c.get("parentClass")  # QuPath <= 0.3 wrote derived classes as a parent chain
    if isinstance(parent, dict):
        parent_name = _class_name(parent, where)
        if parent_name:
            return f"{parent_name}: {name}" if name else parent_name
    return name or None


def _parse_classification(c: Any, where: str) -> tuple[str | None, tuple[int, int, int] | None]:
    if c is None:
        return None, None
    if isinstance(c, str):
        return (c or None), None
    if not isinstance(c, dict):
        raise QuPathBridgeError(f"{where}: 'classification' must be an object or a string, "
                                f"got {type(c).__name__}")
    name = _class_name(c, where)
    color_value = c.get("color", c.get("colorRGB"))
    try:
        color = parse_color(color_value)
    except ValueError as e:
        raise QuPathBridgeError(f"{where}: classification {e}") from e
    return name, color


def _number(v: Any, where: str, name: str) -> float:
    if v is None:
        return math.nan
    if isinstance(v, bool):
        raise QuPathBridgeError(f"{where}: measurement {name!r} is a boolean, not a number")
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)  # "NaN", "Infinity", "-Infinity", "1.5"
        except ValueError:
            pass
    raise QuPathBridgeError(f"{where}: measurement {name!r} has value {v!r}, not a number")


def _parse_measurements(m: Any, where: str) -> dict[str, float]:
    if m is None:
        return {}
    if isinstance(m, dict):
        return {str(k): _number(v, where, str(k)) for k, v in m.items()}
    if isinstance(m, list):  # QuPath <= 0.3: [{"name": ..., "value": ...}]
        out = {}
        for item in m:
            if not isinstance(item, dict) or "name" not in item:
                raise QuPathBridgeError(f"{where}: measurement list entries must be "
                                        "{'name': ..., 'value': ...} objects")
            out[str(item["name"])] = _number(item.get("value"), where, str(item["name"]))
        return out
    raise QuPathBridgeError(f"{where}: 'measurements' must be an object or a list")


def _object_type(feature: dict, props: dict, where: str) -> tuple[str, str | None]:
    # returns (type, key of props it came from, so that key is not kept as an extra property)
    candidates = ((props, "objectType"), (props, "object_type"), (props, "type"),
                  (feature, "objectType"), (feature, "object_type"))
    for holder, key in candidates:
        t = holder.get(key)
        if t is None:
            continue
        if key == "type" and t not in _TYPE_NAMES:
            continue  # properties.type is an alias only when it names a QuPath type
        if not isinstance(t, str) or not t:
            raise QuPathBridgeError(f"{where}: '{key}' must be a non-empty string")
        t = _LEGACY_CLASS_IDS.get(t, t)
        return ("annotation" if t == "unknown" else t), (key if holder is props else None)
    legacy = feature.get("id")
    if isinstance(legacy, str) and legacy in _LEGACY_CLASS_IDS:
        return _LEGACY_CLASS_IDS[legacy], None
    return "annotation", None  # QuPath's default on import


def feature_to_object(feature: dict, *, source: str = "<string>", index: int = 0) -> QuPathObject:
    """Turn one GeoJSON Feature (as QuPath writes it) into a :class:`QuPathObject`.

    Parameters
    ----------
    feature : dict
        A parsed GeoJSON Feature; geometry in level-0 pixels.
    source : str
        File name used in error messages.
    index : int
        Position of the feature in its file, used in error messages.

    Raises
    ------
    QuPathBridgeError
        With a message ``"<source>: feature <index>: <what is wrong>"``.
    """
    where = _where(source, index)
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        got = feature.get("type") if isinstance(feature, dict) else type(feature).__name__
        raise QuPathBridgeError(f"{where}: expected a GeoJSON Feature, got {got!r}")
    if feature.get("geometry") is None:
        raise QuPathBridgeError(f"{where}: the feature has no geometry")
    geom = geometry_from_json(feature["geometry"], where)
    props = feature.get("properties") or {}
    if not isinstance(props, dict):
        raise QuPathBridgeError(f"{where}: 'properties' must be an object")
    object_type, type_key = _object_type(feature, props, where)
    classification, class_color = _parse_classification(props.get("classification"), where)
    name = props.get("name")
    if name is not None and not isinstance(name, str):
        name = str(name)
    try:
        color = parse_color(props.get("color"))
    except ValueError as e:
        raise QuPathBridgeError(f"{where}: {e}") from e
    metadata = props.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise QuPathBridgeError(f"{where}: 'metadata' must be an object of strings")
    # QuPath keeps primitive values as strings and skips nulls, objects and arrays
    metadata = {str(k): v if isinstance(v, str) else json.dumps(v)
                for k, v in metadata.items() if v is not None}
    extra = {k: v for k, v in feature.items() if k not in _TOP_KNOWN}
    gextra = geometry_extra(feature["geometry"])
    if gextra:
        extra[GEOMETRY_EXTRA_KEY] = gextra
    fid = feature.get("id")
    if not isinstance(fid, str) or not fid or fid in _LEGACY_CLASS_IDS:
        fid = str(uuid.uuid4())
    return QuPathObject(
        geometry=geom,
        object_type=object_type,
        classification=classification,
        class_color=class_color,
        name=name,
        color=color,
        is_locked=bool(props.get("isLocked", False)),
        measurements=_parse_measurements(props.get("measurements"), where),
        metadata=metadata,
        id=fid,
        extra_properties={k: v for k, v in props.items()
                          if k not in _PROPS_KNOWN and k != type_key},
        extra=extra,
    )


def flatten_children(objects: Iterable[QuPathObject], *, source: str = "<objects>"
                     ) -> list[QuPathObject]:
    """Objects plus their descendants from QuPath's hierarchy export, as one flat list.

    QuPath can export an object with its children nested in
    ``properties.childObjects`` (or ``children``). :func:`read_geojson` keeps such
    nests verbatim in :attr:`QuPathObject.extra_properties` so that writing the
    objects back loses nothing; this function parses them, depth first (a parent
    before its children), and returns copies without the nested key.

    Raises
    ------
    QuPathBridgeError
        When a child is malformed (``source`` and the path of indices name it).
    """
    out: list[QuPathObject] = []

    def visit(obj: QuPathObject, where: str) -> None:
        kids = None
        props = dict(obj.extra_properties)
        for key in ("childObjects", "children"):
            if isinstance(props.get(key), list):
                kids = props.pop(key)
                break
        if kids is None:
            out.append(obj)
            return
        out.append(dataclasses.replace(obj, extra_properties=props))
        for j, child in enumerate(kids):
            visit(feature_to_object(child, source=f"{where} child", index=j), f"{where}.{j}")

    for i, obj in enumerate(objects):
        visit(obj, f"{source}: object {i}")
    return out


def merge_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # QuPath 0.5+ can write "metadata" twice in one object: merge objects, else last wins
    out: dict[str, Any] = {}
    for k, v in pairs:
        old = out.get(k)
        out[k] = {**old, **v} if isinstance(old, dict) and isinstance(v, dict) else v
    return out

