"""The kill-safe way :mod:`qupath_bridge.project` writes an image (QuPath 0.5 and 0.6).

:func:`guarded_write` wraps one image write:

1. SIGINT/SIGTERM are held until the image is finished or left as it was
   (:func:`qupath_bridge._jvm.deferred_signals`);
2. a broken data file is repaired first (:func:`qupath_bridge._repair.repair_image`)
   and the image is then checked in full (no QuPath reader sees a bad file);
3. a validated backup of the image's data folder is taken
   (:func:`qupath_bridge._backups.make_backup`);
4. a run folder inside ``<project>/magnipath/tmp/`` holds the files handed to QuPath.

:func:`save_image_data` replaces QuPath's ``saveImageData``: QuPath writes the new
data into a staged file, which is validated, re-read (the user's objects must be
identical) and renamed over ``data.qpdata`` (:mod:`qupath_bridge._atomic`).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qupath_bridge import _atomic, _backups, _jvm, _repair, _rundir
from qupath_bridge._integrity import DataCheck, IntegrityError, require_good


@dataclass
class WriteGuard:
    """What :func:`guarded_write` prepared: the backup taken, the run folder, a repair."""

    backup: _backups.Backup
    tmp: Path
    repair: dict


@contextlib.contextmanager
def guarded_write(project_file: str | os.PathLike, entry_id: str, image: str,
                  data_dir: str | os.PathLike) -> Iterator[WriteGuard]:
    """Signals held, image repaired and checked, validated backup, run folder (module doc)."""
    project_file = Path(project_file)
    folder = project_file.parent
    with _jvm.deferred_signals(f"writing image {image!r}"):
        repair = _repair.repair_image(folder, entry_id, image)
        require_good(project_file, image, data_dir)
        backup = _backups.make_backup(data_dir, folder, entry_id, image=image,
                                      reason="before a MagniPath write")
        with _rundir.run_dir(folder) as tmp:
            yield WriteGuard(backup, tmp, repair)


def user_objects(j: Any, objects: Any, is_user: Callable[[Any], bool]) -> list[str]:
    """The user's objects (``is_user``) of a Java collection as sorted canonical GeoJSON."""
    selected = j.ArrayList()
    for o in objects:
        if is_user(o):
            selected.add(o)
    feats = json.loads(str(j.GsonTools.getInstance().toJson(selected)))
    if isinstance(feats, dict):
        feats = feats.get("features", [feats])
    return sorted(json.dumps(f, sort_keys=True) for f in feats)


def save_image_data(j: Any, image_data: Any, data_dir: str | os.PathLike, *,
                    is_user: Callable[[Any], bool] | None = None,
                    user_before: list[str] | None = None) -> DataCheck:
    """Write ``image_data`` as the image's ``data.qpdata`` atomically.

    Parameters
    ----------
    j : namespace
        The bridge's Java namespace (``PathIO``, ``File``, ``GsonTools``, ``ArrayList``).
    image_data : Java ImageData
        What to save.
    data_dir : path
        The image's ``data/<id>/`` folder.
    is_user : callable, optional
        Selects the user's objects (not MagniPath's): the re-read staged file must
        hold exactly the user's objects of ``image_data``.
    user_before : list of str, optional
        The user's objects as read (:func:`user_objects`), before MagniPath changed
        the hierarchy: ``image_data`` must still hold exactly these.

    Returns
    -------
    DataCheck
        The validation of the new data file.
    """
    meant = None
    if is_user is not None:
        meant = user_objects(j, image_data.getHierarchy().getAllObjects(False), is_user)
        if user_before is not None and meant != user_before:
            raise IntegrityError(
                f"MagniPath's change of {data_dir} would change the user's objects "
                f"({len(meant)} instead of {len(user_before)}, or different content); "
                "nothing was written")

    def write(path: Path) -> None:
        j.PathIO.writeImageData(j.File(str(path)), image_data)

    def verify(path: Path) -> None:
        if meant is None or is_user is None:
            return
        hierarchy = j.PathIO.readHierarchy(j.File(str(path)))  # validated: cannot loop
        got = user_objects(j, hierarchy.getAllObjects(False), is_user)
        if got != meant:
            raise IntegrityError(
                f"the new data file for {data_dir} does not hold the user's objects as they "
                f"are ({len(got)} instead of {len(meant)}, or different content); nothing was "
                "changed")

    return _atomic.replace_data_file(data_dir, write, verify=verify)
