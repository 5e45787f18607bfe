"""Readers: slides as lazy multiscale layers in µm; QuPath GeoJSON as Shapes/Points."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from napari.layers import Image, Points, Shapes

from magnipath._napari._reader import get_geojson_reader, get_slide_reader, sibling_slide_mpp

from .conftest import SLIDE_MPP, tissue_image, write_pyramid


def test_slide_opens_as_lazy_multiscale_in_um(make_napari_viewer, qtbot, slide_path):
    viewer = make_napari_viewer(show=True)
    layers = viewer.open(str(slide_path), plugin="napari-magnipath")
    assert len(layers) == 1
    layer = layers[0]
    assert isinstance(layer, Image) and layer.multiscale and layer.rgb
    assert [tuple(d.shape) for d in layer.data] == [(768, 1024, 3), (384, 512, 3),
                                                    (192, 256, 3)]
    # lazy: zarr arrays over the TIFF tiles, never a numpy copy of a level
    assert all(not isinstance(d, np.ndarray) for d in layer.data)
    np.testing.assert_allclose(layer.scale, [SLIDE_MPP, SLIDE_MPP])
    meta = layer.metadata["magnipath"]
    assert meta["path"] == str(slide_path.resolve()) and meta["mpp"] == SLIDE_MPP
    # the whole slide in view is drawn from a reduced level, not level 0
    viewer.window.resize(500, 400)
    viewer.reset_view()
    qtbot.waitUntil(lambda: layer.data_level > 0, timeout=5000)
    # world coordinates are µm: the last pixel's centre
    np.testing.assert_allclose(layer.data_to_world((767, 1023)),
                               [767 * SLIDE_MPP, 1023 * SLIDE_MPP])
    # and the pixels are the file's pixels
    np.testing.assert_array_equal(np.asarray(layer.data[0][100:110, 200:230]),
                                  tissue_image(768, 1024)[100:110, 200:230])


def test_slide_without_mpp_opens_in_pixels(tmp_path, notifications):
    p = write_pyramid(tmp_path / "nompp.tif", tissue_image(256, 256), None, n_levels=2)
    reader = get_slide_reader(str(p))
    assert reader is not None
    (_, kwargs, kind), = reader(str(p))
    assert kind == "image" and kwargs["scale"] == (1.0, 1.0)
    assert kwargs["metadata"]["magnipath"]["mpp"] is None
    assert any("no pixel size" in str(n.message) for n in notifications)


def test_slide_reader_declines_other_files(tmp_path):
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"not a tiff at all")
    assert get_slide_reader(str(bad)) is None
    assert get_slide_reader(str(tmp_path / "a.png")) is None


def test_geojson_opens_as_shapes_and_points(make_napari_viewer, geojson_path, slide_path):
    # the sibling slide (same stem) gives the µm scale
    shutil.copy(slide_path, geojson_path.with_suffix(".tif"))
    assert sibling_slide_mpp(geojson_path) == SLIDE_MPP
    viewer = make_napari_viewer()
    layers = viewer.open(str(geojson_path), plugin="napari-magnipath")
    shapes, points = layers
    assert isinstance(shapes, Shapes) and isinstance(points, Points)
    np.testing.assert_allclose(shapes.scale, [SLIDE_MPP, SLIDE_MPP])
    assert list(shapes.features["classification"]) == ["Tumor", "Stroma", "Stroma"]
    assert list(points.features["classification"]) == ["Mitosis"]
    # the point keeps its level-0 coordinates as data (y, x)
    np.testing.assert_allclose(points.data, [[333.25, 420.5]])


def test_bare_geojson_has_pixel_scale(geojson_path):
    reader = get_geojson_reader(str(geojson_path))
    layers = reader(str(geojson_path))
    assert [k for _, _, k in layers] == ["shapes", "points"]
    assert layers[0][1]["scale"] == (1.0, 1.0)


@pytest.mark.parametrize("content", [
    json.dumps({"type": "FeatureCollection", "features": [{"type": "Feature"}]}),
    json.dumps({"name": "a config file", "value": 3}),
    "not json",
])
def test_geojson_reader_claims_only_qupath_geojson(tmp_path, content):
    p = tmp_path / "other.json"
    p.write_text(content)
    assert get_geojson_reader(str(p)) is None


def test_empty_geojson_gives_an_empty_shapes_layer(tmp_path):
    p = tmp_path / "empty.geojson"
    p.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    reader = get_geojson_reader(str(p))
    (data, _, kind), = reader(str(p))
    assert kind == "shapes" and len(data) == 0


def test_png_opens_through_the_slide_reader_with_its_dpi(make_napari_viewer, tmp_path):
    from PIL import Image as PILImage

    rgb = tissue_image(1200, 1400)
    path = tmp_path / "crop.png"
    PILImage.fromarray(rgb).save(path, dpi=(25400 / 0.5, 25400 / 0.5))
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(path), plugin="napari-magnipath")
    assert isinstance(layer, Image) and layer.multiscale and layer.rgb
    assert [tuple(d.shape) for d in layer.data] == [(1200, 1400, 3), (600, 700, 3)]
    np.testing.assert_allclose(layer.scale, [0.5, 0.5], rtol=1e-4)
    assert layer.metadata["magnipath"]["mpp_source"] == "image-resolution"
    np.testing.assert_array_equal(np.asarray(layer.data[0][10:20, 30:50]), rgb[10:20, 30:50])


def test_jpeg_without_dpi_opens_in_pixels_and_unreadable_images_are_not_claimed(
        tmp_path, notifications):
    from PIL import Image as PILImage

    path = tmp_path / "photo.jpg"
    PILImage.fromarray(tissue_image(200, 300)).save(path, quality=90)
    (_, kwargs, kind), = get_slide_reader(str(path))(str(path))
    assert kind == "image" and kwargs["scale"] == (1.0, 1.0)
    assert any("no pixel size" in str(n.message) for n in notifications)
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not a png")
    assert get_slide_reader(str(junk)) is None


def test_prefer_magnipath_reader_records_the_choice_for_slide_patterns():
    from napari.settings import NapariSettings

    from magnipath._napari.api import prefer_magnipath_reader

    settings = NapariSettings(config_path=None)
    settings.plugins.extension2reader = {"*.czi": "other-plugin"}
    mapping = prefer_magnipath_reader(settings=settings)
    assert mapping["*.tif"] == mapping["*.svs"] == mapping["*.ndpi"] == "napari-magnipath"
    assert mapping["*.czi"] == "other-plugin" and "*.png" not in mapping
    prefer_magnipath_reader(["*.png"], settings=settings)
    assert settings.plugins.extension2reader["*.png"] == "napari-magnipath"


def test_file_menu_command_makes_magnipath_the_slide_reader(make_napari_viewer, monkeypatch,
                                                            notifications):
    import napari.settings
    from napari._app_model import get_app_model
    from napari.settings import NapariSettings

    settings = NapariSettings(config_path=None)  # never the user's own settings file
    monkeypatch.setattr(napari.settings, "get_settings", lambda: settings)
    make_napari_viewer()
    app = get_app_model()
    items = [getattr(i, "command", None) for i in app.menus.get_menu("napari/file/io_utilities")]
    assert "napari-magnipath.use_for_slides" in [c.id for c in items if c is not None]
    app.commands.execute_command("napari-magnipath.use_for_slides").result()
    mapping = settings.plugins.extension2reader
    assert mapping["*.tif"] == mapping["*.svs"] == "napari-magnipath"
    assert any("without asking" in str(n.message) for n in notifications)
