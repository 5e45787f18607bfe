"""Point labels -> exp(-a d) probability maps -> positive tiles."""

import numpy as np
import pytest
from shapely.geometry import MultiPoint, Point, box

from magnipath._errors import AnnotationError
from magnipath.mitosis import (
    TileConfig,
    load_points,
    make_tiles,
    positive_tiles,
    tile_probabilities,
)
from magnipath.tiling import point_probability_map
from qupath_bridge.geojson import write_geojson
from qupath_bridge.objects import QuPathObject


def brute_map(points: np.ndarray, shape: tuple[int, int], a: float) -> np.ndarray:
    """max_k exp(-a * d_k) at every pixel centre, written out directly."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    d = np.min([np.sqrt((xx - px) ** 2 + (yy - py) ** 2) for px, py in points], axis=0)
    return np.exp(-a * d)


@pytest.mark.parametrize("a", [0.05, 0.1, 0.7])
def test_probability_map_is_exp_minus_a_d(a):
    rng = np.random.default_rng(3)
    pts = rng.uniform(-5, 40, (4, 2))
    got = point_probability_map(pts, (32, 40), a)
    np.testing.assert_allclose(got, brute_map(pts, (32, 40), a), rtol=1e-6, atol=0)
    one = point_probability_map(np.array([[10.5, 7.5]]), (16, 16), a)
    assert one[7, 10] == 1.0 and one[7, 11] == np.float32(np.exp(-a))
    assert one[8, 11] == np.float32(np.exp(-a * np.sqrt(2)))


def test_tile_probability_is_the_maximum_of_the_map_over_the_tile():
    pts = np.array([[21.0, 5.0], [70.0, 70.0]])
    # 8 px tiles at downsample 2 (16 level-0 px), a 5 x 5 grid
    boxes = np.array([[x, y, 16.0, 16.0] for y in range(0, 80, 16) for x in range(0, 80, 16)])
    got = tile_probabilities(pts, boxes, 8, 0.3)
    for b, p in zip(boxes, got, strict=True):
        local = (pts - b[:2]) / 2.0
        assert p == pytest.approx(brute_map(local, (8, 8), 0.3).max(), rel=1e-6)
    assert got.max() > 0.7 and got.min() < 1e-3


def test_positive_tiles_use_a_strict_threshold():
    assert positive_tiles(np.array([0.2, 0.5, 0.51, 1.0]), 0.5).tolist() == [0, 0, 1, 1]
    with pytest.raises(AnnotationError):
        positive_tiles(np.array([0.1]), 1.0)


def test_load_points_from_geojson_and_arrays(tmp_path):
    objs = [QuPathObject(Point(10, 20), classification="Mitosis"),
            QuPathObject(MultiPoint([(1, 2), (3, 4)]), classification="Mitosis"),
            QuPathObject(box(100, 100, 110, 120), classification="Mitosis"),
            QuPathObject(Point(5, 5), classification="Lymphocyte")]
    path = tmp_path / "p.geojson"
    write_geojson(objs, path)
    pts = load_points(path)
    assert pts.tolist() == [[10, 20], [1, 2], [3, 4], [105, 110]]
    assert load_points(objs, point_class=None).shape == (5, 2)  # every point, no box
    assert load_points(np.array([[1.0, 2.0]])).tolist() == [[1.0, 2.0]]
    assert load_points(None).shape == (0, 2)
    with pytest.raises(AnnotationError, match="does not exist"):
        load_points(tmp_path / "missing.geojson")
    with pytest.raises(AnnotationError, match=r"\(K, 2\)"):
        load_points(np.zeros((3, 3)))


def test_make_tiles_labels_match_the_points(tiles, mitosis_slides):
    train, _ = tiles
    pts = load_points(mitosis_slides[0].points)
    assert train.images.shape[1:] == (64, 64, 3)
    assert np.all(train.boxes[:, 2:] == 64)
    expected = tile_probabilities(pts, train.boxes, 64, 0.1)
    assert np.array_equal(train.prob, expected)
    assert np.array_equal(train.labels, (expected > 0.5).astype(np.uint8))
    assert 0 < train.labels.sum() < len(train) / 4
    # every mitosis lies in (or right next to) a positive tile
    for x, y in pts:
        pos = train.boxes[train.labels == 1]
        inside = (pos[:, 0] <= x) & (x < pos[:, 0] + 64) & (pos[:, 1] <= y) & (y < pos[:, 1] + 64)
        assert inside.any()


def test_max_negative_ratio_keeps_every_positive(mitosis_slides, tiles):
    full, _ = tiles
    sub = make_tiles(mitosis_slides[:1], TileConfig(tile=64, max_negative_ratio=2.0))
    assert sub.labels.sum() == full.labels.sum()
    assert (sub.labels == 0).sum() == 2 * full.labels.sum()
