"""The QuPath dock widget and the .qpproj reader, with and without a QuPath installation.

Without QuPath (the common case on CI machines) the widget must say why and
keep every control disabled, and the reader must decline the file. The tests
marked ``qupath`` run the real round trip (create a project, load an image
with its annotations, push predictions back) where paquo finds QuPath.
"""

from __future__ import annotations

import pytest
from napari.layers import Image, Shapes

from magnipath._napari._qupath import get_qpproj_reader
from qupath_bridge.geojson import read_geojson
from qupath_bridge.project import qupath_available


@pytest.fixture
def qupath(make_napari_viewer):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-magnipath", "QuPath")
    return viewer, widget


def test_disabled_with_the_reason_without_qupath(qupath, tmp_path):
    _, widget = qupath
    ok, reason = qupath_available()
    if ok:
        pytest.skip("QuPath is installed here")
    assert widget.available is False and widget.reason == reason
    assert reason in widget.availability.value and "PAQUO_QUPATH_DIR" in widget.availability.value
    assert not widget.availability.native.isHidden()
    for control in (widget.project, widget.open_button, widget.images, widget.load_button,
                    widget.layer, widget.as_type, widget.push_button):
        assert not control.enabled
    # calling an action anyway starts nothing and says why
    assert widget.open_project() is None and widget.current is None
    project = tmp_path / "project.qpproj"
    project.write_text("{}")
    assert get_qpproj_reader(str(project)) is None  # the reader declines without QuPath


def test_reader_ignores_other_files(tmp_path):
    assert get_qpproj_reader(str(tmp_path / "slide.tif")) is None
    assert get_qpproj_reader([str(tmp_path / "a.qpproj"), str(tmp_path / "b.qpproj")]) is None


@pytest.mark.qupath
def test_load_image_and_push_predictions(qupath, qtbot, synthetic, tmp_path):
    from qupath_bridge.project import Project, create_project

    _, widget = qupath
    folder = tmp_path / "project"
    create_project(folder, [synthetic.slide], annotations=[synthetic.truth])
    assert widget.available
    widget.project.value = folder / "project.qpproj"
    run = widget.open_project()
    qtbot.waitUntil(lambda: run.done, timeout=120_000)
    assert run.error is None and len(widget.images.choices) == 1
    run = widget.load_image()
    qtbot.waitUntil(lambda: run.done, timeout=120_000)
    assert run.error is None
    image, shapes = widget.loaded[0], widget.loaded[1]
    assert isinstance(image, Image) and isinstance(shapes, Shapes)
    truth = [o for o in read_geojson(synthetic.truth) if o.geometry.geom_type != "Point"]
    assert len({*shapes.features["object_id"]}) == len(truth)
    # push the loaded shapes back as detections: MagniPath's objects are added
    widget.reset_choices()
    widget.layer.value = shapes
    widget.as_type.value = "detection"
    run = widget.push()
    qtbot.waitUntil(lambda: run.done, timeout=120_000)
    assert run.error is None
    with Project(folder, "r") as p:
        detections = p.read_objects(0, types=("detection",))
    assert len(detections) == len(truth)
