"""Run one core function in napari's ``thread_worker``: the pattern of every widget.

A widget collects its values on the main thread (converting layers to plain
objects there), then calls :func:`run_core` with a function
``func(progress=..., cancel=...)`` that calls exactly one core function
(:func:`magnipath.tiling.make_dataset`, ...). :func:`run_core`:

* runs it in a napari ``thread_worker`` (a Qt thread-pool thread);
* relays the core's :class:`magnipath.progress.Progress` events to the main
  thread through a Qt signal and shows them as a ``napari.utils.progress``
  bar in napari's activity dock (and, optionally, to ``on_progress``);
* cancels through a flag that the core polls (``cancel()``), set by
  :meth:`CoreRun.cancel` (the widget's Cancel button);
* disables the ``busy`` widgets (the Run button...) while it runs and
  re-enables them when it ends, however it ends;
* calls ``on_returned(result)`` on the **main thread** (the only place where
  layers are added);
* shows a :class:`magnipath.MagnipathError` (or a QuPath bridge error) as an
  error notification with its own message (the message the CLI prints), a
  cancel as an info, warnings raised in the core as warning notifications,
  and any other exception as an error notification carrying its traceback
  (a bug: never swallowed).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from napari.qt.threading import create_worker
from napari.utils import progress as napari_progress
from napari.utils.notifications import (
    ErrorNotification,
    notification_manager,
    show_error,
    show_info,
    show_warning,
)
from qtpy.QtCore import QObject, Signal

from magnipath._errors import Cancelled, MagnipathError
from magnipath.progress import Progress
from qupath_bridge.errors import QuPathBridgeError

USER_ERRORS = (MagnipathError, QuPathBridgeError)
"""Errors whose message is for the user (as the CLI prints them), not a bug."""


class _Relay(QObject):
    """Lives on the main thread; its signal carries progress events across threads."""

    event = Signal(object)


class CoreRun:
    """A running core function: its worker, its progress bar and its cancel flag.

    Attributes
    ----------
    worker : napari.qt.threading.FunctionWorker
        The worker (signals ``started``, ``returned``, ``errored``, ``finished``).
    description : str
        What runs, as shown in the activity dock and in messages.
    """

    def __init__(self, description: str) -> None:
        self.description = description
        self._cancel = threading.Event()
        self._relay = _Relay()
        self._bar: Any = None
        self.worker: Any = None
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None

    def cancel(self) -> None:
        """Ask the core to stop at its next check (within one tile / batch)."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._cancel.is_set()

    # -- main-thread slots ----------------------------------------------------------
    def _on_progress(self, ev: Progress) -> None:
        # napari's progress bar may process Qt events while it updates, so the run can
        # finish (and close the bar) in the middle of this slot: re-check after each step
        bar = self._bar
        if bar is None:
            return
        desc = f"{self.description}: {ev.stage}"
        if ev.total and bar.total != ev.total:
            bar.total = ev.total
            bar.n = 0
        if self._bar is bar and bar.desc != desc:
            bar.set_description(desc)
        if self._bar is bar and ev.total:
            step = min(ev.done, ev.total) - bar.n
            if step > 0:
                bar.update(step)

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _notify_error(run: CoreRun, exc: BaseException) -> None:
    run.error = exc
    if isinstance(exc, Cancelled):
        show_info(f"{run.description}: cancelled.")
    elif isinstance(exc, USER_ERRORS):
        show_error(str(exc))
    else:  # a bug: keep the traceback in the notification
        notification_manager.dispatch(ErrorNotification(exc))


def _set_enabled(widgets: Iterable[Any], enabled: bool) -> None:
    for w in widgets:
        if hasattr(w, "setEnabled"):  # a Qt widget
            w.setEnabled(enabled)
        else:  # a magicgui widget
            w.enabled = enabled


def run_core(func: Callable[..., Any], *, description: str,
             on_returned: Callable[[Any], None] | None = None,
             on_progress: Callable[[Progress], None] | None = None,
             busy: Iterable[Any] = (), idle: Iterable[Any] = (),
             on_finished: Callable[[CoreRun], None] | None = None) -> CoreRun:
    """Start ``func(progress=..., cancel=...)`` in a napari thread worker.

    Parameters
    ----------
    func : callable
        Called in the worker thread with keyword arguments ``progress`` (a
        :data:`magnipath.progress.ProgressCallback`) and ``cancel`` (a
        :data:`magnipath.progress.CancelCallback`); it must not touch layers
        or widgets. Its return value goes to ``on_returned``.
    description : str
        Shown in the activity dock and in messages (e.g. ``"Tiling"``).
    on_returned : callable, optional
        Called on the main thread with the result; add layers here.
    on_progress : callable, optional
        Called on the main thread with every :class:`Progress` event.
    busy : iterable of widgets
        magicgui or Qt widgets disabled while running (the Run button).
    idle : iterable of widgets
        Widgets enabled only while running (the Cancel button).
    on_finished : callable, optional
        Called on the main thread with the :class:`CoreRun` when it ended in
        any way (after ``on_returned`` or the error notification).

    Returns
    -------
    CoreRun
        Already started; call :meth:`CoreRun.cancel` to stop it.
    """
    run = CoreRun(description)
    busy, idle = list(busy), list(idle)
    run._bar = napari_progress(total=0, desc=description)
    run._relay.event.connect(run._on_progress)
    if on_progress is not None:
        run._relay.event.connect(on_progress)

    def _returned(result: Any) -> None:
        run.result = result
        if on_returned is not None:
            try:
                on_returned(result)
            except USER_ERRORS as e:
                _notify_error(run, e)

    def _finished() -> None:
        run.done = True
        run._close_bar()
        _set_enabled(busy, True)
        _set_enabled(idle, False)
        if on_finished is not None:
            on_finished(run)

    def _warned(w: tuple) -> None:
        show_warning(f"{description}: {w[0]}")

    worker = create_worker(func, progress=run._relay.event.emit, cancel=run._cancel.is_set,
                           _start_thread=False, _ignore_errors=True)
    worker.returned.connect(_returned)
    worker.errored.connect(lambda e: _notify_error(run, e))
    worker.warned.connect(_warned)
    worker.finished.connect(_finished)
    run.worker = worker
    _set_enabled(busy, False)
    _set_enabled(idle, True)
    worker.start()
    return run
