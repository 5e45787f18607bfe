"""Label maps -> polygons: topology on hand-made masks, measurements, options, errors."""

import math

import numpy as np
import pytest
import scipy.ndimage as ndi
import shapely
from shapely.geometry import Polygon, box

from magnipath._errors import Cancelled
from magnipath.classes import ClassMap, ClassSpec
from magnipath.rasterize import rasterize
from magnipath.vectorize import AREA, MEAN_PROBABILITY, PERIMETER, VectorizeError, vectorize
from qupath_bridge.geojson import read_geojson, write_geojson


def _mask(shape, fill=255):
    return np.full(shape, fill, dtype=np.uint8)


def _by_class(objs):
    out = {}
    for o in objs:
        out.setdefault(o.classification, []).append(o)
    return out


def test_square_with_hole_is_one_polygon_with_an_interior_ring():
    m = _mask((8, 8))
    m[1:7, 1:7] = 1
    m[3:5, 3:5] = 255
    (obj,) = vectorize(m, slide_mpp=0.5)
    g = obj.geometry
    assert isinstance(g, Polygon) and len(g.interiors) == 1
    assert g.equals(box(1, 1, 7, 7).difference(box(3, 3, 5, 5)))
    assert obj.classification == "1" and obj.object_type == "annotation"
    assert obj.measurements[AREA] == pytest.approx(32 * 0.25)
    assert obj.measurements[PERIMETER] == pytest.approx((24 + 8) * 0.5)


def test_two_classes_touching_share_their_edge_exactly():
    m = _mask((6, 8))
    m[1:5, 1:4] = 1
    m[1:5, 4:7] = 2
    objs = _by_class(vectorize(m, slide_mpp=1.0))
    a, b = objs["1"][0].geometry, objs["2"][0].geometry
    assert a.intersection(b).area == 0
    shared = a.intersection(b)
    assert shared.length == 4 and shared.bounds == (4, 1, 4, 5)


def test_diagonal_neighbours_are_separate_objects():
    m = _mask((4, 4))
    m[1, 1] = m[2, 2] = 1
    objs = vectorize(m, slide_mpp=1.0)
    assert [o.geometry.bounds for o in objs] == [(1, 1, 2, 2), (2, 2, 3, 3)]


def test_ring_inside_a_ring_with_an_island():
    m = _mask((11, 11))
    m[:, :] = 1
    m[1:10, 1:10] = 255
    m[2:9, 2:9] = 2
    m[3:8, 3:8] = 255
    m[5, 5] = 1
    objs = vectorize(m, slide_mpp=1.0)
    cls = _by_class(objs)
    outer = max(cls["1"], key=lambda o: o.geometry.area).geometry
    island = min(cls["1"], key=lambda o: o.geometry.area).geometry
    inner = cls["2"][0].geometry
    assert len(objs) == 3
    assert outer.equals(box(0, 0, 11, 11).difference(box(1, 1, 10, 10)))
    assert inner.equals(box(2, 2, 9, 9).difference(box(3, 3, 8, 8)))
    assert island.equals(box(5, 5, 6, 6))


def test_component_touching_its_hole_at_a_corner_is_valid():
    m = _mask((5, 5))
    m[1:4, 1:4] = 1
    m[2, 2] = m[3, 3] = 255
    (obj,) = vectorize(m, slide_mpp=1.0)
    assert obj.geometry.is_valid and len(obj.geometry.interiors) == 1
    assert obj.geometry.area == 7


def test_other_classes_inside_are_holes():
    m = _mask((7, 7))
    m[1:6, 1:6] = 1
    m[2:4, 2:4] = 2
    cls = _by_class(vectorize(m, slide_mpp=1.0))
    assert len(cls["1"][0].geometry.interiors) == 1
    assert cls["1"][0].geometry.area == 21 and cls["2"][0].geometry.area == 4


def test_origin_and_downsample_put_vertices_on_level0_pixel_edges():
    m = _mask((5, 6))
    m[1:3, 2:5] = 3
    (obj,) = vectorize(m, slide_mpp=0.25, origin=(100.0, 40.0), downsample=4.0)
    assert obj.geometry.equals(box(100 + 2 * 4, 40 + 1 * 4, 100 + 5 * 4, 40 + 3 * 4))
    n = 6
    assert obj.measurements[AREA] == pytest.approx(n * (4 * 0.25) ** 2)
    assert obj.measurements[PERIMETER] == pytest.approx(10 * 4 * 0.25)
    back = rasterize([(obj.geometry, 3)], (100.0, 40.0, 24, 20), 4.0, (5, 6), fill=255)
    np.testing.assert_array_equal(back, m)


def test_object_count_matches_4_connected_components():
    rng = np.random.default_rng(3)
    m = rng.choice(np.array([0, 1, 2, 255], np.uint8), size=(40, 50))
    objs = vectorize(m, slide_mpp=1.0)
    expected = sum(ndi.label(m == v)[1] for v in (0, 1, 2))
    assert len(objs) == expected
    assert all(o.geometry.is_valid and o.geometry.geom_type == "Polygon" for o in objs)
    assert sum(o.geometry.area for o in objs) == (m != 255).sum()


@pytest.mark.parametrize("layout", ["cyx", "yxc", "yx", "uint8"])
def test_mean_probability(layout):
    rng = np.random.default_rng(0)
    m = _mask((20, 24))
    m[2:9, 3:12] = 0
    m[10:18, 5:20] = 1
    m[12:15, 8:10] = 2  # island inside class 1
    probs = rng.random((3, 20, 24)).astype(np.float32)
    if layout == "yxc":
        given = np.moveaxis(probs, 0, -1)
    elif layout == "yx":
        given = np.take_along_axis(probs, np.clip(m, 0, 2)[None].astype(np.intp), 0)[0]
    elif layout == "uint8":
        probs = rng.integers(0, 256, size=(3, 20, 24), dtype=np.uint8)
        given = probs
    else:
        given = probs
    objs = _by_class(vectorize(m, slide_mpp=1.0, probabilities=given))
    scale = 255.0 if layout == "uint8" else 1.0
    for v in (0, 1, 2):
        (obj,) = objs[str(v)]
        expected = probs[v][m == v].mean() / scale
        assert obj.measurements[MEAN_PROBABILITY] == pytest.approx(expected, rel=1e-6)


def test_mean_probability_is_nan_for_classes_without_a_channel():
    m = _mask((6, 6))
    m[1:3, 1:3] = 0
    m[3:5, 3:5] = 4
    objs = _by_class(vectorize(m, slide_mpp=1.0, probabilities=np.full((2, 6, 6), 0.5)))
    assert objs["0"][0].measurements[MEAN_PROBABILITY] == pytest.approx(0.5)
    assert math.isnan(objs["4"][0].measurements[MEAN_PROBABILITY])


def test_classes_ignore_index_and_class_map():
    m = np.zeros((6, 6), np.uint8)
    m[1:3, 1:3] = 1
    m[3:5, 3:5] = 7
    m[0, 5] = 255
    cmap = ClassMap((ClassSpec("Background", 0, (1, 1, 1)), ClassSpec("Tumor", 1, (200, 0, 0))),
                    ignore_index=7)
    objs = vectorize(m, slide_mpp=1.0, class_map=cmap)
    assert sorted(o.classification for o in objs) == ["255", "Background", "Tumor"]
    tumor = next(o for o in objs if o.classification == "Tumor")
    assert tumor.class_color == (200, 0, 0)
    bg = next(o for o in objs if o.classification == "Background")
    # "1" and the unvectorised "7" are holes touching at one corner; "255" touches the border
    assert len(bg.geometry.interiors) == 2 and bg.geometry.is_valid
    only = vectorize(m, slide_mpp=1.0, classes=[7, 1], object_type="detection")
    assert sorted(o.classification for o in only) == ["1", "7"]
    assert {o.object_type for o in only} == {"detection"}
    assert vectorize(np.full((4, 4), 255, np.uint8), slide_mpp=1.0) == []


def test_min_area_and_simplify():
    yy, xx = np.mgrid[:80, :80]
    m = _mask((80, 80))
    m[(yy - 40) ** 2 + (xx - 40) ** 2 < 30 ** 2] = 1
    m[2:4, 2:4] = 1  # 4 px speck
    exact = vectorize(m, slide_mpp=0.5)
    assert len(exact) == 2
    big = vectorize(m, slide_mpp=0.5, min_area_um2=5 * 0.25)
    assert len(big) == 1 and big[0].geometry.equals(exact[1].geometry)
    simple = vectorize(m, slide_mpp=0.5, min_area_um2=5 * 0.25, simplify_um=1.0)[0]
    n_exact = shapely.get_num_coordinates(exact[1].geometry)
    assert shapely.get_num_coordinates(simple.geometry) < n_exact / 3
    assert simple.geometry.is_valid
    assert shapely.hausdorff_distance(simple.geometry, exact[1].geometry) <= 2.0 + 1e-9
    assert simple.measurements == big[0].measurements  # measured before simplification


def test_geojson_round_trip_of_predictions(tmp_path):
    m = _mask((30, 30))
    m[2:20, 2:20] = 1
    m[5:9, 5:9] = 255
    m[22:28, 3:29] = 2
    objs = vectorize(m, slide_mpp=0.5, downsample=2.0, probabilities=np.full((3, 30, 30), 0.25))
    back = read_geojson(write_geojson(objs, tmp_path / "pred.geojson"))
    assert [o.classification for o in back] == [o.classification for o in objs]
    assert all(a.geometry.equals(b.geometry) for a, b in zip(objs, back, strict=True))
    assert back[0].measurements == objs[0].measurements
    shapes = [(o.geometry, int(o.classification)) for o in back]
    np.testing.assert_array_equal(rasterize(shapes, (0, 0, 60, 60), 2.0, fill=255), m)


def test_progress_and_cancel():
    m = np.ones((40, 40), np.uint8)
    events = []
    vectorize(m, slide_mpp=1.0, chunk_size=16, progress=events.append)
    assert [e.done for e in events] == list(range(1, 10)) and events[-1].total == 9
    with pytest.raises(Cancelled):
        vectorize(m, slide_mpp=1.0, chunk_size=16, cancel=lambda: True)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"labels": np.zeros((4, 4), np.float32)}, "integer class values"),
    ({"labels": np.zeros((2, 4, 4), np.uint8)}, "2-D"),
    ({"slide_mpp": 0}, "slide_mpp must be a positive number"),
    ({"downsample": -1.0}, "downsample must be a positive number"),
    ({"chunk_size": 4}, "chunk_size"),
    ({"object_type": "polygon"}, "object_type"),
    ({"probabilities": np.zeros((3, 5, 4))}, "probabilities of shape (3, 5, 4)"),
    ({"probabilities": np.zeros((3, 4, 4), np.int32)}, "uint8 (0..255) or float"),
    ({"min_area_um2": -1.0}, ">= 0"),
])
def test_bad_input_is_a_clear_error(kwargs, message):
    args = {"labels": np.zeros((4, 4), np.uint8), "slide_mpp": 0.5, **kwargs}
    labels = args.pop("labels")
    with pytest.raises(VectorizeError) as e:
        vectorize(labels, **args)
    assert message in str(e.value)


def test_boolean_mask_is_class_1_on_class_0():
    m = np.zeros((6, 6), bool)
    m[1:4, 2:5] = True
    objs = vectorize(m, slide_mpp=1.0, classes=[1])
    assert len(objs) == 1 and objs[0].geometry.equals(box(2, 1, 5, 4))
