"""What every MagniPath dock widget shares: layer choices, folders, one job at a time.

:class:`JobWidget` is a magicgui ``Container`` that runs at most one core call
at a time through :func:`._worker.run_core`, shows what it is doing in a
status line, and offers ``cancel()`` for its Cancel button. Its form sits in
a vertical scroll area (:attr:`JobWidget.native` is that area, which napari
docks), so on a small screen a dock scrolls instead of squashing its
buttons; and a MagniPath dock opened where another one is docked joins it
as a tab (:func:`tabify_with_siblings`), so each widget gets the full
height of the window (drag a tab out to see two side by side). The helpers turn
widget values into the plain values the core takes and raise a
:class:`magnipath.MagnipathError` naming the field when a value is unusable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from magicgui.widgets import Container, Label
from napari.utils.notifications import show_warning
from qtpy.QtCore import QEvent, QObject, QTimer

from magnipath._errors import MagnipathError
from magnipath._napari._worker import CoreRun, run_core
from magnipath.progress import Progress

DEVICES = ("auto", "cpu", "cuda", "mps")
"""Device choices: ``auto`` = CUDA, then Apple MPS, then the CPU."""


def layer_choices(viewer: Any, *types: type) -> Callable[[Any], list[tuple[str, Any]]]:
    """A magicgui ``choices`` callable listing the viewer's layers of ``types``."""
    def choices(_: Any) -> list[tuple[str, Any]]:
        return [(lay.name, lay) for lay in viewer.layers if isinstance(lay, types)]
    return choices


def path_value(widget: Any, field: str, error: type[MagnipathError] = MagnipathError,
               *, must_exist: bool = False, missing: str = "choose one first") -> Path:
    """The path typed or chosen in a magicgui ``FileEdit``, resolved.

    Raises
    ------
    MagnipathError (``error``)
        When nothing was chosen (``"{field}: {missing}"``), or ``must_exist``
        and it does not exist.
    """
    raw = str(widget.line_edit.value).strip()
    if not raw or raw == ".":
        raise error(f"{field}: {missing}")
    path = Path(raw).expanduser().resolve()
    if must_exist and not path.exists():
        raise error(f"{field}: {path} does not exist")
    return path


def slide_of(image: Any, field: str = "Slide image",
             error: type[MagnipathError] = MagnipathError) -> tuple[Path, float | None]:
    """Slide file and level-0 mpp of an image layer opened by MagniPath.

    Raises
    ------
    MagnipathError (``error``)
        When no layer is chosen, or the layer was not opened by MagniPath's reader.
    """
    if image is None:
        raise error(f"{field}: open a slide first (File > Open, or the sample 'MagniPath "
                    "synthetic slide') and pick its layer")
    meta = (image.metadata or {}).get("magnipath") or {}
    if not meta.get("path"):
        raise error(f"{field}: layer {image.name!r} was not opened by MagniPath; open the "
                    "slide file with the MagniPath reader")
    return Path(meta["path"]), meta.get("mpp")


def parse_float(text: str, field: str, error: type[MagnipathError] = MagnipathError) -> float:
    """A number typed in a text field (``"5e-5"``, ``"0.001"``)."""
    try:
        return float(str(text).strip())
    except ValueError:
        raise error(f"{field}: {text!r} is not a number (e.g. 0.001 or 5e-5)") from None


def breakable(text: str) -> str:
    """``text`` with a zero-width space after every ``/`` and ``\\``: long paths wrap."""
    return text.replace("/", "/\u200b").replace("\\", "\\\u200b")


def wrap_label(label: Any) -> None:
    """Let a magicgui ``Label`` wrap its text, left aligned, without widening its dock."""
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QSizePolicy

    native = label.native
    native.setWordWrap(True)
    native.setAlignment(Qt.AlignLeft | Qt.AlignVCenter)
    native.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
    native.setTextInteractionFlags(Qt.TextSelectableByMouse)


def _file_edits(container: Any) -> list[Any]:
    """The magicgui ``FileEdit`` widgets in ``container`` and its sub-containers."""
    from magicgui.widgets import FileEdit

    found = []
    for w in container:
        if isinstance(w, FileEdit):
            found.append(w)
        elif isinstance(w, Container):
            found += _file_edits(w)
    return found


def show_path_end(edit: Any) -> None:
    """Scroll a ``FileEdit``'s text so its end (the file or folder name) is visible.

    The full path is its tooltip.
    """
    line = edit.line_edit.native
    text = line.text()
    line.setCursorPosition(len(text))
    line.setToolTip(text)


class _DockWatch(QObject):
    """Calls :func:`tabify_with_siblings` once the watched widget has a new parent (a dock).

    The call is deferred to the event loop: napari puts the widget in its dock
    before it adds the dock to the window.
    """

    def __init__(self, widget: Any) -> None:
        super().__init__(widget)
        self._widget = widget
        widget.installEventFilter(self)

    def eventFilter(self, obj: Any, event: Any) -> bool:
        if obj is self._widget and event.type() == QEvent.Type.ParentChange:
            QTimer.singleShot(0, self._tabify)
        return False

    def _tabify(self) -> None:
        try:
            tabify_with_siblings(self._widget)
        except RuntimeError:  # deleted meanwhile
            pass


def tabify_with_siblings(widget: Any) -> bool:
    """Tab the dock holding ``widget`` with another docked MagniPath widget in its area.

    Does nothing (returns ``False``) when ``widget`` is not in a dock of a main
    window yet, floats, was tabbed already, or no other MagniPath dock shares
    its area; otherwise the new dock becomes the current tab.
    """
    from qtpy.QtWidgets import QDockWidget, QMainWindow

    try:
        dock = widget.parent()
        while dock is not None and not isinstance(dock, QDockWidget):
            dock = dock.parent()
        window = dock.parent() if dock is not None else None
        if (not isinstance(window, QMainWindow) or dock.isFloating()
                or dock.property("magnipath_tabbed")):
            return False
        area = window.dockWidgetArea(dock)
        for other in window.findChildren(QDockWidget):
            if (other is dock or other.isFloating() or window.dockWidgetArea(other) != area
                    or not isinstance(getattr(other.widget(), "_magic_widget", None),
                                      JobWidget)):
                continue
            window.tabifyDockWidget(other, dock)
            dock.setProperty("magnipath_tabbed", True)
            dock.raise_()
            return True
    except RuntimeError:  # the widget or its dock was deleted meanwhile
        return False
    return False


def fit_scroll_area(area: Any) -> None:
    """Style a dock's scroll area: no frame, a small minimum height.

    The area may shrink to a few rows (its content scrolls, buttons keep their
    size) so that six docks fit a 1366 x 768 screen.
    """
    from qtpy.QtWidgets import QFrame, QSizePolicy

    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setMinimumHeight(80)
    area.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)


class JobWidget(Container):
    """A dock widget running one core call at a time (see the module docstring).

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
    name : str
        Shown in messages (``"Training"``...).
    widgets : iterable
        The magicgui widgets, top to bottom; a status line is added at the end.
    """

    def __init__(self, napari_viewer: Any, name: str, widgets: Iterable[Any]) -> None:
        self._viewer = napari_viewer
        self._name = name
        self.status = Label(value="")
        self.message = ""
        self.current: CoreRun | None = None
        super().__init__(widgets=[*widgets, self.status], scrollable=True)
        wrap_label(self.status)
        fit_scroll_area(self.native)
        for edit in _file_edits(self):
            show_path_end(edit)
            edit.changed.connect(lambda *_, e=edit: show_path_end(e))
        self._dock_watch = _DockWatch(self.native)

    @property
    def native(self) -> Any:
        """The Qt widget napari docks: the scroll area holding the form (see :attr:`form`)."""
        return self.root_native_widget

    @property
    def form(self) -> Any:
        """The Qt widget holding the fields' layout (inside the scroll area)."""
        return self._widget._mgui_get_native_widget()

    def say(self, text: str) -> None:
        """Show ``text`` in the status line (kept whole in :attr:`message`)."""
        self.message = text
        self.status.value = breakable(text)
        self.status.tooltip = text

    def busy(self) -> bool:
        """Whether a job runs (then says so in a warning)."""
        if self.current is not None and not self.current.done:
            show_warning(f"{self._name}: wait for the running job to end, or cancel it.")
            return True
        return False

    def start(self, job: Callable[..., Any], description: str,
              on_returned: Callable[[Any], None], *, busy: Iterable[Any] = (),
              idle: Iterable[Any] = (),
              on_progress: Callable[[Progress], None] | None = None) -> CoreRun:
        """Run ``job(progress, cancel)`` in a thread worker; layers go in ``on_returned``."""
        self.say(f"{description}...")

        def finished(run: CoreRun) -> None:
            if run.error is not None:
                self.say(f"{description}: cancelled" if run.cancelled
                         else f"{description}: failed")

        self.current = run_core(job, description=description, on_returned=on_returned,
                                on_progress=on_progress, busy=busy, idle=idle,
                                on_finished=finished)
        return self.current

    def cancel(self, *_: Any) -> None:
        """Ask the running job to stop (the Cancel button)."""
        if self.current is not None:
            self.current.cancel()
