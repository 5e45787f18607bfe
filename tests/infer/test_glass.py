"""``InferConfig.glass_background``: pixels on glass get the fill label after the model."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from magnipath.geometry import TileGeometry
from magnipath.infer import InferConfig, InferError, PredictionStoreError, infer_slide
from magnipath.slide import open_slide
from magnipath.synth import SYNTH_CLASSES
from magnipath.tissue import detect_tissue

from .conftest import constant_model_dir

FAT = SYNTH_CLASSES.index_of("Adipose")
GLASS = SYNTH_CLASSES.index_of("Background")


def _labels(store) -> np.ndarray:
    return np.asarray(zarr.open_group(str(store), mode="r")["labels/0"][:])


def test_glass_pixels_of_edge_windows_become_background(infer_slide_file, tmp_path):
    # a real DSMN-S2 set to call everything fat, 64 px windows at 1 µm/px
    model = constant_model_dir(tmp_path / "model", FAT, classes=SYNTH_CLASSES,
                               geometry=TileGeometry.single(1.0, 64))
    slide = infer_slide_file.slide
    plain = infer_slide(slide, model, tmp_path / "plain", InferConfig(batch_size=16))
    glass = infer_slide(slide, model, tmp_path / "glass",
                        InferConfig(batch_size=16, glass_background=True))
    a, b = _labels(plain.store), _labels(glass.store)
    with open_slide(slide) as s:
        mask = detect_tissue(s)
    # the tissue mask at the label pixels' centres (level-0 px = (i + 0.5) * downsample)
    d = plain.downsample
    rows = ((np.arange(a.shape[0]) + 0.5) * d / mask.downsample).astype(int)
    cols = ((np.arange(a.shape[1]) + 0.5) * d / mask.downsample).astype(int)
    tissue = mask.mask[np.ix_(np.minimum(rows, mask.mask.shape[0] - 1),
                              np.minimum(cols, mask.mask.shape[1] - 1))]
    assert tissue.any() and (~tissue).any()
    # without the option the model's "fat" covers glass inside the windows on the edge
    assert ((a == FAT) & ~tissue).sum() > 100
    # with it: tissue pixels keep the model's label, glass pixels are Background
    assert np.array_equal(b[tissue], a[tissue])
    assert (b[~tissue] == GLASS).all()
    assert (b[tissue] == FAT).all()
    # the option is part of the run's identity: the plain run's store is not taken as done
    with pytest.raises(PredictionStoreError, match="glass_background"):
        infer_slide(slide, model, tmp_path / "plain",
                    InferConfig(batch_size=16, glass_background=True))


def test_glass_background_needs_the_tissue_mask(infer_slide_file, tmp_path):
    model = constant_model_dir(tmp_path / "model", FAT, classes=SYNTH_CLASSES,
                               geometry=TileGeometry.single(1.0, 64))
    with pytest.raises(InferError, match="tissue mask"):
        infer_slide(infer_slide_file.slide, model, tmp_path / "out",
                    InferConfig(tissue_mask=False, glass_background=True))
