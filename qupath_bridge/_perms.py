"""File modes for files and folders we create through a temporary path.

``tempfile.mkstemp`` creates files with mode 0600 and ``mkdtemp`` folders with
0700, whatever the umask; renamed into place, such a file could not be read by
colleagues or by QuPath running as another user. Files we write get the mode a
plain ``open(path, "w")`` would give them: ``0666 & ~umask`` (folders ``0777 & ~umask``).
"""

from __future__ import annotations

import os
import threading

_lock = threading.Lock()


def current_umask() -> int:
    """The process umask (read from ``/proc/self/status`` where possible, else set and reset)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _lock:  # os.umask can only be read by setting it
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def default_file_mode() -> int:
    """``0o666 & ~umask``: what ``open(path, "w")`` gives a new file."""
    return 0o666 & ~current_umask()


def default_dir_mode() -> int:
    """``0o777 & ~umask``: what ``os.mkdir`` gives a new folder."""
    return 0o777 & ~current_umask()
