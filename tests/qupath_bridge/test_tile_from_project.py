"""`magnipath tile --qupath-project`: a QuPath project as the annotation source."""

import json

import pytest
from shapely.geometry import Polygon

from magnipath.cli import main
from magnipath.dataset import open_dataset
from qupath_bridge.geojson import write_geojson
from qupath_bridge.objects import QuPathObject


def test_without_quPath_the_cli_says_what_to_do(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PAQUO_QUPATH_DIR", str(tmp_path / "no-qupath-here"))
    code = main(["tile", "--qupath-project", str(tmp_path / "p.qpproj"),
                 "--out", str(tmp_path / "ds")])
    assert code == 1
    assert "PAQUO_QUPATH_DIR" in capsys.readouterr().err
    assert not (tmp_path / "ds").exists()


def test_slides_and_project_are_exclusive_and_one_is_needed(tmp_path, capsys):
    assert main(["tile", "--out", str(tmp_path / "ds")]) == 1
    assert "--qupath-project" in capsys.readouterr().err
    assert main(["tile", "a.tif", "--qupath-project", "p", "--out", str(tmp_path / "ds")]) == 1
    assert "not both" in capsys.readouterr().err


@pytest.mark.qupath
def test_tile_from_project_annotations(tmp_path, make_slide, capsys):
    from qupath_bridge.project import create_project

    ring = Polygon([(0, 0), (512, 0), (512, 512), (0, 512)],
                   [[(128, 128), (384, 128), (384, 384), (128, 384)]])
    ann = write_geojson([QuPathObject(ring, classification="Tumor", class_color=(200, 0, 0))],
                        tmp_path / "a.geojson")
    slide = make_slide("a.ome.tif", 1024, 768, 0.5)
    project = create_project(tmp_path / "project", [slide], [ann])
    code = main(["tile", "--qupath-project", str(project), "--classes", "Tumor=1",
                 "--magnification", "20", "--size", "128", "--min-tissue", "0",
                 "--out", str(tmp_path / "ds"), "--json", "--quiet"])
    assert code == 0, capsys.readouterr().err
    json.loads(capsys.readouterr().out)
    ds = open_dataset(tmp_path / "ds")
    by_origin = {tuple(int(v) for v in r["box"][:2]): i for i, r in enumerate(ds.records)}
    assert (ds.label(by_origin[(0, 0)]) == 1).all()  # inside the ring
    assert (ds.label(by_origin[(128, 128)]) == 255).all()  # the hole stays unlabelled
