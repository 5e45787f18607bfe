"""The one rasteriser: pixel-centre rule, holes, offsets, downsampling."""

import numpy as np
import pytest
import shapely
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from shapely.geometry import MultiPolygon, Point, Polygon, box

from magnipath.rasterize import polygon_mask, rasterize


def brute_force(geom, origin, d, shape):
    """Reference: shapely point-in-polygon at every pixel centre."""
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w]
    cx = origin[0] + (xs + 0.5) * d
    cy = origin[1] + (ys + 0.5) * d
    return shapely.contains_xy(geom, cx, cy)


def test_aligned_square_is_exact():
    out = rasterize([(box(2, 3, 6, 5), 7)], (0, 0, 10, 10), 1.0, fill=0)
    expected = np.zeros((10, 10), np.uint8)
    expected[3:5, 2:6] = 7
    np.testing.assert_array_equal(out, expected)


def test_hole_stays_empty_and_later_shapes_overwrite():
    poly = Polygon([(0, 0), (8, 0), (8, 8), (0, 8)], [[(2, 2), (6, 2), (6, 6), (2, 6)]])
    out = rasterize([(poly, 1), (box(7, 7, 8, 8), 2)], (0, 0, 8, 8), 1.0, fill=255)
    assert (out[2:6, 2:6] == 255).all()
    assert out[0, 0] == 1 and out[7, 7] == 2
    assert (out == 1).sum() == 64 - 16 - 1


def test_shared_edge_through_centres_claims_each_pixel_once():
    # the shared edge x = 4.5 passes through pixel centres of column 4
    left, right = box(0, 0, 4.5, 6), box(4.5, 0, 9, 6)
    a = polygon_mask(left, (0, 0, 9, 6), 1.0, (6, 9))
    b = polygon_mask(right, (0, 0, 9, 6), 1.0, (6, 9))
    assert not (a & b).any()
    assert (a | b).all()
    assert b[:, 4].all()  # centre on the left edge of `right` belongs to it (top-left rule)


def test_origin_and_downsample():
    # level-0 square [100, 140) x [200, 240) at downsample 4 from origin (92, 196)
    out = rasterize([(box(100, 200, 140, 240), 1)], (92, 196, 80, 80), 4.0, fill=0)
    assert out.shape == (20, 20)
    rows, cols = np.nonzero(out)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (1, 10, 2, 11)


def test_points_and_empty_geometries_are_ignored():
    out = rasterize([(Point(3, 3), 1), (Polygon(), 2)], (0, 0, 5, 5), 1.0, fill=0)
    assert not out.any()


def test_geometry_outside_box_is_clipped():
    out = rasterize([(box(-5, -5, 3, 3), 1)], (0, 0, 6, 6), 1.0, fill=0)
    assert out[:3, :3].all() and out.sum() == 9


def test_multipolygon():
    mp = MultiPolygon([box(0, 0, 2, 2), box(4, 4, 6, 6)])
    out = rasterize([(mp, 3)], (0, 0, 6, 6), 1.0, fill=0)
    assert (out == 3).sum() == 8


@st.composite
def star_polygons(draw):
    n = draw(st.integers(3, 12))
    cx, cy = draw(st.floats(5, 45)), draw(st.floats(5, 45))
    angles = np.sort(np.array(draw(st.lists(st.floats(0, 2 * np.pi), min_size=n, max_size=n,
                                            unique=True))))
    radii = np.array(draw(st.lists(st.floats(1, 30), min_size=n, max_size=n)))
    pts = np.c_[cx + radii * np.cos(angles), cy + radii * np.sin(angles)]
    poly = shapely.make_valid(Polygon(pts))
    if not isinstance(poly, Polygon | MultiPolygon):  # keep the polygonal part only
        poly = shapely.union_all([g for g in shapely.get_parts(poly)
                                  if isinstance(g, Polygon | MultiPolygon)])
    hole_r = draw(st.floats(0, 3))
    if hole_r > 0.5:
        poly = poly.difference(Point(cx, cy).buffer(hole_r))
    return poly


@settings(max_examples=60, deadline=None)
@given(geom=star_polygons(), d=st.sampled_from([1.0, 2.0, 0.5, 3.7]),
       ox=st.floats(-10, 10), oy=st.floats(-10, 10))
def test_matches_point_in_polygon_reference(geom, d, ox, oy):
    assume(not geom.is_empty)  # make_valid can collapse a degenerate star to nothing
    shape = (int(60 / d), int(60 / d))
    got = polygon_mask(geom, (ox, oy, 60, 60), d, shape)
    ref = brute_force(geom, (ox, oy), d, shape)
    # centres exactly on an edge may differ from shapely's (boundary excluded) rule
    on_edge = brute_force(geom.boundary.buffer(1e-9), (ox, oy), d, shape)
    np.testing.assert_array_equal(got[~on_edge], ref[~on_edge])


@pytest.mark.parametrize("d", [1.0, 2.0, 4.0])
def test_pixel_edge_polygons_round_trip(d):
    """A polygon on pixel edges of the output grid rasterises to exactly those pixels."""
    rng = np.random.default_rng(0)
    mask = rng.random((12, 12)) > 0.5
    rows, cols = np.nonzero(mask)
    geoms = [box(c * d, r * d, (c + 1) * d, (r + 1) * d) for r, c in zip(rows, cols, strict=True)]
    union = shapely.union_all(geoms)
    got = polygon_mask(union, (0, 0, 12 * d, 12 * d), d, (12, 12))
    np.testing.assert_array_equal(got, mask)
