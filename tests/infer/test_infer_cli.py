"""``magnipath infer`` end to end: label map, GeoJSON, summary, re-runs and user errors."""

from __future__ import annotations

import json

import pytest
from shapely.geometry import box

from magnipath.cli import main
from magnipath.geometry import TileGeometry
from magnipath.synth import SYNTH_CLASSES
from qupath_bridge.geojson import read_geojson

from .conftest import constant_model_dir


def _run(capsys, *argv) -> tuple[int, dict | None, str]:
    code = main(list(map(str, argv)))
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else None), err


@pytest.fixture()
def tls_model(tmp_path):
    return constant_model_dir(tmp_path / "tls_model", SYNTH_CLASSES.index_of("TLS"),
                              classes=SYNTH_CLASSES, geometry=TileGeometry.single(1.0, 64))


def test_infer_writes_label_map_and_geojson(infer_slide_file, tmp_path, tls_model, capsys):
    out = tmp_path / "pred"
    code, summary, _ = _run(capsys, "infer", infer_slide_file.slide, "--model", tls_model,
                            "--out", out, "--geojson", "--classes", "TLS,Carcinoma",
                            "--region", "256,128,512,256", "--no-tissue-mask", "--json")
    assert code == 0
    (entry,) = summary["slides"]
    assert entry["store"] == str(out / "wide.zarr") and entry["label_shape"] == [128, 256]
    assert entry["windows"] == 8 and entry["windows_run"] == 8 and entry["n_objects"] == 1
    assert entry["objects_by_class"] == {"TLS": 1} and "note" not in entry
    (obj,) = read_geojson(entry["geojson"])
    assert obj.classification == "TLS" and obj.geometry.equals(box(256, 128, 768, 384))
    # the same command again: nothing recomputed
    code, again, _ = _run(capsys, "infer", infer_slide_file.slide, "--model", tls_model,
                          "--out", out, "--region", "256,128,512,256", "--no-tissue-mask",
                          "--json")
    assert code == 0 and again["slides"][0]["already_complete"] is True
    assert again["slides"][0]["windows_run"] == 0


def test_empty_prediction_gives_a_valid_empty_geojson_and_says_so(infer_slide_file, tmp_path,
                                                                  capsys):
    background = constant_model_dir(tmp_path / "bg_model", 0, classes=SYNTH_CLASSES,
                                    geometry=TileGeometry.single(1.0, 64))
    code, summary, _ = _run(capsys, "infer", infer_slide_file.slide, "--model", background,
                            "--out", tmp_path / "pred", "--geojson", "--json")
    assert code == 0
    (entry,) = summary["slides"]
    assert entry["n_objects"] == 0 and entry["objects_by_class"] == {}
    assert "no objects" in entry["note"] and "empty" in entry["note"]
    text = (tmp_path / "pred" / "wide.geojson").read_text()
    assert json.loads(text)["type"] == "FeatureCollection"
    assert read_geojson(tmp_path / "pred" / "wide.geojson") == []


def test_user_errors_exit_1_with_a_message(infer_slide_file, coarse_slide_file, tmp_path,
                                           tls_model, capsys):
    (tls_model / "best.pt").write_bytes(b"not a checkpoint")
    code, _, err = _run(capsys, "infer", infer_slide_file.slide, "--model", tls_model,
                        "--out", tmp_path / "p", "--json")
    assert code == 1 and "best.pt" in err and "damaged" in err
    code, _, err = _run(capsys, "infer", "--model", tls_model, "--json")
    assert code == 1 and "SLIDE" in err
    fine = constant_model_dir(tmp_path / "m2", 1, classes=SYNTH_CLASSES,
                              geometry=TileGeometry.single(1.0, 64))
    code, _, err = _run(capsys, "infer", coarse_slide_file.slide, "--model", fine,
                        "--out", tmp_path / "p")
    assert code == 1 and "coarse.tif" in err and "µm/px" in err
    code, _, err = _run(capsys, "infer", infer_slide_file.slide, "--model", fine,
                        "--out", tmp_path / "p", "--region", "1,2,3")
    assert code == 1 and "--region" in err
    code, _, err = _run(capsys, "infer", infer_slide_file.slide, "--model", fine,
                        "--out", tmp_path / "p", "--stride", "0")
    assert code == 1 and "stride" in err


@pytest.mark.qupath
def test_qupath_project_round_trip(infer_slide_file, tmp_path, tls_model, capsys):
    from qupath_bridge.project import Project, create_project

    project = create_project(tmp_path / "project", [infer_slide_file.slide],
                             [infer_slide_file.truth])
    argv = ["infer", "--qupath-project", project, "--model", tls_model, "--out",
            tmp_path / "pred", "--classes", "TLS", "--as", "detections", "--json"]
    code, summary, _ = _run(capsys, *argv)
    assert code == 0
    (entry,) = summary["slides"]
    assert entry["qupath"]["added"] == entry["n_objects"] > 0
    code, again, _ = _run(capsys, *argv)  # a re-run replaces only MagniPath's objects
    assert code == 0 and again["slides"][0]["qupath"]["removed"] == entry["n_objects"]
    with Project(project, "r") as p:
        name = p.images[0].name
        ours = p.read_objects(name, types=("detection",))
        truth = p.read_objects(name, include_predictions=False)
    assert len(ours) == entry["n_objects"] and {o.classification for o in ours} == {"TLS"}
    assert all(o.measurements["MagniPath prediction"] == 1.0 for o in ours)  # marked on 0.5 too
    assert len(truth) > 0 and not any(o.metadata.get("magnipath") for o in truth)
    code, ev, _ = _run(capsys, "evaluate", entry["store"], "--qupath-project", project,
                       "--image", name, "--json")
    assert code == 0 and ev["per_class_iou"]["TLS"] is not None
