"""Rendering: labels from the truth, tile independence, and stain statistics per class."""

import numpy as np
import pytest

from magnipath.rasterize import rasterize
from magnipath.synth import SYNTH_CLASSES, SynthConfig, make_layout, render_labels, render_region


@pytest.fixture(scope="module")
def layout():
    return make_layout(SynthConfig(width=4096, height=4096, mpp=0.25, seed=1))


def _box_around(layout, name, side):
    """A level-0 box of ``side`` px centred inside the largest component of ``name``."""
    g = max((g for n, g in layout.objects if n == name), key=lambda g: g.area)
    p = g.representative_point()
    return (int(p.x) - side // 2, int(p.y) - side // 2, side, side)


def test_labels_are_the_rasterised_truth(layout):
    shapes = [(g, SYNTH_CLASSES.index_of(n)) for n, g in layout.objects]
    for box, mpp in [((0, 0, 4096, 4096), 4.0), ((900, 1300, 1000, 800), 0.25),
                     ((1717, 203, 1500, 1520), 0.75)]:
        d = mpp / 0.25
        expect = rasterize(shapes, box, d, fill=255)
        got = render_labels(layout, box, mpp)
        assert (expect != 255).all()
        np.testing.assert_array_equal(got, expect)


@pytest.mark.parametrize("name", ["Carcinoma", "TLS", "Benign", "Adipose"])
@pytest.mark.parametrize("mpp", [0.25, 0.5])
def test_render_is_tile_independent(layout, name, mpp):
    d = mpp / 0.25
    x, y, _, _ = _box_around(layout, name, int(384 * d))
    whole = render_region(layout, (x, y, 384 * d, 384 * d), mpp)
    half = 192 * d
    parts = np.zeros_like(whole)
    for i in range(2):
        for j in range(2):
            parts[i * 192:(i + 1) * 192, j * 192:(j + 1) * 192] = render_region(
                layout, (x + j * half, y + i * half, half, half), mpp)
    np.testing.assert_array_equal(whole, parts)


def test_render_is_deterministic_and_seed_dependent(layout):
    box = _box_around(layout, "Carcinoma", 256)
    a = render_region(layout, box)
    b = render_region(make_layout(SynthConfig(width=4096, height=4096, seed=1)), box)
    np.testing.assert_array_equal(a, b)
    c = render_region(make_layout(SynthConfig(width=4096, height=4096, seed=2)), box)
    assert not np.array_equal(a, c)


def test_output_shape_follows_mpp(layout):
    assert render_region(layout, (10, 20, 1000, 600), 1.0).shape == (150, 250, 3)
    assert render_region(layout, (10, 20, 1000, 600)).shape == (600, 1000, 3)


def _class_stats(layout, box, mpp=0.25):
    img = render_region(layout, box, mpp)
    lab = render_labels(layout, box, mpp)
    od = layout.stain.separate(img)
    return img, lab, od


def test_class_appearance(layout):
    """Background is glass-white; TLS carries more haematoxylin than stroma; stroma is
    eosin-dominated; necrosis is paler than carcinoma; adipose is mostly empty."""
    img, lab, od = _class_stats(layout, (0, 0, 4096, 4096), 1.0)
    mean = {c.name: img[lab == c.index].mean(axis=0) for c in SYNTH_CLASSES.classes}
    h = {c.name: od[..., 0][lab == c.index].mean() for c in SYNTH_CLASSES.classes}
    e = {c.name: od[..., 1][lab == c.index].mean() for c in SYNTH_CLASSES.classes}
    assert (mean["Background"] > 235).all()
    assert h["TLS"] > 2 * h["Stroma"]
    assert e["Stroma"] > h["Stroma"]
    assert img[lab == 5].mean() > img[lab == 2].mean()  # necrosis paler than carcinoma
    assert mean["Adipose"].mean() > mean["Stroma"].mean() + 20
    for name in ("Stroma", "Carcinoma", "TLS", "Necrosis", "Benign"):
        assert mean[name].mean() < 225, name


def test_nuclei_sizes_differ_by_class(layout):
    """Carcinoma nuclei (9-14 µm) are larger than TLS lymphocytes (~6-7 µm)."""
    from scipy import ndimage

    sizes = {}
    for name in ("Carcinoma", "TLS"):
        box = _box_around(layout, name, 512)
        _img, lab, od = _class_stats(layout, box)
        dark = ndimage.binary_fill_holes(ndimage.binary_closing(od[..., 0] > 0.4))
        nuc = ndimage.binary_opening(dark & (lab == SYNTH_CLASSES.index_of(name)), iterations=2)
        labels, n = ndimage.label(nuc)
        assert n >= 10
        sizes[name] = np.median(np.bincount(labels.ravel())[1:]) * 0.25 ** 2  # µm²
    assert sizes["Carcinoma"] > 1.5 * sizes["TLS"]
    assert 20 < sizes["TLS"] < 70


def test_lower_resolution_is_close_to_the_area_average(layout):
    box = _box_around(layout, "Carcinoma", 512)
    full = render_region(layout, box).astype(np.float64)
    avg = full.reshape(256, 2, 256, 2, 3).mean(axis=(1, 3))
    half = render_region(layout, box, 0.5).astype(np.float64)
    assert np.abs(avg.mean(axis=(0, 1)) - half.mean(axis=(0, 1))).max() < 8


def test_tile_independence_next_to_a_mitosis(layout):
    """A mitotic figure (with its clear halo and the nuclei it pushes aside) just across a
    tile border renders the same from either tile."""
    p = layout.mitoses[0]
    for off in (-40, -5, 3, 30, 70):
        x, y = int(p.x) + off - 128, int(p.y) - 128 + off
        whole = render_region(layout, (x, y, 256, 256))
        left = render_region(layout, (x, y, 128 - off, 256))
        right = render_region(layout, (x + 128 - off, y, 128 + off, 256))
        np.testing.assert_array_equal(whole, np.concatenate([left, right], axis=1))
