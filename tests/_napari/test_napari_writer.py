"""Writers: Shapes/Points -> QuPath GeoJSON round trips; Labels -> vectorised GeoJSON."""

from __future__ import annotations

import numpy as np
import pytest

from magnipath._napari._frames import raster_frame
from magnipath.classes import ClassMap
from qupath_bridge.geojson import read_geojson

from .conftest import sample_objects


def _same(a, b):
    assert a.id == b.id
    assert a.geometry.geom_type == b.geometry.geom_type
    assert a.geometry.symmetric_difference(b.geometry).area == pytest.approx(0, abs=1e-6)
    if a.geometry.geom_type == "Point":
        assert a.geometry.distance(b.geometry) < 1e-9
    if a.geometry.geom_type == "Polygon":
        assert len(a.geometry.interiors) == len(b.geometry.interiors)
    for attr in ("classification", "class_color", "object_type", "name", "color",
                 "is_locked", "measurements", "metadata"):
        assert getattr(a, attr) == getattr(b, attr), attr


def test_geojson_shapes_geojson_roundtrip(make_napari_viewer, geojson_path, tmp_path):
    viewer = make_napari_viewer()
    shapes, points = viewer.open(str(geojson_path), plugin="napari-magnipath")
    out_shapes = tmp_path / "out_shapes.geojson"
    out_points = tmp_path / "out_points.geojson"
    shapes.save(str(out_shapes), plugin="napari-magnipath")
    points.save(str(out_points), plugin="napari-magnipath")
    back = read_geojson(out_shapes) + read_geojson(out_points)
    original = read_geojson(geojson_path)
    assert len(back) == len(original) == 3
    for a, b in zip(original, back, strict=True):
        _same(a, b)


def test_edited_layer_writes_edits(make_napari_viewer, geojson_path, tmp_path):
    """A shape moved and a shape added in napari come out where they are drawn."""
    viewer = make_napari_viewer()
    shapes, _ = viewer.open(str(geojson_path), plugin="napari-magnipath")
    shapes.data = [d + np.array([10.0, 0.0]) if i == 0 else d      # move the holed one down
                   for i, d in enumerate(shapes.data)]
    shapes.feature_defaults["classification"] = "Stroma"
    shapes.add_rectangles([np.array([[0, 0], [0, 20], [30, 20], [30, 0]], float)])
    out = tmp_path / "edited.geojson"
    shapes.save(str(out), plugin="napari-magnipath")
    back = read_geojson(out)
    original = sample_objects()
    assert len(back) == 3
    moved = back[0].geometry
    assert moved.bounds == pytest.approx((100, 110, 500, 510))
    assert len(moved.interiors) == 2
    assert back[2].classification == "Stroma" and back[2].class_color == (0, 150, 0)
    assert back[2].geometry.bounds == pytest.approx((0, 0, 20, 30))
    assert back[2].id not in {o.id for o in original}


def test_labels_writer_vectorises_with_class_names(make_napari_viewer, tmp_path):
    mpp, d = 0.5, 4.0  # label pixels of 4 level-0 pixels
    labels = np.zeros((40, 60), np.uint8)
    labels[5:15, 10:30] = 1           # level-0 box x 40..120, y 20..60
    labels[20:35, 40:55] = 2
    labels[25:30, 45:50] = 0          # a hole in class 2
    cmap = ClassMap.parse("Stroma=1,Tumor=2", colors={"Tumor": (200, 0, 0)})
    viewer = make_napari_viewer()
    layer = viewer.add_labels(labels, metadata={"magnipath": {
        "kind": "labels", "mpp": mpp, "class_map": cmap.to_dict()}}, **raster_frame(mpp, d))
    out = tmp_path / "labels.geojson"
    layer.save(str(out), plugin="napari-magnipath")
    objs = read_geojson(out)
    by_class = {o.classification: o for o in objs}
    assert set(by_class) == {"Stroma", "Tumor"}
    assert by_class["Stroma"].geometry.bounds == pytest.approx((40, 20, 120, 60))
    tumor = by_class["Tumor"]
    assert tumor.class_color == (200, 0, 0)
    assert tumor.geometry.area == pytest.approx((15 * 15 - 5 * 5) * d * d)
    assert tumor.geometry.bounds == pytest.approx((160, 80, 220, 140))


def test_labels_writer_without_metadata_uses_label_values(make_napari_viewer, tmp_path):
    labels = np.zeros((20, 20), np.int32)
    labels[2:6, 3:9] = 7
    viewer = make_napari_viewer()
    layer = viewer.add_labels(labels)
    out = tmp_path / "plain.geojson"
    layer.save(str(out), plugin="napari-magnipath")
    (obj,) = read_geojson(out)
    assert obj.classification == "Class 7"
    assert obj.geometry.bounds == pytest.approx((3, 2, 9, 6))  # label pixels = level-0 px
    expected = tuple(round(c * 255) for c in layer.colormap.map(np.array([7]))[0][:3])
    assert obj.class_color == expected
