"""Stain and scanner looks: same layout and truth under every scanner, only the colours differ."""

import json

import numpy as np
import pytest

from magnipath.cli import main
from magnipath.stain import macenko_vectors
from magnipath.synth import (
    SCANNER_PRESETS,
    Scanner,
    SynthConfig,
    SynthError,
    get_scanner,
    make_layout,
    render_labels,
    render_region,
)

SIZE = dict(width=2048, height=2048, mpp=0.25, seed=4)


def _layout(scanner: Scanner):
    return make_layout(SynthConfig(**SIZE, scanner=scanner))


def _tissue_box(layout, name="Stroma", side=256):
    g = max((g for n, g in layout.objects if n == name), key=lambda g: g.area)
    p = g.representative_point()
    return (int(p.x) - side // 2, int(p.y) - side // 2, side, side)


def test_presets_keep_layout_and_labels_and_change_colours():
    ref = _layout(Scanner())
    box = _tissue_box(ref)
    img_ref = render_region(ref, box)
    for name, sc in SCANNER_PRESETS.items():
        lay = _layout(sc)
        assert [(n, g.wkb) for n, g in lay.objects] == [(n, g.wkb) for n, g in ref.objects]
        np.testing.assert_array_equal(render_labels(lay, box), render_labels(ref, box))
        img = render_region(lay, box)
        diff = np.abs(img.astype(int) - img_ref).mean()
        if name == "reference":
            assert diff == 0
        else:
            assert diff > 4, f"{name} looks like the reference (mean |diff| {diff:.1f})"


def test_intensity_and_tint_move_colours_the_expected_way():
    ref = _layout(Scanner())
    box = _tissue_box(ref)
    grey_ref = render_region(ref, box).mean()
    faded = render_region(_layout(get_scanner("faded")), box).mean()
    intense = render_region(_layout(get_scanner("intense")), box).mean()
    assert faded > grey_ref + 10 > intense + 10
    # a yellow glass absorbs blue: blue drops below red on bare glass
    yellow = _layout(Scanner(glass=(0.02, 0.05, 0.3)))
    glass = render_region(yellow, (2, 2, 16, 16)).reshape(-1, 3).mean(axis=0)
    assert glass[2] < glass[0] - 40


def test_stain_vectors_are_the_ones_rendered():
    h = (0.45, 0.80, 0.40)
    lay = _layout(Scanner(h_vector=h, e_vector=(0.10, 0.95, 0.30)))
    img = render_region(lay, _tissue_box(lay, side=512))
    est = macenko_vectors(img)
    want = np.asarray(h) / np.linalg.norm(h)
    # the per-slide variation (a few %) and the overlap of the stains blur the estimate
    assert float(est[0] @ want) > 0.97


@pytest.mark.parametrize("mpp", [0.25, 0.5])
def test_blur_keeps_tiles_independent(mpp):
    lay = _layout(Scanner(blur_um=0.8))
    d = mpp / 0.25
    x, y, _, _ = _tissue_box(lay, side=int(256 * d))
    whole = render_region(lay, (x, y, 256 * d, 256 * d), mpp)
    half = 128 * d
    parts = np.zeros_like(whole)
    for i in range(2):
        for j in range(2):
            parts[i * 128:(i + 1) * 128, j * 128:(j + 1) * 128] = render_region(
                lay, (x + j * half, y + i * half, half, half), mpp)
    np.testing.assert_array_equal(whole, parts)
    sharp = render_region(_layout(Scanner()), (x, y, 256 * d, 256 * d), mpp)
    # blur lowers the local contrast (pixel-to-pixel differences)
    assert np.abs(np.diff(whole.astype(int), axis=1)).mean() < \
        0.7 * np.abs(np.diff(sharp.astype(int), axis=1)).mean()


@pytest.mark.parametrize("kw,field", [
    (dict(h_scale=0.0), "h_scale"), (dict(brightness=3.0), "brightness"),
    (dict(blur_um=-1.0), "blur_um"), (dict(glass=(0.1, 0.1)), "glass"),
    (dict(h_vector=(0.0, 0.0, 0.0)), "h_vector"), (dict(quality=0), "quality")])
def test_bad_scanner_settings_name_the_field(kw, field):
    with pytest.raises(SynthError, match=field):
        make_layout(SynthConfig(**SIZE, scanner=Scanner(**kw)))


def test_unknown_preset_lists_the_choices():
    with pytest.raises(SynthError, match="scanner-b"):
        get_scanner("nonesuch")


def test_cli_stain_same_truth_other_pixels_and_description(tmp_path, capsys):
    import tifffile

    common = ["--width", "1024", "--height", "1024", "--seed", "3", "--compression", "zlib",
              "--json", "--quiet"]
    assert main(["synth", str(tmp_path / "a.tif"), *common]) == 0
    capsys.readouterr()
    assert main(["synth", str(tmp_path / "b.tif"), *common, "--stain", "yellow",
                 "--h-intensity", "1.2", "--blur-um", "0.3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["stain"]["name"] == "yellow+custom"
    assert out["stain"]["h_scale"] == 1.2 and out["stain"]["blur_um"] == 0.3
    assert (tmp_path / "a.geojson").read_bytes() == (tmp_path / "b.geojson").read_bytes()
    with tifffile.TiffFile(tmp_path / "a.tif") as ta, tifffile.TiffFile(tmp_path / "b.tif") as tb:
        assert "Stain" not in ta.pages[0].description
        assert "|Stain = yellow+custom" in tb.pages[0].description
        assert not np.array_equal(ta.pages[0].asarray(), tb.pages[0].asarray())


def test_cli_bad_vector_exits_1_naming_the_option(tmp_path, capsys):
    rc = main(["synth", str(tmp_path / "a.tif"), "--width", "256", "--height", "256",
               "--h-vector", "0.6,0.7", "--quiet"])
    assert rc == 1
    assert "--h-vector" in capsys.readouterr().err
    assert not (tmp_path / "a.tif").exists()
