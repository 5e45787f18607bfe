"""The project side of the QuPath test double: paquo's ``QuPathProject`` over QuPath's
``DefaultProject`` folder layout, on disk.

What a project folder holds (as QuPath's ``DefaultProject`` writes it)::

    project.qpproj            JSON: version, timestamps, uri, lastID, images[...]
    project.qpproj.backup     the previous project.qpproj (after the second save)
    classifiers/classes.json  {"pathClasses": [{"name", "color"(packed ARGB int)}]}
    data/<id>/data.qpdata     the image's objects (see :data:`QPDATA_MAGIC`)
    data/<id>/data.qpdata.bkp only while a save is under way (or after one died)
    data/<id>/server.json     how to open the slide
    data/<id>/summary.json    object counts and timestamp of the last save
    data/<id>/thumbnail.jpg   written when paquo adds the image

``data.qpdata`` is a Java serialisation stream in QuPath's order (see
:mod:`._qpdata`); a truncated or otherwise broken file raises
``java.io.IOException`` on reading, like a broken stream.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from _qupath_double import _java as jv
from _qupath_double import _qpdata as qd


# -- paquo-level helpers --------------------------------------------------------------------------
class QuPathColor:
    """paquo.colors.QuPathColor (``to_rgb``)."""

    def __init__(self, rgb: tuple[int, int, int]) -> None:
        self._rgb = tuple(int(v) for v in rgb)

    def to_rgb(self) -> tuple[int, int, int]:
        return self._rgb  # type: ignore[return-value]


class QuPathPathClass:
    """paquo.classes.QuPathPathClass: ``id``, ``name``, ``color``, ``java_object``."""

    def __init__(self, java_object: jv.PathClass) -> None:
        self.java_object = java_object

    @classmethod
    def from_java(cls, pc: jv.PathClass) -> QuPathPathClass:
        return cls(pc)

    @property
    def id(self) -> str:
        return self.java_object.toString()

    @property
    def name(self) -> str:
        return self.java_object.name

    @property
    def color(self) -> QuPathColor | None:
        c = self.java_object.color
        return None if c is None else QuPathColor(c)


class QuPathImageType(StrEnum):
    """paquo.images.QuPathImageType (value = QuPath's display name)."""

    BRIGHTFIELD_H_DAB = "Brightfield (H-DAB)"
    BRIGHTFIELD_H_E = "Brightfield (H&E)"
    BRIGHTFIELD_OTHER = "Brightfield (other)"
    FLUORESCENCE = "Fluorescence"
    OTHER = "Other"
    UNSET = "Not set"


def java_uri(path: Path) -> str:
    """``File.toURI()`` form, ``file:/abs/path`` with %-escapes (what QuPath stores)."""
    return "file:" + quote(Path(path).absolute().as_posix(), safe="/:")


def uri_path(uri: str) -> Path | None:
    parts = urlsplit(uri)
    return Path(unquote(parts.path)) if parts.scheme == "file" else None


class ImageProvider:
    """paquo.images.ImageProvider (``uri_from_path``)."""

    @staticmethod
    def uri_from_path(path: Path) -> str:
        if not Path(path).is_absolute():
            raise ValueError("uri_from_path requires an absolute path")
        return java_uri(Path(path))


@contextlib.contextmanager
def redirect(stderr: bool = True, stdout: bool = True) -> Iterator[None]:
    """paquo._logging.redirect: Java console output -> logging (nothing to do here)."""
    yield


# -- image servers ---------------------------------------------------------------------------------
class _Calibration:
    def __init__(self, mpp: float | None) -> None:
        self._mpp = mpp

    def hasPixelSizeMicrons(self) -> bool:
        return self._mpp is not None

    def getAveragedPixelSizeMicrons(self) -> float:
        return float("nan") if self._mpp is None else self._mpp


class ImageServer:
    """A TIFF slide opened with tifffile (what Bio-Formats / OpenSlide report: level-0
    size, and µm/px from the OME ``PhysicalSizeX`` or the TIFF resolution tags)."""

    def __init__(self, path: Path) -> None:
        import tifffile

        if not path.is_file():
            raise jv.IOException(f"{path} does not exist")
        try:
            with tifffile.TiffFile(path) as tif:
                page = tif.series[0].levels[0].pages[0] if tif.series else tif.pages[0]
                self.width, self.height = int(page.imagewidth), int(page.imagelength)
                self.mpp = _mpp(tif, page)
        except jv.JavaException:
            raise
        except Exception as e:  # noqa: BLE001 - any reader error = QuPath cannot open it
            raise jv.IOException(f"cannot open {path}: {e}") from None
        self.path = path

    def getWidth(self) -> int:
        return self.width

    def getHeight(self) -> int:
        return self.height

    def getPixelCalibration(self) -> _Calibration:
        return _Calibration(self.mpp)

    def close(self) -> None:
        pass


def _mpp(tif: Any, page: Any) -> float | None:
    import re

    if tif.is_ome and tif.ome_metadata:
        m = re.search(r'PhysicalSizeX="([0-9.eE+-]+)"', tif.ome_metadata)
        if m:
            return float(m.group(1))
    tags = page.tags
    if "XResolution" in tags and "ResolutionUnit" in tags:
        num, den = tags["XResolution"].value
        unit = int(tags["ResolutionUnit"].value)
        per_unit = num / den if den else 0
        if per_unit > 0 and unit in (2, 3):
            return (25400.0 if unit == 2 else 10000.0) / per_unit
    return None


class _ServerBuilder:
    def __init__(self, uri: str) -> None:
        self.uri = uri

    def build(self) -> ImageServer:
        path = uri_path(self.uri)
        if path is None:
            raise jv.IOException(f"cannot open {self.uri}")
        return ImageServer(path)


# -- image data ------------------------------------------------------------------------------------
class ImageData:
    """``qupath.lib.images.ImageData``: hierarchy, image type, lazily opened server."""

    def __init__(self, entry: JavaEntry, hierarchy: jv.PathObjectHierarchy, image_type: str,
                 server: ImageServer | None = None) -> None:
        self._entry = entry
        self._hierarchy = hierarchy
        self.image_type = image_type
        self._server = server

    def getHierarchy(self) -> jv.PathObjectHierarchy:
        return self._hierarchy

    def getServer(self) -> ImageServer:
        if self._server is None:
            self._server = self._entry.getServerBuilder().build()
        return self._server

    def setImageType(self, value: str) -> None:
        self.image_type = value

    def getImageType(self) -> str:
        return self.image_type


def write_qpdata(path: Path, world: jv.JavaWorld, hierarchy: jv.PathObjectHierarchy,
                 image_type: str, server_json: str = "{}") -> None:
    """Write one data file (layout: :mod:`._qpdata`), in place."""
    qd.write_bytes(path, qd.encode(server_json, image_type,
                                   json.dumps(jv.tree_to_json(hierarchy))))


def read_qpdata(path: Path, world: jv.JavaWorld) -> tuple[jv.PathObjectHierarchy, str]:
    """The hierarchy and image type of one data file; ``java.io.IOException`` if broken."""
    body = qd.read_file(path)
    try:
        return jv.tree_from_json(world, body["objects"]), body["imageType"]
    except (ValueError, KeyError, TypeError, jv.JavaException) as e:
        raise jv.IOException(f"cannot read the objects of {path}: {e}") from None


# -- project entries ----------------------------------------------------------------------
class JavaEntry:
    """``DefaultProject.DefaultProjectImageEntry`` (the Java entry paquo wraps)."""

    def __init__(self, project: DefaultProject, entry_id: int, uri: str, name: str,
                 randomized: str | None = None, metadata: dict | None = None) -> None:
        self._project = project
        self.entry_id = entry_id
        self.uri = uri
        self.name = name
        self.randomized = randomized or str(uuid.uuid4())
        self.metadata: dict[str, str] = dict(metadata or {})

    @property
    def world(self) -> jv.JavaWorld:
        return self._project.world

    def getID(self) -> str:
        return str(self.entry_id)

    def getImageName(self) -> str:
        return self.name

    def getEntryPath(self) -> Path:
        return self._project.folder / "data" / str(self.entry_id)

    def getServerBuilder(self) -> _ServerBuilder:
        return _ServerBuilder(self.uri)

    def hasImageData(self) -> bool:
        return (self.getEntryPath() / "data.qpdata").is_file()

    def readHierarchy(self) -> jv.PathObjectHierarchy:
        """``readHierarchy`` (DefaultProject.java): the data file's hierarchy, an empty one
        when there is no file, and an IOException for a broken file (no backup fallback)."""
        path = self.getEntryPath() / "data.qpdata"
        if path.is_file():
            return read_qpdata(path, self.world)[0]
        return jv.PathObjectHierarchy(self.world)

    def readImageData(self) -> ImageData:
        """``readImageData`` (DefaultProject.java v0.5.1/v0.6.0): builds the server first
        (IOException when the slide cannot be opened); a broken data file is logged and
        ``data.qpdata.bkp`` read instead if present, else the image starts EMPTY."""
        server = self.getServerBuilder().build()
        path = self.getEntryPath() / "data.qpdata"
        backup = self.getEntryPath() / "data.qpdata.bkp"
        for p in (path, backup):
            if p.is_file():
                try:
                    hierarchy, itype = read_qpdata(p, self.world)
                    return ImageData(self, hierarchy, itype, server)
                except jv.IOException as e:
                    jv.log.error("Error reading image data from %s: %s", p, e)
        return ImageData(self, jv.PathObjectHierarchy(self.world), QuPathImageType.UNSET.value,
                         server)

    def saveImageData(self, image_data: ImageData) -> None:
        """``saveImageData`` (DefaultProject.java): move data.qpdata to data.qpdata.bkp,
        write the new data.qpdata IN PLACE, delete the .bkp, then server.json and
        summary.json. On a write error the .bkp is moved back."""
        hook = self._project.hooks.get("before_save_image_data")
        folder = self.getEntryPath()
        folder.mkdir(parents=True, exist_ok=True)
        data, bkp = folder / "data.qpdata", folder / "data.qpdata.bkp"
        with self.world.lock:
            if data.exists():
                os.replace(data, bkp)
            try:
                if hook is not None:
                    hook(self, data)
                write_qpdata(data, self.world, image_data.getHierarchy(), image_data.image_type,
                             json.dumps({"builderType": "uri", "uri": self.uri}))
                if bkp.exists():
                    bkp.unlink()
            except BaseException:
                if bkp.exists():
                    os.replace(bkp, data)
                raise
            (folder / "server.json").write_text(json.dumps(
                {"builderType": "uri", "uri": self.uri}, indent=2), encoding="utf-8")
            h = image_data.getHierarchy()
            (folder / "summary.json").write_text(json.dumps({
                "hierarchy": {"nObjects": len(h.getAllObjects(False)),
                              "nAnnotations": len(h.getAnnotationObjects()),
                              "nDetections": len(h.getDetectionObjects())},
                "timestamp": int(time.time() * 1000)}), encoding="utf-8")

    def to_json(self) -> dict:
        return {"serverBuilder": {"builderType": "uri", "uri": self.uri},
                "entryID": self.entry_id, "randomizedName": self.randomized,
                "imageName": self.name, "metadata": dict(self.metadata)}


class QuPathProjectImageEntry:
    """paquo.images.QuPathProjectImageEntry: ``image_name``, ``entry_id``, ``uri``,
    ``entry_path``, ``java_object``, ``metadata``."""

    def __init__(self, java_object: JavaEntry) -> None:
        self.java_object = java_object

    @property
    def image_name(self) -> str:
        return self.java_object.name

    @property
    def entry_id(self) -> str:
        return self.java_object.getID()

    @property
    def uri(self) -> str:
        return self.java_object.uri

    @property
    def entry_path(self) -> Path:
        return self.java_object.getEntryPath()

    @property
    def metadata(self) -> dict[str, str]:
        return self.java_object.metadata

    def __repr__(self) -> str:
        return f"<ImageEntry {self.image_name!r} id={self.entry_id}>"


# -- the project --------------------------------------------------------------------------
class DefaultProject:
    """``qupath.lib.projects.DefaultProject``: entries, path classes, ``syncChanges``."""

    def __init__(self, world: jv.JavaWorld, file: Path) -> None:
        self.world = world
        self.file = file
        self.folder = file.parent
        self.entries: list[JavaEntry] = []
        self.path_classes: list[jv.PathClass] = []
        self.last_id = 0
        self.created = int(time.time() * 1000)
        self.hooks: dict[str, Any] = {}

    def load(self) -> None:
        try:
            data = json.loads(self.file.read_text(encoding="utf-8"))
            self.created = int(data["createTimestamp"])
            self.last_id = int(data.get("lastID", 0))
            self.entries = [JavaEntry(self, int(e["entryID"]), e["serverBuilder"]["uri"],
                                      e["imageName"], e.get("randomizedName"),
                                      e.get("metadata")) for e in data.get("images", [])]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise jv.IOException(f"cannot read project {self.file}: {e}") from None
        classes = self.folder / "classifiers" / "classes.json"
        if classes.is_file():
            pcs = json.loads(classes.read_text(encoding="utf-8")).get("pathClasses", [])
            self.path_classes = [self.world.path_class(
                p["name"], jv.unpack_rgb(p["color"]) if p.get("color") is not None else None)
                for p in pcs]

    def syncChanges(self) -> None:
        """``writeProject`` (DefaultProject.java): project.qpproj.tmp, then the old file to
        project.qpproj.backup, then the .tmp renamed; path classes to classifiers/classes.json."""
        self.folder.mkdir(parents=True, exist_ok=True)
        body = {"version": self.world.version_text, "createTimestamp": self.created,
                "modifyTimestamp": int(time.time() * 1000), "uri": java_uri(self.file),
                "lastID": self.last_id, "images": [e.to_json() for e in self.entries]}
        tmp = self.file.with_name(self.file.name + ".tmp")
        tmp.write_text(json.dumps(body, indent=2, ensure_ascii=False), encoding="utf-8")
        if self.file.exists():
            os.replace(self.file, self.file.with_name(self.file.name + ".backup"))
        os.replace(tmp, self.file)
        classes = self.folder / "classifiers" / "classes.json"
        classes.parent.mkdir(exist_ok=True)
        classes.write_text(json.dumps({"pathClasses": [
            {"name": pc.name, **({"color": pc.getColor()} if pc.color is not None else {})}
            for pc in self.path_classes]}, indent=2), encoding="utf-8")

    def getPathClasses(self) -> list[jv.PathClass]:
        return list(self.path_classes)

    def setPathClasses(self, pcs: list[jv.PathClass]) -> bool:
        self.path_classes = list(pcs)
        return True


class QuPathProject:
    """paquo.projects.QuPathProject: modes ``r`` (read-only), ``r+``, ``x`` (new).

    As paquo: ``r`` / ``r+`` need an existing project (``FileNotFoundError``), ``x`` a
    new one (``FileExistsError``); read-only projects refuse ``save`` and
    ``add_image`` (``OSError``) and path-class changes (``AttributeError``).
    ``add_image`` writes the entry's data (image type) and thumbnail and saves the
    project, like paquo's.
    """

    def __init__(self, world: jv.JavaWorld, path: Path, mode: str = "r") -> None:
        p = Path(path)
        self.file = p if p.suffix == ".qpproj" else p / "project.qpproj"
        self._mode = mode
        self._readonly = mode == "r"
        self.java_object = DefaultProject(world, self.file)
        if mode in ("r", "r+"):
            if not self.file.is_file():
                raise FileNotFoundError(str(self.file))
            self.java_object.load()
        elif mode in ("x", "x+"):
            if self.file.exists():
                raise FileExistsError(str(self.file))
        else:
            raise ValueError(f"the QuPath double supports modes r, r+, x, not {mode!r}")

    @property
    def images(self) -> list[QuPathProjectImageEntry]:
        return [QuPathProjectImageEntry(e) for e in self.java_object.entries]

    @property
    def path_classes(self) -> tuple[QuPathPathClass, ...]:
        return tuple(QuPathPathClass.from_java(pc) for pc in self.java_object.getPathClasses())

    @path_classes.setter
    def path_classes(self, pcs: Any) -> None:
        if self._readonly:
            raise AttributeError("project in readonly mode")
        self.java_object.setPathClasses([pc.java_object for pc in pcs])

    def save(self, images: bool = True) -> None:
        if self._readonly:
            raise OSError("project in readonly mode")
        self.java_object.syncChanges()

    def update_image_paths(self, *, uri2uri: dict[str, str]) -> None:
        for e in self.java_object.entries:
            if e.uri in uri2uri:
                e.uri = str(uri2uri[e.uri])

    def add_image(self, image_id: Any, image_type: QuPathImageType | None = None,
                  *, allow_duplicates: bool = False,
                  return_list: bool = False) -> Any:
        if self._readonly:
            raise OSError("project in readonly mode")
        path = Path(image_id).absolute()
        if not path.exists():
            raise FileNotFoundError(str(path))
        uri = java_uri(path)
        if not allow_duplicates and any(e.uri == uri for e in self.java_object.entries):
            raise FileExistsError(str(image_id))
        try:
            server = ImageServer(path)
        except jv.IOException:
            raise OSError("no preferred support found") from None
        proj = self.java_object
        proj.last_id += 1
        entry = JavaEntry(proj, proj.last_id, uri, path.name)
        proj.entries.append(entry)
        data = ImageData(entry, jv.PathObjectHierarchy(proj.world),
                         (image_type or QuPathImageType.UNSET).value, server)
        entry.saveImageData(data)
        _thumbnail(entry.getEntryPath() / "thumbnail.jpg")
        self.save(images=False)
        py = QuPathProjectImageEntry(entry)
        return [py] if return_list else py


def _thumbnail(path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (8, 8), (230, 200, 220)).save(path, format="JPEG")
