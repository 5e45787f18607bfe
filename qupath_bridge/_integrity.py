"""Is an image's ``data.qpdata`` whole? A bounded check that needs neither Java nor paquo.

QuPath 0.5 and 0.6 save an image (``ProjectImageEntry.saveImageData``) by renaming
``data/<id>/data.qpdata`` to ``data.qpdata.bkp``, writing the new ``data.qpdata``
in place and then deleting the ``.bkp``. A process killed in between leaves a
truncated (or 0-byte, or missing) ``data.qpdata`` beside the ``.bkp``, and
QuPath's ``PathIO.readHierarchy`` then loops for ever (it swallows the
``EOFException`` inside ``while (true)``), with its memory growing.

So MagniPath never hands a data file to a QuPath reader before it passed
:func:`check_data_file`: the file must be a complete Java serialisation stream
(:mod:`qupath_bridge._javaser`, linear time, no Java) laid out as
``PathIO.writeImageDataSerialized`` writes it: the UTF header ``"Data file
version ..."``, then objects among which one
``qupath.lib.objects.hierarchy.PathObjectHierarchy``, and as the last object the
string ``"EOF"``, ending exactly at the end of the file.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from qupath_bridge._javaser import StreamError, scan
from qupath_bridge.errors import QuPathBridgeError

DATA_FILE = "data.qpdata"
BKP_FILE = "data.qpdata.bkp"
NEW_SUFFIX = ".magnipath-new"
"""Our staged new data file is ``data/<id>/.data.qpdata.magnipath-new`` (see _atomic)."""
HIERARCHY_CLASS = "qupath.lib.objects.hierarchy.PathObjectHierarchy"
_HEADER = b"Data file version"
_EOF_TAIL = b"\x74\x00\x03EOF"  # TC_STRING "EOF", as PathIO writes it last


class IntegrityError(QuPathBridgeError):
    """An image's data file is broken (truncated, empty, missing beside its ``.bkp``)."""


@dataclass(frozen=True)
class DataCheck:
    """The result of checking one ``.qpdata`` file.

    Attributes
    ----------
    path : str
        The file.
    ok : bool
        Whether QuPath can read it completely.
    reason : str
        Why not (empty when ``ok``).
    size : int
        Bytes (-1 when the file does not exist).
    n_objects : int
        Java objects in the stream (0 unless ``ok``); a size figure, not QuPath objects.
    seconds : float
        Time the check took.
    """

    path: str
    ok: bool
    reason: str
    size: int
    n_objects: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)


def check_data_file(path: str | os.PathLike, *, full: bool = True) -> DataCheck:
    """Check that a ``.qpdata`` file is complete, without Java and without hanging.

    Parameters
    ----------
    path : path
        A ``data.qpdata`` (or ``.bkp``, or a staged copy).
    full : bool
        Walk the whole stream (default). ``False`` checks only the header and the
        end marker (constant time: catches every file cut short by a kill except
        one cut exactly after an earlier ``"EOF"`` string); use the full check
        before any QuPath reader gets the file.

    Returns
    -------
    DataCheck
        ``ok`` and, if not, the reason in words. Time is linear in the file size
        (about 10 MB/s in pure Python); a truncated or 0-byte file fails at once.
    """
    t0 = time.perf_counter()
    path = Path(path)

    def result(ok: bool, reason: str, size: int, n: int = 0) -> DataCheck:
        return DataCheck(str(path), ok, reason, size, n, time.perf_counter() - t0)

    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return result(False, "the file does not exist", -1)
    except OSError as e:
        return result(False, f"the file cannot be read ({e})", -1)
    if size == 0:
        return result(False, "the file is empty (0 bytes)", 0)
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            f.seek(max(0, size - len(_EOF_TAIL)))
            tail = f.read()
            if not head.startswith(b"\xac\xed\x00\x05"):
                return result(False, "it is not a QuPath data file (no Java stream header)", size)
            if _HEADER not in head:
                return result(False, "it is not a QuPath data file (no 'Data file version' "
                                     "header)", size)
            if tail != _EOF_TAIL and not _may_end_with_reference(tail):
                return result(False, f"it is cut short ({size:,} bytes, no end marker)", size)
            if not full and tail == _EOF_TAIL:
                return result(True, "", size)  # else (a back-reference at the end): walk it
            # read, not mmap: a file truncated in place while mapped would crash (SIGBUS)
            f.seek(0)
            data = f.read()
        try:
            found = scan(data)
        except StreamError as e:
            what = "it is cut short" if e.truncated else "its structure is broken"
            return result(False, f"{what} ({len(data):,} bytes; {e})", size)
    except OSError as e:
        return result(False, f"the file cannot be read ({e})", size)
    items = found.items
    if not items or items[0].kind != "block" or _HEADER not in (items[0].name or b""):
        return result(False, "it does not start with QuPath's 'Data file version' header", size)
    if not any(it.kind == "object" and it.name == HIERARCHY_CLASS for it in items):
        return result(False, "it holds no object hierarchy", size)
    last = items[-1]
    if last.kind not in ("string", "reference") or last.name != "EOF":
        return result(False, f"it is cut short ({size:,} bytes; the last object is not "
                             "QuPath's end marker)", size)
    return result(True, "", size, found.n_objects)


def _may_end_with_reference(tail: bytes) -> bool:
    # "EOF" written a second time is a back-reference: TC_REFERENCE + 4-byte handle
    return len(tail) >= 5 and tail[-5] == 0x71


@dataclass(frozen=True)
class ImageState:
    """The state of one image's data folder ``data/<id>/``.

    ``status`` is ``"ok"`` (a good ``data.qpdata``), ``"empty"`` (no data file and no
    ``.bkp``: the image was never saved; QuPath shows no objects), ``"broken"`` (the
    data file is bad or missing while a ``.bkp`` exists).
    """

    data_dir: str
    status: str
    data: DataCheck
    bkp: DataCheck | None

    @property
    def ok(self) -> bool:
        """Whether QuPath's readers may be given this image's data."""
        return self.status != "broken"

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"data_dir": self.data_dir, "status": self.status, "data": self.data.to_dict(),
                "bkp": None if self.bkp is None else self.bkp.to_dict()}


def check_image_dir(data_dir: str | os.PathLike, *, full: bool = True) -> ImageState:
    """Check ``data/<id>/data.qpdata`` (and its ``.bkp`` when there is one).

    ``full=False``: header and end marker only (see :func:`check_data_file`).
    """
    d = Path(data_dir)
    data = check_data_file(d / DATA_FILE, full=full)
    bkp_path = d / BKP_FILE
    bkp = check_data_file(bkp_path, full=full) if bkp_path.exists() else None
    if data.ok:
        status = "ok"
    elif data.size < 0 and bkp is None:
        status = "empty"
    else:
        status = "broken"
    return ImageState(str(d), status, data, bkp)


def read_project_images(project_file: str | os.PathLike) -> list[tuple[str, str]]:
    """``(image name, entry id)`` of every image, read from ``project.qpproj`` as JSON.

    Works without QuPath (used by repair, backups and restore).
    """
    project_file = Path(project_file)
    try:
        doc = json.loads(project_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise QuPathBridgeError(f"cannot read the QuPath project {project_file} ({e}); is it a "
                                "project.qpproj file written by QuPath?") from e
    images = doc.get("images", []) if isinstance(doc, dict) else None  # none: an empty project
    if not isinstance(images, list):
        raise QuPathBridgeError(f"{project_file} has no 'images' list; is it a QuPath project?")
    out = []
    for im in images:
        if isinstance(im, dict) and "entryID" in im:
            out.append((str(im.get("imageName") or f"Image {im['entryID']}"), str(im["entryID"])))
    return out


def entry_dir(project_folder: str | os.PathLike, entry_id: str) -> Path:
    """``<project>/data/<entry id>/`` (QuPath's ``DefaultProjectImageEntry.getEntryPath``)."""
    return Path(project_folder) / "data" / str(entry_id)


def problem_message(project_file: str | os.PathLike, image: str, state: ImageState) -> str:
    """One paragraph naming the image, what is wrong and what to do."""
    data = state.data
    what = (f"its data file {data.path} is missing" if data.size < 0
            else f"its data file {data.path} is unreadable: {data.reason}")
    bkp = ""
    if state.bkp is not None:
        bkp = (" QuPath's previous version (data.qpdata.bkp) is complete." if state.bkp.ok
               else " QuPath's previous version (data.qpdata.bkp) is broken too.")
    return (f"Image {image!r} of the QuPath project {project_file} cannot be used: {what} "
            f"(a save that was interrupted, e.g. QuPath or MagniPath killed while writing).{bkp} "
            f"Close the image in QuPath and run `magnipath qupath repair {project_file}`, which "
            "puts back the last good version (from data.qpdata.bkp, else from MagniPath's newest "
            "good backup) and keeps the broken file in magnipath/backups/; nothing was read "
            "from or written to this image.")


def require_good(project_file: str | os.PathLike, image: str,
                 data_dir: str | os.PathLike) -> ImageState:
    """Check an image before a QuPath reader touches it; raise :class:`IntegrityError` if broken."""
    state = check_image_dir(data_dir)
    if not state.ok:
        raise IntegrityError(problem_message(project_file, image, state))
    return state


def check_project(project_file: str | os.PathLike, *,
                  full: bool = False) -> dict[str, tuple[str, ImageState]]:
    """Every image's state, ``{entry id: (image name, state)}``.

    Reads ``project.qpproj`` as JSON (no Java). The default quick check (header and
    end marker, constant time per image) is the one made on opening a project.
    """
    project_file = Path(project_file)
    folder = project_file.parent
    return {eid: (name, check_image_dir(entry_dir(folder, eid), full=full))
            for name, eid in read_project_images(project_file)}
