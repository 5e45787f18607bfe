"""All six MagniPath docks open on a 1366 x 768 laptop screen: every widget stays usable.

A real napari window under Xvfb (or Qt's offscreen platform), resized to the
screen, with the six dock widgets added as napari's Plugins menu adds them.
MagniPath docks join each other as tabs and each form scrolls
(:class:`magnipath._napari._jobs.JobWidget`) instead of squashing its buttons,
so the window does not grow past the screen and every button keeps a usable
size with its label unclipped. A screenshot per tab is written (to
``$MAGNIPATH_SCREENSHOT_DIR`` when set, else the test's tmp folder).
"""

from __future__ import annotations

import os
from pathlib import Path

from qtpy.QtWidgets import QPushButton

from magnipath._napari._jobs import tabify_with_siblings

SCREEN = (1366, 768)
WIDGETS = ("Tiling", "Training", "Inference", "QuPath", "Magnification", "Mitosis")
MIN_BUTTON = (48, 20)
"""Smallest usable push button, px (width, height)."""


def _crowded(viewer, qtbot):
    window = viewer.window._qt_window
    window.resize(*SCREEN)
    docks = {}
    for name in WIDGETS:
        dock, widget = viewer.window.add_plugin_dock_widget("napari-magnipath", name)
        docks[name] = (dock, widget)
        qtbot.wait(20)
    window.resize(*SCREEN)
    qtbot.wait(200)
    return window, docks


def _check_buttons(name, widget) -> int:
    n = 0
    for button in widget.native.findChildren(QPushButton):
        if button.isHidden():
            continue
        w, h = button.width(), button.height()
        hint = button.sizeHint()
        assert w >= MIN_BUTTON[0] and h >= MIN_BUTTON[1], \
            f"{name}: button {button.text()!r} is {w}x{h} px"
        assert h >= hint.height() - 2, \
            f"{name}: button {button.text()!r} squashed to {h} of {hint.height()} px"
        text_w = button.fontMetrics().horizontalAdvance(button.text())
        assert w >= text_w + 4, f"{name}: label {button.text()!r} clipped ({w} px)"
        n += 1
    return n


def test_six_docks_fit_a_laptop_screen_with_usable_buttons(make_napari_viewer, qtbot, tmp_path):
    window, docks = _crowded(make_napari_viewer(show=True), qtbot)
    assert window.width() <= SCREEN[0] + 2 and window.height() <= SCREEN[1] + 2, \
        f"the window grew to {window.width()}x{window.height()}"
    first = docks[WIDGETS[0]][0]
    assert {d.objectName() for d in window.tabifiedDockWidgets(first)} == \
        {d.objectName() for d, _ in list(docks.values())[1:]}
    out = Path(os.environ.get("MAGNIPATH_SCREENSHOT_DIR") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    checked = 0
    for name, (dock, widget) in docks.items():
        dock.raise_()
        qtbot.wait(50)
        assert widget.native.isVisible()
        # the tab has (nearly) the full height of the window
        assert dock.height() >= SCREEN[1] // 2, f"{name}: dock only {dock.height()} px high"
        assert window.grab().save(str(out / f"napari_1366x768_{name.lower()}.png"))
        checked += _check_buttons(name, widget)
    assert checked >= 10  # every dock has buttons: Run, Cancel, Export...


def test_without_tabs_each_squeezed_dock_scrolls(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    window.resize(*SCREEN)
    docks = {}
    for name in WIDGETS:  # docks added with napari's own call, then split apart again
        docks[name] = viewer.window.add_plugin_dock_widget("napari-magnipath", name)
        qtbot.wait(20)
    for dock, _ in docks.values():
        window.removeDockWidget(dock)
        dock.setProperty("magnipath_tabbed", False)
    from qtpy.QtCore import Qt

    for dock, _ in docks.values():
        window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
        dock.show()
    window.resize(*SCREEN)
    qtbot.wait(200)
    assert window.height() <= SCREEN[1] + 2
    for name, (dock, widget) in docks.items():
        assert widget.native.isVisible() and dock.height() < SCREEN[1] // 3
        _check_buttons(name, widget)
        form = widget.form
        assert form.height() >= form.minimumSizeHint().height() - 2
        if widget.native.viewport().height() < form.minimumSizeHint().height():
            assert widget.native.verticalScrollBar().maximum() > 0


def test_tabify_ignores_widgets_outside_a_dock(qtbot):
    from qtpy.QtWidgets import QWidget

    w = QWidget()
    qtbot.addWidget(w)
    assert tabify_with_siblings(w) is False
