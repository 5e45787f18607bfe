"""Backups of an image's ``data/<id>/`` folder that record whether they can be trusted.

Each backup is a folder ``<project>/magnipath/backups/<entry id>/<timestamp>/``
holding a copy of the image's data folder and ``magnipath-backup.json``: when and
why it was taken and the validation of its ``data.qpdata``
(:func:`qupath_bridge._integrity.check_data_file`). A backup is GOOD when its data
file validated (or when the image had no data file: an image never saved).
Backups made by earlier MagniPath versions (no record) are validated when listed.

Restoring is atomic per file (:func:`qupath_bridge._atomic.replace_file`): a kill at
any instant leaves the image's old or restored ``data.qpdata``, never a mix.

Pruning (after each new backup of an image): keep the :data:`KEEP_GOOD` newest
good and the :data:`KEEP_BAD` newest broken backups; then, while that image's
backups take more than :data:`MAX_BYTES`, delete the oldest good ones, but
never the newest good one.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from qupath_bridge import _atomic
from qupath_bridge._integrity import BKP_FILE, DATA_FILE, DataCheck, check_data_file
from qupath_bridge._project_support import BACKUPS_DIR, MAGNIPATH_DIR
from qupath_bridge.errors import QuPathBridgeError

RECORD = "magnipath-backup.json"
KEEP_GOOD = 5
"""Good backups kept per image."""
KEEP_BAD = 2
"""Broken states kept per image (what repair replaced), for inspection."""
MAX_BYTES = 2 * 1024**3
"""Size cap of one image's backups (2 GiB); the newest good backup is always kept."""
_STALE_TMP = timedelta(hours=1)


@dataclass(frozen=True)
class Backup:
    """One backup of an image's data folder.

    Attributes
    ----------
    id : str
        The folder name (a sortable timestamp); ``--backup ID`` on the command line.
    path : Path
        The backup folder.
    created : str
        ISO time (UTC) it was taken.
    reason : str
        Why (``before import``, ``before restore``, ``broken state kept by repair``...).
    good : bool
        Whether its ``data.qpdata`` validated (or the image had none).
    validation : dict
        The :class:`~qupath_bridge._integrity.DataCheck` of its data file.
    size : int
        Bytes in the backup folder.
    recorded : bool
        False for an old backup without a record (validated when listed).
    """

    id: str
    path: Path
    created: str
    reason: str
    good: bool
    validation: dict
    size: int
    recorded: bool = True

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"id": self.id, "path": str(self.path), "created": self.created,
                "reason": self.reason, "good": self.good, "size": self.size,
                "recorded": self.recorded, "validation": self.validation}


def backups_dir(project_dir: str | os.PathLike, entry_id: str) -> Path:
    """``<project>/magnipath/backups/<entry id>/``."""
    return Path(project_dir) / MAGNIPATH_DIR / BACKUPS_DIR / str(entry_id)


def _folder_size(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def _validate_folder(folder: Path) -> tuple[bool, DataCheck]:
    check = check_data_file(folder / DATA_FILE)
    return check.ok or check.size < 0, check  # no data file: an image never saved, restorable


def _read(folder: Path) -> Backup:
    rec_path = folder / RECORD
    try:
        rec = json.loads(rec_path.read_text(encoding="utf-8"))
        return Backup(folder.name, folder, str(rec["created"]), str(rec.get("reason", "")),
                      bool(rec["good"]), dict(rec.get("validation") or {}),
                      int(rec.get("size", 0)) or _folder_size(folder))
    except (OSError, ValueError, KeyError, TypeError):
        good, check = _validate_folder(folder)
        created = datetime.fromtimestamp(folder.stat().st_mtime, UTC)
        return Backup(folder.name, folder, created.isoformat(timespec="seconds"),
                      "made by an earlier MagniPath (validated now)", good, check.to_dict(),
                      _folder_size(folder), recorded=False)


def list_backups(project_dir: str | os.PathLike, entry_id: str) -> list[Backup]:
    """Backups of one image, oldest first (folder names are sortable timestamps)."""
    d = backups_dir(project_dir, entry_id)
    if not d.is_dir():
        return []
    return [_read(p) for p in sorted(d.iterdir()) if p.is_dir() and not p.name.startswith(".")]


def newest_good(project_dir: str | os.PathLike, entry_id: str) -> Backup | None:
    """The newest GOOD backup of an image, or None."""
    good = [b for b in list_backups(project_dir, entry_id) if b.good]
    return good[-1] if good else None


def find_backup(project_dir: str | os.PathLike, entry_id: str, backup: str | os.PathLike) -> Backup:
    """A backup by id (folder name) or path; :class:`QuPathBridgeError` if there is none."""
    backups = list_backups(project_dir, entry_id)
    key = Path(backup).name
    for b in backups:
        if b.id == key:
            return b
    ids = ", ".join(b.id for b in backups[-10:]) or "none"
    raise QuPathBridgeError(f"image {entry_id} has no backup {str(backup)!r} in "
                            f"{backups_dir(project_dir, entry_id)}; its backups are: {ids}")


def make_backup(data_dir: str | os.PathLike, project_dir: str | os.PathLike, entry_id: str, *,
                reason: str, image: str = "", require_good: bool = True,
                prune: bool = True) -> Backup:
    """Copy an image's data folder into a new backup folder, validated and recorded.

    Parameters
    ----------
    data_dir : path
        ``data/<id>/`` of the image (a missing folder gives an empty, good backup).
    project_dir, entry_id : path, str
        Where the backups go (:func:`backups_dir`).
    reason : str
        Recorded in the backup.
    image : str
        The image name, recorded.
    require_good : bool
        Refuse (:class:`QuPathBridgeError`) to back up a state whose data file does
        not validate. ``False`` keeps it, recorded as not good (repair does this).
    prune : bool
        Apply the pruning policy afterwards.

    Returns
    -------
    Backup
    """
    data_dir = Path(data_dir)
    root = backups_dir(project_dir, entry_id)
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(root)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    final, n = root / stamp, 1
    while final.exists():
        final, n = root / f"{stamp}-{n}", n + 1
    tmp = root / f".{final.name}.tmp"
    try:
        if data_dir.is_dir():
            shutil.copytree(data_dir, tmp, ignore=shutil.ignore_patterns(".*"))
        else:
            tmp.mkdir()
        good, check = _validate_folder(tmp)
        if not good and require_good:
            raise QuPathBridgeError(
                f"image {image or entry_id}: its data file {data_dir / DATA_FILE} does not "
                f"validate ({check.reason}), so MagniPath takes no backup of it and writes "
                "nothing; run `magnipath qupath repair PROJECT` first")
        size = _folder_size(tmp)
        record = {"created": datetime.now(UTC).isoformat(timespec="seconds"),
                  "image": image, "entry_id": str(entry_id), "reason": reason, "good": good,
                  "size": size, "validation": {**check.to_dict(), "path": DATA_FILE}}
        (tmp / RECORD).write_text(json.dumps(record, indent=1), encoding="utf-8")
        _atomic.fsync_tree(tmp)
        os.replace(tmp, final)
    except OSError as e:
        raise QuPathBridgeError(f"cannot back up {data_dir} to {final} ({e}); nothing was "
                                "written") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if prune:
        prune_backups(project_dir, entry_id)
    return _read(final)


def _remove_stale_tmp(root: Path) -> None:
    """Half-made backups (a killed run) older than an hour."""
    now = datetime.now().timestamp()
    for p in root.glob(".*.tmp"):
        try:
            if now - p.stat().st_mtime > _STALE_TMP.total_seconds():
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            pass


def prune_backups(project_dir: str | os.PathLike, entry_id: str, *, keep_good: int = KEEP_GOOD,
                  keep_bad: int = KEEP_BAD, max_bytes: int = MAX_BYTES) -> list[str]:
    """Apply the pruning policy (module docstring); return the ids deleted."""
    backups = list_backups(project_dir, entry_id)
    good = [b for b in backups if b.good]
    bad = [b for b in backups if not b.good]
    drop = good[:-keep_good] if keep_good > 0 else good[:-1]
    drop += bad[:-keep_bad] if keep_bad > 0 else bad
    kept = [b for b in backups if b not in drop]
    total = sum(b.size for b in kept)
    newest = good[-1] if good else None
    for b in kept:
        if total <= max_bytes:
            break
        if b is not newest and b not in drop:
            drop.append(b)
            total -= b.size
    for b in drop:
        shutil.rmtree(b.path, ignore_errors=True)
    return [b.id for b in drop]


def restore(backup: Backup, data_dir: str | os.PathLike) -> None:
    """Put a backup's files back into ``data_dir``, each file by an atomic rename.

    ``data.qpdata`` is checked again first and goes in last; a backup without a data
    file removes the image's data file (the image had none). Files of ``data_dir``
    the backup does not have stay, except ``data.qpdata`` and its ``.bkp`` (QuPath's
    leftover of an interrupted save, which is removed).
    """
    data_dir = Path(data_dir)
    src = backup.path
    good, check = _validate_folder(src)
    if not good:
        raise QuPathBridgeError(f"backup {src} does not validate ({check.reason}); choose "
                                "another one (magnipath qupath backups PROJECT)")
    data_dir.mkdir(parents=True, exist_ok=True)
    files = [f for f in sorted(src.iterdir())
             if f.is_file() and f.name not in (RECORD, BKP_FILE)]
    files.sort(key=lambda f: f.name == DATA_FILE)  # the data file last
    for f in files:
        _atomic.copy_into(f, data_dir / f.name, validate=f.name == DATA_FILE)
    if not (src / DATA_FILE).exists():
        _atomic.remove_file(data_dir / DATA_FILE)
    _atomic.remove_file(data_dir / BKP_FILE)  # QuPath's leftover (kept in the backup taken before)
