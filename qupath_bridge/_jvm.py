"""Signals around QuPath's Java: a clean start, and writes that finish before the process stops.

Three things go wrong without this module (QuPath 0.5 and 0.6 through paquo/JPype):

* JPype started by a non-interactive Python installs Java's own Ctrl-C handler, and
  the JVM handles SIGTERM: either signal ends the process from the Java side
  (exit 130/143) while MagniPath is in the middle of writing an image, so no
  Python ``finally`` runs. We start the JVM with ``-Xrs`` (the JVM leaves SIGINT,
  SIGTERM and SIGHUP to the host process) and JPype's ``interrupt=False``, so the
  signals reach Python.
* Ctrl-C while the JVM starts crashes it (SIGSEGV inside JPype) and the JVM drops
  ``hs_err_pid*.log`` into the current folder. We block SIGINT and SIGTERM in the
  starting thread (threads the JVM creates inherit the mask) and deliver them once
  the JVM is up, as a normal ``KeyboardInterrupt``; ``-XX:ErrorFile`` sends any
  crash report to ``<temp>/magnipath-jvm-<uid>/`` instead of the user's folder.
* :func:`deferred_signals` wraps the critical section of a write: SIGINT/SIGTERM
  received inside it are held until the section ends (finished or rolled back),
  then acted on (``KeyboardInterrupt`` / exit status 143). A second signal is not
  held: the write is atomic anyway (see :mod:`qupath_bridge._atomic`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)
_SIGNALS = tuple(s for s in (getattr(signal, "SIGINT", None), getattr(signal, "SIGTERM", None))
                 if s is not None)


def crash_dir() -> Path:
    """Where a JVM crash report would go: ``<temp>/magnipath-jvm-<uid>/`` (never the cwd)."""
    uid = os.getuid() if hasattr(os, "getuid") else os.getpid()
    return Path(tempfile.gettempdir()) / f"magnipath-jvm-{uid}"


def jvm_options() -> list[str]:
    """JVM options MagniPath adds to paquo's (``-Xrs``, ``-XX:ErrorFile=...``)."""
    return ["-Xrs", f"-XX:ErrorFile={crash_dir() / 'hs_err_pid%p.log'}"]


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def starting_jvm() -> Iterator[None]:
    """Wrap the first ``import paquo.java`` (which starts the JVM).

    Adds :func:`jvm_options` and ``interrupt=False`` to JPype's ``startJVM`` call, and
    blocks SIGINT/SIGTERM in this thread while the JVM starts; a signal that arrived
    meanwhile is delivered when the block ends (Ctrl-C -> ``KeyboardInterrupt``
    after a clean start).
    """
    try:
        import jpype
    except ImportError:  # paquo will fail with its own message
        yield
        return
    original = jpype.startJVM
    extra = jvm_options()

    def start(*args: object, **kwargs: object) -> object:
        opts = [a for a in extra if not any(str(x).split("=")[0] == a.split("=")[0]
                                            for x in args)]
        kwargs.setdefault("interrupt", False)
        with contextlib.suppress(OSError):
            crash_dir().mkdir(parents=True, exist_ok=True)
        return original(*args, *opts, **kwargs)

    block = hasattr(signal, "pthread_sigmask") and _in_main_thread()
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS) if block else None
    jpype.startJVM = start
    try:
        yield
    finally:
        jpype.startJVM = original
        if old_mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)


@contextlib.contextmanager
def deferred_signals(what: str = "the write") -> Iterator[None]:
    """Hold SIGINT/SIGTERM until the block ends, then act on them.

    Only in the main thread (elsewhere Python cannot handle signals and this is a
    no-op). The first signal is held; a second one acts at once. After the block:
    SIGINT -> ``KeyboardInterrupt``, SIGTERM -> ``SystemExit(143)``.
    """
    if not _in_main_thread():
        yield
        return
    got: list[int] = []
    old = {s: signal.getsignal(s) for s in _SIGNALS}

    def hold(signum: int, frame: object) -> None:
        if got:  # a second signal: stop now (the write is atomic; the finally blocks run)
            _act(signum)
        got.append(signum)
        log.warning("magnipath: signal %s received; finishing %s first (send it again to stop "
                    "at once)", signal.Signals(signum).name, what)

    for s in _SIGNALS:
        signal.signal(s, hold)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
    if got:
        _act(got[0])


def _act(signum: int) -> None:
    if signum == getattr(signal, "SIGTERM", None):
        raise SystemExit(128 + signum)
    raise KeyboardInterrupt
