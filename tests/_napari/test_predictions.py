"""Prediction stores as napari layers: lazy multiscale label maps placed on the slide."""

from __future__ import annotations

import numpy as np
import pytest
from napari.components import ViewerModel

from magnipath._napari._frames import image_frame
from magnipath._napari._predictions import (
    add_layer_data,
    model_tag,
    prediction_layer_data,
    region_tag,
)
from magnipath.classes import ClassMap
from magnipath.infer import PredictionStore, PredictionStoreError

CLASSES = ClassMap.from_names(["Background", "Tumor"], colors={"Tumor": (200, 0, 0)})
MPP = 0.25


def _store(path, shape=(2100, 1500), origin=(100.0, 50.0), downsample=2.0, chunk=512):
    """A finished store written with the core's own class: Tumor in a known block."""
    store = PredictionStore(path, signature={"slide": "s.tif", "slide_mpp": MPP},
                            out_shape=shape, n_classes=2, chunk=chunk, fill=0,
                            probabilities=False,
                            meta={"target_mpp": MPP * downsample, "origin": list(origin),
                                  "downsample": downsample, "class_map": CLASSES.to_dict(),
                                  "slide": "s.tif"})
    labels = np.zeros(shape, np.uint8)
    labels[1024:1536, 512:1024] = 1
    for cy in range(0, shape[0], chunk):
        for cx in range(0, shape[1], chunk):
            block = labels[cy:cy + chunk, cx:cx + chunk]
            store.write_chunk(cy // chunk, cx // chunk,
                              (cy, cy + block.shape[0], cx, cx + block.shape[1]), block, None)
    store.finish(MPP * downsample, origin_um=(origin[1] * MPP, origin[0] * MPP))
    return path, labels


def test_label_pyramid_is_one_lazy_multiscale_layer(tmp_path):
    path, labels = _store(tmp_path / "s.zarr")
    viewer = ViewerModel()
    slide = viewer.add_image(np.zeros((4400, 3200, 3), np.uint8), rgb=True, **image_frame(MPP))
    layer = add_layer_data(viewer, prediction_layer_data(path, name="pred"))
    # halved while a side exceeds 1024 px: 2100 -> 1050 -> 525
    assert layer.multiscale and [lv.shape for lv in layer.data] == [
        (2100, 1500), (1050, 750), (525, 375)]
    assert not isinstance(layer.data[0], np.ndarray)  # the zarr array itself: read lazily
    np.testing.assert_array_equal(np.asarray(layer.data[0][1000:1100, 500:600]),
                                  labels[1000:1100, 500:600])
    # label px (0, 0) covers level-0 [100, 102) x [50, 52): its corner is the slide's (50, 100)
    np.testing.assert_allclose(layer.data_to_world((-0.5, -0.5)),
                               slide.data_to_world((49.5, 99.5)))
    np.testing.assert_allclose(layer.data_to_world((1023.5, 511.5)),
                               slide.data_to_world((50 + 2048 - 0.5, 100 + 1024 - 0.5)))
    meta = layer.metadata["magnipath"]
    assert meta["kind"] == "prediction" and meta["mpp"] == MPP and meta["downsample"] == 2.0
    # Background is transparent, Tumor in its colour (legible on the dark theme); the
    # features name each value
    from magnipath._napari._layers import legible_on_dark

    rgba = layer.colormap.map(np.array([0, 1]))
    tumor = np.array([*legible_on_dark((200, 0, 0)), 255]) / 255
    assert rgba[0, 3] == 0 and np.allclose(rgba[1], tumor, atol=1e-3)
    assert list(layer.features["classification"]) == ["Background", "Tumor"]


def test_unfinished_store_is_refused(tmp_path):
    PredictionStore(tmp_path / "u.zarr", signature={"slide": "s.tif"}, out_shape=(64, 64),
                    n_classes=2, chunk=64, fill=0, probabilities=False,
                    meta={"class_map": CLASSES.to_dict()})
    with pytest.raises(PredictionStoreError, match="did not finish"):
        prediction_layer_data(tmp_path / "u.zarr")


def test_folder_names(tmp_path):
    assert region_tag(None) == "whole" and region_tag((1, 2, 30, 40)) == "x1_y2_w30_h40"
    a, b = tmp_path / "a" / "model", tmp_path / "b" / "model"
    assert model_tag(a) != model_tag(b) and model_tag(a).startswith("model-")
