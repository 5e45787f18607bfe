"""One temporary folder per run, inside the project's own ``magnipath/tmp/`` folder.

Files MagniPath hands to QuPath during a write (the objects as GeoJSON) go into
``<project>/magnipath/tmp/run-<pid>-<time>/``, removed in ``finally``. A run killed
before its ``finally`` leaves its folder; the next run removes folders older than
:data:`STALE_AFTER` or whose process no longer exists on this machine. Nothing is
written outside the project; ``<temp>/magnipath-qupath-*`` folders that earlier
versions left are removed after a day.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from qupath_bridge._project_support import MAGNIPATH_DIR

TMP_DIR = "tmp"
STALE_AFTER = 24 * 3600.0
"""Seconds after which any run folder is stale (one day)."""


def tmp_root(project_folder: str | os.PathLike) -> Path:
    """``<project>/magnipath/tmp/``."""
    return Path(project_folder) / MAGNIPATH_DIR / TMP_DIR


def remove_legacy_tmp(*, now: float | None = None) -> list[str]:
    """Remove ``<temp>/magnipath-qupath-*`` folders older than a day (MagniPath <= 0.1
    wrote the objects there; a killed run left them)."""
    now = time.time() if now is None else now
    gone = []
    for p in Path(tempfile.gettempdir()).glob("magnipath-qupath-*"):
        with contextlib.suppress(OSError):
            if p.is_dir() and now - p.stat().st_mtime > STALE_AFTER and (
                    not hasattr(os, "getuid") or p.stat().st_uid == os.getuid()):
                shutil.rmtree(p, ignore_errors=True)
                gone.append(p.name)
    return gone


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def remove_stale(project_folder: str | os.PathLike, *, now: float | None = None) -> list[str]:
    """Remove run folders of dead processes (this host) or older than a day; return names."""
    root = tmp_root(project_folder)
    if not root.is_dir():
        return []
    now = time.time() if now is None else now
    host = socket.gethostname()
    gone = []
    for p in root.iterdir():
        if not p.name.startswith("run-"):
            continue
        try:
            age = now - p.stat().st_mtime
        except OSError:
            continue
        parts = p.name.split("-")
        dead = False
        marker = p / ".host"
        with contextlib.suppress(OSError, ValueError, IndexError):
            if marker.read_text(encoding="utf-8").strip() == host:
                dead = not _alive(int(parts[1]))
        if dead or age > STALE_AFTER:
            shutil.rmtree(p, ignore_errors=True)
            gone.append(p.name)
    return gone


@contextlib.contextmanager
def run_dir(project_folder: str | os.PathLike) -> Iterator[Path]:
    """A new, empty run folder (stale ones removed first); deleted when the block ends."""
    remove_stale(project_folder)
    remove_legacy_tmp()
    root = tmp_root(project_folder)
    root.mkdir(parents=True, exist_ok=True)
    d = root / f"run-{os.getpid()}-{time.time_ns()}"
    d.mkdir()
    try:
        (d / ".host").write_text(socket.gethostname(), encoding="utf-8")
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)
        with contextlib.suppress(OSError):
            root.rmdir()  # only when empty
