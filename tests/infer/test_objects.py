"""Predicted label maps -> QuPath objects with the model's classes, in level-0 pixels."""

from __future__ import annotations

import math

import numpy as np
import pytest
from shapely.geometry import box

from magnipath.geometry import TileGeometry
from magnipath.infer import (
    InferConfig,
    InferError,
    infer_slide,
    open_prediction,
    prediction_objects,
)
from magnipath.rasterize import rasterize
from magnipath.synth import SYNTH_CLASSES

from .conftest import DARK, INTENSITY_CLASSES, TISSUE, constant_model_dir

TLS = SYNTH_CLASSES.index_of("TLS")


@pytest.fixture()
def tls_store(infer_slide_file, tmp_path):
    """A real DSMN-S2 checkpoint set to predict TLS everywhere, run on a level-0 box."""
    folder = constant_model_dir(tmp_path / "model", TLS, classes=SYNTH_CLASSES,
                                geometry=TileGeometry.single(1.0, 64))
    res = infer_slide(infer_slide_file.slide, folder, tmp_path / "out",
                      InferConfig(region=(500.0, 100.0, 640.0, 384.0), tissue_mask=False,
                                  probabilities=True))
    return res, folder


def test_objects_carry_model_classes_level0_geometry_and_measurements(tls_store):
    res, folder = tls_store
    objs = prediction_objects(res.store)
    assert len(objs) == 1
    o = objs[0]
    assert o.classification == "TLS" and o.class_color == (160, 90, 160)
    assert o.object_type == "annotation"
    assert o.geometry.equals(box(500, 100, 1140, 484))  # the region, in level-0 pixels
    assert o.measurements["Area µm^2"] == pytest.approx(640 * 384 * 0.5**2)
    p_tls = math.exp(5) / (math.exp(5) + 6)  # final bias 5 for TLS, 0 for the 6 others
    assert o.measurements["Mean probability"] == pytest.approx(round(p_tls * 255) / 255)
    assert o.metadata["magnipath"] == str(folder.resolve())


def test_choosing_classes(tls_store):
    res, _ = tls_store
    assert prediction_objects(res.store, classes=["Carcinoma", "Necrosis"]) == []
    dets = prediction_objects(res.store, classes=["TLS"], object_type="detection")
    assert [d.object_type for d in dets] == ["detection"]
    assert prediction_objects(res.store, classes=["TLS"], min_area_um2=61441) == []
    with pytest.raises(InferError, match="Lymphocyte"):
        prediction_objects(res.store, classes=["Lymphocyte"])


def test_objects_rasterise_back_to_the_label_map(infer_slide_file, tmp_path, intensity_model):
    region = (300.0, 20.0, 1000.0, 500.0)
    res = infer_slide(infer_slide_file.slide, intensity_model, tmp_path,
                      InferConfig(region=region, tissue_mask=False))
    objs = prediction_objects(res.store, classes=["Tissue", "Dark"])
    root, _ = open_prediction(res.store)
    labels = np.asarray(root["labels/0"][:])
    assert {o.classification for o in objs} <= {"Tissue", "Dark"} and len(objs) > 1
    shapes = [(o.geometry, INTENSITY_CLASSES.index_of(o.classification)) for o in objs]
    back = rasterize(shapes, (region[0], region[1], region[2], region[3]), res.downsample,
                     labels.shape, fill=0)
    want = np.where(np.isin(labels, [TISSUE, DARK]), labels, 0)
    np.testing.assert_array_equal(back, want)


def test_unfinished_store_is_refused(infer_slide_file, tmp_path, intensity_model):
    from magnipath._errors import Cancelled
    from magnipath.infer import PredictionStoreError

    with pytest.raises(Cancelled):
        infer_slide(infer_slide_file.slide, intensity_model, tmp_path, cancel=lambda: True)
    with pytest.raises(PredictionStoreError, match="did not finish"):
        prediction_objects(tmp_path / "wide.zarr")
