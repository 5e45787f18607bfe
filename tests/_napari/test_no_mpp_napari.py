"""A slide without mpp in napari: it opens in pixels with a warning, and the Magnification
widget's estimate can be applied as the layer's scale, marked as an estimate (issue 7)."""

from __future__ import annotations

import numpy as np
import pytest
from napari.utils.notifications import NotificationSeverity

from magnipath._napari._jobs import slide_of
from magnipath._napari._magnification_widget import TILES_LAYER
from magnipath.magnification import suggest_mpp
from magnipath.synth import SynthConfig, make_layout, render_region

from .conftest import SLIDE_MPP, run_widget, write_pyramid


@pytest.fixture(scope="module")
def tissue() -> np.ndarray:
    """1024 x 1024 px of synthetic H&E at 40x."""
    return render_region(make_layout(SynthConfig(width=1024, height=1024, seed=3)),
                         (0, 0, 1024, 1024))


@pytest.fixture
def nompp(tmp_path, tissue):
    return write_pyramid(tmp_path / "nompp.tif", tissue, None)


def _warnings(notifications):
    return [str(n.message) for n in notifications if n.severity == NotificationSeverity.WARNING]


def test_slide_without_mpp_opens_in_pixels_and_points_to_the_widget(make_napari_viewer,
                                                                    nompp, notifications):
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(nompp), plugin="napari-magnipath")
    assert tuple(layer.scale) == (1.0, 1.0)
    assert tuple(str(u) for u in layer.units) == ("pixel", "pixel")
    meta = layer.metadata["magnipath"]
    assert meta["mpp"] is None and meta["mpp_source"] == "unknown"
    (msg,) = [m for m in _warnings(notifications) if "nompp.tif" in m]
    assert "no pixel size" in msg and "Magnification" in msg and "Apply as layer scale" in msg
    assert slide_of(layer) == (nompp.resolve(), None)  # Tiling/Inference: no mpp yet


def test_apply_the_estimate_as_the_layer_scale(magnification, qtbot, nompp, notifications):
    viewer, widget = magnification
    (image,) = viewer.open(str(nompp), plugin="napari-magnipath")
    widget.image.value = image
    assert not widget.apply_button.enabled  # nothing estimated yet
    res = run_widget(widget, qtbot)
    expected, details = suggest_mpp(nompp)
    assert res == details and expected is not None
    assert "no known pixel size" in widget.result_label.value
    assert widget.apply_button.enabled
    tiles = viewer.layers[TILES_LAYER]
    corner = tiles.data_to_world(tiles.data[0][0])

    widget.apply_button.native.click()
    assert tuple(image.scale) == pytest.approx((expected, expected))
    assert tuple(str(u) for u in image.units) == ("micrometer", "micrometer")
    meta = image.metadata["magnipath"]
    assert meta["mpp"] == pytest.approx(expected)
    assert meta["mpp_source"] == "estimated (physical)"
    assert meta["mpp_estimate"]["magnification"] == details["magnification"]
    assert meta["slide"] is not None and meta["path"] == str(nompp.resolve())
    assert image.name == f"nompp.tif [≈{details['magnification']:.3g}x estimated]"
    assert "ESTIMATE" in widget.applied_label.value
    assert any("ESTIMATE" in m for m in _warnings(notifications))
    assert not widget.apply_button.enabled
    # the voting tiles still lie on the same pixels, now in µm
    x, y, _, _ = res["tile_boxes"][0]
    np.testing.assert_allclose(tiles.data_to_world(tiles.data[0][0]),
                               image.data_to_world((y - 0.5, x - 0.5)))
    np.testing.assert_allclose(tiles.data_to_world(tiles.data[0][0]), np.multiply(corner,
                                                                                  expected))
    # what the Tiling and Inference widgets read: the estimated mpp
    assert slide_of(image) == (nompp.resolve(), pytest.approx(expected))

    # estimating again offers to apply again (an estimate replaces an estimate)
    res = run_widget(widget, qtbot)
    assert "applied to the layer before" in widget.result_label.value
    assert widget.apply_button.enabled
    widget.apply_button.native.click()
    assert image.name.count("estimated]") == 1


def test_an_estimate_does_not_replace_the_file_mpp(magnification, qtbot, slide_path,
                                                   notifications):
    viewer, widget = magnification
    (image,) = viewer.open(str(slide_path), plugin="napari-magnipath")
    widget.image.value = image
    widget.mode.value = "center"
    widget.region.value = "current view"
    run_widget(widget, qtbot)
    assert not widget.apply_button.enabled
    widget.result["mpp_estimate"] = 0.25  # whatever it found: the button must refuse it
    assert widget.apply() is None
    assert tuple(image.scale) == (SLIDE_MPP, SLIDE_MPP)
    assert image.metadata["magnipath"]["mpp_source"] == "tiff-resolution"
    assert any("does not replace" in str(n.message) for n in notifications
               if n.severity == NotificationSeverity.ERROR)


def test_apply_to_a_picture_layer(magnification, qtbot, tissue):
    viewer, widget = magnification
    layer = viewer.add_image(tissue[::2, ::2], name="figure.png", rgb=True)  # 20x pixels
    widget.image.value = layer
    res = run_widget(widget, qtbot)
    assert res["mpp_estimate"] is not None and widget.apply_button.enabled
    assert widget.apply() == pytest.approx(res["mpp_estimate"])
    assert tuple(layer.scale) == pytest.approx((res["mpp_estimate"],) * 2)
    assert layer.metadata["magnipath"]["mpp_source"] == "estimated (physical)"
