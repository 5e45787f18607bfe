"""Atomic writes: write to a temporary sibling, then rename into place.

What lands at the final path has the mode a plain write would give it
(files ``0666 & ~umask``, folders ``0777 & ~umask``), not the 0600 / 0700 of
``tempfile``'s private temporary files and folders.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from qupath_bridge._perms import current_umask as _umask


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, *, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; rename it to ``final`` on success.

    On an exception the temporary file or folder is removed and ``final`` is
    left as it was, so an interrupted run never leaves a half-written result
    that looks complete. An existing ``final`` is replaced only on success.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    target = tmp if is_dir else tmp / final.name
    try:
        yield target
        if is_dir:
            os.chmod(target, 0o777 & ~_umask())
        elif target.is_file() and not target.is_symlink():
            os.chmod(target, 0o666 & ~_umask())
        if final.is_dir() and not final.is_symlink():
            shutil.rmtree(final)
        elif final.exists():
            final.unlink()
        os.replace(target, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def discard_stale_temps(final: str | os.PathLike) -> int:
    """Remove what killed :func:`atomic_path` writes of ``final`` left beside it.

    Only for a ``final`` that one writer owns (e.g. a prediction store being
    resumed): a concurrent writer's temporary path would go too. Returns the
    number of paths removed.
    """
    final = Path(final)
    n = 0
    for stale in final.parent.glob(f".{glob.escape(final.name)}.*.tmp"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)
        n += 1
    return n


def atomic_write_text(final: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``final`` atomically; return the path."""
    with atomic_path(final) as tmp:
        tmp.write_text(text)
    return Path(final)
