"""How MagniPath recognises its own objects in a QuPath project (docs/qupath.md, "Marker").

Marked ``qupath``: run against the 0.4-like (where it applies), 0.5-like and 0.6-like
QuPath doubles and, where paquo finds it, real QuPath. The others need no QuPath.
"""

from __future__ import annotations

import json
import os
import stat
import uuid
from pathlib import Path

import pytest
from shapely.geometry import box

from qupath_bridge import _project_support as pf
from qupath_bridge.geojson import write_geojson
from qupath_bridge.objects import QuPathObject

ALL_TYPES = ("annotation", "detection", "tile", "cell")
EVERY_VERSION = pytest.mark.qupath(flavours=("0.4", "0.5", "0.6"))


def _uid(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"magnipath-test/marker/{name}"))


def _user_objects() -> list[QuPathObject]:
    return [
        QuPathObject(box(0, 0, 500, 500), classification="Stroma", class_color=(0, 120, 0),
                     name="region", metadata={"annotator": "ab"}, id=_uid("u-region")),
        QuPathObject(box(20, 20, 40, 40), object_type="detection", classification="Immune",
                     class_color=(0, 0, 200), measurements={"Area µm^2": 100.0},
                     id=_uid("u-cell")),
    ]


def _preds(n: int, tag: str = "a", *, x0: float = 100) -> list[QuPathObject]:
    return [QuPathObject(box(x0 + 30 * i, 100, x0 + 20 + 30 * i, 120), classification="Tumor",
                         class_color=(200, 0, 0), name=f"{tag}{i}",
                         measurements={"Probability": 0.9}, id=_uid(f"{tag}{i}"))
            for i in range(n)]


@pytest.fixture
def project(tmp_path, make_slide):
    from qupath_bridge.project import create_project

    ann = write_geojson(_user_objects(), tmp_path / "user.geojson")
    return create_project(tmp_path / "project", [make_slide("s.ome.tif", 800, 600, 0.5)], [ann])


def _state(project: Path) -> tuple[dict[str, QuPathObject], dict[str, QuPathObject]]:
    """(MagniPath's objects, the user's objects) by UUID, read back from disk."""
    from qupath_bridge.project import Project

    with Project(project, "r") as p:
        objs = p.read_objects(0, types=ALL_TYPES)
        users = p.read_objects(0, types=ALL_TYPES, include_predictions=False)
        eid = p.image_info(0).id
    record = pf.read_record(project.parent, eid)
    ours = {o.id: o for o in objs if pf.is_prediction(o, record)}
    return ours, {o.id: o for o in users}


def _same_user_objects(before: dict, after: dict) -> None:
    assert set(after) == set(before)
    for oid, u in before.items():
        o = after[oid]
        assert (o.object_type, o.classification, o.name, o.metadata, o.measurements) == (
            u.object_type, u.classification, u.name, u.metadata, u.measurements)
        assert o.geometry.equals(u.geometry)


@EVERY_VERSION
@pytest.mark.parametrize("as_type", ["detection", "annotation"])
def test_predictions_are_marked_and_replaced_on_every_version(project, as_type):
    """Detections and annotations: QuPath 0.5 refuses metadata on detections, the marker
    (measurement + record) works anyway; a re-run replaces ours, keeps the user's."""
    from qupath_bridge.project import MARK_MEASUREMENT, Project

    _, users = _state(project)
    assert len(users) == 2
    with Project(project, "r+") as p:
        first = p.write_predictions(0, _preds(3), as_type=as_type)
        eid = p.image_info(0).id
    assert (first["added"], first["removed"]) == (3, 0)
    ours, users_after = _state(project)
    assert {o.name for o in ours.values()} == {"a0", "a1", "a2"}
    assert {o.object_type for o in ours.values()} == {as_type}
    assert all(o.measurements[MARK_MEASUREMENT] == 1.0 for o in ours.values())
    assert all(o.measurements["Probability"] == pytest.approx(0.9) for o in ours.values())
    record = json.loads(pf.record_file(project.parent, eid).read_text())
    assert sorted(record["ids"]) == sorted(ours) and record["image"] == "s.ome.tif"
    _same_user_objects(users, users_after)

    with Project(project, "r+") as p:
        second = p.write_predictions(0, _preds(2, "b"), as_type="detection")
    assert (second["added"], second["removed"]) == (2, 3)
    ours, users_after = _state(project)
    assert {o.name for o in ours.values()} == {"b0", "b1"}
    _same_user_objects(users, users_after)
    assert pf.read_record(project.parent, eid) == frozenset(ours)


@EVERY_VERSION
def test_marker_survives_qupath_geojson_export_and_import(project, tmp_path, make_slide):
    """A user exports MagniPath's detections with QuPath's own GeoJSON writer and imports
    them with QuPath's own reader into another project (no MagniPath record there): they
    are still recognised, and a MagniPath write replaces exactly them."""
    from qupath_bridge.project import Project, _java, create_project

    with Project(project, "r+") as p:
        p.write_predictions(0, _preds(4), as_type="detection")
    j = _java()
    src = j.QuPathProject(project, mode="r")
    hierarchy = src.images[0].java_object.readHierarchy()
    exported = tmp_path / "exported.geojson"
    exported.write_text(str(j.GsonTools.getInstance().toJson(hierarchy.getAllObjects(False))),
                        encoding="utf-8")

    ann = write_geojson([QuPathObject(box(300, 300, 400, 400), classification="Stroma",
                                      class_color=(0, 120, 0), name="other user",
                                      id=_uid("u-other"))], tmp_path / "other.geojson")
    other = create_project(tmp_path / "other", [make_slide("t.ome.tif", 800, 600, 0.5)], [ann])
    dst = j.QuPathProject(other, mode="r+")
    entry = dst.images[0].java_object
    image_data = entry.readImageData()
    image_data.getHierarchy().addObjects(j.PathIO.readObjects(j.File(str(exported))))
    entry.saveImageData(image_data)  # what File > Save does in QuPath

    ours, users = _state(other)
    assert {o.name for o in ours.values()} == {"a0", "a1", "a2", "a3"}
    assert {o.name for o in users.values()} == {"region", None, "other user"}
    with Project(other, "r+") as p:
        res = p.write_predictions(0, _preds(1, "c"), as_type="detection")
    assert (res["removed"], res["added"]) == (4, 1)
    ours_after, users_after = _state(other)
    assert {o.name for o in ours_after.values()} == {"c0"}
    _same_user_objects(users, users_after)


@pytest.mark.qupath
def test_objects_of_the_earlier_metadata_marker_are_still_replaced(tmp_path, make_slide):
    """Projects written before the measurement: annotations with metadata magnipath=prediction."""
    from qupath_bridge.project import Project, create_project

    legacy = [QuPathObject(box(10, 10, 50, 50), classification="Tumor", class_color=(200, 0, 0),
                           name="old prediction", metadata={"magnipath": "prediction"},
                           id=_uid("legacy"))]
    ann = write_geojson([*_user_objects(), *legacy], tmp_path / "mixed.geojson")
    project = create_project(tmp_path / "p", [make_slide("s.ome.tif", 800, 600, 0.5)], [ann])
    ours, users = _state(project)
    assert set(ours) == {_uid("legacy")} and len(users) == 2
    with Project(project, "r+") as p:
        res = p.write_predictions(0, _preds(2), as_type="detection")
    assert (res["removed"], res["added"]) == (1, 2)
    ours_after, users_after = _state(project)
    assert {o.name for o in ours_after.values()} == {"a0", "a1"}
    _same_user_objects(users, users_after)


@EVERY_VERSION
def test_a_user_object_with_a_predictions_uuid_is_never_touched(project):
    """A prediction whose UUID a user object already has gets a new UUID (the record
    names MagniPath's objects only), so no later write removes the user's object."""
    from qupath_bridge.project import Project

    _, users = _state(project)
    clash = QuPathObject(box(600, 400, 650, 450), classification="Tumor",
                         class_color=(200, 0, 0), name="clash", id=_uid("u-region"))
    with Project(project, "r+") as p:
        p.write_predictions(0, [clash], as_type="annotation")
    ours, users_after = _state(project)
    (only,) = ours.values()
    assert only.name == "clash" and only.id != _uid("u-region")
    _same_user_objects(users, users_after)
    with Project(project, "r+") as p:
        assert p.write_predictions(0, _preds(1))["removed"] == 1
    _same_user_objects(users, _state(project)[1])


# ---------------------------------------------------------------------------------------------
# without QuPath
def test_is_prediction_rules():
    plain = QuPathObject(box(0, 0, 1, 1), id=_uid("x"))
    assert not pf.is_prediction(plain)
    assert pf.is_prediction(plain, {_uid("x")})  # recorded
    assert pf.is_prediction(QuPathObject(box(0, 0, 1, 1), measurements={
        pf.MARK_MEASUREMENT: 1.0}))
    assert pf.is_prediction(QuPathObject(box(0, 0, 1, 1), metadata={"magnipath": "prediction"}))
    assert not pf.is_prediction(QuPathObject(box(0, 0, 1, 1), measurements={"MagniPath": 1.0}))


def test_record_round_trip_mode_and_broken_record(tmp_path):
    old = os.umask(0o022)
    try:
        path = pf.write_record(tmp_path, "7", "slide 1", ["b", "a"])
    finally:
        os.umask(old)
    assert path == tmp_path / "magnipath" / "objects" / "7.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert pf.read_record(tmp_path, "7") == frozenset({"a", "b"})
    assert json.loads(path.read_text())["image"] == "slide 1"
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp left
    path.write_text("{not json")
    assert pf.read_record(tmp_path, "7") == frozenset()  # the marks still identify ours
    assert pf.read_record(tmp_path, "8") == frozenset()


def test_groovy_scripts_use_the_same_marker():
    """The Groovy scripts recognise and write MagniPath's objects the way the bridge does."""
    import re

    groovy = Path(__file__).resolve().parents[2] / "qupath_bridge" / "groovy"
    export = (groovy / "export_annotations.groovy").read_text()
    imp = (groovy / "import_predictions.groovy").read_text()
    for text in (export, imp):
        assert f'MARK_MEASUREMENT = "{pf.MARK_MEASUREMENT}"' in text
        assert f'"{pf.MAGNIPATH_DIR}", "{pf.OBJECTS_DIR}", entryId + ".json"' in text
        assert "recordIds.contains(obj.getID().toString())" in text
        assert "getMeasurementList().containsKey(MARK_MEASUREMENT)" in text
    # writing metadata only through the guarded helper (read-only on QuPath 0.5 detections)
    puts = re.findall(r"^.*getMetadata\(\)\.put\(.*$", imp, re.M)
    assert len(puts) == 1 and "obj.getMetadata().put(key, value)" in puts[0]
    assert "ml.put(MARK_MEASUREMENT, 1.0d)" in imp and "magnipath-objects/1" in imp
