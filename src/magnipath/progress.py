"""Progress reporting and cancellation shared by the CLI and napari.

The core never prints. Long functions take ``progress`` (a callable receiving
:class:`Progress` events) and ``cancel`` (a callable returning ``True`` when the
user asked to stop). The CLI turns events into a progress bar; the napari
widgets turn them into activity-bar updates and live plots.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from magnipath._errors import Cancelled


@dataclass(frozen=True)
class Progress:
    """One progress event.

    Attributes
    ----------
    stage : str
        What is running (``"synth"``, ``"tile"``, ``"train/batch"``, ...).
    done : int
        Units of work finished so far in this stage.
    total : int or None
        Units of work in this stage, when known.
    info : dict
        Extra numbers for the stage (loss, metrics, paths...).
    """

    stage: str
    done: int
    total: int | None = None
    info: dict[str, Any] = field(default_factory=dict)


ProgressCallback: TypeAlias = Callable[[Progress], None]
CancelCallback: TypeAlias = Callable[[], bool]


def report(progress: ProgressCallback | None, stage: str, done: int,
           total: int | None = None, **info: Any) -> None:
    """Send one event to ``progress`` if a callback was given."""
    if progress is not None:
        progress(Progress(stage, done, total, dict(info)))


def check_cancel(cancel: CancelCallback | None) -> None:
    """Raise :class:`Cancelled` if ``cancel`` says the user asked to stop."""
    if cancel is not None and cancel():
        raise Cancelled("cancelled by the user")
