"""Replace an image's data file so that a kill at any instant leaves the old or the new one.

QuPath's own save (``ProjectImageEntry.saveImageData``, 0.5 and 0.6) writes
``data.qpdata`` in place after renaming the old one to ``data.qpdata.bkp``; a kill
during the write leaves a truncated file. MagniPath never lets QuPath write the
live file. It writes the new data to ``data/<id>/.data.qpdata.magnipath-new``
(QuPath's ``PathIO.writeImageData`` into that file), checks it
(:func:`qupath_bridge._integrity.check_data_file`, then an optional re-read
comparing the user's objects), forces it to disk (``fsync``) and moves it over
``data.qpdata`` with one ``os.replace`` (an atomic rename on POSIX and Windows, same
folder, same file system). Until that rename, ``data.qpdata`` is untouched; after
it, the new file is complete. A staged file left by a kill is hidden (dot name),
ignored by QuPath and removed by the next write or repair.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from qupath_bridge._integrity import (
    DATA_FILE,
    NEW_SUFFIX,
    DataCheck,
    IntegrityError,
    check_data_file,
)


def staged_path(target: str | os.PathLike) -> Path:
    """``<folder>/.<name>.magnipath-new``: where the new version of ``target`` is written."""
    target = Path(target)
    return target.with_name(f".{target.name}{NEW_SUFFIX}")


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_tree(folder: str | os.PathLike) -> None:
    """fsync every file of a folder and the folder itself."""
    folder = Path(folder)
    for f in folder.rglob("*"):
        if f.is_file():
            _fsync_file(f)
    _fsync_dir(folder)


def commit(staged: Path, target: Path) -> None:
    """fsync ``staged``, rename it over ``target`` (atomic), fsync the folder."""
    _fsync_file(staged)
    os.replace(staged, target)
    _fsync_dir(target.parent)


def remove_file(path: str | os.PathLike) -> None:
    """Delete a file (a single unlink: atomic); no error if it is missing."""
    path = Path(path)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
        _fsync_dir(path.parent)


def copy_into(src: str | os.PathLike, target: str | os.PathLike, *, validate: bool) -> None:
    """Copy ``src`` over ``target`` through a staged file and one rename.

    ``validate``: the staged copy must pass :func:`check_data_file` first.
    """
    src, target = Path(src), Path(target)
    staged = staged_path(target)
    try:
        shutil.copyfile(src, staged)
        if validate:
            check = check_data_file(staged)
            if not check.ok:
                raise IntegrityError(f"the copy of {src} does not validate ({check.reason}); "
                                     f"{target} was left as it was")
        commit(staged, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            staged.unlink()


def replace_data_file(data_dir: str | os.PathLike, write: Callable[[Path], None], *,
                      verify: Callable[[Path], None] | None = None,
                      before_commit: Callable[[], None] | None = None) -> DataCheck:
    """Write a new ``data.qpdata`` into ``data_dir`` atomically.

    Parameters
    ----------
    data_dir : path
        The image's ``data/<id>/`` folder (created if missing).
    write : callable
        ``write(path)`` writes the complete new data file at ``path`` (the staged file).
    verify : callable, optional
        ``verify(path)`` raises if the staged file's content is not what was meant
        (e.g. the user's objects differ); called after the structural check.
    before_commit : callable, optional
        Called just before the rename (tests use it to hold the write there).

    Returns
    -------
    DataCheck
        The validation of the file now in place.

    Raises
    ------
    IntegrityError
        The staged file does not validate; ``data.qpdata`` was not touched.
    """
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    target = data_dir / DATA_FILE
    staged = staged_path(target)
    with contextlib.suppress(FileNotFoundError):
        staged.unlink()
    try:
        write(staged)
        check = check_data_file(staged)
        if not check.ok:
            raise IntegrityError(f"the new data file written for {data_dir} does not validate "
                                 f"({check.reason}); {target} was left as it was")
        if verify is not None:
            verify(staged)
        if before_commit is not None:
            before_commit()
        commit(staged, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            staged.unlink()
    return check


def cleanup_staged(data_dir: str | os.PathLike) -> list[str]:
    """Remove staged files a killed run left in ``data_dir``; return their names."""
    data_dir = Path(data_dir)
    gone = []
    for p in data_dir.glob(f".*{NEW_SUFFIX}"):
        with contextlib.suppress(OSError):
            p.unlink()
            gone.append(p.name)
    return gone
