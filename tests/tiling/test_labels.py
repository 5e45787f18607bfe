import numpy as np
import pytest
from shapely.geometry import MultiPoint, Point, Polygon, box

from magnipath.classes import ClassMap
from magnipath.rasterize import rasterize
from magnipath.tiling import point_probability_map
from magnipath.tiling._labels import build_slide_labels, has_points, label_class_names
from qupath_bridge.objects import QuPathObject

CM = ClassMap.parse("Stroma=1,Tumor=2")


def obj(geom, cls="Stroma", **kw):
    return QuPathObject(geometry=geom, classification=cls, **kw)


def test_point_map_matches_brute_force():
    pts = np.array([[3.5, 4.5], [10.0, 2.0], [-5.0, 20.0]])
    a = 0.3
    m = point_probability_map(pts, (16, 12), a)
    assert m.dtype == np.float32 and m.shape == (16, 12)
    want = np.zeros((16, 12))
    for r in range(16):
        for c in range(12):
            want[r, c] = max(np.exp(-a * np.hypot(c + 0.5 - x, r + 0.5 - y)) for x, y in pts)
    np.testing.assert_allclose(m, want, rtol=1e-6)
    assert m[4, 3] == 1.0  # a point on a pixel centre
    assert not point_probability_map(np.zeros((0, 2)), (4, 4), a).any()
    with pytest.raises(ValueError, match="positive"):
        point_probability_map(pts, (4, 4), 0.0)


def test_clip_repair_skip_counts_and_labels():
    w = h = 100
    bowtie = Polygon([(10, 10), (30, 30), (30, 10), (10, 30)])  # self-intersecting
    objs = [
        obj(box(-20, -20, 40, 40), "Stroma"),              # reaches outside: clipped
        obj(box(200, 200, 300, 300), "Tumor"),             # entirely outside: dropped
        obj(bowtie, "Tumor"),                              # repaired
        obj(box(60, 60, 80, 80), None),                    # unclassified: skipped
        obj(Point(50, 50), "Mitosis"),                     # a point
        obj(MultiPoint([(1, 1), (150, 1)]), "Mitosis"),    # one inside, one outside
    ]
    assert not bowtie.is_valid
    lab = build_slide_labels(objs, [], CM, w, h, None)
    c = lab.counts
    assert (c.clipped, c.outside, c.invalid_repaired, c.unclassified_skipped) == (1, 2, 1, 1)
    assert c.polygons == 2 and c.points == 2
    np.testing.assert_array_equal(lab.points, [[50, 50], [1, 1]])
    # a tile reaching past the slide: pixels outside the image are ignore
    t = lab.label((-16, -16, 64, 64), 2.0, 32, 255)
    assert (t[:8, :] == 255).all() and (t[:, :8] == 255).all()
    assert (t[8:28, 8:28] != 255).all()
    # the bowtie (repaired, smaller) is painted over the big stroma square
    assert t[8 + 8, 8 + 6] == 2  # level-0 (12.9, 16.9) is inside the left triangle
    assert t[8 + 2, 8 + 2] == 1


def test_smaller_regions_paint_over_larger_whatever_the_order():
    big, small = obj(box(0, 0, 100, 100), "Stroma"), obj(box(40, 40, 60, 60), "Tumor")
    for objs in ([big, small], [small, big]):
        t = build_slide_labels(objs, [], CM, 100, 100, None).label((0, 0, 100, 100), 1.0,
                                                                  100, 255)
        assert (t[40:60, 40:60] == 2).all() and (t == 1).sum() == 100 * 100 - 400


def test_index_query_equals_full_rasterize():
    rng = np.random.default_rng(3)
    objs = []
    for _ in range(60):
        x, y = rng.uniform(0, 900, 2)
        r = rng.uniform(5, 80)
        objs.append(obj(Point(x, y).buffer(r, 8), ["Stroma", "Tumor"][rng.integers(2)]))
    lab = build_slide_labels(objs, [], CM, 1000, 1000, None)
    for _ in range(20):
        x, y = rng.uniform(-50, 950, 2)
        b = (x, y, 128.0, 128.0)
        want = rasterize(lab.shapes, b, 2.0, (64, 64), fill=255)
        np.testing.assert_array_equal(lab.label(b, 2.0, 64, 255), want)


def test_point_class_and_class_names():
    objs = [obj(box(0, 0, 10, 10), "Stroma", class_color=(1, 2, 3)),
            obj(box(20, 20, 24, 24), "Mitosis"),    # a polygon of the point class
            obj(Point(5, 5), "Other")]
    assert label_class_names(objs, "Mitosis") == {"Stroma": (1, 2, 3)}
    assert set(label_class_names(objs, None)) == {"Stroma", "Mitosis"}
    assert has_points(objs, None) and has_points(objs, "Mitosis")
    lab = build_slide_labels(objs, [], CM, 100, 100, "Mitosis")
    np.testing.assert_array_equal(lab.points, [[22, 22]])   # centroid; "Other" point skipped
    assert lab.counts.points_skipped == 1
    pts = build_slide_labels([], [obj(Point(7, 8), "Mitosis"), obj(Point(1, 1), "X")], CM,
                             100, 100, "Mitosis")
    np.testing.assert_array_equal(pts.points, [[7, 8]])
    m, n = pts.points_map((0, 0, 16, 16), 2.0, 8, 0.5)
    assert n == 1 and m.max() == pytest.approx(np.exp(-0.5 * np.hypot(0, 0.5)))


def _star(rng, cx, cy, r, n, integer):
    ang = np.sort(rng.uniform(0, 2 * np.pi, n))
    rad = r * rng.uniform(0.3, 1.0, n)
    pts = np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], 1)
    return np.round(pts) if integer else pts


@pytest.mark.parametrize("integer", [True, False])
def test_simplified_big_polygons_rasterise_identically(integer):
    # big polygons (many vertices, some self-intersecting, with holes) are simplified per
    # window for speed; the labels must stay bit-identical, also for integer vertices
    # whose slanted edges pass exactly through pixel centres
    rng = np.random.default_rng(11 + integer)
    objs = []
    for k in range(6):
        shell = _star(rng, *rng.uniform(1000, 5000, 2), rng.uniform(800, 3000), 400, integer)
        hole = _star(rng, *shell.mean(0), 150, 80, integer)
        if k == 5:
            shell = shell[rng.permutation(len(shell))][:120]      # self-intersecting
        objs.append(obj(Polygon(shell, [hole]), ["Stroma", "Tumor"][k % 2]))
    lab = build_slide_labels(objs, [], CM, 6000, 6000, None)
    assert len(lab._big) >= 5
    for d, size in [(1.0, 64), (2.0, 128), (4.0, 64), (0.5, 32), (3.0, 100)]:
        for _ in range(20):
            x, y = np.round(rng.uniform(0, 5800, 2) / d) * d
            b = (x, y, size * d, size * d)
            want = rasterize(lab.shapes, b, d, (size, size), fill=255)
            np.testing.assert_array_equal(lab.label(b, d, size, 255), want, err_msg=str((b, d)))
        lab.clear_cache()
    # the pieces are much smaller than the polygons they stand for
    lab.label((3000, 3000, 128, 128), 2.0, 64, 255)
    sizes = [len(np.asarray(p[0].exterior.coords)) for p in lab._pieces.values()
             if p is not None and isinstance(p[0], Polygon)]
    assert sizes and max(sizes) < 400


def test_piece_cache_stays_bounded_and_labels_identical():
    # the simplified pieces of big polygons are cached per window, least recently used
    # dropped beyond max_piece_bytes; dropped pieces are recomputed, so the labels of a
    # row-major sweep stay bit-identical to rasterising the polygons directly
    rng = np.random.default_rng(17)
    objs = [obj(Polygon(_star(rng, *rng.uniform(1500, 10500, 2), rng.uniform(1000, 2500), 600,
                              False)), ["Stroma", "Tumor"][k % 2]) for k in range(8)]
    lab = build_slide_labels(objs, [], CM, 12000, 12000, None)
    lab.max_piece_bytes = 200_000
    d, size = 2.0, 128
    seen, keys = 0, set()
    for y in range(0, 12000, 1024):
        for x in range(0, 12000, 1024):
            b = (float(x), float(y), size * d, size * d)
            want = rasterize(lab.shapes, b, d, (size, size), fill=255)
            np.testing.assert_array_equal(lab.label(b, d, size, 255), want, err_msg=str(b))
            seen = max(seen, len(lab._pieces))
            keys |= set(lab._pieces)
            assert lab._pieces_bytes <= lab.max_piece_bytes or len(lab._pieces) == 1
    assert 1 < seen < len(keys)  # pieces were held, and some were dropped
    lab.clear_cache()
    assert len(lab._pieces) == 0 and lab._pieces_bytes == 0
