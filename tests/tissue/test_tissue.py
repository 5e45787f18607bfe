"""Tissue detection on synthetic slides, and tissue-fraction queries in level-0 pixels."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from magnipath._errors import MagnipathError
from magnipath.slide import open_slide
from magnipath.tissue import TissueMask, detect_tissue

SLIDE_MPP = 2.0  # µm per level-0 pixel of the synthetic slides
H, W = 800, 1000  # level-0 pixels (1.6 x 2 mm)
# (cy, cx, r) in µm: tissue discs; a lumen (small hole, filled), a large hole (kept),
# and a speck of debris (small object, removed)
BLOBS = [(500, 600, 300), (1000, 1400, 350), (1250, 500, 200)]
SMALL_HOLE = (1150, 1250, 25)  # 1963 µm²: filled
BIG_HOLE = (950, 1500, 90)  # 25447 µm² (a fat lobule, a lumen): filled by default (< 1 mm²)
SPECK = (200, 1700, 20)  # 1257 µm² < 5000: removed
BLACK_FROM = (1450, 1700)  # (y, x) µm: black (like zero padding) below/right, never tissue


def _disc(yy, xx, c):
    return (yy - c[0]) ** 2 + (xx - c[1]) ** 2 < c[2] ** 2


def _truth(mpp: float, shape: tuple[int, int]) -> np.ndarray:
    """The expected mask, sampled at the centres of pixels of ``mpp`` µm."""
    yy, xx = (np.mgrid[0:shape[0], 0:shape[1]] + 0.5) * mpp
    tissue = np.zeros(shape, bool)
    for b in BLOBS:
        tissue |= _disc(yy, xx, b)
    return tissue & ~_disc(yy, xx, BIG_HOLE)


def _write_slide(path, *, blank: bool = False) -> None:
    rng = np.random.default_rng(0)
    yy, xx = (np.mgrid[0:H, 0:W] + 0.5) * SLIDE_MPP
    img = 238 + rng.integers(0, 9, (H, W, 3), dtype=np.uint8)  # glass
    if not blank:
        tissue = np.zeros((H, W), bool)
        for b in [*BLOBS, SPECK]:
            tissue |= _disc(yy, xx, b)
        tissue &= ~_disc(yy, xx, SMALL_HOLE) & ~_disc(yy, xx, BIG_HOLE)
        pink = np.array([215, 130, 180], np.uint8) + rng.integers(0, 21, (H, W, 3),
                                                                   dtype=np.uint8)
        pink[rng.random((H, W)) < 0.05] = [90, 50, 140]  # haematoxylin-dark dots
        img[tissue] = pink[tissue]
    img[(yy >= BLACK_FROM[0]) & (xx >= BLACK_FROM[1])] = 0
    levels = [img]
    while min(levels[-1].shape[:2]) > 200:
        a = levels[-1]
        h, w = a.shape[0] // 2 * 2, a.shape[1] // 2 * 2
        levels.append(a[:h, :w].reshape(h // 2, 2, w // 2, 2, 3).mean(axis=(1, 3))
                      .round().astype(np.uint8))
    res = 1e4 / SLIDE_MPP
    with tifffile.TiffWriter(path) as tw:
        for i, lv in enumerate(levels):
            kw = ({"resolution": (res, res), "resolutionunit": "CENTIMETER"} if i == 0
                  else {"subfiletype": 1})
            tw.write(lv, tile=(256, 256), compression="jpeg", photometric="rgb", **kw)


@pytest.fixture(scope="module")
def blob_slide(tmp_path_factory):
    path = tmp_path_factory.mktemp("tissue") / "blobs.tif"
    _write_slide(path)
    return path


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


@pytest.mark.parametrize("mpp", [8.0, 5.0])
def test_mask_matches_blobs(blob_slide, mpp):
    with open_slide(blob_slide) as s:
        tm = detect_tissue(s, mpp=mpp)
    assert tm.mask.dtype == bool
    assert tm.mask.shape == (round(H * SLIDE_MPP / mpp), round(W * SLIDE_MPP / mpp))
    assert tm.mpp == mpp and tm.slide_mpp == SLIDE_MPP and tm.slide_shape == (H, W)
    assert tm.downsample == pytest.approx(mpp / SLIDE_MPP)
    assert _iou(tm.mask, _truth(mpp, tm.mask.shape)) > 0.95
    yy, xx = ((np.mgrid[0:tm.mask.shape[0], 0:tm.mask.shape[1]] + 0.5) * mpp)
    assert tm.mask[_disc(yy, xx, SMALL_HOLE)].all()  # small hole filled
    assert not tm.mask[_disc(yy, xx, (*SPECK[:2], SPECK[2] + 8))].any()  # debris removed
    assert tm.mask[_disc(yy, xx, (*BIG_HOLE[:2], BIG_HOLE[2] - 10))].all()  # enclosed: tissue
    assert not tm.mask[(yy >= BLACK_FROM[0]) & (xx >= BLACK_FROM[1])].any()


def test_holes_above_the_limit_stay_glass(blob_slide):
    with open_slide(blob_slide) as s:
        tm = detect_tissue(s, mpp=8.0, min_hole_um2=20_000.0)
    yy, xx = ((np.mgrid[0:tm.mask.shape[0], 0:tm.mask.shape[1]] + 0.5) * 8.0)
    assert tm.mask[_disc(yy, xx, SMALL_HOLE)].all()
    assert not tm.mask[_disc(yy, xx, (*BIG_HOLE[:2], BIG_HOLE[2] - 10))].any()


def test_no_cleanup_keeps_debris(blob_slide):
    with open_slide(blob_slide) as s:
        tm = detect_tissue(s, mpp=8.0, min_object_um2=0, min_hole_um2=0)
    yy, xx = ((np.mgrid[0:tm.mask.shape[0], 0:tm.mask.shape[1]] + 0.5) * 8.0)
    assert tm.mask[_disc(yy, xx, (*SPECK[:2], SPECK[2] - 8))].any()


def test_blank_slide_has_no_tissue(tmp_path):
    path = tmp_path / "blank.tif"
    _write_slide(path, blank=True)
    with open_slide(path) as s:
        tm = detect_tissue(s)
    assert not tm.mask.any()


def test_explicit_threshold_and_bad_options(blob_slide):
    with open_slide(blob_slide) as s:
        otsu = detect_tissue(s, min_object_um2=0, min_hole_um2=0)
        low = detect_tissue(s, threshold=0.01, min_object_um2=0, min_hole_um2=0)
        high = detect_tissue(s, threshold=0.99)
        assert low.threshold == 0.01 and 0.05 < otsu.threshold < 0.9
        assert (low.mask >= otsu.mask).all() and low.mask.sum() > otsu.mask.sum()
        assert not high.mask.any()
        with pytest.raises(MagnipathError, match="threshold"):
            detect_tissue(s, threshold=2.0)
        with pytest.raises(MagnipathError, match="mpp"):
            detect_tissue(s, mpp=-1)


def test_fraction_of_known_boxes(blob_slide):
    with open_slide(blob_slide) as s:
        tm = detect_tissue(s)
    def px(*box_um):  # a box in µm -> level-0 pixels
        return tuple(v / SLIDE_MPP for v in box_um)

    assert tm.fraction(px(500, 350, 200, 200)) == pytest.approx(1.0)  # inside blob 1
    assert tm.fraction(px(1500, 100, 100, 80)) == 0.0  # glass
    assert tm.fraction(px(5000, 5000, 100, 100)) == 0.0  # outside the slide
    assert tm.fraction(px(-300, 300, 200, 100)) == 0.0
    # blob 3 (centre 500, 1250 µm; r 200) is tissue; a box half on it, half on glass
    assert tm.fraction(px(400, 1150, 200, 200)) == pytest.approx(1.0)
    truth = _truth(2.0, (int(H * SLIDE_MPP) // 2, int(W * SLIDE_MPP) // 2))  # 2 µm samples
    for x, y, w, h in [(500, 1150, 800, 200), (900, 600, 400, 300), (100, 100, 600, 700)]:
        want = truth[y // 2:(y + h) // 2, x // 2:(x + w) // 2].mean()
        assert 0 < want < 1
        assert tm.fraction(px(x, y, w, h)) == pytest.approx(want, abs=0.03)
    assert tm.fraction((0, 0, 0, 10)) == 0.0


def _hand_mask() -> TissueMask:
    mask = np.zeros((10, 12), bool)
    mask[2:5, 3:7] = True
    mask[8, 11] = True
    # 0.25 µm/px slide, 8 µm/px mask: 32 level-0 px per mask pixel; slide 310 x 380
    return TissueMask(mask, mpp=8.0, slide_mpp=0.25, slide_shape=(310, 380))


def test_fraction_is_area_weighted():
    tm = _hand_mask()
    assert tm.downsample == 32.0
    assert tm.fraction((3 * 32, 2 * 32, 4 * 32, 3 * 32)) == pytest.approx(1.0)
    assert tm.fraction((3 * 32 - 16, 2 * 32, 32, 32)) == pytest.approx(0.5)
    assert tm.fraction((3 * 32 - 16, 2 * 32 - 16, 32, 32)) == pytest.approx(0.25)
    assert tm.fraction((2 * 32, 2 * 32, 6 * 32, 3 * 32)) == pytest.approx(4 / 6)
    # mask pixel (8, 11) spans x 352..384 but the slide ends at 380: only 28 px count
    assert tm.fraction((352, 256, 32, 32)) == pytest.approx(28 / 32)
    assert tm.fraction((352, 256, 64, 32)) == pytest.approx(28 / 64)


def test_fractions_equals_loop_over_fraction(blob_slide):
    rng = np.random.default_rng(3)
    with open_slide(blob_slide) as s:
        detected = detect_tissue(s, mpp=8.0)
    for tm in [_hand_mask(), detected]:
        h0, w0 = tm.slide_shape
        n = 400
        boxes = np.column_stack([rng.uniform(-0.3 * w0, 1.1 * w0, n),
                                 rng.uniform(-0.3 * h0, 1.1 * h0, n),
                                 rng.uniform(0, 0.5 * w0, n), rng.uniform(0, 0.5 * h0, n)])
        boxes[:50, 2:] = rng.integers(1, 200, (50, 2))  # small boxes, integer sizes
        boxes[50:60, 2] = 0  # empty boxes
        got = tm.fractions(boxes)
        want = np.array([tm.fraction(tuple(b)) for b in boxes])
        assert got.shape == (n,)
        np.testing.assert_allclose(got, want, atol=1e-9)
        assert got.min() >= 0 and got.max() <= 1
        assert (got > 0).any() and (got == 0).any()


def _full_integral_fractions(tm: TissueMask, boxes: np.ndarray) -> np.ndarray:
    """The fractions from the whole integral image (the reference for the row-wise one)."""
    mh, mw = tm.mask.shape
    ii = np.zeros((mh + 1, mw + 1), np.int64)
    ii[1:, 1:] = tm.mask.cumsum(axis=0).cumsum(axis=1)
    h0, w0 = tm.slide_shape
    x, y, w, h = np.asarray(boxes, np.float64).T
    d = tm.downsample

    def edge(v, limit, m):
        return np.clip(np.clip(v, 0, limit) / d, 0, m)

    def area_to(u, v):
        j, i = np.minimum(np.floor(u).astype(int), mw - 1), np.minimum(np.floor(v).astype(int),
                                                                       mh - 1)
        s, t = u - j, v - i
        return ((1 - s) * (1 - t) * ii[i, j] + s * (1 - t) * ii[i, j + 1]
                + (1 - s) * t * ii[i + 1, j] + s * t * ii[i + 1, j + 1])

    u0, u1 = edge(x, w0, mw), edge(x + w, w0, mw)
    v0, v1 = edge(y, h0, mh), edge(y + h, h0, mh)
    area = area_to(u1, v1) - area_to(u0, v1) - area_to(u1, v0) + area_to(u0, v0)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where((w > 0) & (h > 0), area * d**2 / (w * h), 0.0)
    return np.clip(frac, 0.0, 1.0)


def test_fractions_bit_equal_to_whole_integral_image():
    # fractions() computes only the integral-image rows the boxes need; the result must be
    # bit-identical to the whole integral image, for grid boxes and arbitrary ones
    rng = np.random.default_rng(5)
    mask = rng.random((37, 53)) < 0.4
    tm = TissueMask(mask, mpp=8.0, slide_mpp=0.5, slide_shape=(37 * 16 - 5, 53 * 16 - 9))
    h0, w0 = tm.slide_shape
    gy, gx = np.mgrid[0:h0:48, 0:w0:48]
    grid = np.column_stack([gx.ravel(), gy.ravel(), np.full(gx.size, 64.0),
                            np.full(gx.size, 64.0)])
    rnd = np.column_stack([rng.uniform(-100, w0 + 50, 300), rng.uniform(-100, h0 + 50, 300),
                           rng.uniform(0, 400, 300), rng.uniform(0, 400, 300)])
    for boxes in (grid, rnd, rnd[:1], np.zeros((0, 4))):
        got = tm.fractions(boxes)
        np.testing.assert_array_equal(got, _full_integral_fractions(tm, boxes))
    assert 0 < tm.fractions(grid).mean() < 1


@pytest.mark.parametrize("band", [1, 3, 7, 64])
def test_banded_saturation_and_otsu_equal_whole_image(band):
    # detection smooths the saturation and builds Otsu's histogram band by band; both must
    # equal the whole-image computation bit for bit (masks must not depend on the band)
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    from magnipath.tissue import (
        DARK_LIMIT,
        SIGMA,
        _otsu_threshold,
        _saturation_bands,
        saturation,
    )

    rng = np.random.default_rng(band)
    rgb = rng.integers(0, 256, (41, 29, 3), dtype=np.uint8)
    rgb[:5] = 0  # black rows (saturation 0, not valid) at the top edge
    rgb[20:23, 4:20] = [200, 120, 170]  # a flat pink patch: repeated values
    want = ndimage.gaussian_filter(saturation(rgb), sigma=SIGMA, mode="nearest")
    sat, valid = _saturation_bands(rgb, band=band)
    assert sat.dtype == want.dtype == np.float32
    np.testing.assert_array_equal(sat, want)
    np.testing.assert_array_equal(valid, rgb.max(axis=2) > DARK_LIMIT)
    got = _otsu_threshold(sat, valid, band=band)
    assert got == float(threshold_otsu(sat[valid]))
    # no valid pixel, or a single value: no threshold
    assert _otsu_threshold(sat, np.zeros_like(valid), band=band) is None
    assert _otsu_threshold(np.full_like(sat, 0.3), valid, band=band) is None
