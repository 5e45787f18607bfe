"""Cohort evaluation (per slide + pooled confusion matrix) and suggest-mpp over a cohort."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from magnipath.cli import main
from magnipath.cohort import collect, infer_job, run_cohort, suggest_job
from magnipath.infer import InferConfig


@pytest.fixture(scope="module")
def predicted(cohort_dir, model_dir, tmp_path_factory):
    """The cohort inferred once (in-process cluster) and its truth files in one folder."""
    from distributed import Client, LocalCluster

    out = tmp_path_factory.mktemp("pred")
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        run_cohort(collect(cohort_dir), infer_job(model_dir, out, InferConfig(device="cpu")),
                   out, client=client)
    truth = tmp_path_factory.mktemp("truth")
    for n in ("a", "b", "sub/c"):
        shutil.copy(cohort_dir / f"{n}.geojson", truth)
    return out, truth


def test_evaluate_cohort_matches_single_evaluations_and_pools(cohort_dir, predicted, tmp_path,
                                                              capsys):
    pred, truth = predicted
    out = tmp_path / "ev"
    code = main(["evaluate", str(pred), "--cohort", str(cohort_dir), "--truth-dir", str(truth),
                 "--out", str(out), "--workers", "1", "--json", "--quiet"])
    rep = json.loads(capsys.readouterr().out)
    assert code == 0 and rep["done"] == 3
    full = json.loads((out / "cohort.json").read_text())
    total = np.zeros_like(np.asarray(full["slides"][0]["confusion_matrix"]))
    for n in "abc":
        t = truth / f"{n}.geojson"
        assert main(["evaluate", str(pred / f"{n}.zarr"), "--truth", str(t), "--json",
                     "--quiet"]) == 0
        single = json.loads(capsys.readouterr().out)
        row = {r["name"]: r for r in full["slides"]}[n]
        assert row["mean_iou"] == single["mean_iou"] and row["accuracy"] == single["accuracy"]
        each = json.loads((out / f"{n}.evaluation.json").read_text())
        total += np.asarray(each["slide"]["confusion_matrix"])
    assert full["pooled"]["confusion_matrix"] == total.tolist()
    assert full["pooled"]["n_slides"] == 3
    # truth missing for one slide: that slide fails alone
    (truth / "b.geojson").unlink()
    code = main(["evaluate", str(pred), "--cohort", str(cohort_dir), "--truth-dir", str(truth),
                 "--out", str(tmp_path / "ev2"), "--workers", "1", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "1 of 3 slides failed" in err and "b.geojson" in err


def test_suggest_mpp_over_a_cohort(cohort_dir, tmp_path):
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        rep = run_cohort(collect(cohort_dir), suggest_job(n_tiles=4), tmp_path / "mpp",
                         client=client)
        again = run_cohort(collect(cohort_dir), suggest_job(n_tiles=4), tmp_path / "mpp",
                           client=client)
    assert rep["done"] == 3 and again["ran"] == 0
    for r in rep["slides"]:
        assert r["file_mpp"] == 0.5 and r["mpp_source"].startswith("estimated")
        assert r["mpp"] is None or r["mpp"] > 0
