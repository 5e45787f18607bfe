"""Reading QuPath GeoJSON in every shape QuPath 0.2-0.6 (and TIAToolbox) writes it."""

import gzip
import math
import shutil
from pathlib import Path

import pytest
from shapely.geometry import LineString, MultiPoint, MultiPolygon, Point, Polygon

from qupath_bridge.errors import QuPathBridgeError
from qupath_bridge.geojson import (
    GEOMETRY_EXTRA_KEY,
    flatten_children,
    loads_geojson,
    read_geojson,
    write_geojson,
)

DATA = Path(__file__).parent / "data"


def test_qupath05_export_fields():
    objs = read_geojson(DATA / "qupath05_export.geojson")
    assert len(objs) == 8
    a = objs[0]
    assert a.id == "2d4c0a51-9d3e-4b0c-8f44-6a1f0e2b7c11"
    assert a.object_type == "annotation"
    assert a.classification == "Tumor" and a.class_color == (200, 0, 0)
    assert a.name == "Tumour region 1" and a.color == (255, 0, 0) and a.is_locked
    assert isinstance(a.geometry, Polygon) and len(a.geometry.interiors) == 1
    assert a.geometry.area == 600 * 600 - 200 * 200
    assert a.measurements["Area µm^2"] == 19200.5
    assert math.isnan(a.measurements["Mean DAB"])
    assert a.measurements["Max"] == math.inf and a.measurements["Min"] == -math.inf
    assert a.metadata == {"Annotator": "JD", "Reviewed": "yes"}  # duplicated key merged
    assert a.extra_properties == {} and a.extra == {}

    derived = objs[1]
    assert isinstance(derived.geometry, MultiPolygon)
    assert derived.classification == "Tumor: Positive"
    assert len(derived.geometry.geoms[1].interiors) == 1
    assert isinstance(objs[2].geometry, MultiPoint) and objs[2].classification == "Mitosis"
    assert isinstance(objs[3].geometry, Point) and objs[3].classification is None
    assert objs[3].class_color is None
    assert isinstance(objs[4].geometry, LineString) and objs[4].name == "Scale bar"
    ellipse = objs[5]
    assert ellipse.class_color == (150, 200, 150)  # alpha (last) dropped
    assert ellipse.extra == {GEOMETRY_EXTRA_KEY: {"isEllipse": True}}
    cell = objs[6]
    assert cell.object_type == "cell" and cell.extra["nucleusGeometry"]["type"] == "Polygon"
    det = objs[7]
    assert det.object_type == "detection" and det.classification is None
    assert det.extra_properties == {"myPluginScore": 0.93, "myPluginTags": ["a", "b"]}
    assert det.extra == {"myTopLevelNote": {"source": "model v2"}}


def test_single_feature():
    (obj,) = read_geojson(DATA / "single_feature.geojson")
    assert obj.classification == "Stroma" and obj.class_color == (150, 200, 150)
    assert obj.geometry.bounds == (0, 0, 100, 50)


def test_qupath02_bare_list_with_legacy_fields():
    objs = read_geojson(DATA / "qupath02_feature_list.json")
    assert [o.object_type for o in objs] == ["annotation", "detection", "annotation"]
    # the legacy type id is not a UUID: each object gets a fresh one
    assert len({o.id for o in objs}) == 3 and all(len(o.id) == 36 for o in objs)
    a, d, plain = objs
    assert a.classification == "Tumor" and a.class_color == (200, 0, 0)  # colorRGB -3670016
    assert a.measurements["Area"] == 1500.0 and a.measurements["Perimeter"] == 160.0
    assert math.isnan(a.measurements["Missing"])
    assert d.classification == "Tumor: Positive"  # parentClass chain
    assert d.color == (0, 255, 0)  # packed signed int
    assert plain.classification is None and plain.measurements == {}
    assert not plain.is_locked


def test_legacy_object_type_and_string_classification():
    objs = read_geojson(DATA / "legacy_object_type.json")
    assert objs[0].object_type == "detection"  # properties.object_type (QuPath 0.3)
    assert objs[0].classification == "Necrosis" and objs[0].class_color is None
    assert objs[1].object_type == "annotation"  # top-level objectType (TIAToolbox)
    assert objs[1].extra == {}
    assert objs[2].object_type == "tile"  # properties.type alias
    assert objs[2].extra_properties == {}


def test_properties_type_that_is_not_an_object_type_is_kept():
    text = ('{"type": "Feature", "geometry": {"type": "Point", "coordinates": [1, 2]},'
            ' "properties": {"type": "Tumour", "class": 2}}')
    (obj,) = loads_geojson(text)
    assert obj.object_type == "annotation"
    assert obj.extra_properties == {"type": "Tumour", "class": 2}


def test_two_different_metadata_objects_are_merged():
    text = ('{"type": "FeatureCollection", "features": [{"type": "Feature", '
            '"geometry": {"type": "Point", "coordinates": [1, 2]}, "properties": {'
            '"metadata": {"a": "1"}, "objectType": "annotation", '
            '"metadata": {"b": "2", "n": 3}}}]}')
    (obj,) = loads_geojson(text)
    assert obj.metadata == {"a": "1", "b": "2", "n": "3"}


def test_gzip_json(tmp_path):
    gz = tmp_path / "annotations.json.gz"
    gz.write_bytes(gzip.compress((DATA / "qupath05_export.geojson").read_bytes()))
    plain = read_geojson(DATA / "qupath05_export.geojson")
    objs = read_geojson(gz)
    assert [o.id for o in objs] == [o.id for o in plain]
    assert all(a.geometry.equals(b.geometry) for a, b in zip(objs, plain, strict=True))


def test_json_suffix(tmp_path):
    p = tmp_path / "x.json"
    shutil.copy(DATA / "single_feature.geojson", p)
    assert read_geojson(p)[0].classification == "Stroma"


@pytest.mark.parametrize(("text", "message"), [
    ('{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": null}]}',
     "feature 0: the feature has no geometry"),
    ('[{"type": "Feature", "geometry": {"type": "Point", "coordinates": [0, 0]}},'
     ' {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]}}]',
     "feature 1: malformed Polygon coordinates"),
    ('[{"type": "Feature", "geometry": {"type": "Point", "coordinates": [0, 0]},'
     ' "properties": {"measurements": {"Area": "big"}}}]',
     "feature 0: measurement 'Area' has value 'big'"),
    ('[{"type": "Feature", "geometry": {"type": "Point", "coordinates": [0, 0]},'
     ' "properties": {"classification": {"name": "T", "color": [300, 0, 0]}}}]',
     "feature 0: classification colour"),
    ('[{"type": "Feature", "geometry": {"type": "Point", "coordinates": [0, 0]}}, {"type": "F"}]',
     "feature 1: expected a GeoJSON Feature, got 'F'"),
    ('{"type": "Topology"}', "expected a GeoJSON FeatureCollection"),
    ('{"objects": [], "name": "x"}', "got a JSON object with keys ['name', 'objects']"),
    ('null', "got JSON null"),
    ('{"type": "FeatureCollection"', "not valid JSON"),
])
def test_errors_name_source_and_feature(text, message):
    with pytest.raises(QuPathBridgeError, match=r"^annotations\.geojson: ") as e:
        loads_geojson(text, source="annotations.geojson")
    assert message in str(e.value)


def test_error_from_file_names_file_and_index():
    p = DATA / "bad_geometry_type.geojson"
    with pytest.raises(QuPathBridgeError) as e:
        read_geojson(p)
    assert str(e.value).startswith(f"{p}: feature 3: geometry type 'Foo' is not supported")


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(QuPathBridgeError, match=r"nope\.geojson: cannot read"):
        read_geojson(tmp_path / "nope.geojson")
    bad = tmp_path / "bad.json.gz"
    bad.write_bytes(gzip.compress(b"{}")[:12])
    with pytest.raises(QuPathBridgeError, match=r"bad\.json\.gz: cannot read"):
        read_geojson(bad)


def test_hierarchy_export_is_kept_and_can_be_flattened(tmp_path):
    (root,) = read_geojson(DATA / "qupath06_hierarchy.geojson")
    assert len(root.extra_properties["childObjects"]) == 2  # kept verbatim
    (again,) = read_geojson(write_geojson([root], tmp_path / "h.geojson"))
    assert again.extra_properties == root.extra_properties
    flat = flatten_children([root], source="h.geojson")
    assert [o.id[-1] for o in flat] == ["1", "2", "3", "4"]
    assert [o.object_type for o in flat] == ["annotation", "annotation", "detection", "annotation"]
    assert [o.classification for o in flat] == ["Region*", "Tumor", None, "Mitosis"]
    assert all("childObjects" not in o.extra_properties for o in flat)
    assert flat[2].measurements == {"Area": 100.0}
    assert "childObjects" in root.extra_properties  # the input is not modified
