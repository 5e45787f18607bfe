"""Run the Groovy scripts (qupath_bridge/groovy/) with Groovy, against stand-ins of the
QuPath classes they call (tests/qupath_bridge/groovy_harness/, 0.5-like and 0.6-like).

Needs ``groovy`` and Java on the PATH (Debian: ``apt-get install groovy``); skipped
otherwise. The stand-ins imitate what the scripts depend on: detections' metadata
read-only on QuPath 0.5 (and dropped by its GeoJSON reader), ``hasMetadata()`` only
on 0.6. The script of before issue 13 fails here on 0.5 with
``java.lang.UnsupportedOperationException``, as it did in QuPath 0.5.1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from qupath_bridge import _project_support as pf

HERE = Path(__file__).resolve().parent
HARNESS = HERE / "groovy_harness"
GROOVY = HERE.parents[1] / "qupath_bridge" / "groovy"

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("groovy") is None or shutil.which("java") is None,
                                 reason="needs groovy and java (apt-get install groovy)")]


def _feature(name: str, object_type: str, *, oid: str | None = None, **props) -> dict:
    return {"type": "Feature", "id": oid or str(uuid.uuid4()),
            "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [9, 0], [9, 9], [0, 0]]]},
            "properties": {"objectType": object_type, "name": name, **props}}


def _run(flavour: str, project: Path, state: Path, script: str, force: str | None = None) -> str:
    env = dict(os.environ)
    if "JAVA_HOME" not in env:
        env["JAVA_HOME"] = str(Path(os.path.realpath(shutil.which("java"))).parents[1])
    cmd = ["groovy", "-cp", str(HARNESS), str(HARNESS / "run_script.groovy"), flavour,
           str(project), "s.svs", "3", str(state), str(GROOVY / script)]
    res = subprocess.run([*cmd, *([force] if force else [])], capture_output=True, text=True,
                         timeout=300, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


def _objects(state: Path) -> dict[str, dict]:
    return {f["properties"]["name"]: f for f in json.loads(state.read_text())}


@pytest.mark.parametrize("flavour", ["0.5", "0.6"])
def test_import_script_replaces_only_magnipaths_objects(tmp_path, flavour):
    project, state = tmp_path / "project", tmp_path / "state.json"
    preds = pf.prediction_file(project, "s.svs")
    preds.parent.mkdir(parents=True)
    user_id = str(uuid.uuid4())
    state.write_text(json.dumps([
        _feature("user", "annotation", oid=user_id, metadata={"annotator": "ab"}),
        _feature("user cell", "detection", measurements={"Area": 3.0}),
        _feature("legacy", "annotation", metadata={"magnipath": "prediction"})]))
    preds.write_text(json.dumps({"type": "FeatureCollection", "features": [
        _feature("d0", "detection", measurements={"Probability": 0.9}, metadata={"src": "m"}),
        _feature("clash", "detection", oid=user_id)]}))
    out = _run(flavour, project, state, "import_predictions.groovy")
    assert "removed 1 earlier MagniPath objects, added 2" in out
    objs = _objects(state)
    assert set(objs) == {"user", "user cell", "d0", "clash"}
    assert objs["user"]["id"] == user_id and objs["clash"]["id"] != user_id
    assert objs["user"]["properties"]["metadata"] == {"annotator": "ab"}
    for name in ("d0", "clash"):
        assert objs[name]["properties"]["measurements"][pf.MARK_MEASUREMENT] == 1.0
    # 0.5: the detection's metadata were dropped by QuPath's reader; 0.6 keeps them
    assert ("metadata" in objs["d0"]["properties"]) == (flavour == "0.6")
    record = json.loads(pf.record_file(project, "3").read_text())
    assert sorted(record["ids"]) == sorted([objs["d0"]["id"], objs["clash"]["id"]])
    assert pf.read_record(project, "3") == frozenset(record["ids"])

    # a second run, annotations in the file imported as detections (FORCE_TYPE)
    preds.write_text(json.dumps({"type": "FeatureCollection", "features": [
        _feature("a0", "annotation", metadata={"src": "m"})]}))
    out = _run(flavour, project, state, "import_predictions.groovy", force="detection")
    assert "removed 2 earlier MagniPath objects, added 1" in out
    objs = _objects(state)
    assert set(objs) == {"user", "user cell", "a0"}
    assert objs["a0"]["properties"]["objectType"] == "detection"
    assert pf.read_record(project, "3") == frozenset({objs["a0"]["id"]})

    # the export script leaves MagniPath's objects out
    _run(flavour, project, state, "export_annotations.groovy")
    exported = json.loads(pf.annotation_file(project, "s.svs").read_text())
    assert [f["properties"]["name"] for f in exported["features"]] == ["user"]
