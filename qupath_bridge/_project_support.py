"""The parts of the QuPath project bridge that need neither Java nor paquo.

* :class:`ImageInfo`, and finding an image by name, id, file name or index,
* where MagniPath keeps its files inside a QuPath project folder (shared with the
  Groovy scripts in ``qupath_bridge/groovy/``) and image names -> file names,
* moved-slide path remapping rules.

Backups of an image's ``data/<id>/`` folder: :mod:`qupath_bridge._backups`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path, PurePath, PurePosixPath, PureWindowsPath
from urllib.parse import unquote, urlsplit

from qupath_bridge.errors import QuPathBridgeError
from qupath_bridge.objects import QuPathObject

MAGNIPATH_DIR = "magnipath"
"""Folder inside a QuPath project folder where MagniPath keeps its files."""
ANNOTATIONS_DIR = "annotations"
PREDICTIONS_DIR = "predictions"
BACKUPS_DIR = "backups"
OBJECTS_DIR = "objects"
MARK_MEASUREMENT = "MagniPath prediction"
"""Measurement (value 1) on every object MagniPath writes: its mark on every QuPath
version (0.4-0.6) and object type; measurements survive QuPath's GeoJSON export and
import and a project save/reload (detections' metadata do not on QuPath 0.5)."""
MARK_KEY = "magnipath"
"""Object metadata key of the earlier mark (``magnipath = prediction``): still
recognised, and still written on annotations (QuPath 0.5+ keeps it there)."""
MARK_VALUE = "prediction"

PathMapping = (Mapping[str | os.PathLike, str | os.PathLike]
               | Callable[[str], str | os.PathLike | None])

_UNSAFE = re.compile(r'[\\/:*?"<>|\x00-\x1f\x7f]')


def safe_file_name(image_name: str) -> str:
    """File name stem for an image: ``\\ / : * ? " < > |`` and control characters -> ``_``.

    The Groovy scripts apply the same rule (``[\\\\/:*?"<>|\\p{Cntrl}]`` -> ``_``),
    so files written by the CLI and by QuPath have the same names.
    """
    name = _UNSAFE.sub("_", image_name).strip()
    return name if name not in ("", ".", "..") else "_"


def annotation_file(project_dir: str | os.PathLike, image_name: str) -> Path:
    """``<project>/magnipath/annotations/<image name>.geojson`` (written by the export script)."""
    name = f"{safe_file_name(image_name)}.geojson"
    return Path(project_dir) / MAGNIPATH_DIR / ANNOTATIONS_DIR / name


def prediction_file(project_dir: str | os.PathLike, image_name: str) -> Path:
    """``<project>/magnipath/predictions/<image name>.geojson`` (read by the import script)."""
    name = f"{safe_file_name(image_name)}.geojson"
    return Path(project_dir) / MAGNIPATH_DIR / PREDICTIONS_DIR / name


def project_file(path: str | os.PathLike) -> Path:
    """The absolute ``project.qpproj`` path for a ``.qpproj`` file or a project folder."""
    p = Path(path).expanduser().absolute()
    return p if p.suffix == ".qpproj" else p / "project.qpproj"


@dataclass(frozen=True)
class ImageInfo:
    """One image of a QuPath project.

    Attributes
    ----------
    name : str
        The image name QuPath shows.
    id : str
        The project entry id (the name of its ``data/<id>/`` folder).
    uri : str or None
        Where QuPath reads the image from.
    path : str or None
        Local file path of ``uri`` (``None`` for non-file URIs).
    width, height : int or None
        Level-0 size in pixels; ``None`` when the slide cannot be opened (moved?).
    mpp : float or None
        Level-0 pixel size in µm/px (magnification = 10 / mpp); ``None`` if unknown.
    index : int
        Position in the project's image list (0-based).
    slide_found : bool
        Whether the local slide file exists (``False`` also for non-file URIs).
    """

    name: str
    id: str
    uri: str | None
    path: str | None
    width: int | None
    height: int | None
    mpp: float | None
    index: int
    slide_found: bool

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)


def pick_image(images: Sequence[tuple[str, str, str | None]], image: str | int,
               where: str) -> int:
    """Index of the image that ``image`` names.

    Parameters
    ----------
    images : sequence of (name, entry id, slide path or None)
        The project's images in order.
    image : str or int
        An index (negative counts from the end), else an image name, else an
        entry id, else the file name of a slide (``"a.svs"``), else a string of
        digits as an index.
    where : str
        The project, for error messages.
    """
    n = len(images)
    if isinstance(image, int) and not isinstance(image, bool):
        if not -n <= image < n:
            raise QuPathBridgeError(f"image index {image} is out of range: {where} has {n} images")
        return image % n
    key = str(image)
    by_name = [i for i, (name, _, _) in enumerate(images) if name == key]
    if len(by_name) > 1:
        ids = ", ".join(images[i][1] for i in by_name)
        raise QuPathBridgeError(f"{where} has {len(by_name)} images named {key!r}; give the "
                                f"image id ({ids}) or index instead")
    found = (by_name or [i for i, (_, eid, _) in enumerate(images) if eid == key]
             or [i for i, (_, _, p) in enumerate(images) if p and _pure(p).name == key])
    if not found and key.isdigit() and int(key) < n:
        return int(key)  # "3" names no image: the index, as typed on a command line
    if len(found) != 1:
        names = ", ".join(repr(name) for name, _, _ in images[:20])
        more = " ..." if n > 20 else ""
        what = "several images with" if found else "no image"
        raise QuPathBridgeError(f"{where} has {what} {key!r}; its images are: "
                                f"{names or 'none'}{more}")
    return found[0]


def is_prediction(obj: QuPathObject, ids: Collection[str] = ()) -> bool:
    """Whether ``obj`` is one of MagniPath's objects.

    It is when its UUID is in ``ids`` (the image's record, :func:`read_record`), it
    carries the measurement :data:`MARK_MEASUREMENT`, or the earlier metadata mark
    ``magnipath`` (projects written before the measurement).
    """
    return (obj.id in ids or MARK_MEASUREMENT in obj.measurements
            or MARK_KEY in obj.metadata)


# ---------------------------------------------------------------------------------------------
# the per-image record of the objects MagniPath wrote
def record_file(project_dir: str | os.PathLike, entry_id: str) -> Path:
    """``<project>/magnipath/objects/<entry id>.json``: UUIDs of MagniPath's last write."""
    return Path(project_dir) / MAGNIPATH_DIR / OBJECTS_DIR / f"{entry_id}.json"


def read_record(project_dir: str | os.PathLike, entry_id: str) -> frozenset[str]:
    """The UUIDs MagniPath last wrote into an image (empty when there is no readable record:
    the measurement and metadata marks still identify its objects)."""
    path = record_file(project_dir, entry_id)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return frozenset(str(i) for i in data["ids"])
    except (OSError, ValueError, KeyError, TypeError):
        return frozenset()


def write_record(project_dir: str | os.PathLike, entry_id: str, image_name: str,
                 ids: Iterable[str]) -> Path:
    """Replace the image's record (temporary file, then rename; mode ``0666 & ~umask``)."""
    path = record_file(project_dir, entry_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"format": "magnipath-objects/1", "image": image_name, "entry_id": str(entry_id),
            "written": datetime.now().isoformat(timespec="seconds"), "ids": sorted(ids)}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(body, f)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise QuPathBridgeError(f"cannot write MagniPath's object record {path} ({e})") from e
    return path


def uri_to_path(uri: str | None) -> str | None:
    """Local file path of a ``file:`` URI as QuPath stores it, ``None`` for other schemes."""
    if not uri:
        return None
    parts = urlsplit(uri)
    if parts.scheme.lower() != "file":
        return None
    path = unquote(parts.path)
    if parts.netloc and parts.netloc.lower() != "localhost":
        return str(PureWindowsPath(f"//{parts.netloc}{path}"))  # UNC share
    if re.match(r"^/[A-Za-z]:/", path):
        return str(PureWindowsPath(path[1:]))
    return str(PurePosixPath(path))


def _pure(p: str | os.PathLike) -> PurePath:
    s = os.fspath(p)
    return PureWindowsPath(s) if re.match(r"^([A-Za-z]:[\\/]|\\\\)", s) else PurePosixPath(s)


def remap_path(old: str, mapping: PathMapping) -> str | None:
    """The new location of the slide at ``old``, or ``None`` when ``mapping`` does not move it.

    Parameters
    ----------
    old : str
        Current (stale) file path of the slide.
    mapping : mapping or callable
        A callable gets the old path and returns the new one (or ``None``). A mapping
        maps old file paths to new file paths, or old folders to new folders: an
        exact key wins, otherwise the longest key that is a parent folder of
        ``old`` is replaced (``{"/old/slides": "/new/slides"}`` moves
        ``/old/slides/a/b.svs`` to ``/new/slides/a/b.svs``).
    """
    if callable(mapping):
        new = mapping(old)
        return None if new is None else os.fspath(new)
    old_p = _pure(old)
    best: tuple[int, str] | None = None
    for key, value in mapping.items():
        key_p = _pure(key)
        if key_p == old_p:
            return os.fspath(value)
        if old_p.is_relative_to(key_p) and (best is None or len(key_p.parts) > best[0]):
            rel = old_p.relative_to(key_p)
            best = (len(key_p.parts), str(_pure(value).joinpath(*rel.parts)))
    return None if best is None else best[1]
