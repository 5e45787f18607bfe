"""The Tiling dock widget, opened through the manifest, on a small synthetic slide."""

from __future__ import annotations

import json

import numpy as np
import pytest
from napari.layers import Labels, Shapes
from napari.utils.notifications import NotificationSeverity

from magnipath._napari._tiling_widget import CONTEXT_PRESETS, GRID_LAYER, MASK_LAYER
from magnipath.dataset import open_dataset
from qupath_bridge.geojson import read_geojson


@pytest.fixture
def tiling(make_napari_viewer, synthetic):
    """A viewer with the synthetic slide and its ground truth, and the Tiling widget."""
    viewer = make_napari_viewer()
    (image,) = viewer.open(str(synthetic.slide), plugin="napari-magnipath")
    truth = viewer.open(str(synthetic.truth), plugin="napari-magnipath")[0]
    _, widget = viewer.window.add_plugin_dock_widget("napari-magnipath", "Tiling")
    widget.image.value = image
    widget.annotations.value = truth
    widget.magnification.value = 10.0   # 1 µm/px: a 64 px tile is 256 level-0 px
    widget.tile_size.value = 64
    widget.min_tissue.value = 0.0
    return viewer, widget, image, truth


def _errors(notifications):
    return [str(n.message) for n in notifications if n.severity == NotificationSeverity.ERROR]


def test_run_writes_the_dataset(tiling, qtbot, tmp_path, synthetic, notifications):
    _, widget, _, _ = tiling
    names = sorted({o.classification for o in read_geojson(synthetic.truth)
                    if o.classification and o.geometry.geom_type != "Point"})
    # the class map is filled from the layer's classes
    filled = dict(item.split("=") for item in widget.classes.value.split(","))
    assert sorted(filled) == names
    out = tmp_path / "dataset"
    widget.output.value = out
    widget.preset.value = CONTEXT_PRESETS[1]  # DMMN: target + 2 context inputs
    widget.run_button.native.click()
    run = widget.current
    assert run is not None and not widget.run_button.enabled
    qtbot.waitUntil(lambda: run.done, timeout=60_000)
    assert _errors(notifications) == []
    assert widget.run_button.enabled
    ds = open_dataset(out)
    assert len(ds) == 16  # 1024 px / 256 px = 4 x 4 tiles, all kept (min tissue 0)
    assert ds.images(0).shape == (3, 64, 64, 3)
    assert ds.geometry.target_mpp == pytest.approx(1.0)
    assert [i.mpp for i in ds.geometry.inputs] == pytest.approx([1.0, 2.0, 4.0])
    assert sorted(ds.class_map.names) == names
    manifest = json.loads((out / "manifest.json").read_text())
    boxes = sorted(tuple(r["box"]) for r in ds.records)
    assert boxes == sorted((x, y, 256, 256) for y in range(0, 1024, 256)
                           for x in range(0, 1024, 256))
    assert manifest["n_tiles"] == 16
    # the file's own mpp, not an override: the widget passes the layer's mpp_source on
    assert manifest["slides"][0]["mpp_source"] not in (None, "override")
    # the labels come from the annotations: some tile has labelled pixels
    assert any((ds.label(i) != ds.class_map.ignore_index).any() for i in range(len(ds)))
    assert "16 tiles" in widget.status.value


def test_preview_adds_grid_and_tissue_mask(tiling, qtbot):
    viewer, widget, image, _ = tiling
    widget.min_tissue.value = 0.0
    widget.preview_button.native.click()
    run = widget.current
    qtbot.waitUntil(lambda: run.done, timeout=60_000)
    assert run.error is None
    grid, mask = viewer.layers[GRID_LAYER], viewer.layers[MASK_LAYER]
    assert isinstance(grid, Shapes) and isinstance(mask, Labels)
    assert len(grid.data) == 16
    # tile rectangles are level-0 boxes in the slide's µm frame
    corner = grid.data_to_world(grid.data[-1][2])
    np.testing.assert_allclose(corner, image.data_to_world((1023.5, 1023.5)))
    # the mask covers the slide
    far = mask.data_to_world(np.array(mask.data.shape) - 0.5)
    np.testing.assert_allclose(far, image.data_to_world((1023.5, 1023.5)), atol=1e-6)


def test_missing_class_is_a_notification(tiling, qtbot, tmp_path, notifications):
    _, widget, _, _ = tiling
    first = widget.classes.value.split(",")[0]
    widget.classes.value = first      # every other annotation class is missing
    out = tmp_path / "never"
    widget.output.value = out
    widget.run_button.native.click()
    run = widget.current
    qtbot.waitUntil(lambda: run.done, timeout=60_000)
    errors = _errors(notifications)
    assert len(errors) == 1 and "not in the class map" in errors[0]
    assert not out.exists() and widget.run_button.enabled


def test_cancel_leaves_nothing(tiling, qtbot, tmp_path, notifications):
    _, widget, _, _ = tiling
    out = tmp_path / "cancelled"
    widget.output.value = out
    widget.run_button.native.click()
    run = widget.current
    assert widget.cancel_button.enabled
    widget.cancel_button.native.click()
    qtbot.waitUntil(lambda: run.done, timeout=60_000)
    assert run.cancelled and run.result is None
    assert not out.exists()
    assert _errors(notifications) == []
    assert "cancelled" in widget.status.value


def test_bad_values_are_reported_before_running(tiling, notifications):
    _, widget, _, _ = tiling
    assert widget.output.line_edit.value == ""  # no folder chosen yet
    assert widget.run() is None
    assert any("Dataset folder" in e for e in _errors(notifications))
    widget.preset.value = CONTEXT_PRESETS[2]
    widget.context.value = "ten"
    assert widget.preview() is None
    assert any("Context magnifications" in e for e in _errors(notifications))


def test_the_only_shapes_layer_is_preselected_and_paths_show_their_end(make_napari_viewer,
                                                                        synthetic, tmp_path):
    viewer = make_napari_viewer()
    viewer.open(str(synthetic.slide), plugin="napari-magnipath")
    _, widget = viewer.window.add_plugin_dock_widget("napari-magnipath", "Tiling")
    assert widget.annotations.value is None  # no Shapes layer yet
    (truth,) = viewer.open(str(synthetic.truth), plugin="napari-magnipath")[:1]
    assert isinstance(truth, Shapes) and widget.annotations.value is truth
    assert widget.classes.value  # filled from the preselected layer's classes
    # a second Shapes layer: the choice stays the user's
    viewer.add_shapes(name="drawn")
    assert widget.annotations.value is truth
    # a long dataset path shows its end (the folder name), the full path is the tooltip
    long_path = tmp_path / ("a-very-long-folder-name-" * 6) / "my-dataset"
    widget.output.value = long_path
    line = widget.output.line_edit.native
    assert line.cursorPosition() == len(line.text()) and line.toolTip() == str(long_path)
