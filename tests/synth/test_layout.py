"""The ground-truth layout: an exact partition, deterministic, with the promised features."""

import numpy as np
import pytest
import shapely

from magnipath.rasterize import polygon_mask
from magnipath.synth import SYNTH_CLASSES, SynthConfig, SynthError, make_layout


@pytest.fixture(scope="module")
def layout():
    return make_layout(SynthConfig(width=4096, height=4096, mpp=0.25, seed=1))


def test_classes_are_the_seven_synthetic_classes():
    assert SYNTH_CLASSES.names == ["Background", "Stroma", "Carcinoma", "Benign", "TLS",
                                   "Necrosis", "Adipose"]
    assert [c.index for c in SYNTH_CLASSES.classes] == list(range(7))


def test_polygons_are_valid_and_areas_sum_to_the_slide(layout):
    assert all(g.is_valid and g.geom_type == "Polygon" for _, g in layout.objects)
    total = sum(g.area for _, g in layout.objects)
    assert total == pytest.approx(4096 * 4096, rel=1e-9)
    union = shapely.union_all([g for _, g in layout.objects])
    assert union.area == pytest.approx(4096 * 4096, rel=1e-9)


@pytest.mark.parametrize("box,d", [((0, 0, 4096, 4096), 8.0), ((1000, 1200, 700, 600), 1.0),
                                   ((333.5, 17.25, 3000, 2900), 3.0)])
def test_every_pixel_belongs_to_exactly_one_class(layout, box, d):
    shape = (round(box[3] / d), round(box[2] / d))
    count = np.zeros(shape, np.int32)
    for _, g in layout.objects:
        count += polygon_mask(g, box, d, shape)
    assert (count == 1).all()


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5, 6, 7])
def test_4096_slides_have_tls_and_carcinoma(seed):
    lay = make_layout(SynthConfig(width=4096, height=4096, mpp=0.25, seed=seed))
    counts = lay.counts()
    assert counts["TLS"] >= 1 and counts["Carcinoma"] >= 1
    mm2 = (0.25 ** 2) / 1e6
    for name, g in lay.objects:
        if name == "TLS":
            assert 0.045 <= g.area * mm2 <= 0.5
    assert all(c >= 1 for c in counts.values()), counts


def test_counts_scale_with_area():
    small = make_layout(SynthConfig(width=4096, height=4096, seed=2)).counts()
    big = make_layout(SynthConfig(width=12288, height=12288, seed=2)).counts()
    n_small = sum(small[k] for k in ("Carcinoma", "TLS", "Benign", "Adipose"))
    n_big = sum(big[k] for k in ("Carcinoma", "TLS", "Benign", "Adipose"))
    assert n_big > 3 * n_small


def test_same_seed_same_geometry_other_seed_differs():
    a = make_layout(SynthConfig(width=3000, height=2500, seed=5))
    b = make_layout(SynthConfig(width=3000, height=2500, seed=5))
    c = make_layout(SynthConfig(width=3000, height=2500, seed=6))
    wkb = [(n, g.wkb) for n, g in a.objects]
    assert wkb == [(n, g.wkb) for n, g in b.objects]
    assert [p.wkb for p in a.mitoses] == [p.wkb for p in b.mitoses]
    assert wkb != [(n, g.wkb) for n, g in c.objects]


def test_mitoses_lie_inside_carcinoma(layout):
    carc = layout.geometry_of("Carcinoma")
    assert len(layout.mitoses) >= 1
    assert all(carc.contains(p) for p in layout.mitoses)


def test_sizes_follow_mpp():
    """The same seed at 0.5 µm/px on half the pixels covers the same tissue in µm."""
    a = make_layout(SynthConfig(width=4096, height=4096, mpp=0.25, seed=3))
    b = make_layout(SynthConfig(width=2048, height=2048, mpp=0.5, seed=3))
    ta = sum(g.area for n, g in a.objects if n != "Background") * 0.25 ** 2
    tb = sum(g.area for n, g in b.objects if n != "Background") * 0.5 ** 2
    assert tb == pytest.approx(ta, rel=0.02)


@pytest.mark.parametrize("kw,field", [({"width": 10}, "width"), ({"mpp": 0.0}, "mpp"),
                                      ({"tile": 500}, "tile"), ({"compression": "lzw"},
                                                                "compression"),
                                      ({"quality": 0}, "quality"), ({"seed": -1}, "seed")])
def test_bad_settings_name_the_field(kw, field):
    with pytest.raises(SynthError, match=field):
        make_layout(SynthConfig(**kw))
