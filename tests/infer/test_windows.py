import numpy as np
import pytest

from magnipath.infer import blend_weights, plan_windows


def test_non_overlapping_windows_tile_the_map_and_feed_one_chunk_each():
    plan = plan_windows((1000, 700), size=256, stride=256)
    assert plan.chunk % 256 == 0
    # starts from the top-left, last window padded beyond the map
    assert sorted(set(plan.windows[:, 0])) == [0, 256, 512, 768]
    assert sorted(set(plan.windows[:, 1])) == [0, 256, 512]
    seen = np.zeros(len(plan.windows), int)
    ny, nx = plan.chunk_grid
    for cy in range(ny):
        for cx in range(nx):
            seen[plan.windows_of_chunk(cy, cx)] += 1
    assert (seen == 1).all()


def test_overlapping_windows_cover_every_pixel():
    plan = plan_windows((300, 300), size=128, stride=64, chunk=100)
    cover = np.zeros((300, 300), int)
    for r, c in plan.windows:
        cover[r:r + 128, c:c + 128] += 1
    assert (cover >= 1).all()
    assert plan.chunk_extent(2, 2) == (200, 300, 200, 300)


def test_blend_weights():
    assert (blend_weights(64, 64) == 1).all()
    w = blend_weights(64, 32)
    assert w.shape == (64, 64) and w.min() > 0
    assert w[32, 32] > w[0, 0] and np.allclose(w, w.T)


def test_bad_stride():
    with pytest.raises(ValueError):
        plan_windows((10, 10), size=8, stride=9)


@pytest.mark.parametrize(("shape", "size", "stride", "chunk"), [
    ((1000, 700), 256, 256, None), ((300, 517), 64, 24, 100), ((65, 40), 64, 64, 16),
    ((129, 129), 32, 1, 50),
])
def test_windows_of_chunk_equals_a_brute_force_overlap_test(shape, size, stride, chunk):
    plan = plan_windows(shape, size, stride, chunk)
    ny, nx = plan.chunk_grid
    wr, wc = plan.windows[:, 0], plan.windows[:, 1]
    for cy in range(ny):
        for cx in range(nx):
            r0, r1, c0, c1 = plan.chunk_extent(cy, cx)
            brute = np.flatnonzero((wr < r1) & (wr + size > r0) & (wc < c1) & (wc + size > c0))
            np.testing.assert_array_equal(plan.windows_of_chunk(cy, cx), brute)


def test_chunk_is_a_multiple_of_the_window_without_overlap():
    assert plan_windows((5000, 5000), 256, 256).chunk == 1024
    assert plan_windows((5000, 5000), 96, 96, chunk=1000).chunk == 960
    assert plan_windows((5000, 5000), 128, 64, chunk=1000).chunk == 1000
    small = plan_windows((10, 10), 64, 64)
    assert small.windows.tolist() == [[0, 0]]  # one padded window covers a tiny map
