"""Repair images whose data file a killed save left broken; no QuPath needed.

For each image whose ``data/<id>/data.qpdata`` does not validate (truncated, empty,
or missing beside a ``data.qpdata.bkp``):

1. the broken state is kept as a MagniPath backup recorded as not good (for
   inspection; never chosen by a default restore),
2. ``data.qpdata.bkp`` (QuPath's previous version) is put back if it validates,
3. else the newest GOOD MagniPath backup of the image is put back,
4. else nothing is changed and :class:`IntegrityError` says so.

Every file goes in by an atomic rename (:mod:`qupath_bridge._atomic`). Staged
files and the folders of an interrupted restore by an earlier MagniPath
(``data/.<id>.magnipath-old``) are cleaned up first.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from qupath_bridge import _atomic, _backups
from qupath_bridge._integrity import (
    BKP_FILE,
    DATA_FILE,
    IntegrityError,
    check_image_dir,
    entry_dir,
    read_project_images,
)
from qupath_bridge.errors import QuPathBridgeError


def _legacy_swap_leftovers(data_dir: Path) -> str | None:
    """Undo a half-done folder swap of MagniPath <= 0.1 (restore_data_dir)."""
    old = data_dir.with_name(f".{data_dir.name}.magnipath-old")
    new = data_dir.with_name(f".{data_dir.name}.magnipath-restore")
    note = None
    if not data_dir.exists() and old.is_dir():
        os.replace(old, data_dir)
        note = f"put back {old.name} (an interrupted restore)"
    for p in (old, new):
        if p.exists():
            shutil.rmtree(p, ignore_errors=True)
    return note


def repair_image(project_folder: str | os.PathLike, entry_id: str, image: str, *,
                 dry_run: bool = False) -> dict:
    """Check one image fully and repair it if broken (module docstring).

    Returns
    -------
    dict
        ``image``, ``entry_id``, ``status`` (``ok``, ``empty``, ``broken``),
        ``reason``, ``action`` (``none``, ``restored``, ``would restore``),
        ``source`` (``data.qpdata.bkp`` or the backup id), ``kept_broken`` (backup id).

    Raises
    ------
    IntegrityError
        The image is broken and no good version exists.
    """
    data_dir = entry_dir(project_folder, entry_id)
    notes = []
    if not dry_run:
        note = _legacy_swap_leftovers(data_dir)
        if note:
            notes.append(note)
        if data_dir.is_dir():
            notes += [f"removed {n}" for n in _atomic.cleanup_staged(data_dir)]
    state = check_image_dir(data_dir, full=True)
    out = {"image": image, "entry_id": str(entry_id), "status": state.status,
           "reason": state.data.reason if state.status == "broken" else "", "action": "none",
           "source": None, "kept_broken": None, "notes": notes}
    if state.ok:
        return out
    source: str | None = None
    backup = None
    if state.bkp is not None and state.bkp.ok:
        source = BKP_FILE
    else:
        backup = _backups.newest_good(project_folder, entry_id)
        if backup is not None:
            source = f"MagniPath backup {backup.id}"
    if source is None:
        raise IntegrityError(
            f"image {image!r} (data/{entry_id}) cannot be repaired: its data file is broken "
            f"({state.data.reason}) and there is no good version to put back (no valid "
            "data.qpdata.bkp, no good MagniPath backup). Nothing was changed; the image's "
            f"objects may be recoverable by hand from {data_dir}.")
    out["source"] = source
    if dry_run:
        out["action"] = "would restore"
        return out
    kept = _backups.make_backup(data_dir, project_folder, entry_id, image=image,
                                reason="broken state kept by repair", require_good=False)
    out["kept_broken"] = kept.id
    if backup is None:
        _atomic.copy_into(data_dir / BKP_FILE, data_dir / DATA_FILE, validate=True)
    else:
        _backups.restore(backup, data_dir)
    after = check_image_dir(data_dir, full=True)
    if not (after.data.ok or (backup is not None and after.status == "empty")):
        raise IntegrityError(f"image {image!r}: the repair from {source} did not give a valid "
                             f"{data_dir / DATA_FILE} ({after.data.reason}); the broken state "
                             f"is kept in backup {kept.id}")
    out["action"] = "restored"
    return out


def repair_project(project_file: str | os.PathLike, images: list[str] | None = None, *,
                   dry_run: bool = False) -> list[dict]:
    """Repair every (or the named) image of a project; see :func:`repair_image`.

    ``images`` are names, entry ids or 0-based indices. Broken images without a
    good version are reported (``action`` = ``"cannot repair"``, ``error``) after
    the others were repaired.
    """
    from qupath_bridge._project_support import pick_image

    project_file = Path(project_file)
    entries = read_project_images(project_file)
    keys = [(name, eid, None) for name, eid in entries]
    chosen = (range(len(entries)) if not images
              else sorted({pick_image(keys, im, str(project_file)) for im in images}))
    out = []
    for i in chosen:
        name, eid = entries[i]
        try:
            out.append(repair_image(project_file.parent, eid, name, dry_run=dry_run))
        except IntegrityError as e:
            out.append({"image": name, "entry_id": eid, "status": "broken",
                        "action": "cannot repair", "error": str(e)})
    return out


def restore_image(project_file: str | os.PathLike, image: str, backup: str | None = None) -> dict:
    """Restore one image from a MagniPath backup (default: the newest GOOD one).

    The current state is backed up first (recorded good or not), so a restore can
    be undone the same way. Close the image in QuPath first.
    """
    from qupath_bridge._project_support import pick_image

    project_file = Path(project_file)
    entries = read_project_images(project_file)
    i = pick_image([(n, e, None) for n, e in entries], image, str(project_file))
    name, eid = entries[i]
    folder = project_file.parent
    if backup is None:
        chosen = _backups.newest_good(folder, eid)
        if chosen is None:
            raise QuPathBridgeError(
                f"image {name!r} of {project_file} has no good MagniPath backup in "
                f"{_backups.backups_dir(folder, eid)}; see `magnipath qupath backups "
                f"{project_file}`")
    else:
        chosen = _backups.find_backup(folder, eid, backup)
    data_dir = entry_dir(folder, eid)
    current = _backups.make_backup(data_dir, folder, eid, image=name, reason="before restore",
                                   require_good=False, prune=False)
    _backups.restore(chosen, data_dir)
    _backups.prune_backups(folder, eid)
    return {"image": name, "entry_id": eid, "restored": chosen.id,
            "restored_path": str(chosen.path), "previous_state_backup": current.id,
            "previous_state_good": current.good, "data_file": str(data_dir / DATA_FILE)}
