"""The Inference dock widget, opened through the manifest, on a small synthetic slide.

Geometry is tested with a model whose prediction is known exactly (a real
DSMN-S2 that says "Tumor" everywhere, see ``constant_model``): the label map and
the objects must then cover exactly the chosen region of the slide. A model
trained for a moment (``tiny_model``) checks the classes and colours of a real
training run.
"""

from __future__ import annotations

import numpy as np
import pytest
from napari.layers import Labels, Shapes
from napari.utils.notifications import NotificationSeverity

from magnipath._napari._frames import vector_frame
from magnipath._napari._regions import camera, view_box
from magnipath._napari._writer import write_labels
from magnipath.checkpoint import ModelCard
from magnipath.classes import ClassMap
from qupath_bridge.geojson import read_geojson
from qupath_bridge.project import qupath_available

from .conftest import CONSTANT_COLORS

MPP = 0.25  # the synthetic slide's level-0 µm/px


@pytest.fixture
def inference(make_napari_viewer, synthetic, tmp_path, one_thread):
    viewer = make_napari_viewer()
    (image,) = viewer.open(str(synthetic.slide), plugin="napari-magnipath")
    _, widget = viewer.window.add_plugin_dock_widget("napari-magnipath", "Inference")
    widget.image.value = image
    widget.device.value = "cpu"
    widget.batch_size.value = 4
    widget.output.value = tmp_path / "predictions"
    return viewer, widget, image


def _errors(notifications):
    return [str(n.message) for n in notifications if n.severity == NotificationSeverity.ERROR]


def _run(widget, qtbot):
    widget.run_button.native.click()
    run = widget.current
    assert run is not None and not widget.run_button.enabled
    qtbot.waitUntil(lambda: run.done, timeout=60_000)
    assert run.error is None, run.error
    return run


def test_labels_and_objects_cover_the_drawn_rectangle(inference, qtbot, constant_model,
                                                      tmp_path, notifications):
    viewer, widget, image = inference
    # a rectangle drawn over the slide: level-0 x 256..768, y 128..512
    rect = viewer.add_shapes([np.array([[128, 256], [128, 768], [512, 768], [512, 256]])],
                             shape_type="rectangle", name="region", **vector_frame(MPP))
    widget.model.value = constant_model
    assert "Tumor" in widget.card.value and "10x" in widget.card.value  # the card is shown
    widget.region.value = "drawn shapes"
    widget.shapes.value = rect
    widget.tissue_mask.value = False
    _run(widget, qtbot)
    assert _errors(notifications) == []
    labels, objects = widget.labels_layer, widget.objects_layer
    assert isinstance(labels, Labels) and isinstance(objects, Shapes)
    assert labels in viewer.layers and objects in viewer.layers
    # label map: 10x = 4 level-0 px per label px, exactly over the rectangle
    assert labels.data.shape == (384 // 4, 512 // 4)
    tumor = ClassMap.from_dict(labels.metadata["magnipath"]["class_map"]).index_of("Tumor")
    assert (np.asarray(labels.data) == tumor).all()
    np.testing.assert_allclose(labels.scale, (4 * MPP, 4 * MPP))
    np.testing.assert_allclose(labels.data_to_world((-0.5, -0.5)),
                               image.data_to_world((127.5, 255.5)))  # level-0 corner (128, 256)
    np.testing.assert_allclose(labels.data_to_world((95.5, 127.5)),
                               image.data_to_world((511.5, 767.5)))  # level-0 corner (512, 768)
    # coloured by the card's class colours (made legible on the dark theme); the class
    # name is a feature of each value
    from magnipath._napari._layers import legible_on_dark

    np.testing.assert_allclose(labels.colormap.map(np.array([tumor]))[0, :3],
                               np.array(legible_on_dark(CONSTANT_COLORS["Tumor"])) / 255,
                               atol=1e-3)
    feats = labels.features.set_index("index")["classification"]
    assert feats[tumor] == "Tumor"
    # objects: one polygon, the rectangle, in level-0 px, with its measurements
    assert len(objects.data) == 1
    assert list(objects.features["classification"]) == ["Tumor"]
    ys, xs = objects.data[0][:, 0], objects.data[0][:, 1]
    assert (xs.min(), ys.min(), xs.max(), ys.max()) == (256, 128, 768, 512)
    assert objects.features["Area µm^2"].iloc[0] == pytest.approx(512 * 384 * MPP**2)
    np.testing.assert_allclose(objects.data_to_world(objects.data[0][0]),
                               rect.data_to_world(rect.data[0][0]))
    # export GeoJSON: the objects in level-0 px with their class
    widget.geojson.value = tmp_path / "pred.geojson"
    widget.export_button.native.click()
    (obj,) = read_geojson(tmp_path / "pred.geojson")
    assert obj.classification == "Tumor" and obj.class_color == CONSTANT_COLORS["Tumor"]
    assert obj.geometry.bounds == (256, 128, 768, 512)
    # File > Save of the label map (vectorised by the Labels writer) gives the same region
    data, attributes, _ = labels.as_layer_data_tuple()
    write_labels(str(tmp_path / "labels.geojson"), data, attributes)
    (saved,) = read_geojson(tmp_path / "labels.geojson")
    assert saved.classification == "Tumor" and saved.geometry.bounds == (256, 128, 768, 512)


def test_trained_model_over_the_current_view(inference, qtbot, tiny_model, notifications):
    viewer, widget, image = inference
    widget.model.value = tiny_model
    widget.region.value = "current view"
    camera(viewer).center = (64.0, 96.0)   # µm: level-0 (256, 384)
    camera(viewer).zoom = 4.0              # screen px per µm
    x, y, w, h = view_box(viewer, image)
    assert 0 < w < 1024 and 0 < h < 1024   # a part of the slide
    _run(widget, qtbot)
    assert _errors(notifications) == []
    labels = widget.labels_layer
    card = ModelCard.load_json(tiny_model / "model_card.json")
    meta = labels.metadata["magnipath"]
    assert meta["origin"] == [x, y] and meta["downsample"] == pytest.approx(4.0)
    assert labels.data.shape == (-(-h // 4), -(-w // 4))
    np.testing.assert_allclose(labels.data_to_world((-0.5, -0.5)),
                               image.data_to_world((y - 0.5, x - 0.5)))
    assert set(np.unique(np.asarray(labels.data))) <= {c.index for c in card.classes.classes}
    assert list(labels.features["classification"]) == card.classes.names
    # the objects layer holds whatever the model predicted, each shape classified
    objects = widget.objects_layer
    assert set(objects.features["classification"]) <= set(card.classes.names) - {"Background"}
    # the same run again reuses the finished store
    store = meta["store"]
    _run(widget, qtbot)
    assert widget.labels_layer.metadata["magnipath"]["store"] == store
    assert widget.result["result"].already_complete


def test_push_to_qupath_is_disabled_without_qupath(inference):
    _, widget, _ = inference
    ok, reason = qupath_available()
    if ok:
        pytest.skip("QuPath is installed here: the button is enabled")
    assert not widget.push_button.enabled and not widget.project.enabled
    assert reason in widget.qupath_status.value


def test_bad_values_are_reported(inference, tmp_path, notifications):
    _, widget, _ = inference
    assert widget.run() is None  # no model folder
    assert any("Model folder" in e for e in _errors(notifications))
    widget.model.value = tmp_path / "nothing-here"
    assert "not found" in widget.card.value or "does not exist" in widget.card.value
    widget.region.value = "drawn shapes"
    widget.model.value = tmp_path
    assert widget.run() is None  # no shapes layer picked
    assert any("Region shapes" in e for e in _errors(notifications))
    assert widget.export_geojson() is None  # nothing predicted yet
    assert any("Objects layer" in e for e in _errors(notifications))
    assert widget.current is None


def test_a_png_smaller_than_the_field_of_view_runs_with_one_warning(
        make_napari_viewer, qtbot, constant_model, tmp_path, notifications, one_thread):
    from PIL import Image as PILImage

    from .conftest import tissue_image

    # 100 x 80 px at 0.5 µm/px = 50 x 40 µm; the model's field of view is 64 µm
    path = tmp_path / "crop.png"
    PILImage.fromarray(tissue_image(80, 100)).save(path, dpi=(25400 / 0.5, 25400 / 0.5))
    viewer = make_napari_viewer()
    (image,) = viewer.open(str(path), plugin="napari-magnipath")
    _, widget = viewer.window.add_plugin_dock_widget("napari-magnipath", "Inference")
    widget.image.value = image
    widget.model.value = constant_model
    widget.device.value = "cpu"
    widget.tissue_mask.value = False
    widget.output.value = tmp_path / "predictions"
    _run(widget, qtbot)
    assert not _errors(notifications)
    labels = [lay for lay in viewer.layers if isinstance(lay, Labels)]
    assert len(labels) == 1 and labels[0].data.shape[-2:] == (40, 50)  # 1 µm/px target
    fov = [str(n.message) for n in notifications if "field of view" in str(n.message)]
    assert len(fov) == 1 and "50 x 40 µm" in fov[0] and "padding" in fov[0]


def test_card_swatches_are_legible_on_the_dark_theme(tmp_path):
    import re

    from magnipath._napari._inference_widget import card_html
    from magnipath._napari._layers import MIN_CONTRAST, contrast_on_dark
    from magnipath.geometry import TileGeometry

    classes = ClassMap.from_names(["Tumor", "Necrosis"],
                                  colors={"Tumor": (250, 250, 0), "Necrosis": (50, 50, 50)})
    ModelCard(arch="dsmn-s2", arch_kwargs={}, class_map=classes.to_dict(),
              geometry=TileGeometry.single(1.0, 64).to_dict()).save_json(
        tmp_path / "model_card.json")
    html = card_html(tmp_path)
    swatches = [tuple(int(v) for v in m.split(","))
                for m in re.findall(r"color: rgb\(([0-9, ]+)\)", html)]
    assert len(swatches) == 2 and swatches[0] == (250, 250, 0)
    assert swatches[1] != (50, 50, 50) and contrast_on_dark(swatches[1]) >= MIN_CONTRAST
