"""The Pillow backend: PNG, JPEG, BMP and other ordinary rasters read as one-level slides."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
from PIL import Image

from magnipath._errors import SlideError
from magnipath.slide import SlideWarning, open_slide
from magnipath.slide._image import IMAGE_PYRAMID_SIDE, ImageSlide, image_dpi_mpp

from ._files import textured


def _png(path, arr, **kw):
    Image.fromarray(arr).save(path, **kw)
    return path


def test_png_opens_lazily_with_its_dpi_and_reads_exact_pixels(tmp_path):
    arr = textured(1500, 2100)
    path = _png(tmp_path / "crop.png", arr, dpi=(25400 / 0.5, 25400 / 0.5))
    with open_slide(path) as s:
        assert isinstance(s, ImageSlide) and s.backend == "pillow"
        assert s.mpp == pytest.approx(0.5, rel=1e-4) and s.mpp_source == "image-resolution"
        assert s._pixels[0] is None  # nothing decoded by opening
        assert [lv.shape for lv in s.levels] == [(1500, 2100), (750, 1050), (375, 525)]
        assert [lv.downsample for lv in s.levels] == [1.0, 2.0, 4.0]
        assert np.array_equal(s.read_region((10, 20, 300, 200)), arr[20:220, 10:310])
        # a 2x read: from the in-memory level 1, the exact mean of 2x2 blocks (halves up)
        got = s.read_region((100, 50, 64, 32), mpp=1.0)
        blocks = arr[50:82, 100:164].reshape(16, 2, 32, 2, 3).astype(int).sum((1, 3))
        assert np.array_equal(got, ((blocks + 2) // 4).astype(np.uint8))
        # outside the image: zero padding
        edge = s.read_region((2000, 1400, 200, 200))
        assert np.array_equal(edge[:100, :100], arr[1400:, 2000:]) and not edge[100:].any()


def test_jpeg_without_resolution_needs_mpp_and_says_how(tmp_path):
    path = tmp_path / "photo.jpg"
    Image.fromarray(textured(600, 800)).save(path, quality=92, dpi=(300, 300))  # print dpi
    with pytest.raises(SlideError, match=r"--mpp 0\.25.*suggest-mpp"):
        open_slide(path)
    with open_slide(path, mpp=0.25) as s:
        assert s.mpp == 0.25 and s.mpp_source == "override" and len(s.levels) == 1
        patch = s.read_region((0, 0, 800, 600), mpp=0.5)
        assert patch.shape == (300, 400, 3) and 60 < patch.mean() < 200


@pytest.mark.parametrize("mode", ["L", "P", "RGBA"])
def test_greyscale_palette_and_alpha_become_rgb(tmp_path, mode):
    rgb = textured(64, 80)
    img = Image.fromarray(rgb)
    if mode == "RGBA":
        alpha = np.full((64, 80), 255, np.uint8)
        alpha[:, :10] = 0
        img = Image.fromarray(np.dstack([rgb, alpha]), "RGBA")
    else:
        img = img.convert(mode)
    path = tmp_path / f"img_{mode}.png"
    img.save(path)
    with open_slide(path, mpp=0.5) as s:
        out = s.read_region((0, 0, 80, 64))
    assert out.shape == (64, 80, 3) and out.dtype == np.uint8
    if mode == "L":
        assert np.array_equal(out[..., 0], out[..., 2])
        assert np.array_equal(out[..., 0], np.asarray(img))
    if mode == "RGBA":
        assert not out[:, :10].any() and np.array_equal(out[:, 10:], rgb[:, 10:])


def test_bmp_and_an_image_without_a_known_suffix_open_by_content(tmp_path):
    arr = textured(40, 50)
    bmp = _png(tmp_path / "a.bmp", arr)
    odd = tmp_path / "export.dat"
    Image.fromarray(arr).save(odd, format="PNG")
    for path in (bmp, odd):
        with open_slide(path, mpp=1.0) as s:
            assert s.backend == "pillow" and np.array_equal(s.read_region((0, 0, 50, 40)), arr)


def test_unreadable_files_say_which_formats_are_supported(tmp_path):
    junk_png = tmp_path / "broken.png"
    junk_png.write_bytes(b"not an image at all")
    junk = tmp_path / "notes.xyz"
    junk.write_bytes(b"hello")
    for path in (junk_png, junk):
        with pytest.raises(SlideError, match=str(path.name)) as err:
            open_slide(path, mpp=0.5)
        msg = str(err.value)
        assert "PNG, JPEG" in msg and "TIFF" in msg and "Convert" in msg


def test_truncated_png_fails_at_first_read_with_a_clear_error(tmp_path):
    path = _png(tmp_path / "cut.png", textured(300, 300))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with open_slide(path, mpp=0.5) as s, pytest.raises(SlideError, match="corrupt or truncated"):
        s.read_region((0, 0, 10, 10))


def test_sixteen_bit_images_are_refused_with_what_to_do(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)).save(path)
    with pytest.raises(SlideError, match="8-bit RGB"):
        open_slide(path, mpp=0.5)


def test_pickled_image_slide_reopens_with_its_override(tmp_path):
    arr = textured(100, 120)
    path = _png(tmp_path / "p.png", arr)
    with open_slide(path, mpp=0.3) as s:
        again = pickle.loads(pickle.dumps(s))
    with again:
        assert again.mpp == 0.3 and again.backend == "pillow"
        assert np.array_equal(again.read_region((0, 0, 120, 100)), arr)


def test_thumbnail_and_lazy_levels_cover_a_large_image(tmp_path):
    side = IMAGE_PYRAMID_SIDE * 2 + 6
    arr = textured(side, side // 2)
    path = _png(tmp_path / "big.png", arr)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SlideWarning)  # an in-memory pyramid: no warning
        s = open_slide(path, mpp=0.25)
    with s:
        assert len(s.levels) == 3
        thumb = s.thumbnail(1.0)
        assert thumb.shape == (round(side / 4), round(side // 2 / 4), 3)
        levels = s.zarr_levels()
        assert levels[0].shape == (side, side // 2, 3)
        assert np.array_equal(levels[0][5:9, 7:11], arr[5:9, 7:11])


def test_dpi_of_editors_is_not_a_scan_resolution():
    assert image_dpi_mpp({"dpi": (72, 72)}) is None
    assert image_dpi_mpp({"dpi": (300.0, 300.0)}) is None
    assert image_dpi_mpp({}) is None
    assert image_dpi_mpp({"dpi": (101600, 101600)}) == pytest.approx(0.25)
