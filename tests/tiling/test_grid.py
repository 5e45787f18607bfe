import numpy as np
import pytest

from magnipath._errors import TilingError
from magnipath.geometry import TileGeometry
from magnipath.tiling import stride_from, tile_grid


@pytest.mark.parametrize(("w", "h", "slide_mpp", "mpp", "size", "stride"), [
    (4096, 4096, 0.25, 0.5, 256, 256),      # 20x on 40x: side 512 level-0 px
    (1000, 700, 0.25, 1.0, 64, 32),         # 10x, 50 % overlap
    (300, 5000, 0.5, 2.0, 100, 100),        # 5x on 20x
    (100, 100, 0.25, 0.25, 256, 256),       # slide smaller than one tile
    (4097, 1, 0.25, 0.25, 64, 64),          # one pixel past a whole number of tiles
])
def test_grid_covers_slide_row_major(w, h, slide_mpp, mpp, size, stride):
    g = TileGeometry.single(mpp, size)
    boxes = tile_grid(w, h, slide_mpp, g, stride)
    d = mpp / slide_mpp
    assert boxes.shape[1] == 4
    np.testing.assert_allclose(boxes[:, 2:], size * d)
    assert tuple(boxes[0, :2]) == (0, 0)
    # row-major: y non-decreasing, x increasing within a row
    assert np.all(np.diff(boxes[:, 1]) >= 0)
    xs, ys = np.unique(boxes[:, 0]), np.unique(boxes[:, 1])
    assert len(boxes) == len(xs) * len(ys)
    np.testing.assert_allclose(boxes[: len(xs), 0], xs)
    np.testing.assert_allclose(np.diff(xs), stride * d) if len(xs) > 1 else None
    # covers the slide, and no tile starts beyond it
    assert xs.max() + size * d >= w and ys.max() + size * d >= h
    assert xs.max() < w and ys.max() < h
    # minimal: one column fewer would not cover
    if len(xs) > 1:
        assert xs[-2] + size * d < w


def test_overlap_gives_half_stride():
    g = TileGeometry.single(0.5, 256)
    assert stride_from(256, None, 0.5) == 128
    assert stride_from(256, None, 0.0) == 256
    assert stride_from(256, 100, 0.5) == 100   # an explicit stride wins
    boxes = tile_grid(2048, 512, 0.25, g, 128)
    np.testing.assert_array_equal(np.unique(boxes[:, 0]), np.arange(0, 2048 - 512 + 1, 256))


@pytest.mark.parametrize(("stride", "overlap"), [(0, 0.0), (None, 1.0), (None, -0.1), (2.5, 0)])
def test_bad_stride_or_overlap(stride, overlap):
    with pytest.raises(TilingError):
        stride_from(256, stride, overlap)
