"""The QuPath dock widget and the .qpproj reader, with and without a QuPath installation.

Without QuPath (the common case on CI machines) the widget must say why and
keep every control disabled, and the reader must decline the file. The tests
marked ``qupath`` run the round trip (create a project, load an image with its
annotations, push predictions back) against the QuPath test double (0.5-like
and 0.6-like, tests/_qupath_double) and, where paquo finds it, real QuPath.
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


def test_image_list_survives_reset_choices(qupath):
    """No QuPath needed (magicgui only): "Load image" and napari's layer events call
    ``reset_choices()``; the project's images must stay offered and the choice kept."""
    from qupath_bridge.project import ImageInfo

    _, widget = qupath
    infos = [ImageInfo(name=n, id=str(i), uri=None, path=None, width=100, height=80, mpp=0.5,
                       index=i, slide_found=False) for i, n in enumerate(["a.svs", "b.svs"])]
    widget.set_images(infos)  # what "Open project" does with the listed images
    widget.images.value = infos[1]
    widget.reset_choices()  # what "Load image" does after adding its layers
    assert list(widget.images.choices) == infos
    assert widget.images.value == infos[1]
    widget.set_images(infos[:1])  # another project: the list is replaced
    widget.reset_choices()
    assert list(widget.images.choices) == infos[:1]


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
    assert len(widget.images.choices) == 1  # still offered after the layers were added
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
