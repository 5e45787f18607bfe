"""The Mitosis dock widget, opened through the manifest, on a small synthetic slide with mitoses."""

from __future__ import annotations

import json

import numpy as np
import pytest
from napari.layers import Image, Points
from napari.utils.notifications import NotificationSeverity

from magnipath.mitosis import PROBABILITY, detect
from qupath_bridge.geojson import read_geojson


@pytest.fixture
def mitosis(make_napari_viewer, mitosis_slide):
    viewer = make_napari_viewer()
    (image,) = viewer.open(str(mitosis_slide.slide), plugin="napari-magnipath")
    (points,) = viewer.open(str(mitosis_slide.mitoses), plugin="napari-magnipath")
    _, widget = viewer.window.add_plugin_dock_widget("napari-magnipath", "Mitosis")
    widget.image.value = image
    widget.points.value = points
    widget.filters.value = "8, 8"   # a tiny CNN: the test checks the plumbing, not skill
    widget.epochs.value = 1
    widget.batch_size.value = 16
    widget.lr.value = "1e-3"
    widget.device.value = "cpu"
    return viewer, widget, image, points


def _errors(notifications):
    return [str(n.message) for n in notifications if n.severity == NotificationSeverity.ERROR]


def _wait(widget, run, qtbot):
    assert run is not None
    qtbot.waitUntil(lambda: run.done, timeout=120_000)
    assert run.error is None, run.error


def test_train_detect_export(mitosis, qtbot, tmp_path, mitosis_slide, notifications, one_thread):
    viewer, widget, image, points = mitosis
    assert isinstance(points, Points) and len(points.data) >= 4
    # NAME.mitoses.geojson next to NAME.tif takes the slide's µm scale
    np.testing.assert_allclose(points.scale, image.scale)
    model = tmp_path / "mitosis-model"
    widget.model.value = model
    _wait(widget, widget.train(), qtbot)
    card = json.loads((model / "card.json").read_text())
    assert card["tile"] == 64 and card["filters"] == [8, 8] and card["mpp"] == pytest.approx(0.25)
    assert widget.trained["positive_tiles"] >= 1 and str(model) in widget.message
    # detect over a region of the slide drawn as a rectangle
    rect = viewer.add_shapes([np.array([[128, 256], [128, 768], [640, 768], [640, 256]])],
                             shape_type="rectangle", scale=image.scale,
                             translate=-np.asarray(image.scale) / 2)  # level-0 px data
    widget.region.value = "drawn shapes"
    widget.shapes.value = rect
    widget.threshold.value = 0.3
    _wait(widget, widget.detect(), qtbot)
    assert _errors(notifications) == []
    det = detect(model, mitosis_slide.slide, region=(256, 128, 512, 512))  # the same call
    np.testing.assert_array_equal(np.isnan(widget.detection.heatmap), np.isnan(det.heatmap))
    np.testing.assert_allclose(np.nan_to_num(widget.detection.heatmap),
                               np.nan_to_num(det.heatmap), atol=1e-5)
    heat, found = widget.heatmap_layer, widget.points_layer
    assert isinstance(heat, Image) and isinstance(found, Points)
    assert heat.data.shape == (8, 8)  # 512 level-0 px / 64 px tiles
    # heat-map cell (0, 0) covers level-0 [256, 320) x [128, 192) of the slide
    np.testing.assert_allclose(heat.data_to_world((-0.5, -0.5)),
                               image.data_to_world((127.5, 255.5)))
    np.testing.assert_allclose(heat.data_to_world((7.5, 7.5)),
                               image.data_to_world((639.5, 767.5)))
    # the detections are the tiles above the threshold, at their centres
    above = det.probs > 0.3
    assert len(found.data) == int(above.sum())
    if above.any():
        x, y, w, h = det.boxes[above][0]
        np.testing.assert_allclose(found.data[0], (y + h / 2, x + w / 2))
        assert found.features[PROBABILITY].iloc[0] == pytest.approx(det.probs[above][0])
    widget.geojson.value = tmp_path / "mitoses.geojson"
    widget.export_button.native.click()
    saved = read_geojson(tmp_path / "mitoses.geojson")
    assert len(saved) == len(found.data)
    assert all(o.classification == "Mitosis" and o.geometry.geom_type == "Point" for o in saved)


def test_train_needs_points_and_a_free_folder(mitosis, tmp_path, notifications):
    _, widget, _, _ = mitosis
    widget.points.value = None
    widget.model.value = tmp_path / "m"
    assert widget.train() is None
    assert any("Mitoses (points)" in e for e in _errors(notifications))
    widget.filters.value = "wide"
    assert widget.detect() is None  # no model folder yet
    assert any("Model folder" in e for e in _errors(notifications))
