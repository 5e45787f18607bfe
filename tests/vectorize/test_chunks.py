"""Block-wise vectorisation: seams leave no cut and no duplicate; zarr input."""

import numpy as np
import pytest
import scipy.ndimage as ndi
import shapely
import zarr
from shapely.geometry import box

from magnipath.vectorize import MEAN_PROBABILITY, vectorize


def _spiral_and_ring(n=64):
    """A frame around everything, snakes crossing seams (cut by a square), holes on seams."""
    m = np.full((n, n), 255, np.uint8)
    m[0:2, :] = m[-2:, :] = m[:, 0:2] = m[:, -2:] = 1  # frame: one object with a big hole
    for i, r in enumerate(range(5, n - 5, 6)):  # snake: one object crossing all seams
        m[r:r + 2, 5:n - 5] = 2
        c = n - 7 if i % 2 == 0 else 5
        if r + 8 <= n - 5:
            m[r:r + 8, c:c + 2] = 2
    m[20:44, 20:44] = 3  # a square straddling the seams at 32 with a hole on them
    m[28:36, 28:36] = 255
    m[31:33, 31:33] = 3  # island in the hole, on the seam corner
    return m


@pytest.mark.parametrize("chunk", [16, 32, 20])
def test_chunked_equals_in_memory(chunk):
    m = _spiral_and_ring()
    probs = np.random.default_rng(0).random((4, 64, 64))
    whole = vectorize(m, slide_mpp=0.5, probabilities=probs)
    parts = vectorize(m, slide_mpp=0.5, probabilities=probs, chunk_size=chunk, workers=2)
    serial = vectorize(m, slide_mpp=0.5, probabilities=probs, chunk_size=chunk, workers=1)
    assert [o.geometry.wkb for o in serial] == [o.geometry.wkb for o in parts]
    assert len(whole) == len(parts) == 8  # frame, 5 snake pieces, square, island
    for a, b in zip(whole, parts, strict=True):
        assert a.classification == b.classification
        assert a.geometry.equals(b.geometry)
        assert shapely.get_num_coordinates(a.geometry) == shapely.get_num_coordinates(b.geometry)
        assert a.measurements == pytest.approx(b.measurements)
    frame = parts[0]
    assert frame.geometry.equals(box(0, 0, 64, 64).difference(box(2, 2, 62, 62)))
    square = next(o for o in parts if o.classification == "3" and o.geometry.area > 4)
    assert len(square.geometry.interiors) == 1


def test_zarr_input_in_blocks(tmp_path):
    m = _spiral_and_ring()
    z = zarr.create_array(tmp_path / "labels.zarr", shape=m.shape, chunks=(16, 16), dtype="u1")
    z[:] = m
    p = np.random.default_rng(1).integers(0, 256, size=(64, 64, 4), dtype=np.uint8)
    zp = zarr.create_array(tmp_path / "probs.zarr", shape=p.shape, chunks=(16, 16, 4), dtype="u1")
    zp[:] = p
    ref = vectorize(m, slide_mpp=0.25, downsample=2.0, probabilities=p)
    got = vectorize(zarr.open_array(tmp_path / "labels.zarr"), slide_mpp=0.25, downsample=2.0,
                    probabilities=zarr.open_array(tmp_path / "probs.zarr"), chunk_size=16)
    assert [o.classification for o in got] == [o.classification for o in ref]
    assert all(a.geometry.equals(b.geometry) for a, b in zip(ref, got, strict=True))
    snake = [o for o in got if o.classification == "2"]
    assert sum(o.geometry.area for o in snake) == 4 * (m == 2).sum()
    s0 = snake[0]
    comp, _ = ndi.label(m == 2)
    mask0 = comp == comp[5, 5]
    assert s0.geometry.bounds == (10, 10, 118, 50)
    assert s0.measurements[MEAN_PROBABILITY] == pytest.approx(p[..., 2][mask0].mean() / 255)


def test_min_area_is_applied_after_merging():
    m = np.full((32, 32), 255, np.uint8)
    m[10:20, 14:18] = 1  # 40 px, split into four 10 px pieces by 16 px blocks
    objs = vectorize(m, slide_mpp=1.0, chunk_size=16, min_area_um2=30)
    assert len(objs) == 1 and objs[0].geometry.equals(box(14, 10, 18, 20))
    assert shapely.get_num_coordinates(objs[0].geometry) == 5  # no seam vertices left


def test_uniform_blocks_are_skipped_or_whole():
    m = np.zeros((48, 48), np.uint8)
    m[16:32, 16:32] = 1
    objs = vectorize(m, slide_mpp=1.0, chunk_size=16)
    assert [o.classification for o in objs] == ["0", "1"]
    assert objs[1].geometry.equals(box(16, 16, 32, 32))
    assert objs[0].geometry.equals(box(0, 0, 48, 48).difference(box(16, 16, 32, 32)))
    assert vectorize(m, slide_mpp=1.0, chunk_size=16, classes=[1])[0].geometry.equals(
        box(16, 16, 32, 32))
