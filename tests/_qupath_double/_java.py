"""The Java side of the QuPath test double: objects, hierarchy, GeoJSON in and out.

Each class imitates the QuPath (``qupath-core``) class of the same name as far as
:mod:`qupath_bridge.project` uses it; the QuPath source each behaviour follows is
named in the docstrings (tags ``v0.5.1`` and ``v0.6.0`` of github.com/qupath/qupath).
Versions are compared as tuples, ``(0, 5)`` or ``(0, 6)``.

The GeoJSON written and parsed here is written out by this module on its own
(shapely + ``json``), not by :mod:`qupath_bridge.geojson`, so a bug in the bridge's
dialect is not mirrored by the double.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

log = logging.getLogger("qupath.double")

Version = tuple[int, int]


# -- java.lang / java.io / java.util ------------------------------------------------------------
class JavaException(Exception):
    """A Java exception as JPype shows it: ``type(e).__name__`` is the Java class name and
    ``str(e)`` Java's ``toString()``: the class name, then ``": message"`` if there is one."""

    def __str__(self) -> str:
        msg = super().__str__()
        return f"{type(self).__name__}: {msg}" if msg else type(self).__name__


def _java_exception(name: str) -> type[JavaException]:
    return type(name, (JavaException,), {})


UnsupportedOperationException = _java_exception("java.lang.UnsupportedOperationException")
IllegalArgumentException = _java_exception("java.lang.IllegalArgumentException")
IOException = _java_exception("java.io.IOException")


class String(str):
    """``java.lang.String`` (paquo.java.String): a str."""


class ArrayList(list):
    """``java.util.ArrayList``: the methods the bridge calls."""

    def add(self, item: Any) -> bool:
        self.append(item)
        return True

    def addAll(self, items: Iterable[Any]) -> bool:
        before = len(self)
        self.extend(items)
        return len(self) != before

    def size(self) -> int:
        return len(self)

    def get(self, i: int) -> Any:
        return self[i]

    def isEmpty(self) -> bool:
        return not self


class File:
    """``java.io.File``: a path."""

    def __init__(self, path: str) -> None:
        self.path = str(path)

    def getPath(self) -> str:
        return self.path

    def exists(self) -> bool:
        return Path(self.path).exists()

    def __str__(self) -> str:
        return self.path


class MetadataMap(dict):
    """``PathObject.MetadataMap`` (a ``LinkedHashMap<String, String>``): ``put`` / ``get``."""

    def put(self, key: str, value: str) -> str | None:
        old = dict.get(self, str(key))
        self[str(key)] = str(value)
        return old

    def get(self, key: str, default: Any = None) -> Any:  # Java: null when missing
        return dict.get(self, str(key), default)

    def isEmpty(self) -> bool:
        return not self

    def size(self) -> int:
        return len(self)

    def containsKey(self, key: str) -> bool:
        return str(key) in self


class UnmodifiableMap(MetadataMap):
    """``Collections.unmodifiableMap``: reads work, every write raises
    ``java.lang.UnsupportedOperationException`` (with no message, like Java's)."""

    def put(self, key: str, value: str) -> str | None:
        raise UnsupportedOperationException("")

    def __setitem__(self, key: str, value: str) -> None:
        raise UnsupportedOperationException("")

    def clear(self) -> None:
        raise UnsupportedOperationException("")


class MeasurementList(dict):
    """``qupath.lib.measurements.MeasurementList`` (0.4+ API): ``put``, ``get`` (NaN when
    missing), ``containsKey``, ``size``, ``isEmpty``, ``getNames``."""

    def put(self, name: str, value: float) -> None:
        self[str(name)] = float(value)

    def get(self, name: str, default: Any = math.nan) -> Any:
        return dict.get(self, str(name), default)

    def containsKey(self, name: str) -> bool:
        return str(name) in self

    def size(self) -> int:
        return len(self)

    def isEmpty(self) -> bool:
        return not self

    def getNames(self) -> list[str]:
        return list(self)


# -- path classes -------------------------------------------------------------------------------
def pack_rgb(rgb: tuple[int, int, int]) -> int:
    """QuPath's packed ``ColorTools.packRGB`` (opaque ARGB as a signed 32-bit int)."""
    r, g, b = rgb
    v = (255 << 24) | (r << 16) | (g << 8) | b
    return v - (1 << 32)


def unpack_rgb(v: int) -> tuple[int, int, int]:
    v &= 0xFFFFFFFF
    return (v >> 16) & 255, (v >> 8) & 255, v & 255


class PathClass:
    """``qupath.lib.objects.classes.PathClass``: a name and a colour.

    QuPath keeps one instance per name (``PathClass.fromString`` / ``getInstance``
    cache); the first colour given wins. The cache is per :class:`JavaWorld`.
    """

    def __init__(self, name: str, color: tuple[int, int, int] | None) -> None:
        self.name = name
        self.color = color

    def toString(self) -> str:
        return self.name

    def getName(self) -> str:
        return self.name

    def getColor(self) -> int | None:
        return None if self.color is None else pack_rgb(self.color)

    def __str__(self) -> str:
        return self.name


# -- objects -------------------------------------------------------------------------------------
class PathObject:
    """``qupath.lib.objects.PathObject``: ROI (a shapely geometry, level-0 px), class, name,
    colour, lock, measurements, metadata, UUID, children.

    Metadata (``PathObject.getMetadata`` in v0.5.1 and v0.6.0): a lazily created
    ``MetadataMap``. ``getMetadata()`` is public from v0.5.0 (v0.4.3 keeps it
    protected: the attribute is missing), ``hasMetadata()`` exists only from v0.6.0
    (so ``getattr(obj, "hasMetadata", None)`` is ``None`` before).
    """

    object_type = "object"

    def __init__(self, world: JavaWorld, geometry: BaseGeometry | None,
                 path_class: PathClass | None = None) -> None:
        self._world = world
        self.geometry = geometry
        self.path_class = path_class
        self.name: str | None = None
        self.color: tuple[int, int, int] | None = None
        self.locked = False
        self.measurements = MeasurementList()
        self._metadata: MetadataMap | None = None
        self.id = str(uuid.uuid4())
        self.parent: PathObject | None = None
        self.children: list[PathObject] = []

    # metadata --------------------------------------------------------------------------------
    def _metadata_map(self) -> MetadataMap:
        if self._metadata is None:
            self._metadata = MetadataMap()
        return self._metadata

    def __getattr__(self, name: str) -> Any:
        if name == "getMetadata" and self._world.version >= (0, 5):
            return self._metadata_map
        if name == "hasMetadata" and self._world.version >= (0, 6):
            return lambda: self._metadata is not None and len(self._metadata) > 0
        raise AttributeError(f"{type(self).__name__!r} (QuPath {self._world.version_text}) "
                             f"has no attribute {name!r}")

    # the rest ----------------------------------------------------------------------------------
    def getPathClass(self) -> PathClass | None:
        return self.path_class

    def setPathClass(self, pc: PathClass | None) -> None:
        self.path_class = pc

    def getName(self) -> str | None:
        return self.name

    def setName(self, name: str | None) -> None:
        self.name = name

    def getID(self) -> str:
        return self.id

    def getMeasurementList(self) -> MeasurementList:
        return self.measurements

    def hasMeasurements(self) -> bool:
        return len(self.measurements) > 0

    def getParent(self) -> PathObject | None:
        return self.parent

    def getChildObjects(self) -> list[PathObject]:
        return list(self.children)

    def isAnnotation(self) -> bool:
        return False

    def isDetection(self) -> bool:
        return False

    def isRootObject(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.id})"


class PathRootObject(PathObject):
    object_type = "root"

    def isRootObject(self) -> bool:
        return True


class PathAnnotationObject(PathObject):
    object_type = "annotation"

    def isAnnotation(self) -> bool:
        return True


class PathDetectionObject(PathObject):
    """``qupath.lib.objects.PathDetectionObject``.

    From v0.5.0 ``getMetadata()`` returns ``getUnmodifiableMetadataMap()``: a read-only
    view ("for detection objects, this map is unmodifiable to avoid excessive memory
    use", PathDetectionObject.java v0.5.1), so ``getMetadata().put(...)`` raises
    ``java.lang.UnsupportedOperationException``. v0.6.0 removed that override: the
    map is writable again.
    """

    object_type = "detection"

    def isDetection(self) -> bool:
        return True

    def _metadata_map(self) -> MetadataMap:
        if self._world.version[:2] == (0, 5):
            return UnmodifiableMap(self._metadata or {})
        return super()._metadata_map()


class PathTileObject(PathDetectionObject):
    object_type = "tile"


class PathCellObject(PathDetectionObject):
    object_type = "cell"


OBJECT_CLASSES: dict[str, type[PathObject]] = {
    "annotation": PathAnnotationObject, "detection": PathDetectionObject,
    "tile": PathTileObject, "cell": PathCellObject}


# -- hierarchy -----------------------------------------------------------------------------------
class PathObjectHierarchy:
    """``qupath.lib.objects.hierarchy.PathObjectHierarchy``.

    ``addObjects`` places each object the way QuPath's ``addPathObjectToList`` does:
    under the smallest annotation that covers it (detections by their centroid,
    annotations by their whole ROI), else under the root. So a user's detection
    inside one of MagniPath's annotations becomes its child, and
    ``removeObjects(objects, keepChildren=True)`` must re-attach it to the
    removed object's parent (as QuPath does).
    """

    def __init__(self, world: JavaWorld) -> None:
        self._world = world
        self.root = PathRootObject(world, None)

    def getRootObject(self) -> PathRootObject:
        return self.root

    def _walk(self, obj: PathObject) -> Iterator[PathObject]:
        for c in obj.children:
            yield c
            yield from self._walk(c)

    def getAllObjects(self, include_root: bool) -> ArrayList:
        out = ArrayList([self.root] if include_root else [])
        out.extend(self._walk(self.root))
        return out

    def getAnnotationObjects(self) -> ArrayList:
        return ArrayList(o for o in self._walk(self.root) if o.isAnnotation())

    def getDetectionObjects(self) -> ArrayList:
        return ArrayList(o for o in self._walk(self.root) if o.isDetection())

    def _annotation_index(self) -> tuple[list[PathObject], shapely.STRtree]:
        """Annotations that can hold objects, in walk order, and a spatial index of them."""
        cands = [c for c in self._walk(self.root) if c.isAnnotation()
                 and c.geometry is not None and not c.geometry.is_empty and c.geometry.area > 0]
        return cands, shapely.STRtree([c.geometry for c in cands])

    def _parent_for(self, obj: PathObject,
                    index: tuple[list[PathObject], shapely.STRtree] | None = None) -> PathObject:
        """The smallest annotation covering ``obj`` (its centroid for a detection), else root."""
        if obj.geometry is None or obj.geometry.is_empty:
            return self.root
        cands, tree = index or self._annotation_index()
        probe = obj.geometry.centroid if obj.isDetection() else obj.geometry
        best: PathObject = self.root
        best_area = math.inf
        for i in sorted(tree.query(probe, predicate="covered_by")):  # g.covers(probe)
            cand = cands[int(i)]
            if cand is obj or cand.geometry.area >= best_area:
                continue
            if not (obj.isAnnotation() and cand.geometry.equals(obj.geometry)):
                best, best_area = cand, cand.geometry.area
        return best

    @staticmethod
    def _is_ancestor(a: PathObject, b: PathObject) -> bool:
        """Whether ``a`` is ``b`` or one of its parents."""
        while b is not None:
            if b is a:
                return True
            b = b.parent
        return False

    def _attach(self, obj: PathObject, parent: PathObject) -> None:
        if obj.parent is not None and obj in obj.parent.children:
            obj.parent.children.remove(obj)
        obj.parent = parent
        parent.children.append(obj)

    def addObject(self, obj: PathObject) -> bool:
        return self.addObjects([obj])

    def addObjects(self, objects: Iterable[PathObject]) -> bool:
        objs = list(objects)
        for o in objs:
            self._attach(o, self.root)
        # each object at the top goes under the smallest annotation covering it: the new ones,
        # and older ones that a new annotation now covers (QuPath re-resolves them too)
        index = self._annotation_index()
        for o in list(self.root.children):
            p = self._parent_for(o, index)
            if p is not self.root and not self._is_ancestor(o, p):
                self._attach(o, p)
        return bool(objs)

    def removeObjects(self, objects: Iterable[PathObject], keep_children: bool) -> None:
        for o in list(objects):
            parent = o.parent
            if parent is None:
                continue
            parent.children.remove(o)
            o.parent = None
            if keep_children:
                for c in list(o.children):
                    c.parent = None
                    self._attach(c, parent)
                o.children.clear()


# -- GeoJSON (GsonTools / PathIO) ---------------------------------------------------------------
def _num(v: float) -> Any:
    return v if math.isfinite(v) else "NaN"


def object_to_feature(obj: PathObject, version: Version) -> dict:
    """One object as QuPath's ``PathObjectTypeAdapter.write`` (QuPathTypeAdapters.java) does.

    v0.6.0 writes the ROI's geometry *normalised* (``GeometryTools.roiToGeometry`` "since
    v0.6.0 this returns a normalized geometry", i.e. JTS ``Geometry.norm()``: shells
    clockwise, holes counter-clockwise in x-right/y-up terms, rings starting at their
    smallest coordinate, parts sorted); v0.5.1 writes the rings as stored.
    """
    geom = obj.geometry
    if version >= (0, 6):
        geom = shapely.normalize(geom)
    props: dict[str, Any] = {"objectType": obj.object_type}
    if obj.name is not None:
        props["name"] = obj.name
    if obj.color is not None:
        props["color"] = list(obj.color)
    if obj.path_class is not None:
        pc: dict[str, Any] = {"name": obj.path_class.name}
        if obj.path_class.color is not None:
            pc["color"] = list(obj.path_class.color)
        props["classification"] = pc
    if obj.locked:
        props["isLocked"] = True
    if obj.measurements:
        props["measurements"] = {k: _num(v) for k, v in obj.measurements.items()}
    meta = obj._metadata  # what getMetadata() reads, without creating a map
    if meta and version >= (0, 5):  # v0.4.3 writes metadata of TMA cores (MetadataStore) only
        props["metadata"] = dict(meta)
    return {"type": "Feature", "id": obj.id, "geometry": mapping(geom), "properties": props}


def _features(data: Any, where: str) -> list[dict]:
    if isinstance(data, dict) and data.get("type") == "FeatureCollection":
        return list(data.get("features") or [])
    if isinstance(data, dict) and data.get("type") == "Feature":
        return [data]
    if isinstance(data, list):
        return data
    raise IllegalArgumentException(f"{where}: no GeoJSON features found")


def feature_to_object(world: JavaWorld, feat: dict) -> PathObject:
    """``PathObjectTypeAdapter.parseObject`` (QuPathTypeAdapters.java, v0.5.1 and v0.6.0).

    Metadata are copied with ``pathObject.getMetadata().put(...)`` inside a ``try``
    that catches ``UnsupportedOperationException`` and only logs "Exception setting
    metadata values": so on v0.5 a detection's metadata are silently dropped. v0.4.3
    keeps metadata only on ``MetadataStore`` objects (TMA cores): annotations' and
    detections' metadata are dropped without a word.
    """
    props = feat.get("properties") or {}
    otype = props.get("objectType") or "annotation"
    if otype not in OBJECT_CLASSES:
        raise IllegalArgumentException(f"unknown objectType {otype!r}")
    try:
        geom = shape(feat["geometry"])
    except Exception as e:  # noqa: BLE001 - Gson / JTS parse errors
        raise IllegalArgumentException(f"cannot parse geometry: {e}") from None
    cls = props.get("classification")
    pc = None
    if isinstance(cls, dict) and cls.get("name"):
        col = cls.get("color")
        pc = world.path_class(str(cls["name"]), tuple(col) if col else None)
    elif isinstance(cls, str):
        pc = world.path_class(cls, None)
    obj = OBJECT_CLASSES[otype](world, geom, pc)
    if feat.get("id"):
        obj.id = str(uuid.UUID(str(feat["id"])))
    meas = props.get("measurements") or {}
    if isinstance(meas, list):
        meas = {m["name"]: m["value"] for m in meas}
    obj.measurements.update({str(k): (math.nan if v is None else float(v))
                             for k, v in meas.items()})
    if props.get("name") is not None:
        obj.name = str(props["name"])
    if props.get("color") is not None:
        obj.color = tuple(props["color"])
    obj.locked = bool(props.get("isLocked", False))
    meta = props.get("metadata")
    if meta and world.version >= (0, 5):
        try:
            for k, v in meta.items():
                if not isinstance(v, dict | list):
                    obj.getMetadata().put(k, str(v))
        except UnsupportedOperationException as e:
            log.warning("Exception setting metadata values: %s", e)
    return obj


class _Gson:
    def __init__(self, world: JavaWorld) -> None:
        self._world = world

    def toJson(self, objects: Iterable[PathObject]) -> String:
        """A JSON array of Features (QuPath's Gson with the PathObject type adapter)."""
        feats = [object_to_feature(o, self._world.version) for o in objects]
        return String(json.dumps(feats, ensure_ascii=False))


class GsonTools:
    """``qupath.lib.io.GsonTools``: ``getInstance().toJson(collection)``."""

    def __init__(self, world: JavaWorld) -> None:
        self._world = world

    def getInstance(self, pretty: bool = False) -> _Gson:
        return _Gson(self._world)


class PathIO:
    """``qupath.lib.io.PathIO.readObjects(File)``: the objects of a GeoJSON file."""

    def __init__(self, world: JavaWorld) -> None:
        self._world = world

    def readObjects(self, file: File) -> ArrayList:
        path = Path(str(file))
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as e:
            raise IOException(str(e)) from None
        except ValueError as e:
            raise IOException(f"{path}: {e}") from None
        return ArrayList(feature_to_object(self._world, f) for f in _features(data, str(path)))

    def writeImageData(self, file: File, image_data: Any) -> None:
        """``PathIO.writeImageData(File, ImageData)``: the data file at ``file`` (in place)."""
        from _qupath_double import _qpdata as qd

        qd.write_bytes(Path(str(file)), qd.encode(
            "{}", str(image_data.getImageType()),
            json.dumps(tree_to_json(image_data.getHierarchy()))))

    def readHierarchy(self, file: File) -> PathObjectHierarchy:
        """``PathIO.readHierarchy(File)``: IOException for a broken file."""
        from _qupath_double import _qpdata as qd

        return tree_from_json(self._world, qd.read_file(Path(str(file)))["objects"])


def tree_to_json(hierarchy: PathObjectHierarchy) -> list[dict]:
    """The hierarchy below the root as nested features (``childObjects``), rings as stored,
    metadata kept for every object (Java serialisation keeps the map)."""
    def one(obj: PathObject) -> dict:
        feat = object_to_feature(obj, (0, 5))
        feat["childObjects"] = [one(c) for c in obj.children]
        return feat
    return [one(o) for o in hierarchy.root.children]


def tree_from_json(world: JavaWorld, feats: list[dict]) -> PathObjectHierarchy:
    """Inverse of :func:`tree_to_json`."""
    hierarchy = PathObjectHierarchy(world)

    def one(feat: dict, parent: PathObject) -> None:
        props = dict(feat.get("properties") or {})
        meta = props.pop("metadata", None)
        obj = feature_to_object(world, {**feat, "properties": props})
        if meta:
            obj._metadata = MetadataMap({str(k): str(v) for k, v in meta.items()})
        obj.parent = parent
        parent.children.append(obj)
        for c in feat.get("childObjects") or []:
            one(c, obj)

    for f in feats:
        one(f, hierarchy.root)
    return hierarchy


class JavaWorld:
    """One JVM's worth of state: the QuPath version and the ``PathClass`` cache."""

    def __init__(self, version_text: str) -> None:
        self.version_text = version_text
        self.version: Version = tuple(int(p) for p in version_text.split(".")[:2])  # type: ignore[assignment]
        self._classes: dict[str, PathClass] = {}
        self.lock = threading.RLock()

    def path_class(self, name: str, color: tuple[int, int, int] | None) -> PathClass:
        """``PathClass.fromString(name, rgb)``: one instance per name, first colour wins."""
        with self.lock:
            pc = self._classes.get(name)
            if pc is None:
                pc = self._classes[name] = PathClass(name, color)
            elif pc.color is None and color is not None:
                pc.color = color
            return pc
