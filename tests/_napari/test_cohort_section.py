"""The Inference widget's cohort section: every slide of a folder through the cohort engine."""

from __future__ import annotations

import shutil

import numpy as np
from napari.layers import Labels, Shapes


def test_run_on_all_slides_then_load_one(make_napari_viewer, synthetic, constant_model,
                                         tmp_path, qtbot, notifications, one_thread):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-magnipath", "Inference")
    folder = tmp_path / "slides"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(synthetic.slide, folder / "one.tif")
    shutil.copy(synthetic.slide, folder / "sub" / "two.tif")
    (folder / "bad.tif").write_bytes(b"not a slide")
    widget.model.value = constant_model
    widget.device.value = "cpu"
    widget.output.value = tmp_path / "pred"
    section = widget.cohort
    section.source.value = folder
    section.workers.value = 1
    section.run_button.native.click()
    run = widget.current
    assert run is not None
    qtbot.waitUntil(lambda: run.done, timeout=120_000)
    assert run.error is None, run.error
    assert section.states["one"] == "done" and section.states["two"] == "done"
    assert section.states["bad"].startswith("failed") and "bad.tif" in section.states["bad"]
    assert any("1 of 3 slides failed" in str(n.message) for n in notifications)
    assert list(section.pick.choices) == ["one", "two"]
    section.pick.value = "two"
    labels, objects = section.load()
    assert isinstance(labels, Labels) and isinstance(objects, Shapes)
    assert labels.name == "two prediction" and len(objects.data) == 1
    assert np.unique(np.asarray(labels.data)).size >= 1
