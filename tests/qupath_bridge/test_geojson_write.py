"""Writing QuPath GeoJSON: the layout QuPath 0.4-0.6 reads, repairs, round trips, atomicity."""

import gzip
import json
import math
import uuid
from pathlib import Path

import pytest
import shapely
from shapely.geometry import MultiPolygon, Point, Polygon, box

from qupath_bridge._colors import default_class_color
from qupath_bridge.errors import QuPathBridgeError
from qupath_bridge.geojson import (
    dumps_geojson,
    loads_geojson,
    object_to_feature,
    read_geojson,
    repair_geometry,
    write_geojson,
)
from qupath_bridge.objects import QuPathObject

DATA = Path(__file__).parent / "data"


def _strict_json(text):
    def refuse(name):
        raise ValueError(f"bare {name} in output")
    return json.loads(text, parse_constant=refuse)


def _same(a: QuPathObject, b: QuPathObject) -> None:
    assert a.geometry.equals(b.geometry) and a.geometry.geom_type == b.geometry.geom_type
    if a.classification and a.class_color is None:  # QuPath needs a colour: one is added
        assert b.class_color == default_class_color(a.classification)
    else:
        assert a.class_color == b.class_color
    for f in ("object_type", "classification", "name", "color", "is_locked",
              "metadata", "id", "extra_properties", "extra"):
        assert getattr(a, f) == getattr(b, f), f
    assert a.measurements.keys() == b.measurements.keys()
    for k, v in a.measurements.items():
        assert v == b.measurements[k] or (math.isnan(v) and math.isnan(b.measurements[k]))


@pytest.mark.parametrize("name", ["qupath05_export.geojson", "single_feature.geojson",
                                  "legacy_object_type.json", "qupath02_feature_list.json",
                                  "qupath06_hierarchy.geojson"])
def test_read_write_read_loses_nothing(tmp_path, name):
    first = read_geojson(DATA / name)
    out = write_geojson(first, tmp_path / "out.geojson")
    second = read_geojson(out)
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        _same(a, b)


def test_rewritten_qupath_export_matches_the_original_json(tmp_path):
    """Everything QuPath wrote comes back in QuPath's own layout (colour alpha aside)."""
    src = DATA / "qupath05_export.geojson"
    original = json.loads(src.read_text())["features"]
    rewritten = json.loads(write_geojson(read_geojson(src), tmp_path / "o.geojson").read_text())
    for f0, f1 in zip(original, rewritten["features"], strict=True):
        assert list(f1)[:4] == ["type", "id", "geometry", "properties"]
        assert f1["id"] == f0["id"]
        assert shapely.geometry.shape(f1["geometry"]).equals(shapely.geometry.shape(f0["geometry"]))
        assert {k for k in f1["geometry"]} == {k for k in f0["geometry"]}  # isEllipse kept
        if "classification" in f0["properties"]:
            f0["properties"]["classification"]["color"] = \
                f0["properties"]["classification"]["color"][:3]
        assert f1["properties"] == f0["properties"]
        assert {k: v for k, v in f1.items() if k not in ("geometry",)} == \
            {k: v for k, v in f0.items() if k not in ("geometry",)}


def test_prediction_objects_round_trip_and_layout(tmp_path):
    shell = [(0, 0), (40, 0), (40, 40), (0, 40)]
    objs = [
        QuPathObject(Polygon(shell, [[(10, 10), (10, 20), (20, 20), (20, 10)]]),
                     object_type="detection", classification="Tumor", class_color=(200, 0, 0),
                     measurements={"Area µm^2": 12.5, "Mean probability": math.nan},
                     metadata={"magnipath": "prediction", "run": "7"}),
        QuPathObject(MultiPolygon([box(50, 50, 60, 60), box(70, 50, 80, 60)]),
                     classification="Tumor: Positive", class_color=(10, 20, 30),
                     name="two parts", color=(1, 2, 3), is_locked=True),
        QuPathObject(Point(5, 6), classification="Mitosis"),
    ]
    text = dumps_geojson(objs)
    data = _strict_json(text)  # NaN must be the string "NaN", never a bare NaN
    assert data["type"] == "FeatureCollection"
    f0, f1, f2 = data["features"]
    uuid.UUID(f0["id"])
    assert f0["properties"] == {
        "objectType": "detection",
        "classification": {"name": "Tumor", "color": [200, 0, 0]},
        "measurements": {"Area µm^2": 12.5, "Mean probability": "NaN"},
        "metadata": {"magnipath": "prediction", "run": "7"},
    }
    assert len(f0["geometry"]["coordinates"]) == 2  # hole stays a hole
    assert f1["properties"]["classification"] == {"names": ["Tumor", "Positive"],
                                                  "color": [10, 20, 30]}
    assert f1["properties"]["isLocked"] is True and f1["properties"]["color"] == [1, 2, 3]
    assert "isLocked" not in f0["properties"]  # QuPath writes it only when locked
    # a class without a colour gets a stable one (QuPath refuses a class without colour)
    c = f2["properties"]["classification"]["color"]
    assert len(c) == 3 and c == object_to_feature(objs[2])["properties"]["classification"]["color"]
    back = loads_geojson(text)
    for a, b in zip(objs[:2], back[:2], strict=True):
        _same(a, b)


def test_invalid_polygons_are_repaired_and_empty_ones_dropped(tmp_path):
    objs = read_geojson(DATA / "invalid_bowtie.geojson")
    assert not objs[0].geometry.is_valid
    stats = {}
    out = write_geojson(objs, tmp_path / "fixed.geojson", stats=stats)
    assert stats == {"written": 1, "repaired": 1, "dropped_empty": 1}
    (fixed,) = read_geojson(out)
    assert fixed.geometry.is_valid and isinstance(fixed.geometry, MultiPolygon)
    assert fixed.geometry.area == pytest.approx(5000)
    assert fixed.classification == "Tumor"


def test_repair_geometry():
    valid = Polygon([(0, 0), (10, 0), (10, 10), (0, 10)], [[(2, 2), (2, 4), (4, 4), (4, 2)]])
    same, changed = repair_geometry(valid)
    assert same is valid and not changed
    overlapping = MultiPolygon([box(0, 0, 2, 2), box(1, 1, 3, 3)])
    fixed, changed = repair_geometry(overlapping)
    assert changed and fixed.is_valid and fixed.area == pytest.approx(7)  # union, not XOR
    # a hole touching the shell in a line: still polygonal, hole area excluded
    bad_hole = Polygon([(0, 0), (10, 0), (10, 10), (0, 10)], [[(0, 2), (5, 2), (5, 5), (0, 5)]])
    fixed, changed = repair_geometry(bad_hole)
    assert changed and fixed.is_valid and fixed.area == pytest.approx(85)
    line = Polygon([(0, 0), (5, 0), (10, 0), (0, 0)])
    fixed, changed = repair_geometry(line)
    assert changed and fixed.is_empty
    pt = Point(1, 1)
    assert repair_geometry(pt) == (pt, False)


def test_gzip_output(tmp_path):
    objs = read_geojson(DATA / "single_feature.geojson")
    out = write_geojson(objs, tmp_path / "pred.json.gz")
    raw = out.read_bytes()
    assert raw[:2] == b"\x1f\x8b"
    assert json.loads(gzip.decompress(raw))["features"][0]["id"] == objs[0].id
    _same(read_geojson(out)[0], objs[0])


def test_indent_writes_the_same_data(tmp_path):
    objs = read_geojson(DATA / "qupath05_export.geojson")
    compact = write_geojson(objs, tmp_path / "a.geojson").read_text()
    pretty = write_geojson(objs, tmp_path / "b.geojson", indent=2).read_text()
    assert "\n" not in compact and "\n  " in pretty
    assert json.loads(compact) == json.loads(pretty)


def test_write_is_atomic(tmp_path):
    target = tmp_path / "pred.geojson"
    write_geojson(read_geojson(DATA / "single_feature.geojson"), target)
    before = target.read_bytes()

    def broken():
        yield QuPathObject(box(0, 0, 1, 1))
        raise RuntimeError("model crashed")

    with pytest.raises(RuntimeError):
        write_geojson(broken(), target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pred.geojson"]


def test_object_to_feature_rejects_empty_geometry():
    with pytest.raises(QuPathBridgeError, match="empty"):
        object_to_feature(QuPathObject(Polygon()))


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002], ids=["022", "027", "002"])
def test_written_file_has_the_umask_mode(tmp_path, umask):
    """Not mkstemp's 0600: a colleague or QuPath running as another user must read it."""
    import os
    import stat

    old = os.umask(umask)
    try:
        for name in ("p.geojson", "p.geojson.gz"):
            p = write_geojson([QuPathObject(box(0, 0, 10, 10))], tmp_path / name)
            assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask, name
    finally:
        os.umask(old)
