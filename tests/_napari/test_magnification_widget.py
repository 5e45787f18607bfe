"""The Magnification dock widget, opened through the manifest.

The answer of an estimator on synthetic tissue is not something a test can
know; what the widget must get right is which pixels it hands to the core. So
each result is compared with the core function called directly on the pixels
the widget should have read.
"""

from __future__ import annotations

import numpy as np
from napari.layers import Shapes
from napari.utils.notifications import NotificationSeverity

from magnipath._napari._magnification_widget import TILES_LAYER
from magnipath._napari._regions import camera, view_box
from magnipath.magnification import MAGNIFICATIONS, estimate, suggest_mpp
from magnipath.slide import open_slide

from .conftest import run_widget


def test_estimate_of_a_picture_without_metadata(magnification, qtbot, synthetic):
    viewer, widget = magnification
    with open_slide(synthetic.slide) as s:       # a "figure": 20x pixels, no metadata
        pixels = s.read_region((0, 0, 1024, 1024), mpp=0.5)
    layer = viewer.add_image(pixels, name="figure.png", rgb=True)
    widget.image.value = layer
    widget.mode.value = "tiles"
    widget.max_tiles.value = 4
    res = run_widget(widget, qtbot)
    assert res == estimate(pixels, mode="tiles", max_tiles=4)
    assert res["is_estimate"] and res["magnification"] in MAGNIFICATIONS
    assert "an estimate" in widget.result_label.value and "physical" in widget.result_label.value
    tiles = viewer.layers[TILES_LAYER]
    assert isinstance(tiles, Shapes) and len(tiles.data) == res["n_tiles"]
    x, y, w, h = res["tile_boxes"][0]  # a tile box in image pixels, drawn on those pixels
    np.testing.assert_allclose(tiles.data_to_world(tiles.data[0][0]),
                               layer.data_to_world((y - 0.5, x - 0.5)))
    np.testing.assert_allclose(tiles.data_to_world(tiles.data[0][2]),
                               layer.data_to_world((y + h - 0.5, x + w - 0.5)))


def test_current_view_and_whole_slide(magnification, qtbot, synthetic, notifications):
    viewer, widget = magnification
    (image,) = viewer.open(str(synthetic.slide), plugin="napari-magnipath")
    widget.image.value = image
    widget.region.value = "current view"
    camera(viewer).center = (100.0, 120.0)
    camera(viewer).zoom = 3.0
    x, y, w, h = view_box(viewer, image)
    res = run_widget(widget, qtbot)
    assert res == estimate(np.asarray(image.data[0][y:y + h, x:x + w]))
    assert "the file says: 40x" in widget.result_label.value
    # the whole of a slide: tissue tiles from the file, as 'magnification suggest-mpp'
    widget.region.value = "whole image"
    res = run_widget(widget, qtbot)
    assert res == suggest_mpp(synthetic.slide)[1]
    assert [n for n in notifications if n.severity == NotificationSeverity.ERROR] == []


def test_no_image_is_an_error(magnification, notifications):
    _, widget = magnification
    assert widget.run() is None
    assert any("Image" in str(n.message) for n in notifications
               if n.severity == NotificationSeverity.ERROR)
