"""read_region / read_level: exact level reads, resampling, padding, upsampling refusal."""

from __future__ import annotations

import numpy as np
import pytest

from magnipath._errors import SlideError
from magnipath.slide import open_slide

from ._files import level_data, pyramid, textured, write_generic, write_ome


def box_mean(arr: np.ndarray, k: int) -> np.ndarray:
    """numpy reference: mean of k x k blocks, halves rounded up."""
    h, w, c = arr.shape
    s = arr.astype(np.int64).reshape(h // k, k, w // k, k, c).sum(axis=(1, 3))
    return ((s + k * k // 2) // (k * k)).astype(np.uint8)


def padded(arr: np.ndarray, y0: int, x0: int, h: int, w: int) -> np.ndarray:
    """numpy reference: a window of ``arr`` with zeros outside it."""
    out = np.zeros((h, w, *arr.shape[2:]), arr.dtype)
    ya, yb = max(y0, 0), min(y0 + h, arr.shape[0])
    xa, xb = max(x0, 0), min(x0 + w, arr.shape[1])
    if ya < yb and xa < xb:
        out[ya - y0:yb - y0, xa - x0:xb - x0] = arr[ya:yb, xa:xb]
    return out


@pytest.mark.parametrize("fixture", ["zlib_slide", "jpeg_slide"])
def test_level_exact_reads_are_pixel_exact(request, fixture):
    path = request.getfixturevalue(fixture)
    with open_slide(path) as s:
        for lv in s.levels:
            ref = level_data(path, lv.index)
            assert ref.shape[:2] == lv.shape
            ds = lv.downsample
            for (ly, lx, size) in [(0, 0, 64), (37, 91, 100), (lv.shape[0] - 50, 3, 50)]:
                box = (lx * ds, ly * ds, size * ds, size * ds)
                out = s.read_region(box, mpp=s.mpp * ds)
                assert out.dtype == np.uint8 and out.shape == (size, size, 3)
                np.testing.assert_array_equal(out, padded(ref, ly, lx, size, size))
                by_mag = s.read_region(box, magnification=s.magnification / ds)
                np.testing.assert_array_equal(by_mag, out)


def test_read_level_matches_tifffile_and_pads(zlib_slide):
    ref = level_data(zlib_slide, 1)
    with open_slide(zlib_slide) as s:
        for y0, x0, h, w in [(0, 0, 500, 750), (-10, -20, 64, 80), (480, 700, 64, 80),
                             (600, 900, 10, 10), (5, 7, 1, 1)]:
            np.testing.assert_array_equal(s.read_level(1, y0, x0, h, w),
                                          padded(ref, y0, x0, h, w))
        assert s.read_level(1, 0, 0, 0, 5).shape == (0, 5, 3)
        with pytest.raises(SlideError, match="level 9"):
            s.read_level(9, 0, 0, 4, 4)


def test_integer_factor_is_box_average(tmp_path):
    img = textured(512, 768, seed=3)
    # levels by 4: a request at downsample 2 reads level 0 and averages 2x2 blocks
    path = write_generic(tmp_path / "by4.tif", pyramid(img, 3, factor=4), resolution=40000.0)
    with open_slide(path) as s:
        assert [lv.downsample for lv in s.levels] == [1.0, 4.0, 16.0]
        out = s.read_region((64, 32, 256, 128), mpp=0.5)
        np.testing.assert_array_equal(out, box_mean(img[32:160, 64:320], 2))
        out8 = s.read_region((0, 0, 512, 512), mpp=2.0)  # downsample 8 = level 1 x 2
        np.testing.assert_array_equal(out8, box_mean(level_data(path, 1)[:128, :128], 2))


def test_non_integer_factor_close_to_area_average(zlib_slide):
    ref = level_data(zlib_slide, 0).astype(np.float64)
    with open_slide(zlib_slide) as s:
        # d = 3 from level 1 (downsample 2) is a 1.5x reduction: resampled
        out = s.read_region((120, 240, 600, 300), mpp=0.75).astype(np.float64)
        assert out.shape == (100, 200, 3)
        # reference: exact area average of level 0 over each output pixel's 3x3 square
        want = ref[240:540, 120:720].reshape(100, 3, 200, 3, 3).mean(axis=(1, 3))
        err = np.abs(out - want)
        # level 1 is a subsample, not an average, of level 0: allow noise but no bias
        assert abs((out - want).mean()) < 2.0
        assert np.corrcoef(out.ravel(), want.ravel())[0, 1] > 0.9
        assert err.mean() < 15


def test_fractional_box_resamples_smoothly(zlib_slide):
    with open_slide(zlib_slide) as s:
        a = s.read_region((100.0, 100.0, 200, 200), mpp=0.5)
        b = s.read_region((100.4, 100.4, 200, 200), mpp=0.5)
        assert a.shape == b.shape == (100, 100, 3)
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 20


def test_out_shape_sets_pixel_count_not_scale(zlib_slide):
    with open_slide(zlib_slide) as s:
        full = s.read_region((0, 0, 512, 512), mpp=0.5)
        part = s.read_region((0, 0, 512, 512), mpp=0.5, out_shape=(100, 50))
        np.testing.assert_array_equal(part, full[:100, :50])


def test_zero_padding_at_borders_and_outside(zlib_slide):
    ref1 = level_data(zlib_slide, 1)
    with open_slide(zlib_slide) as s:
        out = s.read_region((-64, -128, 256, 256), mpp=0.5)
        np.testing.assert_array_equal(out, padded(ref1, -64, -32, 128, 128))
        assert not out[:64].any() and not out[:, :32].any()
        corner = s.read_region((1400, 900, 200, 200))  # crosses bottom-right corner
        assert not corner[100:].any() and not corner[:, 100:].any()
        assert corner[:100, :100].any()
        outside = s.read_region((5000, 5000, 300, 300), mpp=1.0)
        assert outside.shape == (75, 75, 3) and not outside.any()
        # resampled reads pad too
        res = s.read_region((-300, 0, 600, 300), mpp=0.75)
        assert not res[:, :95].any() and res[:, 105:].any()


def test_upsampling_refused_unless_allowed(zlib_slide):
    with open_slide(zlib_slide) as s:
        with pytest.raises(SlideError, match="allow_upsample"):
            s.read_region((0, 0, 100, 100), magnification=80)
        with pytest.raises(SlideError, match="finer than the scan"):
            s.read_region((0, 0, 100, 100), mpp=0.2)
        near = s.read_region((0, 0, 100, 100), mpp=0.249)  # within 1 %: allowed
        assert near.shape == (100, 100, 3)
        up = s.read_region((0, 0, 100, 100), magnification=80, allow_upsample=True)
        assert up.shape == (200, 200, 3)
        base = s.read_region((0, 0, 100, 100))
        assert np.abs(up[::2, ::2].astype(int) - base.astype(int)).mean() < 25


@pytest.mark.parametrize("bad", [(0, 0, 0, 10), (0, 0, 10, -1), (0, float("nan"), 5, 5),
                                 (1, 2, 3)])
def test_bad_boxes(zlib_slide, bad):
    with open_slide(zlib_slide) as s, pytest.raises(SlideError, match="box"):
        s.read_region(bad)


def test_both_mpp_and_magnification_is_an_error(zlib_slide):
    with open_slide(zlib_slide) as s, pytest.raises(SlideError, match="exactly one"):
        s.read_region((0, 0, 10, 10), mpp=0.5, magnification=20)


def test_rgba_drops_alpha_and_grey_becomes_rgb(tmp_path):
    rgba = textured(300, 260, seed=4, channels=4)
    path = write_generic(tmp_path / "rgba.tif", [rgba], resolution=40000.0)
    with open_slide(path) as s:
        np.testing.assert_array_equal(s.read_region((0, 0, 260, 300)), rgba[..., :3])
    grey = textured(300, 260, seed=5, channels=1)[..., 0]
    path = write_generic(tmp_path / "grey.tif", [grey, grey[::2, ::2]], resolution=40000.0)
    with open_slide(path) as s:
        out = s.read_region((10, 20, 100, 50))
        np.testing.assert_array_equal(out, np.repeat(grey[20:70, 10:110, None], 3, axis=2))


def test_ome_subifd_pyramid(tmp_path):
    levels = pyramid(textured(600, 800, seed=6), 3)
    path = write_ome(tmp_path / "p.ome.tif", levels, tile=128, compression="zlib")
    with open_slide(path) as s:
        assert s.backend == "tifffile"
        assert [lv.shape for lv in s.levels] == [(600, 800), (300, 400), (150, 200)]
        assert [lv.downsample for lv in s.levels] == [1.0, 2.0, 4.0]
        for i, lv in enumerate(levels):
            d = 2**i
            np.testing.assert_array_equal(
                s.read_region((0, 0, 800, 600), mpp=0.5 * d), lv)


def test_plain_strip_tiff(tmp_path):
    img = textured(1100, 300, seed=7)
    path = tmp_path / "plain.tif"
    import tifffile

    tifffile.imwrite(path, img, photometric="rgb", rowsperstrip=64,
                     resolution=(40000.0, 40000.0), resolutionunit="CENTIMETER")
    with pytest.warns(UserWarning, match="no pyramid"):
        s = open_slide(path)
    with s:
        assert len(s.levels) == 1
        np.testing.assert_array_equal(s.read_region((10, 100, 200, 300)), img[100:400, 10:210])
        np.testing.assert_array_equal(s.read_region((0, 0, 300, 1100), mpp=1.0),
                                      box_mean(img, 4))


def test_small_single_level_tiff_does_not_warn(tmp_path, recwarn):
    path = write_generic(tmp_path / "small.tif", [textured(200, 200)], resolution=40000.0)
    open_slide(path).close()
    assert not [w for w in recwarn if "pyramid" in str(w.message)]


@pytest.mark.parametrize("block_px", [2048, 40])
def test_thumbnail(zlib_slide, monkeypatch, block_px):
    import magnipath.slide._base as base

    monkeypatch.setattr(base, "THUMBNAIL_BLOCK_PX", block_px)  # 40: many blocks
    with open_slide(zlib_slide) as s:
        thumb = s.thumbnail(2.0)  # level 3 exactly
        np.testing.assert_array_equal(thumb, level_data(zlib_slide, 3))
        odd = s.thumbnail(0.75)  # level 1 resampled by 1.5
        assert odd.shape == (round(1000 / 3), round(1500 / 3), 3)
        whole = s.read_region((0, 0, 1500, 1000), mpp=0.75)
        assert np.abs(odd.astype(int) - whole.astype(int)).max() <= 1


def test_closed_slide_refuses_reads(zlib_slide):
    s = open_slide(zlib_slide)
    s.close()
    s.close()  # idempotent
    with pytest.raises(SlideError, match="closed"):
        s.read_region((0, 0, 10, 10))


def test_pickled_slide_reopens(zlib_slide):
    import pickle

    with open_slide(zlib_slide, mpp=0.3) as s:
        t = pickle.loads(pickle.dumps(s))
        with t:
            assert t.mpp == 0.3 and t.mpp_source == "override"
            np.testing.assert_array_equal(t.read_region((5, 5, 50, 50)),
                                          s.read_region((5, 5, 50, 50)))
