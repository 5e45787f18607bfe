"""rasterize(vectorize(mask)) == mask, for random masks (hypothesis)."""

import numpy as np
import scipy.ndimage as ndi
from hypothesis import given, settings
from hypothesis import strategies as st

from magnipath.rasterize import rasterize
from magnipath.vectorize import vectorize

VALUES = np.array([0, 1, 2, 3, 255], dtype=np.uint8)


@st.composite
def masks(draw):
    """Unions of rectangles and pixel-noise blobs of several classes on an ignore background."""
    h, w = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    m = np.full((h, w), 255, np.uint8)
    for _ in range(draw(st.integers(0, 8))):
        r0, c0 = draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))
        r1, c1 = draw(st.integers(r0 + 1, h)), draw(st.integers(c0 + 1, w))
        m[r0:r1, c0:c1] = draw(st.sampled_from(VALUES.tolist()))
    seed = draw(st.integers(0, 2**31))
    density = draw(st.sampled_from([0.0, 0.05, 0.3, 0.7]))
    rng = np.random.default_rng(seed)
    blob = ndi.binary_dilation(rng.random((h, w)) < density / 4, iterations=1) \
        if density else np.zeros((h, w), bool)
    noise = rng.random((h, w)) < density / 3
    m[blob] = draw(st.sampled_from([1, 2]))
    m[noise] = rng.choice(VALUES, size=int(noise.sum()))
    return m


@settings(max_examples=150, deadline=None)
@given(m=masks(), d=st.sampled_from([1.0, 2.0, 0.5, 3.0]),
       ox=st.integers(-20, 20), oy=st.integers(-20, 20))
def test_rasterize_of_vectorize_is_the_mask(m, d, ox, oy):
    objs = vectorize(m, slide_mpp=0.5, origin=(float(ox), float(oy)), downsample=d)
    h, w = m.shape
    shapes = [(o.geometry, int(o.classification)) for o in objs]
    back = rasterize(shapes, (ox, oy, w * d, h * d), d, (h, w), fill=255)
    np.testing.assert_array_equal(back, m)
    assert all(o.geometry.is_valid and o.geometry.geom_type == "Polygon" for o in objs)
    # one object per 4-connected component and class; areas are pixel counts
    assert len(objs) == sum(ndi.label(m == v)[1] for v in (0, 1, 2, 3))
    for o in objs:
        assert o.measurements["Area µm^2"] == o.geometry.area / d**2 * (d * 0.5) ** 2


@settings(max_examples=60, deadline=None)
@given(m=masks(), chunk=st.integers(16, 23))
def test_chunked_equals_in_memory_on_random_masks(m, chunk):
    m = np.tile(m, (2, 2))  # components cross the seams of 16..23 px blocks
    whole = vectorize(m, slide_mpp=1.0)
    parts = vectorize(m, slide_mpp=1.0, chunk_size=chunk)
    assert len(parts) == len(whole)
    for a, b in zip(whole, parts, strict=True):
        assert a.classification == b.classification
        assert a.geometry.equals(b.geometry) and b.geometry.is_valid
        assert a.measurements == b.measurements or np.allclose(
            list(a.measurements.values()), list(b.measurements.values()))
