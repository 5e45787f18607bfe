"""The openslide backend, zarr levels for napari, and the ``magnipath info`` command."""

from __future__ import annotations

import json

import numpy as np
import pytest

from magnipath.slide import open_slide

from ._files import level_data, pyramid, textured, write_generic

openslide = pytest.importorskip("openslide", reason="openslide-python is not installed")

BOXES = [((0, 0, 256, 256), 0.25), ((100, 60, 512, 384), 0.5), ((-64, -64, 512, 512), 1.0),
         ((700, 500, 512, 512), 0.5), ((37.5, 11.2, 300, 300), 0.6),
         ((-16, 32, 1024, 768), 2.0)]


def test_openslide_equals_tifffile_on_zlib(tmp_path):
    # sides divisible by 8: openslide's level downsamples are then exact integers (with
    # fractional ones openslide shifts level reads by a fraction of a pixel)
    path = write_generic(tmp_path / "os.tif", pyramid(textured(768, 1024, seed=9), 4),
                         resolution=40000.0)
    with open_slide(path, backend="openslide") as o, open_slide(path, backend="tifffile") as t:
        assert o.backend == "openslide" and t.backend == "tifffile"
        assert o.mpp == pytest.approx(t.mpp) and o.mpp_source == "openslide"
        assert [lv.shape for lv in o.levels] == [lv.shape for lv in t.levels]
        assert [lv.downsample for lv in o.levels] == [lv.downsample for lv in t.levels]
        for box, mpp in BOXES:
            np.testing.assert_array_equal(o.read_region(box, mpp=mpp),
                                          t.read_region(box, mpp=mpp))
        for lv in o.levels:
            np.testing.assert_array_equal(o.read_level(lv.index, -5, 7, 40, 60),
                                          t.read_level(lv.index, -5, 7, 40, 60))


def test_openslide_close_to_tifffile_on_jpeg(jpeg_slide):
    with open_slide(jpeg_slide, backend="openslide") as o, open_slide(jpeg_slide) as t:
        for box, mpp in BOXES:
            a = o.read_region(box, mpp=mpp).astype(int)
            b = t.read_region(box, mpp=mpp).astype(int)
            assert np.abs(a - b).max() <= 8  # JPEG decoders differ by a few grey levels
            assert np.abs(a - b).mean() < 1.0


def test_openslide_mpp_override_and_missing(tmp_path):
    path = write_generic(tmp_path / "n.tif", pyramid(textured(256, 256), 2), resolution=None)
    with pytest.raises(Exception, match="--mpp"):
        open_slide(path, backend="openslide")
    with open_slide(path, backend="openslide", mpp=0.5) as s:
        assert s.mpp == 0.5 and s.mpp_source == "override"


def test_openslide_rejects_junk(tmp_path):
    from magnipath._errors import SlideError

    path = tmp_path / "junk.mrxs"
    path.write_bytes(b"not a slide" * 100)
    with pytest.raises(SlideError) as info:
        open_slide(path)
    assert str(path) in str(info.value)


def test_zarr_levels(zlib_slide):
    with open_slide(zlib_slide) as s:
        arrays = s.zarr_levels()
        assert len(arrays) == len(s.levels)
        for lv, arr in zip(s.levels, arrays, strict=True):
            assert arr.shape == (*lv.shape, 3) and arr.dtype == np.uint8
            np.testing.assert_array_equal(np.asarray(arr[10:50, 20:90]),
                                          level_data(zlib_slide, lv.index)[10:50, 20:90])
    with open_slide(zlib_slide, backend="openslide") as o:
        arr = o.zarr_levels()[1]
        assert arr.shape == (500, 750, 3)
        np.testing.assert_array_equal(arr[10:50:3, 20:90, 1], level_data(zlib_slide, 1)[10:50:3,
                                                                                      20:90, 1])
        np.testing.assert_array_equal(arr[7], level_data(zlib_slide, 1)[7])


def test_grey_zarr_levels_are_rgb(tmp_path):
    grey = textured(200, 300, channels=1)[..., 0]
    path = write_generic(tmp_path / "g.tif", [grey, grey[::2, ::2]], resolution=40000.0)
    with open_slide(path) as s:
        arr = s.zarr_levels()[0]
        assert arr.shape == (200, 300, 3)
        np.testing.assert_array_equal(arr[5:9, ...], np.repeat(grey[5:9, :, None], 3, axis=2))


def test_info_command(zlib_slide, tmp_path, capsys):
    from magnipath.cli import main

    assert main(["info", str(zlib_slide), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["backend"] == "tifffile"
    assert out["mpp"] == pytest.approx(0.25) and out["mpp_source"] == "tiff-resolution"
    assert out["magnification"] == pytest.approx(40)
    assert [lv["shape"] for lv in out["levels"]] == [[1000, 1500], [500, 750], [250, 375],
                                                     [125, 188]]
    assert [lv["downsample"] for lv in out["levels"]] == [1, 2, 4, 8]

    nompp = write_generic(tmp_path / "x.tif", [textured(64, 64)], resolution=None)
    assert main(["info", str(nompp), "--no-estimate"]) == 0
    out = capsys.readouterr().out
    assert "mpp: None" in out and "suggest-mpp" in out
    assert main(["info", str(nompp), "--mpp", "0.5"]) == 0
    text = capsys.readouterr().out
    assert "mpp_source: override" in text and "magnification: 20" in text
