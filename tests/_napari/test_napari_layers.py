"""QuPath objects <-> napari layer data: holes, multi-part objects, frames."""

from __future__ import annotations

import numpy as np
import pytest
from napari.layers import Image, Layer, Shapes
from shapely.geometry import LineString, Polygon

from magnipath._napari._frames import image_frame, vector_frame
from magnipath._napari._layers import (
    layer_class_names,
    layer_to_objects,
    objects_to_layer_data,
    shapes_to_objects,
)
from magnipath._napari._polygons import decode_polygon, encode_polygon, split_rings
from qupath_bridge.objects import QuPathObject

from .conftest import sample_objects


def _holed(n_holes: int) -> Polygon:
    holes = [[(20 + 30 * i, 20), (40 + 30 * i, 20), (40 + 30 * i, 60), (20 + 30 * i, 60)]
             for i in range(n_holes)]
    return Polygon([(0, 0), (300, 0), (300, 100), (0, 100)], holes)


@pytest.mark.parametrize("n_holes", [0, 1, 3])
def test_encode_decode_polygon_keeps_holes(n_holes):
    poly = _holed(n_holes)
    verts = encode_polygon(poly)
    assert verts.shape[1] == 2
    rings = split_rings(verts)
    assert len(rings) == n_holes + 1
    back = decode_polygon(verts)
    assert back.geom_type == "Polygon"
    assert len(back.interiors) == n_holes
    assert back.symmetric_difference(poly).area == pytest.approx(0.0, abs=1e-9)


def test_encoded_yx_order():
    poly = Polygon([(10, 1), (20, 1), (20, 5)])  # x in 10..20, y in 1..5
    verts = encode_polygon(poly)
    assert verts[:, 0].max() == 5 and verts[:, 1].max() == 20  # (y, x)


def test_decode_self_intersecting_is_valid():
    bowtie = np.array([[0, 0], [10, 10], [0, 10], [10, 0]], float)  # (y, x)
    geom = decode_polygon(bowtie)
    assert geom.is_valid and geom.area == pytest.approx(50.0)


def _roundtrip(objects, mpp):
    layers = [Layer.create(*ldt) for ldt in objects_to_layer_data(objects, mpp=mpp)]
    back = []
    for layer in layers:
        back += layer_to_objects(layer)
    return layers, back


@pytest.mark.parametrize("mpp", [None, 0.25])
def test_layer_roundtrip_is_lossless(mpp):
    objs = sample_objects()
    layers, back = _roundtrip(objs, mpp)
    assert [type(la).__name__ for la in layers] == ["Shapes", "Points"]
    shapes = layers[0]
    assert list(shapes.shape_type) == ["polygon"] * 3  # holed, and two parts of the multi
    assert list(shapes.features["classification"]) == ["Tumor", "Stroma", "Stroma"]
    expected_scale = mpp or 1.0
    np.testing.assert_allclose(shapes.scale, [expected_scale] * 2)
    assert {o.id for o in back} == {o.id for o in objs}
    by_id = {o.id: o for o in back}
    for o in objs:
        b = by_id[o.id]
        assert b.geometry.geom_type == o.geometry.geom_type
        assert b.geometry.symmetric_difference(o.geometry).area == pytest.approx(0, abs=1e-6)
        if o.geometry.geom_type == "Point":
            assert b.geometry.distance(o.geometry) < 1e-9
        for attr in ("classification", "class_color", "object_type", "name", "color",
                     "is_locked", "measurements", "metadata"):
            assert getattr(b, attr) == getattr(o, attr), attr


def test_face_colour_is_class_colour_made_legible_on_dark():
    from magnipath._napari._layers import MIN_CONTRAST, contrast_on_dark, legible_on_dark

    layers, back = _roundtrip(sample_objects(), 0.5)
    red = np.array(legible_on_dark((200, 0, 0))) / 255
    assert red[0] > red[1] == red[2]  # still red, lighter
    np.testing.assert_allclose(layers[0].edge_color[0], [*red, 1])
    np.testing.assert_allclose(layers[0].face_color[0][:3], red)
    np.testing.assert_allclose(layers[1].face_color[0][:3], [250 / 255, 250 / 255, 0])
    # what goes back to QuPath keeps the original class colour
    assert any(o.class_color == (200, 0, 0) for o in back)
    # Necrosis of the synthetic slides, (50, 50, 50): nearly invisible on napari's dark theme
    assert contrast_on_dark((50, 50, 50)) < 1.5
    grey = legible_on_dark((50, 50, 50))
    assert contrast_on_dark(grey) >= MIN_CONTRAST and grey[0] == grey[1] == grey[2]
    assert legible_on_dark((250, 250, 0)) == (250, 250, 0)


def test_vector_layer_lies_on_image_pixels():
    """Level-0 box [2, 4) x [0, 2) covers image pixels 2..3 and 0..1: centres 2.5 and 0.5."""
    mpp = 0.5
    img = Image(np.zeros((8, 8, 3), np.uint8), rgb=True, **image_frame(mpp))
    shp = Shapes([np.array([[0, 2], [0, 4], [2, 4], [2, 2]], float)], shape_type="polygon",
                 **vector_frame(mpp))
    # world of a vertex at level-0 x=2 must be the left edge of image pixel 2: (2 - 0.5) * mpp
    world = shp.data_to_world(np.array([0.0, 2.0]))
    np.testing.assert_allclose(world, [(0 - 0.5) * mpp, (2 - 0.5) * mpp])
    # and converting it onto the image's level 0 gives the level-0 coordinates back
    objs = layer_to_objects(shp, img)
    assert objs[0].geometry.bounds == pytest.approx((2, 0, 4, 2))


def test_shapes_drawn_in_napari_become_new_objects():
    """A user-drawn shape (copied default id) and an ellipse get their own objects."""
    objs = [QuPathObject(Polygon([(0, 0), (10, 0), (10, 10)]), classification="Tumor",
                         class_color=(200, 0, 0))]
    data, kwargs, _ = objects_to_layer_data(objs, mpp=None)[0]
    layer = Shapes(data, **kwargs)
    layer.feature_defaults["object_id"] = objs[0].id  # napari copies the selected shape's id
    layer.add_polygons([np.array([[50, 50], [50, 60], [60, 60]], float)])
    layer.add_ellipses([np.array([[100, 100], [100, 140], [120, 140], [120, 100]], float)])
    layer.add_paths([np.array([[0, 0], [5, 5], [0, 9]], float)])
    back = layer_to_objects(layer)
    assert len(back) == 4 and len({o.id for o in back}) == 4
    ellipse = back[2].geometry
    assert ellipse.area == pytest.approx(np.pi * 20 * 10, rel=0.01)
    assert back[3].geometry.geom_type == "LineString"
    assert all(o.classification == "Tumor" for o in back)  # the default class
    assert back[1].class_color == (200, 0, 0)


def test_class_names_and_colours_without_metadata():
    layer = Shapes([np.array([[0, 0], [0, 5], [5, 5]], float)], shape_type="polygon",
                   features={"classification": ["TLS"]}, edge_color=[[0, 0, 1, 1]])
    assert layer_class_names(layer) == ["TLS"]
    obj = shapes_to_objects(*layer.as_layer_data_tuple()[:2])[0]
    assert obj.classification == "TLS" and obj.class_color == (0, 0, 255)


def test_lines_become_paths():
    objs = [QuPathObject(LineString([(0, 0), (10, 5), (20, 0)]), classification="Edge")]
    layers, back = _roundtrip(objs, None)
    assert list(layers[0].shape_type) == ["path"]
    assert back[0].geometry.equals(objs[0].geometry)
