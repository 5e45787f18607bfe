"""A QuPath project as a cohort: every image gets its objects, written by the client only."""

from __future__ import annotations

import json

import pytest

from magnipath.cli import main


@pytest.mark.qupath
def test_project_cohort_writes_every_image_and_replaces_only_ours(cohort_dir, model_dir,
                                                                  tmp_path, capsys):
    from qupath_bridge.project import Project, create_project

    slides = [cohort_dir / "a.tif", cohort_dir / "b.tif", cohort_dir / "sub" / "c.tif"]
    truths = [s.with_suffix(".geojson") for s in slides]
    project = create_project(tmp_path / "project", slides, truths)
    with Project(project, "r") as p:
        users = {i.name: len(p.read_objects(i.name, include_predictions=False))
                 for i in p.images}
    argv = ["infer", "--cohort", "--qupath-project", str(project), "--model", str(model_dir),
            "--out", str(tmp_path / "pred"), "--device", "cpu", "--workers", "2", "--json",
            "--quiet"]
    assert main(argv) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["done"] == 3
    added = {r["image"]: r["qupath"]["added"] for r in rep["slides"]}
    assert all(n > 0 for n in added.values()) and all(r["n_objects"] == added[r["image"]]
                                                      for r in rep["slides"])

    def counts():
        with Project(project, "r") as p:
            return ({i.name: len(p.read_objects(i.name, types=("annotation",),
                                                include_predictions=True))
                     - len(p.read_objects(i.name, include_predictions=False))
                     for i in p.images},
                    {i.name: len(p.read_objects(i.name, include_predictions=False))
                     for i in p.images})

    ours, theirs = counts()
    assert ours == added and theirs == users
    assert main(argv) == 0  # finished: nothing runs, nothing is written twice
    assert json.loads(capsys.readouterr().out)["ran"] == 0
    assert counts() == (added, users)
    assert main([*argv, "--min-area", "1"]) == 0  # other settings: re-run, replace ours
    again = json.loads(capsys.readouterr().out)
    assert {r["image"]: r["qupath"]["removed"] for r in again["slides"]} == added
    new_ours, theirs = counts()
    assert theirs == users
    assert new_ours == {r["image"]: r["qupath"]["added"] for r in again["slides"]}
