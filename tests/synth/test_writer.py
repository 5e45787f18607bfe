"""The written slide: pyramid, tiles, metadata, exact 2x2 averages, streaming, atomicity."""

import numpy as np
import pytest
import tifffile

from magnipath._errors import Cancelled
from magnipath.synth import (
    SynthConfig,
    SynthError,
    level_shapes,
    make_layout,
    render_region,
    synthesize,
)
from magnipath.synth._writer import downsample2, write_pyramid


def test_level_shapes_halve_until_below_1024():
    assert level_shapes(4096, 4096) == [(4096, 4096), (2048, 2048), (1024, 1024), (512, 512)]
    assert level_shapes(3001, 1500) == [(3001, 1500), (1500, 750), (750, 375)]
    assert level_shapes(900, 700) == [(900, 700)]


def test_pyramid_tiles_and_metadata(synth_small):
    with tifffile.TiffFile(synth_small.slide) as tif:
        assert tif.is_bigtiff
        pages = list(tif.pages)
        assert [p.shape[:2] for p in pages] == synth_small.levels
        assert synth_small.levels == level_shapes(4096, 4096)
        for k, p in enumerate(pages):
            assert p.is_tiled and p.tile == (512, 512)
            assert p.shape[2] == 3 and p.dtype == np.uint8
            assert p.photometric == tifffile.PHOTOMETRIC.RGB
            assert p.compression == tifffile.COMPRESSION.ADOBE_DEFLATE
            assert p.subfiletype == (0 if k == 0 else 1)
            assert p.tags["ResolutionUnit"].value == tifffile.RESUNIT.CENTIMETER
            xres = p.tags["XResolution"].value
            assert 1e4 / (xres[0] / xres[1]) == pytest.approx(0.25 * 2 ** k)
        desc = pages[0].description
        assert "Aperio Image Library" in desc and "|MPP = 0.25|" in desc.replace("\r\n", "|")
        assert "AppMag = 40" in desc
        # a generic pyramid for tifffile (not mistaken for an SVS thumbnail)
        assert len(tif.series[0].levels) == len(synth_small.levels)


def test_level_k_is_the_2x2_average_of_level_k_minus_1(synth_small):
    levels = [tifffile.imread(synth_small.slide, key=k) for k in range(len(synth_small.levels))]
    pairs = [(levels[0][1024:3072, 512:2560], levels[1][512:1536, 256:1280])]  # a crop: fast
    pairs += [(levels[k - 1], levels[k]) for k in range(2, len(levels))]
    for above, level in pairs:
        h, w = level.shape[:2]
        up = above[:2 * h, :2 * w].astype(np.int32)
        avg = (up[0::2, 0::2] + up[1::2, 0::2] + up[0::2, 1::2] + up[1::2, 1::2]) / 4.0
        assert np.abs(level - avg).max() <= 0.5
        np.testing.assert_array_equal(level, downsample2(above[:2 * h, :2 * w]))


def test_level0_is_the_rendered_slide(synth_small):
    layout = make_layout(synth_small.config)
    with tifffile.TiffFile(synth_small.slide) as tif:
        region = tif.pages[0].asarray()[1536:2560, 1024:2048]
    np.testing.assert_array_equal(region, render_region(layout, (1024, 1536, 1024, 1024)))


def test_jpeg_slide_is_close_to_the_lossless_one(synth_small, synth_small_jpeg):
    with tifffile.TiffFile(synth_small_jpeg.slide) as tif:
        assert tif.pages[0].compression == tifffile.COMPRESSION.JPEG
        assert [p.shape[:2] for p in tif.pages] == synth_small.levels
        jpeg = [tif.pages[k].asarray().astype(np.int16) for k in (1, 2)]
    exact = [tifffile.imread(synth_small.slide, key=k).astype(np.int16) for k in (1, 2)]
    for a, b in zip(jpeg, exact, strict=True):
        assert np.abs(a - b).mean() < 4.0


def test_open_slide_reads_the_pyramid_and_mpp(synth_small):
    slide_mod = pytest.importorskip("magnipath.slide")
    with slide_mod.open_slide(synth_small.slide) as s:
        assert s.mpp == pytest.approx(0.25)
        assert [lv.shape for lv in s.levels] == synth_small.levels
        patch = s.read_region((512, 1024, 1024, 1024), mpp=0.5)
    lvl1 = tifffile.imread(synth_small.slide, key=1)
    np.testing.assert_array_equal(patch, lvl1[512:1024, 256:768])


def test_openslide_reads_it(synth_small_jpeg):
    openslide = pytest.importorskip("openslide")
    s = openslide.OpenSlide(str(synth_small_jpeg.slide))
    try:
        assert s.level_dimensions == tuple((w, h) for h, w in synth_small_jpeg.levels)
        assert float(s.properties["openslide.mpp-x"]) == pytest.approx(0.25)
    finally:
        s.close()


def test_write_pyramid_streams_tiles_in_order(tmp_path):
    """Each level-0 tile is rendered once, in row-major order; odd sizes work."""
    calls = []
    rng = np.random.default_rng(0)
    full = rng.integers(0, 256, (1100, 1300, 3), dtype=np.uint8)

    def render(x, y, w, h):
        calls.append((x, y))
        out = np.zeros((h, w, 3), np.uint8)
        part = full[y:y + h, x:x + w]
        out[:part.shape[0], :part.shape[1]] = part
        return out

    shapes = write_pyramid(tmp_path / "t.tif", (1100, 1300), render, mpp=0.5, tile=256,
                           compression="zlib")
    assert calls == [(x, y) for y in range(0, 1100, 256) for x in range(0, 1300, 256)]
    assert shapes == [(1100, 1300), (550, 650)]
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "t.tif", key=0), full)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "t.tif", key=1),
                                  downsample2(full[:1100, :1300]))


def test_cancel_leaves_nothing(tmp_path):
    out = tmp_path / "c.tif"
    calls = {"n": 0}

    def cancel():
        calls["n"] += 1
        return calls["n"] > 2

    with pytest.raises(Cancelled):
        synthesize(out, SynthConfig(width=2048, height=2048, seed=0, compression="zlib"),
                   cancel=cancel)
    assert list(tmp_path.iterdir()) == []


def test_progress_reports_tile_rows(tmp_path):
    events = []
    synthesize(tmp_path / "p.tif", SynthConfig(width=1024, height=1536, tile=512),
               progress=events.append)
    rows = [e for e in events if e.stage == "synth"]
    assert [e.done for e in rows] == [1, 2, 3] and rows[-1].total == 3


def test_bad_output_name(tmp_path):
    with pytest.raises(SynthError, match="tif"):
        synthesize(tmp_path / "x.png", SynthConfig(width=256, height=256))
