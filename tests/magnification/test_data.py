"""Dataset generation by downsampling gives exactly the requested magnifications."""

import itertools

import numpy as np
import pytest
from PIL import Image

from magnipath.magnification import (
    MAGNIFICATIONS,
    MagDataConfig,
    MagnificationError,
    make_dataset,
    open_dataset,
    patch_at,
    source_size,
)
from magnipath.slide import open_slide


def block_mean(src: np.ndarray, k: int) -> np.ndarray:
    """Mean of k x k blocks with halves rounded up (independent of magnipath.slide)."""
    h, w, c = src.shape
    total = src.reshape(h // k, k, w // k, k, c).astype(np.int64).sum(axis=(1, 3))
    return ((total + (k * k) // 2) // (k * k)).astype(np.uint8)


def test_every_class_has_patches_at_its_resolution(dataset):
    ds = open_dataset(dataset)
    assert ds.images.shape[1:] == (224, 224, 3) and ds.images.dtype == np.uint8
    assert sorted(set(ds.magnification.tolist())) == list(MAGNIFICATIONS)
    for rec in ds.index["patches"]:
        m = rec["magnification"]
        assert rec["mpp"] == pytest.approx(10.0 / m, rel=1e-12)
        _, _, w, h = rec["box"]
        assert w == h == pytest.approx(224 * 40 / m, rel=1e-12)
        assert rec["n_nuclei"] >= 3


@pytest.mark.parametrize("mag", [5, 8, 10, 20, 40])
def test_integer_downsamples_are_exact_block_means(dataset, sources, mag):
    ds = open_dataset(dataset)
    i = int(np.flatnonzero(ds.magnification == mag)[0])
    x, y, s, _ = ds.boxes[i]
    k = 40 // mag
    with open_slide(sources[ds.slide[i]].slide) as slide:
        src = slide.read_level(0, int(y), int(x), int(s), int(s))
    assert np.array_equal(np.asarray(ds.images[i]), block_mean(src, k))


@pytest.mark.parametrize("mag", [15, 30])
def test_fractional_downsamples_match_an_area_filter(sources, mag):
    with open_slide(sources[0].slide) as slide:
        img, (_, _, s, _) = patch_at(slide, 300, 500, mag)
        n = int(np.ceil(s))
        src = slide.read_level(0, 500, 300, n, n)
    assert s == pytest.approx(source_size(mag))
    ref = np.asarray(Image.fromarray(src).resize((224, 224), Image.Resampling.BOX,
                                                 box=(0, 0, s, s)))
    assert np.abs(img.astype(int) - ref.astype(int)).max() <= 1


def test_splits_are_by_slide_and_areas_grow_with_magnification(dataset):
    ds = open_dataset(dataset)
    for s in np.unique(ds.slide):
        assert len(set(ds.split[ds.slide == s].tolist())) == 1
    assert sorted(set(ds.split.tolist())) == ["test", "train", "val"]
    means = [ds.area[ds.magnification == m].mean() for m in MAGNIFICATIONS]
    assert all(a < b for a, b in itertools.pairwise(means[1:])), means  # 8x onwards
    assert means[-1] / means[2] > 8  # 40x vs 10x: areas scale ~16x


def test_nucleus_annotations_give_the_area_target(sources):
    from shapely.geometry import Point

    from qupath_bridge.objects import QuPathObject

    # two round "nuclei" of radius 10 and 20 px at level 0, inside a 20x patch at (0, 0)
    objs = [QuPathObject(Point(100, 100).buffer(10, 64), classification="Nucleus"),
            QuPathObject(Point(300, 300).buffer(20, 64), classification="Nucleus"),
            QuPathObject(Point(440, 300).buffer(20, 64), classification="Nucleus")]  # cut
    from magnipath.magnification._data import _annotated_areas, _load_nuclei

    index = _load_nuclei(objs, sources[0].slide)
    areas = _annotated_areas(index, (0.0, 0.0, 448.0, 448.0))
    assert sorted(areas.tolist()) == pytest.approx([np.pi * 100, np.pi * 400], rel=1e-3)


def test_magnifications_above_the_scan_are_refused(sources, tmp_path):
    with pytest.raises(MagnificationError, match="above the scan"):
        make_dataset(sources[:1], tmp_path / "x", MagDataConfig(magnifications=(20, 60)))


def test_existing_folder_and_missing_dataset(dataset, sources, tmp_path):
    with pytest.raises(MagnificationError, match="exists"):
        make_dataset(sources[:1], dataset)
    with pytest.raises(MagnificationError, match="not a magnification dataset"):
        open_dataset(tmp_path)
