"""The paquo bridge (qupath_bridge.project), its CLI and its Groovy scripts.

Tests marked ``qupath`` run against the QuPath test doubles (0.5-like, 0.6-like)
and real QuPath where installed (tests/conftest.py); the others check, without
QuPath, what happens where it is missing,
the file-level helpers, the command-line parsing and the Groovy scripts' rules.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from shapely.geometry import MultiPoint, Point, Polygon, box

from qupath_bridge import _project_support as pf
from qupath_bridge.errors import QuPathBridgeError
from qupath_bridge.geojson import read_geojson, write_geojson
from qupath_bridge.objects import QuPathObject

GROOVY = Path(__file__).resolve().parents[2] / "qupath_bridge" / "groovy"


def _run_python(code: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PAQUO_")}
    full_env.update(env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=120)


# ---------------------------------------------------------------------------------------------
# without QuPath
def test_imports_start_nothing_and_every_call_fails_clearly(tmp_path):
    """No paquo/JPype on import; without QuPath every bridge call names PAQUO_QUPATH_DIR."""
    empty = tmp_path / "not-qupath"
    empty.mkdir()
    code = """
    import json, sys
    import magnipath, magnipath.cli, magnipath.cli.qupath, qupath_bridge
    import qupath_bridge.geojson, qupath_bridge.project
    from magnipath.cli import build_parser
    build_parser()
    loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('paquo', 'jpype', '_jpype'))
    from qupath_bridge.project import (Project, QuPathUnavailable, create_project,
                                       qupath_available)
    ok, reason = qupath_available()
    calls = {"open r": lambda: Project("p", "r"), "open r+": lambda: Project("p", "r+"),
             "create x": lambda: Project("new", "x"),
             "create_project": lambda: create_project("new2", [])}
    errors = {}
    for name, call in calls.items():
        try:
            call()
        except QuPathUnavailable as e:
            errors[name] = [str(e), e.__cause__ is None]
        else:
            errors[name] = None
    import jpype
    print(json.dumps({"loaded": loaded, "ok": ok, "reason": reason, "errors": errors,
                      "jvm": jpype.isJVMStarted(), "java_imported": "paquo.java" in sys.modules}))
    """
    res = _run_python(code, tmp_path, {"PAQUO_QUPATH_DIR": str(empty)})
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["loaded"] == []
    assert out["ok"] is False and str(empty) in out["reason"]
    for name, err in out["errors"].items():
        assert err is not None, f"{name} did not raise QuPathUnavailable"
        msg, no_cause = err
        assert "PAQUO_QUPATH_DIR" in msg and "qupath.github.io" in msg, msg
        assert no_cause, f"{name}: the error carries a Java/JPype cause"
    assert out["jvm"] is False and out["java_imported"] is False
    assert not list(tmp_path.glob("new*")), "a failed call created a project folder"


def test_availability_reason_when_nothing_is_installed(tmp_path):
    empty = tmp_path / "search"
    empty.mkdir()
    code = """
    from qupath_bridge.project import qupath_available
    ok, reason = qupath_available()
    print(ok); print(reason)
    """
    res = _run_python(code, tmp_path, {"PAQUO_QUPATH_SEARCH_DIRS": json.dumps([str(empty)]),
                                       "PAQUO_QUPATH_SEARCH_CONDA": "false"})
    assert res.returncode == 0, res.stderr
    ok, reason = res.stdout.strip().splitlines()[-2:]
    assert ok == "False"
    assert "PAQUO_QUPATH_DIR is not set" in reason and str(empty) in reason


def test_cli_without_qupath_exits_1_with_the_message(tmp_path):
    empty = tmp_path / "not-qupath"
    empty.mkdir()
    code = "import sys; from magnipath.cli import main; sys.exit(main(sys.argv[1:]))"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAQUO_")}
    env["PAQUO_QUPATH_DIR"] = str(empty)
    res = subprocess.run([sys.executable, "-c", code, "qupath", "list", str(tmp_path / "X"),
                          "--json"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 1
    assert res.stdout == ""
    assert "magnipath qupath: error:" in res.stderr
    assert "PAQUO_QUPATH_DIR" in " ".join(res.stderr.split())
    assert "Traceback" not in res.stderr


def test_cli_parses_nested_actions_and_json_anywhere():
    from magnipath.cli import build_parser

    parser = build_parser()
    a = parser.parse_args(["qupath", "list", "P", "--json"])
    assert (a.command, a.qupath_command, a.project, a.json, a.quiet) == (
        "qupath", "list", "P", True, False)
    a = parser.parse_args(["qupath", "--json", "--quiet", "list", "P"])
    assert a.json is True and a.quiet is True
    a = parser.parse_args(["qupath", "import", "P", "pred.geojson", "--image", "s1", "--as",
                           "detections"])
    assert (a.predictions, a.image, a.as_type, a.json) == ("pred.geojson", "s1", "detections",
                                                           False)
    a = parser.parse_args(["qupath", "create", "P", "a.svs", "b.svs", "--annotations", "a.geojson",
                           "-"])
    assert a.slides == ["a.svs", "b.svs"] and a.annotations == ["a.geojson", "-"]
    with pytest.raises(SystemExit):
        parser.parse_args(["qupath", "import", "P", "pred.geojson"])  # --image is required
    with pytest.raises(SystemExit):
        parser.parse_args(["qupath", "export", "P"])  # --out is required


@pytest.mark.parametrize(("name", "expected"), [
    ("slide 1.svs", "slide 1.svs"),
    ("a/b\\c:d*e?f\"g<h>i|j", "a_b_c_d_e_f_g_h_i_j"),
    ("tab\there\x7f", "tab_here_"),
    ("..", "_"),
    ("  padded  ", "padded"),
])
def test_safe_file_name(name, expected):
    assert pf.safe_file_name(name) == expected


def test_groovy_scripts_use_the_python_rules():
    """Both scripts use the marker, folders and file-name rule of the Python side."""
    export = (GROOVY / "export_annotations.groovy").read_text()
    imp = (GROOVY / "import_predictions.groovy").read_text()
    for text in (export, imp):
        assert f'MARK_KEY = "{pf.MARK_KEY}"' in text
        m = re.search(r"replaceAll\('(.+?)', '_'\)", text)
        assert m, "file-name rule not found"
        java_regex = m.group(1).replace("\\\\", "\\")  # Groovy '...' string -> Java regex
        py_regex = java_regex.replace(r"\p{Cntrl}", r"\x00-\x1f\x7f")
        for name in ("slide 1.svs", 'a/b\\c:d*e?f"g<h>i|j', "tab\there\x7f", " x "):
            assert re.sub(py_regex, "_", name).strip() == pf.safe_file_name(name), name
    assert f'MARK_VALUE = "{pf.MARK_VALUE}"' in imp
    assert '"magnipath", "annotations"' in export and '"magnipath", "predictions"' in imp
    assert pf.annotation_file("/p", "a/b").as_posix() == "/p/magnipath/annotations/a_b.geojson"
    assert pf.prediction_file("/p", "s.svs").as_posix() == "/p/magnipath/predictions/s.svs.geojson"


@pytest.mark.parametrize(("uri", "path"), [
    ("file:/data/slides/a.svs", "/data/slides/a.svs"),
    ("file:///data/my%20slides/a%23.svs", "/data/my slides/a#.svs"),
    ("file:/C:/slides/a.svs", "C:\\slides\\a.svs"),
    ("file://server/share/a.svs", "\\\\server\\share\\a.svs"),
    ("https://omero.example/image/1", None),
    (None, None),
])
def test_uri_to_path(uri, path):
    assert pf.uri_to_path(uri) == path


def test_remap_path_rules():
    mapping = {"/old": "/new", "/old/deep": "/elsewhere", "/x/a.svs": "/y/b.svs"}
    assert pf.remap_path("/old/s/a.svs", mapping) == "/new/s/a.svs"
    assert pf.remap_path("/old/deep/a.svs", mapping) == "/elsewhere/a.svs"  # longest wins
    assert pf.remap_path("/x/a.svs", mapping) == "/y/b.svs"  # exact file
    assert pf.remap_path("/older/a.svs", mapping) is None  # not a folder prefix
    assert pf.remap_path("C:\\slides\\a.svs", {"C:\\slides": "D:\\wsi"}) == "D:\\wsi\\a.svs"
    assert pf.remap_path("/old/a.svs", lambda p: p.replace("old", "new")) == "/new/a.svs"
    assert pf.remap_path("/old/a.svs", lambda p: None) is None


def test_pick_image_by_index_name_id_or_file_name():
    images = [("slide A", "1", "/s/a.svs"), ("slide B", "2", "/s/b.svs"),
              ("dup", "3", None), ("dup", "4", None), ("7", "5", "/s/7.svs")]
    assert pf.pick_image(images, 1, "P") == 1
    assert pf.pick_image(images, -1, "P") == 4
    assert pf.pick_image(images, "slide B", "P") == 1
    assert pf.pick_image(images, "1", "P") == 0  # entry id
    assert pf.pick_image(images, "b.svs", "P") == 1  # slide file name
    assert pf.pick_image(images, "7", "P") == 4  # a name wins over an index
    with pytest.raises(QuPathBridgeError, match=r"2 images named 'dup'.*3, 4"):
        pf.pick_image(images, "dup", "P")
    with pytest.raises(QuPathBridgeError, match=r"no image 'zzz'.*'slide A'"):
        pf.pick_image(images, "zzz", "P")
    with pytest.raises(QuPathBridgeError, match="out of range"):
        pf.pick_image(images, 5, "P")


# ---------------------------------------------------------------------------------------------
# with QuPath
def _annotations() -> list[QuPathObject]:
    ring = Polygon([(100, 100), (400, 100), (400, 400), (100, 400)],
                   [[(200, 200), (300, 200), (300, 300), (200, 300)]])
    return [
        QuPathObject(ring, classification="Carcinoma", class_color=(200, 0, 0), name="T1",
                     metadata={"annotator": "ab"}, id=str(uuid.UUID(int=1))),
        QuPathObject(MultiPoint([(500, 500), (520, 530)]), classification="Mitotic figure",
                     class_color=(250, 200, 0), id=str(uuid.UUID(int=2))),
        QuPathObject(box(600, 50, 700, 150), object_type="detection", classification="Adipose",
                     class_color=(0, 150, 0), measurements={"Area µm^2": 2500.0},
                     id=str(uuid.UUID(int=3))),
    ]


def _predictions(n: int, cls: str = "Carcinoma") -> list[QuPathObject]:
    return [QuPathObject(box(10 + 40 * i, 600, 40 + 40 * i, 650), classification=cls,
                         class_color=(10, 20, 30 + i), name=f"p{i}",
                         measurements={"Area µm^2": 375.0 + i, "Probability": 0.5},
                         id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"magnipath-test/{cls}/{i}")))
            for i in range(n)]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _by_id(objs: list[QuPathObject]) -> dict[str, QuPathObject]:
    return {o.id: o for o in objs}


@pytest.fixture
def qp_project(tmp_path, make_slide):
    """A project with two slides; the first has user annotations, points and a detection."""
    from qupath_bridge.project import create_project

    ann = write_geojson(_annotations(), tmp_path / "a.geojson")
    slides = [make_slide("a.ome.tif", 1024, 768, 0.5), make_slide("b.ome.tif", 640, 512, 0.25)]
    return create_project(tmp_path / "project", slides, [ann, None])


@pytest.mark.qupath
def test_create_project_and_read_images_and_annotations(qp_project):
    from qupath_bridge.project import Project

    assert qp_project.name == "project.qpproj" and qp_project.is_file()
    with Project(qp_project.parent, "r") as p:
        images = p.images
        assert [Path(im.path).name for im in images] == ["a.ome.tif", "b.ome.tif"]
        assert [(im.width, im.height) for im in images] == [(1024, 768), (640, 512)]
        assert images[0].mpp == pytest.approx(0.5, rel=1e-3)
        assert images[1].mpp == pytest.approx(0.25, rel=1e-3)
        assert all(im.slide_found for im in images) and images[1].index == 1
        assert p.image_info("b.ome.tif").id == images[1].id
        classes = dict(p.path_classes)
        assert classes["Carcinoma"] == (200, 0, 0) and classes["Mitotic figure"] == (250, 200, 0)

        objs = p.read_objects("a.ome.tif")
        want = {o.id: o for o in _annotations() if o.object_type == "annotation"}
        got = _by_id(objs)
        assert set(got) == set(want)
        for oid, o in want.items():
            g = got[oid]
            assert g.object_type == "annotation" and g.geometry.equals(o.geometry)
            assert (g.classification, g.class_color, g.name) == (
                o.classification, o.class_color, o.name)
            assert g.metadata == o.metadata
        ring = next(o for o in objs if o.name == "T1").geometry
        assert len(ring.interiors) == 1 and ring.area == pytest.approx(300 * 300 - 100 * 100)
        no_points = p.read_objects(0, include_points=False)
        assert [o.name for o in no_points] == ["T1"]
        det = p.read_objects(0, types=("detection",))
        assert len(det) == 1 and det[0].classification == "Adipose"
        assert det[0].measurements["Area µm^2"] == pytest.approx(2500.0)
        assert p.read_objects("b.ome.tif", types=("annotation", "detection")) == []


@pytest.mark.qupath
def test_write_predictions_replaces_only_ours(qp_project):
    from qupath_bridge.project import Project

    all_types = ("annotation", "detection", "tile", "cell")
    with Project(qp_project, "r") as p:
        users = _by_id(p.read_objects(0, types=all_types))
    with Project(qp_project, "r+") as p:
        res = p.write_predictions("a.ome.tif", _predictions(3), as_type="detection")
        assert (res["removed"], res["added"], res["created_classes"]) == (0, 3, [])
        res2 = p.write_predictions(0, _predictions(2, cls="Necrotic"), as_type="annotation")
        assert (res2["removed"], res2["added"]) == (3, 2)
        assert res2["created_classes"] == ["Necrotic"]
    with Project(qp_project, "r") as p:  # what is on disk
        objs = p.read_objects(0, types=all_types)
        assert dict(p.path_classes)["Necrotic"] == (10, 20, 30)
    ours = [o for o in objs if pf.is_prediction(o)]
    assert sorted(o.name for o in ours) == ["p0", "p1"]
    assert {o.object_type for o in ours} == {"annotation"}
    assert {o.classification for o in ours} == {"Necrotic"}
    p1 = next(o for o in ours if o.name == "p1")
    assert p1.measurements["Area µm^2"] == pytest.approx(376.0)
    assert p1.geometry.equals(box(50, 600, 80, 650))
    others = _by_id([o for o in objs if not pf.is_prediction(o)])
    assert set(others) == set(users)  # every user object is still there, unchanged
    for oid, u in users.items():
        o = others[oid]
        assert (o.object_type, o.classification, o.class_color, o.name, o.metadata) == (
            u.object_type, u.classification, u.class_color, u.name, u.metadata)
        assert o.geometry.equals(u.geometry) and o.measurements == u.measurements
    with Project(qp_project, "r") as p:
        assert {o.name for o in p.read_objects(0, include_predictions=False)} == {"T1", None}


@pytest.mark.qupath
def test_read_only_leaves_every_file_byte_identical(qp_project, tmp_path):
    from qupath_bridge.project import Project

    with Project(qp_project, "r+") as p:
        p.write_predictions(0, _predictions(2))
    folder = qp_project.parent
    before = _snapshot(folder)
    with Project(folder, "r") as p:
        assert len(p) == 2 and len(p.images) == 2
        p.image_info(1)
        p.path_classes  # noqa: B018 - reading is the test
        for i in range(2):
            p.read_objects(i, types=("annotation", "detection", "tile", "cell"))
        assert len(p.list_backups(0)) == 2  # creation with annotations, then predictions
        for call in (lambda: p.write_predictions(0, _predictions(1)),
                     lambda: p.remap_paths({"/": "/"}), lambda: p.restore_backup(0),
                     lambda: p.add_image(tmp_path / "slides" / "a.ome.tif")):
            with pytest.raises(QuPathBridgeError, match="read-only"):
                call()
    assert _snapshot(folder) == before


@pytest.mark.qupath
def test_bad_input_changes_nothing(qp_project):
    from qupath_bridge.project import Project

    before = _snapshot(qp_project.parent)
    with Project(qp_project, "r+") as p:
        with pytest.raises(QuPathBridgeError, match="not a QuPathObject"):
            p.write_predictions(0, [*_predictions(1), "nonsense"])
        with pytest.raises(QuPathBridgeError, match="as_type"):
            p.write_predictions(0, _predictions(1), as_type="cell")
        with pytest.raises(QuPathBridgeError, match="no image 'zzz'"):
            p.write_predictions("zzz", _predictions(1))
    assert _snapshot(qp_project.parent) == before


@pytest.mark.qupath
def test_remap_paths_after_the_slides_moved(qp_project, tmp_path):
    from qupath_bridge.project import Project

    old, new = (tmp_path / "slides").resolve(), (tmp_path / "moved").resolve() / "wsi"
    new.parent.mkdir()
    shutil.move(old, new)
    with Project(qp_project, "r") as p:
        a = p.image_info(0)
        assert not a.slide_found and a.width is None and Path(a.path).parent.resolve() == old
    with Project(qp_project, "r+") as p:
        with pytest.raises(QuPathBridgeError, match="remap_paths"):
            p.write_predictions(0, _predictions(1))
        with pytest.raises(QuPathBridgeError, match="do not exist"):
            p.remap_paths({str(old): str(tmp_path / "nowhere")})
        assert p.remap_paths({str(old): str(new)}) == 2
        assert p.remap_paths({str(old): str(new)}) == 0  # nothing left to move
    with Project(qp_project, "r") as p:
        a = p.image_info(0)
        assert a.slide_found and Path(a.path).resolve() == new / "a.ome.tif" and a.width == 1024
    with Project(qp_project, "r+") as p:
        assert p.write_predictions(0, _predictions(1))["added"] == 1


@pytest.mark.qupath
def test_backup_before_each_write_and_restore(qp_project):
    from qupath_bridge.project import Project

    first, second = _predictions(2), _predictions(3, cls="Necrotic")

    def our_ids(p: Project) -> set[str]:
        return {o.id for o in p.read_objects(0) if pf.is_prediction(o)}

    with Project(qp_project, "r+") as p:
        r1 = p.write_predictions(0, first)
        r2 = p.write_predictions(0, second)
        assert Path(r1["backup"]) in p.list_backups(0) and Path(r2["backup"]).is_dir()
        assert our_ids(p) == {o.id for o in second}
        restored = p.restore_backup(0)  # undo the last write
        assert restored == Path(r2["backup"])
        assert our_ids(p) == {o.id for o in first}
        p.restore_backup(0)  # a restore is undone the same way
        assert our_ids(p) == {o.id for o in second}
        p.restore_backup(0, r1["backup"])  # the state before any prediction
        assert our_ids(p) == set()
    with Project(qp_project, "r") as p:  # QuPath still loads the restored data
        assert {o.name for o in p.read_objects(0)} == {"T1", None}


@pytest.mark.qupath
def test_cli_create_list_export_import(tmp_path, make_slide, capsys):
    from magnipath.cli import main

    slide = make_slide("c.ome.tif", 512, 512, 0.5)
    ann = write_geojson(_annotations()[:2], tmp_path / "c.geojson")
    proj = tmp_path / "cli-project"
    assert main(["qupath", "create", str(proj), str(slide), "--annotations", str(ann),
                 "--json"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert created["n_images"] == 1 and Path(created["project"]).is_file()

    assert main(["qupath", "list", str(proj), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    (image,) = listed["images"]
    assert (image["width"], image["height"], image["slide_found"]) == (512, 512, True)
    assert listed["missing_slides"] == []

    pred = write_geojson(_predictions(4), tmp_path / "pred.geojson")
    assert main(["qupath", "import", str(proj), str(pred), "--image", "c.ome.tif", "--as",
                 "detections", "--json"]) == 0
    imported = json.loads(capsys.readouterr().out)
    assert (imported["added"], imported["removed"], imported["as_type"]) == (4, 0, "detection")

    out = tmp_path / "export"
    assert main(["qupath", "export", str(proj), "--out", str(out), "--json"]) == 0
    exported = json.loads(capsys.readouterr().out)
    (entry,) = exported["files"]
    objs = read_geojson(entry["file"])
    assert entry["objects"] == len(objs) == 2  # the user's annotations, no predictions
    assert {o.classification for o in objs} == {"Carcinoma", "Mitotic figure"}
    assert main(["qupath", "export", str(proj), "--out", str(out), "--include-detections",
                 "--include-predictions", "--no-points", "--json"]) == 0
    objs = read_geojson(json.loads(capsys.readouterr().out)["files"][0]["file"])
    assert sorted(o.object_type for o in objs) == ["annotation"] + ["detection"] * 4
    assert all(not isinstance(o.geometry, Point | MultiPoint) for o in objs)
    assert not math.isnan(objs[-1].measurements["Probability"])
