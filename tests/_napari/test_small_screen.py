"""All six MagniPath docks open on a 1366 x 768 laptop screen: every widget stays usable.

A real napari window under Xvfb (or Qt's offscreen platform), resized to the
screen, with the six dock widgets added as napari's Plugins menu adds them.
Each dock's form scrolls (:class:`magnipath._napari._jobs.JobWidget`) instead of
squashing its buttons, so the window does not grow past the screen and every
button keeps a usable size with its label unclipped. A screenshot is written
(to ``$MAGNIPATH_SCREENSHOT_DIR`` when set, else the test's tmp folder).
"""

from __future__ import annotations

import os
from pathlib import Path

from qtpy.QtWidgets import QAbstractButton, QPushButton

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
    window.resize(*SCREEN)
    qtbot.wait(200)
    return window, docks


def test_six_docks_fit_a_laptop_screen_with_usable_buttons(make_napari_viewer, qtbot, tmp_path):
    window, docks = _crowded(make_napari_viewer(show=True), qtbot)
    assert window.width() <= SCREEN[0] + 2 and window.height() <= SCREEN[1] + 2, \
        f"the window grew to {window.width()}x{window.height()}"
    out = Path(os.environ.get("MAGNIPATH_SCREENSHOT_DIR") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    assert window.grab().save(str(out / "napari_1366x768_all_docks.png"))
    checked = 0
    for name, (dock, widget) in docks.items():
        assert dock.height() >= 50, f"{name}: dock squashed to {dock.height()} px"
        for button in widget.native.findChildren(QAbstractButton):
            if not isinstance(button, QPushButton) or button.isHidden():
                continue
            w, h = button.width(), button.height()
            hint = button.sizeHint()
            assert w >= MIN_BUTTON[0] and h >= MIN_BUTTON[1], \
                f"{name}: button {button.text()!r} is {w}x{h} px"
            assert h >= hint.height() - 2, \
                f"{name}: button {button.text()!r} squashed to {h} of {hint.height()} px"
            text_w = button.fontMetrics().horizontalAdvance(button.text())
            assert w >= text_w + 4, f"{name}: label {button.text()!r} clipped ({w} px)"
            checked += 1
    assert checked >= 10  # every dock has buttons: Run, Cancel, Export...


def test_a_squeezed_dock_scrolls_instead_of_shrinking_its_form(make_napari_viewer, qtbot):
    _, docks = _crowded(make_napari_viewer(show=True), qtbot)
    _, widget = docks["Inference"]
    area = widget.native
    form = widget.form
    assert area.widget() is form
    # the form keeps at least its minimum height; the area scrolls when it is smaller
    assert form.height() >= form.minimumSizeHint().height() - 2
    if area.viewport().height() < form.minimumSizeHint().height():
        assert area.verticalScrollBar().maximum() > 0
