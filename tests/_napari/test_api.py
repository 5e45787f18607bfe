"""The scripted-session API (``magnipath._napari.api``) and the example script in docs/."""

from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np
import pytest
from napari.components import ViewerModel
from napari.layers import Image, Labels, Points, Shapes

from magnipath._errors import MagnipathError
from magnipath._napari import api
from magnipath.checkpoint import ModelCard
from magnipath.dataset import open_dataset
from qupath_bridge.geojson import read_geojson

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "scripted_session.py"


def test_example_session_runs_headless(tmp_path, monkeypatch, one_thread):
    monkeypatch.setenv("MAGNIPATH_CACHE_DIR", str(tmp_path / "cache"))
    main = runpy.run_path(str(EXAMPLE))["main"]
    out = main(tmp_path / "session", quick=True, show=False)
    viewer = out["viewer"]
    assert isinstance(viewer, ViewerModel)  # no window, no OpenGL
    slide, labels, objects = out["slide"], out["labels"], out["objects"]
    assert isinstance(slide, Image) and isinstance(labels, Labels) and isinstance(objects, Shapes)
    assert all(lay in viewer.layers for lay in (slide, out["truth"], labels, objects))
    # tiles at 2.5x (4 µm/px) of the 4096 px slide at 0.25 µm/px: 1024 px = 16 tiles of 64 px
    assert out["tiles"]["n_tiles"] == 16
    ds = open_dataset(tmp_path / "session" / "dataset")
    truth_classes = {c for c in out["truth"].features["classification"] if c}
    assert set(ds.class_map.names) == truth_classes
    card = ModelCard.load_json(tmp_path / "session" / "model" / "model_card.json")
    assert card.arch == "dsmn-s2" and card.classes.names == ds.class_map.names
    # the label map covers the slide at the model's 4 µm/px, lined up with it
    assert labels.data.shape == (256, 256)
    np.testing.assert_allclose(labels.data_to_world((255.5, 255.5)),
                               slide.data_to_world((4095.5, 4095.5)))
    assert set(np.unique(np.asarray(labels.data))) <= set(range(len(ds.class_map.names)))
    # the GeoJSON holds the objects of the layer
    saved = read_geojson(out["geojson"])
    assert len(saved) == len(set(objects.features["object_id"]))
    assert {o.classification for o in saved} <= set(ds.class_map.names)
    assert out["pushed"] is None  # no project given


def test_open_infer_save_in_a_viewer(make_napari_viewer, synthetic, constant_model, tmp_path,
                                     one_thread):
    viewer = make_napari_viewer()
    layers = api.open_slide_in_viewer(synthetic.slide, viewer, annotations=[synthetic.truth])
    image = layers[0]
    assert isinstance(image, Image) and isinstance(layers[1], Shapes)
    assert all(lay in viewer.layers for lay in layers)
    box = (512, 256, 256, 512)  # level-0 x, y, width, height
    labels, objects = api.infer(image, constant_model, viewer=viewer, region=box,
                                out_dir=tmp_path / "pred", device="cpu", tissue_mask=False)
    assert labels.data.shape == (512 // 4, 256 // 4)
    np.testing.assert_allclose(labels.data_to_world((-0.5, -0.5)),
                               image.data_to_world((255.5, 511.5)))
    (obj,) = read_geojson(api.save_geojson(objects, tmp_path / "o.geojson", image=image))
    assert obj.classification == "Tumor" and obj.geometry.bounds == (512, 256, 768, 768)
    # a region given as a Shapes layer: the bounding box of its shapes
    rect = viewer.add_shapes([np.array([[300.0, 100.0], [400.0, 250.0]])],
                             shape_type="rectangle", scale=image.scale)
    labels2, _ = api.infer(image, constant_model, viewer=viewer, region=rect,
                           out_dir=tmp_path / "pred", device="cpu", tissue_mask=False)
    meta = labels2.metadata["magnipath"]
    assert meta["origin"] == [100, 300]  # pixel centre 100 -> level-0 100.5 -> from pixel 100
    with pytest.raises(MagnipathError, match="region"):
        api.infer(image, constant_model, viewer=viewer, region="everything")


def test_points_and_qupath_errors(make_napari_viewer, slide_path, geojson_path, tmp_path):
    viewer = make_napari_viewer()
    layers = api.open_slide_in_viewer(slide_path, viewer, annotations=geojson_path)
    assert [type(lay) for lay in layers] == [Image, Shapes, Points]
    points = layers[2:]
    np.testing.assert_allclose(points[0].data, [[333.25, 420.5]])  # level-0 (y, x)
    np.testing.assert_allclose(points[0].scale, layers[0].scale)
    ok, _ = api.qupath_available()
    if ok:
        pytest.skip("QuPath is installed here")
    with pytest.raises(MagnipathError, match="QuPath is not available"):
        api.push_to_qupath(points[0], tmp_path / "project.qpproj", "slide")


def test_predict_region_example(synthetic, constant_model, tmp_path, one_thread):
    main = runpy.run_path(str(EXAMPLE.with_name("predict_region.py")))["main"]
    out = main(synthetic.slide, constant_model, tmp_path / "region.geojson",
               region=(128, 256, 512, 256), annotations=[synthetic.truth], show=False,
               device="cpu", predictions=tmp_path / "pred")
    assert isinstance(out["viewer"], ViewerModel) and isinstance(out["annotations"][0], Shapes)
    assert out["labels"].data.shape == (256 // 4, 512 // 4)
    saved = read_geojson(out["geojson"])
    # the constant model says Tumor wherever the tissue mask lets it run
    assert saved and all(o.classification == "Tumor" for o in saved)
    x0, y0, x1, y1 = saved[0].geometry.bounds
    assert 128 <= x0 and 256 <= y0 and x1 <= 640 and y1 <= 512
