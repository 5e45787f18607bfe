"""QuPath projects through paquo: the one module of MagniPath that touches paquo and Java.

paquo starts a Java virtual machine (QuPath's own) when it is imported and fails
where QuPath is not installed, so it is imported here only inside functions, the
first time a project is opened. Every public call first checks that a QuPath
installation can be found and otherwise raises :class:`QuPathUnavailable` with
one message that says how to install QuPath and set ``PAQUO_QUPATH_DIR``.

Objects cross the Java boundary as QuPath GeoJSON, in the same dialect as
:mod:`qupath_bridge.geojson`: QuPath's own ``GsonTools`` writes the objects we
read, and QuPath's own ``PathIO.readObjects`` parses the objects we write (as the
import Groovy script does), so classes, colours, names, measurements, metadata
and UUIDs are converted by QuPath itself, the same way in QuPath 0.5 and 0.6.

Coordinates are level-0 pixels of the image (QuPath's frame) everywhere.

MagniPath marks the objects it writes with the measurement ``MagniPath
prediction`` (= 1; annotations also with the metadata entry ``magnipath =
prediction``) and records their UUIDs in ``<project>/magnipath/objects/<entry
id>.json``; a re-run removes only objects so marked or recorded (and objects with
the earlier metadata mark), see docs/qupath.md. Before
writing an image's data it copies the image's ``data/<id>/`` folder to
``<project>/magnipath/backups/<id>/<timestamp>/`` (:meth:`Project.restore_backup`
puts it back).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal, ParamSpec, TypeVar

from qupath_bridge import _backups, _integrity, _jvm, _repair, _safe_write
from qupath_bridge import _project_support as pf
from qupath_bridge._project_support import (
    ImageInfo,
    annotation_file,
    prediction_file,
    safe_file_name,
)
from qupath_bridge.errors import QuPathBridgeError
from qupath_bridge.geojson import loads_geojson, read_geojson, write_geojson
from qupath_bridge.objects import OBJECT_TYPES, QuPathObject

__all__ = ["MARK_KEY", "MARK_MEASUREMENT", "ImageInfo", "Project", "QuPathUnavailable",
           "annotation_file", "create_project", "prediction_file", "qupath_available",
           "safe_file_name"]

Mode = Literal["r", "r+", "x"]
MARK_KEY = pf.MARK_KEY
MARK_VALUE = pf.MARK_VALUE
MARK_MEASUREMENT = pf.MARK_MEASUREMENT


class QuPathUnavailable(QuPathBridgeError):
    """No QuPath installation could be found (or its Java could not be started)."""


def _unavailable_message(reason: str) -> str:
    return (f"{reason}. MagniPath's QuPath project bridge runs QuPath's own code through "
            "paquo, so it needs a QuPath installation (0.5 or 0.6): install QuPath from "
            "https://qupath.github.io (or run `python -m paquo get_qupath --install-path "
            "~/qupath 0.6.0`), then set PAQUO_QUPATH_DIR=/path/to/QuPath (the folder holding "
            "lib/app on Linux, QuPath.app on macOS, the QuPath folder on Windows). Everything "
            "else in MagniPath, QuPath GeoJSON files included, works without QuPath.")


def qupath_available() -> tuple[bool, str]:
    """Whether paquo can find a QuPath installation, without starting Java.

    Uses paquo's own search (``PAQUO_QUPATH_DIR`` / ``.paquo.toml`` ``qupath_dir``,
    else its search folders and conda).

    Returns
    -------
    (bool, str)
        ``True`` and where QuPath is, or ``False`` and why not.
    """
    if _J is not None:
        return True, "QuPath is running in this process"
    try:
        from paquo._config import settings, to_kwargs
        from paquo.jpype_backend import find_qupath
    except Exception as e:  # noqa: BLE001 - ImportError, broken config...: all mean "no"
        return False, f"paquo cannot be loaded ({type(e).__name__}: {e})"
    try:
        kwargs = copy.deepcopy(to_kwargs(settings))
    except Exception as e:  # noqa: BLE001 - dynaconf validation errors of a user's .paquo.toml
        return False, f"paquo's configuration cannot be read ({e})"
    if kwargs.get("mock_backend"):
        return False, "paquo is set to mock_backend (PAQUO_MOCK_BACKEND) and cannot run QuPath"
    qdir = kwargs.get("qupath_dir")
    try:
        info = find_qupath(**kwargs)
    except (ValueError, OSError) as e:
        if qdir:
            return False, (f"PAQUO_QUPATH_DIR={qdir} is not a QuPath installation (paquo found no "
                           f"QuPath application and Java runtime there: {e})")
        dirs = kwargs.get("qupath_search_dirs") or []
        dirs = ", ".join(map(str, dirs if isinstance(dirs, list | tuple) else [dirs]))
        return False, ("no QuPath installation found: PAQUO_QUPATH_DIR is not set and paquo's "
                       f"search folders ({dirs}) hold none")
    return True, f"QuPath found at {Path(info.app_dir).parent.parent}"


# ---------------------------------------------------------------------------------------------
# the Java side (loaded once, on first use)
_J: SimpleNamespace | None = None


def _java() -> SimpleNamespace:
    """paquo and the QuPath classes we use; raises :class:`QuPathUnavailable`."""
    global _J
    if _J is not None:
        return _J
    ok, reason = qupath_available()
    if not ok:
        raise QuPathUnavailable(_unavailable_message(reason))
    try:  # importing paquo.java starts the JVM (issue 17: -Xrs, no hs_err in the cwd, Ctrl-C held)
        with _jvm.starting_jvm():
            import paquo.java  # noqa: F401
        from paquo._logging import redirect
        from paquo.classes import QuPathPathClass
        from paquo.images import ImageProvider, QuPathImageType
        from paquo.java import ArrayList, File, GsonTools, PathIO, String
        from paquo.projects import QuPathProject
    except Exception as e:  # noqa: BLE001 - JVM start: OSError, RuntimeError, Java errors...
        raise QuPathUnavailable(_unavailable_message(
            f"QuPath was found but could not be started ({type(e).__name__}: {e})")) from None
    _J = SimpleNamespace(redirect=redirect, QuPathPathClass=QuPathPathClass,
                         ImageProvider=ImageProvider, QuPathImageType=QuPathImageType,
                         ArrayList=ArrayList, File=File, GsonTools=GsonTools, PathIO=PathIO,
                         String=String, QuPathProject=QuPathProject)
    return _J


_redirect_depth = 0


@contextlib.contextmanager
def _redirected() -> Iterator[SimpleNamespace]:
    """Route Java's console output to Python logging (once; nested uses are no-ops).

    paquo sets QuPath's log level to DEBUG; outside ``redirect`` those lines would go
    to stdout. paquo's ``redirect`` does not nest (an inner one restores the console
    when it ends), so we enter it only at the outermost level.
    """
    global _redirect_depth
    j = _java()
    if _redirect_depth:
        yield j
        return
    _redirect_depth += 1
    try:
        with j.redirect(stderr=True, stdout=True):
            yield j
    finally:
        _redirect_depth -= 1


@contextlib.contextmanager
def _qupath_call(what: str) -> Iterator[SimpleNamespace]:
    """Run Java calls quietly; turn their errors into :class:`QuPathBridgeError`."""
    try:
        with _redirected() as j:
            yield j
    except QuPathBridgeError:
        raise
    except Exception as e:  # Java exceptions have no common Python base but Exception
        text, kind = str(e), type(e).__name__
        raise QuPathBridgeError(f"{what}: {text if text.startswith(kind) else f'{kind}: {text}'}"
                                ) from e


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _quiet(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """Check for QuPath (:class:`QuPathUnavailable`), then run ``func`` :func:`_redirected`."""
    @functools.wraps(func)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with _redirected():
            return func(*args, **kwargs)
    return wrapper


# -- version quirks: the only place that knows QuPath versions differ ---------------------------
def _has_metadata_mark(java_obj: Any, key: Any) -> bool:
    """Whether a Java PathObject carries the earlier metadata mark ``magnipath``."""
    # QuPath 0.6 adds hasMetadata(); there getMetadata() would create an empty map on every
    # object we merely look at. QuPath 0.5 has no hasMetadata() and getMetadata() is harmless
    # (read-only on detections, which is fine for reading). QuPath 0.4 has no public
    # getMetadata(): no object there carries this mark.
    has_metadata = getattr(java_obj, "hasMetadata", None)
    if has_metadata is not None and not has_metadata():
        return False
    get_metadata = getattr(java_obj, "getMetadata", None)
    if get_metadata is None:
        return False
    return get_metadata().get(key) is not None


def _is_ours(java_obj: Any, record: frozenset[str], key: Any) -> bool:
    """Whether a Java PathObject is MagniPath's: its UUID is in the image's record, it has
    the measurement ``MagniPath prediction`` (QuPath 0.4-0.6), or the metadata mark."""
    if record and str(java_obj.getID()) in record:
        return True
    if java_obj.hasMeasurements() and java_obj.getMeasurementList().containsKey(MARK_MEASUREMENT):
        return True
    return _has_metadata_mark(java_obj, key)


def _entry_uri(entry: Any) -> str | None:
    try:
        return str(entry.uri)  # paquo handles getURIs (0.6) / getServerURIs (0.5)
    except Exception:  # noqa: BLE001 - no or several URIs (Java or NotImplementedError)
        return None


def _server_info(entry: Any) -> tuple[int | None, int | None, float | None]:
    """Width, height (level-0 px) and mpp (µm/px) from the image server; Nones if unreachable."""
    try:
        with _redirected():
            server = entry.java_object.getServerBuilder().build()
            try:
                w, h = int(server.getWidth()), int(server.getHeight())
                cal = server.getPixelCalibration()
                mpp = (float(cal.getAveragedPixelSizeMicrons())
                       if cal.hasPixelSizeMicrons() else None)
            finally:
                with contextlib.suppress(Exception):
                    server.close()
    except Exception:  # noqa: BLE001 - any Java error means: size unknown
        return None, None, None
    return w, h, mpp


def _is_point(obj: QuPathObject) -> bool:
    return obj.geometry.geom_type in ("Point", "MultiPoint")


class Project:
    """A QuPath project opened through paquo, like a file: ``"r"``, ``"r+"`` or ``"x"``.

    Parameters
    ----------
    path : str or Path
        The ``project.qpproj`` file or its folder.
    mode : {"r", "r+", "x"}
        ``"r"`` read-only (no file of the project changes, byte for byte), ``"r+"``
        read and write an existing project, ``"x"`` create a new project in a new or
        empty folder.

    Examples
    --------
    >>> with Project("cohort/project.qpproj", "r+") as p:  # doctest: +SKIP
    ...     p.write_predictions("slide 1.svs", objects, as_type="detection")
    """

    def __init__(self, path: str | Path, mode: Mode = "r") -> None:
        j = _java()
        if mode not in ("r", "r+", "x"):
            raise QuPathBridgeError(f"unknown project mode {mode!r}; use 'r', 'r+' or 'x'")
        self._file = pf.project_file(path)
        self._mode = mode
        if mode in ("r", "r+") and not self._file.is_file():
            raise QuPathBridgeError(f"no QuPath project at {path}: {self._file} does not exist")
        if mode == "x":
            folder = self._file.parent
            if self._file.exists() or (folder.is_dir() and any(folder.iterdir())):
                raise QuPathBridgeError(f"cannot create a QuPath project in {folder}: the folder "
                                        "is not empty (open an existing project with mode='r+')")
        with _qupath_call(f"cannot open the QuPath project {self._file}"):
            self._qp: Any = j.QuPathProject(self._file, mode=mode)
            if mode == "x":
                self._qp.save(images=False)  # so QuPath can open it even while it is empty
        self._closed = False
        # issue 17: every image's data file checked on opening (header and end marker)
        self._damaged = {} if mode == "x" else {
            eid: (img, st) for eid, (img, st) in _integrity.check_project(self._file).items()
            if not st.ok}

    @property
    def damaged_images(self) -> list[dict]:
        """Images whose data file was broken when the project was opened.

        Each: ``image``, ``id``, ``status``, ``reason`` and ``message`` (one paragraph:
        what is wrong and to run ``magnipath qupath repair PROJECT``). Reading such an
        image raises that message; writing it (``"r+"``) repairs it first.
        """
        return [{"image": img, "id": eid, "status": st.status, "reason": st.data.reason,
                 "message": _integrity.problem_message(self._file, img, st)}
                for eid, (img, st) in self._damaged.items()]

    # -- file-like ----------------------------------------------------------------------------
    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Forget the project; every change was already written when it was made."""
        self._closed = True
        self._qp = None

    def __repr__(self) -> str:
        return f"Project({str(self._file)!r}, mode={self._mode!r})"

    @property
    def path(self) -> Path:
        """The ``project.qpproj`` file."""
        return self._file

    @property
    def folder(self) -> Path:
        """The project folder."""
        return self._file.parent

    @property
    def mode(self) -> str:
        """``"r"``, ``"r+"`` or ``"x"``."""
        return self._mode

    def _check(self, writing: str | None = None) -> None:
        _java()
        if self._closed:
            raise QuPathBridgeError(f"the project {self._file} is closed")
        if writing and self._mode == "r":
            raise QuPathBridgeError(f"the project {self._file} is open read-only; open it with "
                                    f"mode='r+' to {writing}")

    # -- images -------------------------------------------------------------------------------
    def _entries(self) -> list[Any]:
        return list(self._qp.images)

    def _entry(self, image: str | int) -> Any:
        entries = self._entries()
        keys = [(str(e.image_name), str(e.entry_id), pf.uri_to_path(_entry_uri(e)))
                for e in entries]
        return entries[pf.pick_image(keys, image, str(self._file))]

    def _info(self, entry: Any, index: int) -> ImageInfo:
        uri = _entry_uri(entry)
        path = pf.uri_to_path(uri)
        found = path is not None and Path(path).is_file()
        w, h, mpp = _server_info(entry) if found or path is None else (None, None, None)
        return ImageInfo(name=str(entry.image_name), id=str(entry.entry_id), uri=uri, path=path,
                         width=w, height=h, mpp=mpp, index=index, slide_found=found)

    @_quiet
    def __len__(self) -> int:
        """Number of images."""
        self._check()
        return len(self._entries())

    @property
    @_quiet
    def image_entries(self) -> list[tuple[str, str]]:
        """``(name, entry id)`` of every image, in order, without opening any slide."""
        self._check()
        return [(str(e.image_name), str(e.entry_id)) for e in self._entries()]

    @property
    @_quiet
    def images(self) -> list[ImageInfo]:
        """Every image of the project (opens each slide to read its size and mpp)."""
        self._check()
        return [self._info(e, i) for i, e in enumerate(self._entries())]

    @_quiet
    def image_info(self, image: str | int) -> ImageInfo:
        """One image, by name, entry id, slide file name or index."""
        self._check()
        entry = self._entry(image)
        ids = [e.entry_id for e in self._entries()]
        return self._info(entry, ids.index(entry.entry_id))

    @property
    @_quiet
    def path_classes(self) -> list[tuple[str, tuple[int, int, int] | None]]:
        """The project's path classes as ``(name, (r, g, b))``."""
        self._check()
        return [(pc.id, tuple(pc.color.to_rgb()) if pc.color is not None else None)
                for pc in self._qp.path_classes]

    @_quiet
    def remap_paths(self, mapping: pf.PathMapping) -> int:
        """Point images whose slides moved to their new place (QuPath's "update URIs").

        Parameters
        ----------
        mapping : mapping or callable
            Old slide path -> new slide path, old folder -> new folder (the longest
            matching folder wins), or a callable ``old path -> new path | None``.
            Every new path must exist.

        Returns
        -------
        int
            Number of images whose path changed (saved in ``project.qpproj``).
        """
        self._check("remap image paths")
        j = _java()
        changes: dict[str, str] = {}
        missing = []
        for e in self._entries():
            uri = _entry_uri(e)
            old = pf.uri_to_path(uri)
            new = pf.remap_path(old, mapping) if old is not None else None
            if uri is None or new is None or new == old:
                continue
            new_p = Path(new).expanduser().absolute()
            if not new_p.is_file():
                missing.append(f"{e.image_name!r} -> {new_p}")
                continue
            changes[uri] = str(j.ImageProvider.uri_from_path(new_p))
        if missing:
            raise QuPathBridgeError(f"{self._file}: nothing remapped, these new slide paths do not "
                                    f"exist: {'; '.join(missing)}")
        if not changes:
            return 0
        before = {e.entry_id: _entry_uri(e) for e in self._entries()}
        with _qupath_call(f"cannot update the image paths of {self._file}"):
            self._qp.update_image_paths(uri2uri=changes)
            self._qp.save(images=False)
        return sum(before.get(e.entry_id) != _entry_uri(e) for e in self._entries())

    # -- objects ------------------------------------------------------------------------------
    @_quiet
    def read_objects(self, image: str | int, *, types: Sequence[str] = ("annotation",),
                     include_points: bool = True,
                     include_predictions: bool = True) -> list[QuPathObject]:
        """The objects of one image, geometries in level-0 pixels.

        Parameters
        ----------
        image : str or int
            Image name, entry id, slide file name or index.
        types : sequence of str
            Object types to return: ``annotation``, ``detection``, ``tile``, ``cell``.
        include_points : bool
            Also return point annotations (Point / MultiPoint geometries).
        include_predictions : bool
            Also return objects MagniPath wrote (see :func:`_project_support.is_prediction`).

        Returns
        -------
        list of QuPathObject
            Class name and colour, shapely geometry, name, measurements, metadata and
            UUID of each object, in hierarchy order.
        """
        self._check()
        wanted = set(types)
        if not wanted or not wanted <= set(OBJECT_TYPES):
            raise QuPathBridgeError(f"object types {sorted(wanted)} are not among {OBJECT_TYPES}")
        entry = self._entry(image)
        name = str(entry.image_name)
        # issue 17: QuPath's readHierarchy loops for ever on a truncated file: check it first
        _integrity.require_good(self._file, name, Path(str(entry.entry_path)))
        with _qupath_call(f"cannot read the objects of image {name!r} in {self._file}") as j:
            hierarchy = entry.java_object.readHierarchy()
            selected = j.ArrayList()
            if "annotation" in wanted:
                selected.addAll(hierarchy.getAnnotationObjects())
            if wanted - {"annotation"}:
                selected.addAll(hierarchy.getDetectionObjects())
            text = str(j.GsonTools.getInstance().toJson(selected))
        objects = loads_geojson(text, source=f"{self._file} [{name}]")
        record = pf.read_record(self.folder, str(entry.entry_id))
        return [o for o in objects if o.object_type in wanted
                and (include_points or not _is_point(o))
                and (include_predictions or not pf.is_prediction(o, record))]

    @_quiet
    def write_predictions(self, image: str | int, objects: Iterable[QuPathObject], *,
                          as_type: Literal["annotation", "detection"] = "annotation") -> dict:
        """Replace MagniPath's previous objects of one image by ``objects``.

        Only MagniPath's objects are removed (UUID in the image's record
        ``magnipath/objects/<entry id>.json``, or the measurement ``MagniPath
        prediction``, or the earlier metadata mark ``magnipath``); every other object
        stays as it was. The new objects get the measurement (every QuPath version,
        annotations and detections), annotations also the metadata mark, and their
        UUIDs are recorded. Missing path classes are
        added to the project with their colours. The image's data folder is backed
        up first (:meth:`restore_backup`); if writing fails it is restored.

        Parameters
        ----------
        image : str or int
            Image name, entry id, slide file name or index.
        objects : iterable of QuPathObject
            Geometries in level-0 pixels; classes, measurements and names are kept.
        as_type : {"annotation", "detection"}
            QuPath object type to create (many objects: detections are lighter).

        Returns
        -------
        dict
            ``image``, ``as_type``, ``removed``, ``added``, ``dropped_empty``,
            ``repaired``, ``created_classes`` and ``backup`` (folder).
        """
        self._check("write predictions")
        if as_type not in ("annotation", "detection"):
            raise QuPathBridgeError(f"as_type must be 'annotation' or 'detection', not {as_type!r}")
        objs = list(objects)
        for i, o in enumerate(objs):
            if not isinstance(o, QuPathObject):
                raise QuPathBridgeError(f"prediction {i} is a {type(o).__name__}, "
                                        "not a QuPathObject")
        entry = self._entry(image)
        colors = dict(self.path_classes)
        # detections: no metadata mark (QuPath 0.5 keeps no metadata on detections and logs a
        # warning for each one); the measurement and the record mark them on every version
        meta = {MARK_KEY: MARK_VALUE} if as_type == "annotation" else {}
        marked = [replace(o, object_type=as_type, class_color=o.class_color or colors.get(
            o.classification or ""), metadata={**o.metadata, **meta},
            measurements={**o.measurements, MARK_MEASUREMENT: 1.0}) for o in objs]
        return {"image": str(entry.image_name), "as_type": as_type,
                **self._write_objects(entry, marked, replace_marked=True)}

    def _write_objects(self, entry: Any, objects: list[QuPathObject], *,
                       replace_marked: bool) -> dict:
        name = str(entry.image_name)
        path = pf.uri_to_path(_entry_uri(entry))
        if path is not None and not Path(path).is_file():
            raise QuPathBridgeError(
                f"the slide of image {name!r} is not at {path} any more, and QuPath needs it to "
                "save the image's data; point the project to the new place first with "
                "Project.remap_paths({old folder: new folder})")
        data_dir = Path(str(entry.entry_path))
        stats: dict[str, int] = {}
        # issue 17: signals held, image repaired + checked, validated backup, run folder
        eid = str(entry.entry_id)
        record = pf.read_record(self.folder, eid)  # issue 13: UUIDs of MagniPath's last write
        what = f"cannot write objects into image {name!r} of {self._file}"
        with _safe_write.guarded_write(self._file, eid, name, data_dir) as guard:
            saved_backup, tmp = guard.backup.path, guard.tmp
            with _qupath_call(what) as j:
                image_data = entry.java_object.readImageData()
                hierarchy = image_data.getHierarchy()
                key = j.String(MARK_KEY)

                def is_user(o: Any) -> bool:
                    return not _is_ours(o, record, key)

                kept_ids = {str(o.getID()) for o in hierarchy.getAllObjects(False)
                            if is_user(o)}
            # a UUID of an object we keep is never reused: the record must name ours only
            objects = [replace(o, id=str(uuid.uuid4())) if o.id in kept_ids else o
                       for o in objects]
            geojson = write_geojson(objects, Path(tmp) / "objects.geojson", stats=stats)
            with _qupath_call(what) as j:
                new = j.PathIO.readObjects(j.File(str(geojson)))
                user_before = _safe_write.user_objects(j, hierarchy.getAllObjects(False),
                                                       is_user)
                old = j.ArrayList()
                if replace_marked:
                    for o in hierarchy.getAllObjects(False):
                        if not is_user(o):
                            old.add(o)
                if old.size():
                    hierarchy.removeObjects(old, True)  # children (user objects) are kept
                hierarchy.addObjects(new)
                try:  # issue 17: staged file, validated, renamed over data.qpdata
                    _safe_write.save_image_data(
                        j, image_data, data_dir, is_user=is_user,
                        user_before=user_before if replace_marked else None)
                finally:
                    with contextlib.suppress(Exception):
                        image_data.getServer().close()  # release the slide file
                created = self._add_path_classes(new)
                self._qp.save(images=False)
                new_ids = [str(o.getID()) for o in new]
            if replace_marked:
                pf.write_record(self.folder, eid, name, new_ids)
        return {"removed": int(old.size()), "added": int(new.size()),
                "dropped_empty": stats.get("dropped_empty", 0),
                "repaired": stats.get("repaired", 0), "created_classes": created,
                "backup": str(saved_backup)}

    def _add_path_classes(self, java_objects: Any) -> list[str]:
        j = _java()
        known = {pc.id for pc in self._qp.path_classes}
        new: dict[str, Any] = {}
        for o in java_objects:
            pc = o.getPathClass()
            if pc is not None and (key := str(pc.toString())) not in known and key not in new:
                new[key] = pc
        if new:
            self._qp.path_classes = [*self._qp.path_classes,
                                     *(j.QuPathPathClass.from_java(pc) for pc in new.values())]
        return list(new)

    # -- backups ------------------------------------------------------------------------------
    @_quiet
    def list_backups(self, image: str | int, *, good_only: bool = False) -> list[Path]:
        """MagniPath's backups of one image's data folder, oldest first.

        ``good_only``: only backups whose data file validated (see ``magnipath qupath
        backups PROJECT`` for each backup's record).
        """
        self._check()
        return [b.path for b in _backups.list_backups(self.folder, self._entry(image).entry_id)
                if b.good or not good_only]

    @_quiet
    def restore_backup(self, image: str | int, backup: str | Path | None = None) -> Path:
        """Put back an image's data folder as it was before MagniPath's last write.

        The current state is backed up first, so a restore can be undone the same
        way. Close the image in QuPath before restoring.

        Parameters
        ----------
        image : str or int
            Image name, entry id, slide file name or index.
        backup : path, optional
            A folder from :meth:`list_backups` (or its name); default: the newest
            GOOD one (its data file validated), never a broken state.

        Returns
        -------
        Path
            The backup that was restored.
        """
        self._check("restore a backup")
        entry = self._entry(image)
        with _jvm.deferred_signals("the restore"):
            done = _repair.restore_image(self._file, str(entry.entry_id),
                                         None if backup is None else str(backup))
        return Path(done["restored_path"])

    # -- adding slides ------------------------------------------------------------------------
    @_quiet
    def add_image(self, slide_path: str | Path, *,
                  annotations: Iterable[QuPathObject] | None = None,
                  image_type: str | None = "Brightfield (H&E)") -> ImageInfo:
        """Add a slide to the project, optionally with annotations (not marked as MagniPath's).

        Parameters
        ----------
        slide_path : str or Path
            A slide QuPath can open.
        annotations : iterable of QuPathObject, optional
            Objects to put in the new image, geometries in level-0 pixels.
        image_type : str or None
            QuPath image type (``"Brightfield (H&E)"``, ``"Fluorescence"``... or the enum
            name ``BRIGHTFIELD_H_E``); ``None`` leaves it unset (QuPath asks on opening).

        Returns
        -------
        ImageInfo
            The new image (the first one if QuPath made several from one file).
        """
        self._check("add an image")
        j = _java()
        slide = Path(slide_path).expanduser().absolute()
        if not slide.is_file():
            raise QuPathBridgeError(f"slide {slide} does not exist")
        itype = None
        if image_type is not None:
            types = {t.value: t for t in j.QuPathImageType} | {t.name: t for t in j.QuPathImageType}
            if image_type not in types:
                raise QuPathBridgeError(f"unknown image type {image_type!r}; use one of "
                                        f"{[t.value for t in j.QuPathImageType]}")
            itype = types[image_type]
        with _qupath_call(f"QuPath cannot add the slide {slide} to {self._file}"):
            try:
                entries = self._qp.add_image(slide, image_type=itype, return_list=True)
            except FileExistsError:
                raise QuPathBridgeError(f"{slide} is already in {self._file}") from None
            except OSError as e:
                raise QuPathBridgeError(f"QuPath cannot open the slide {slide} ({e}); is it in a "
                                        "format QuPath reads?") from e
        entry = entries[0]
        if annotations is not None:
            objs = list(annotations)
            if objs:
                self._write_objects(entry, objs, replace_marked=False)
        ids = [e.entry_id for e in self._entries()]
        return self._info(entry, ids.index(entry.entry_id))


@_quiet
def create_project(path: str | Path, slides: Sequence[str | Path],
                   annotations: Sequence[str | Path | None] | None = None, *,
                   image_type: str | None = "Brightfield (H&E)") -> Path:
    """Create a new QuPath project from slides, with one optional GeoJSON file per slide.

    Parameters
    ----------
    path : str or Path
        New ``project.qpproj`` file or its (new or empty) folder.
    slides : sequence of paths
        Slides to add, in order.
    annotations : sequence of (path or None), optional
        QuPath GeoJSON per slide (level-0 pixels), ``None`` for a slide without.
    image_type : str or None
        QuPath image type of every slide (see :meth:`Project.add_image`).

    Returns
    -------
    Path
        The ``project.qpproj`` file. On failure nothing is left behind.
    """
    _java()
    slides = [Path(s).expanduser().absolute() for s in slides]
    annotations = list(annotations) if annotations is not None else [None] * len(slides)
    if len(annotations) != len(slides):
        raise QuPathBridgeError(f"{len(annotations)} annotation files for {len(slides)} slides; "
                                "give one per slide (None for a slide without)")
    missing = [str(s) for s in slides if not s.is_file()]
    if missing:
        raise QuPathBridgeError(f"these slides do not exist: {', '.join(missing)}")
    objects = [read_geojson(a) if a is not None else None for a in annotations]
    project_file = pf.project_file(path)
    folder = project_file.parent
    existed = folder.exists()
    if project_file.exists() or (existed and (not folder.is_dir() or any(folder.iterdir()))):
        raise QuPathBridgeError(f"cannot create a QuPath project in {folder}: it is not empty")
    try:
        with Project(project_file, "x") as project:
            for slide, objs in zip(slides, objects, strict=True):
                project.add_image(slide, annotations=objs, image_type=image_type)
    except BaseException:
        if existed:
            for child in folder.iterdir():
                if child.is_dir():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
        else:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    return project_file
