"""The shared worker pattern: progress, cancel, main-thread results, errors as notifications."""

from __future__ import annotations

import threading
import time

from magicgui.widgets import PushButton
from napari.utils.notifications import NotificationSeverity

from magnipath._errors import AnnotationError
from magnipath._napari._worker import run_core
from magnipath.progress import check_cancel, report


def _wait(qtbot, run, timeout=10_000):
    qtbot.waitUntil(lambda: run.done, timeout=timeout)


def test_result_progress_and_buttons(qtbot, notifications):
    button, cancel_button = PushButton(), PushButton(enabled=False)
    seen_threads, events, states = [], [], []

    def job(progress, cancel):
        for i in range(3):
            report(progress, "step", i + 1, 3)
        states.append(threading.current_thread() is threading.main_thread())
        return 42

    def returned(value):
        seen_threads.append(threading.current_thread() is threading.main_thread())
        states.append((button.enabled, cancel_button.enabled))  # still busy here

    run = run_core(job, description="Test job", on_returned=returned,
                   on_progress=events.append, busy=[button], idle=[cancel_button])
    assert not button.enabled and cancel_button.enabled
    _wait(qtbot, run)
    assert run.result == 42 and run.error is None
    assert seen_threads == [True]
    assert states == [False, (False, True)]  # the job ran off the main thread
    assert [(e.stage, e.done, e.total) for e in events] == [("step", 1, 3), ("step", 2, 3),
                                                            ("step", 3, 3)]
    assert button.enabled and not cancel_button.enabled


def test_magnipath_error_becomes_its_notification(qtbot, notifications):
    button = PushButton()

    def job(progress, cancel):
        raise AnnotationError("annotation classes ['TLS'] are not in the class map")

    run = run_core(job, description="Test job", busy=[button])
    _wait(qtbot, run)
    assert isinstance(run.error, AnnotationError)
    errors = [n for n in notifications if n.severity == NotificationSeverity.ERROR]
    assert [str(n.message) for n in errors] == [
        "annotation classes ['TLS'] are not in the class map"]
    assert button.enabled


def test_unexpected_error_is_not_swallowed(qtbot, notifications):
    def job(progress, cancel):
        raise ValueError("a bug")

    run = run_core(job, description="Test job")
    _wait(qtbot, run)
    errors = [n for n in notifications if n.severity == NotificationSeverity.ERROR]
    assert len(errors) == 1 and "a bug" in str(errors[0].message)
    assert getattr(errors[0], "exception", None) is run.error  # traceback kept


def test_cancel_stops_the_job(qtbot, notifications):
    started = threading.Event()
    steps = []

    def job(progress, cancel):
        started.set()
        for i in range(1000):
            check_cancel(cancel)
            steps.append(i)
            time.sleep(0.005)
        return "finished"

    run = run_core(job, description="Long job")
    assert started.wait(5)
    run.cancel()
    _wait(qtbot, run)
    assert run.result is None and run.cancelled
    assert len(steps) < 1000
    assert any("cancelled" in str(n.message) for n in notifications
               if n.severity == NotificationSeverity.INFO)


def test_core_warnings_become_notifications(qtbot, notifications):
    import warnings

    def job(progress, cancel):
        warnings.warn("3 polygons were repaired", UserWarning, stacklevel=1)
        return 1

    run = run_core(job, description="Tiling")
    _wait(qtbot, run)
    assert any("3 polygons were repaired" in str(n.message) for n in notifications
               if n.severity == NotificationSeverity.WARNING)
