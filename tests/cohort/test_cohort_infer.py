"""The cohort engine on real dask clusters: identical to single-slide runs, resumable."""

from __future__ import annotations

import json
import shutil
import time

import pytest

from magnipath.cli import main
from magnipath.cohort import CohortFailed, collect, infer_job, run_cohort
from magnipath.infer import InferConfig

from .conftest import geojson_without_ids, store_files


@pytest.fixture(scope="module")
def reference(cohort_dir, model_dir, tmp_path_factory):
    """Three single-slide ``magnipath infer --geojson`` runs: the results to match."""
    out = tmp_path_factory.mktemp("single")
    for s in sorted(cohort_dir.rglob("*.tif")):
        assert main(["infer", str(s), "--model", str(model_dir), "--out", str(out),
                     "--geojson", "--device", "cpu", "--quiet"]) == 0
    return out


def _same_as_reference(out, reference, names=("a", "b", "c")) -> None:
    for n in names:
        assert store_files(out / f"{n}.zarr") == store_files(reference / f"{n}.zarr"), n
        assert geojson_without_ids(out / f"{n}.geojson") == \
            geojson_without_ids(reference / f"{n}.geojson"), n


@pytest.fixture()
def inproc_client():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        yield client


def test_in_process_cluster_matches_single_slide_runs_and_reruns_nothing(
        cohort_dir, model_dir, reference, inproc_client, tmp_path):
    out = tmp_path / "pred"
    job = infer_job(model_dir, out, InferConfig(device="cpu"))
    events = []
    rep = run_cohort(collect(cohort_dir), job, out, client=inproc_client, progress=events.append)
    assert (rep["done"], rep["failed"], rep["skipped"], rep["ran"]) == (3, 0, 0, 3)
    _same_as_reference(out, reference)
    row = {r["name"]: r for r in rep["slides"]}["a"]
    assert row["windows"] == 24 and row["n_objects"] > 0
    assert (row["mpp"], row["mpp_source"]) == (0.5, "file")
    assert sum(row["objects_by_class"].values()) == row["n_objects"]
    assert all(v > 0 for v in row["area_mm2_by_class"].values())
    assert json.loads((out / "cohort.json").read_text())["done"] == 3
    header = (out / "cohort.csv").read_text().splitlines()[0]
    assert header.startswith("name,slide,image,status,seconds") and "area_mm2:" in header
    assert [e.done for e in events if e.stage == "cohort"][-1] == 3
    # a second run of the finished cohort runs nothing, and says so
    again = run_cohort(collect(cohort_dir), job, out, client=inproc_client)
    assert (again["ran"], again["skipped"]) == (0, 3) and "nothing to run" in again["note"]
    _same_as_reference(out, reference)


def test_truncated_slide_fails_alone(cohort_dir, model_dir, tmp_path, capsys):
    folder = tmp_path / "slides"
    shutil.copytree(cohort_dir, folder)
    bad = folder / "b.tif"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    out = tmp_path / "pred"
    code = main(["infer", "--cohort", str(folder), "--model", str(model_dir), "--out", str(out),
                 "--device", "cpu", "--workers", "1", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "1 of 3 slides failed (2 done" in err and "b.tif" in err
    rep = json.loads((out / "cohort.json").read_text())
    status = {r["name"]: r["status"] for r in rep["slides"]}
    assert status == {"a": "done", "b": "failed", "c": "done"}
    assert (out / "a.geojson").is_file() and not (out / "b.geojson").exists()
    assert "b.tif" in {r["name"]: r for r in rep["slides"]}["b"]["error"]


def test_unreachable_scheduler_is_one_clear_error_and_writes_nothing(cohort_dir, model_dir,
                                                                      tmp_path, capsys):
    out = tmp_path / "pred"
    t0 = time.perf_counter()
    code = main(["infer", "--cohort", str(cohort_dir), "--model", str(model_dir),
                 "--out", str(out), "--scheduler", "tcp://127.0.0.1:9", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "tcp://127.0.0.1:9" in err and "scheduler" in err
    assert time.perf_counter() - t0 < 15
    assert not out.exists()


def test_failed_slide_raises_after_the_report(cohort_dir, model_dir, tmp_path, inproc_client):
    slides = collect(cohort_dir)
    (tmp_path / "x.tif").write_bytes(b"not a tiff")
    from magnipath.cohort import CohortSlide

    slides.append(CohortSlide(path=tmp_path / "x.tif", name="x"))
    with pytest.raises(CohortFailed, match="1 of 4 slides failed"):
        run_cohort(slides, infer_job(model_dir, tmp_path / "p", InferConfig(device="cpu")),
                   tmp_path / "p", client=inproc_client)
    assert json.loads((tmp_path / "p" / "cohort.json").read_text())["failed"] == 1


def test_cancel_keeps_finished_slides(cohort_dir, model_dir, tmp_path, inproc_client):
    from magnipath._errors import Cancelled

    out = tmp_path / "pred"
    finished = []

    def progress(ev):
        if ev.stage == "cohort" and ev.info.get("status") == "done":
            finished.append(ev.info["slide"])

    with pytest.raises(Cancelled, match="cancelled"):
        run_cohort(collect(cohort_dir), infer_job(model_dir, out, InferConfig(device="cpu")),
                   out, client=inproc_client, progress=progress, cancel=lambda: bool(finished))
    rep = json.loads((out / "cohort.json").read_text())
    assert rep["done"] == len(finished) >= 1 and rep["cancelled"] == 3 - rep["done"] >= 1
    again = run_cohort(collect(cohort_dir), infer_job(model_dir, out, InferConfig(device="cpu")),
                       out, client=inproc_client)
    assert again["skipped"] == rep["done"] and again["done"] == 3 - rep["done"]


def test_csv_manifest_mpp_reaches_the_worker(cohort_dir, model_dir, reference, inproc_client,
                                            tmp_path):
    manifest = tmp_path / "cohort.csv"
    manifest.write_text(f"slide,mpp,group\n{cohort_dir / 'a.tif'},0.5,p1\n")
    out = tmp_path / "pred"
    rep = run_cohort(collect(manifest), infer_job(model_dir, out, InferConfig(device="cpu")),
                     out, client=inproc_client)
    (row,) = rep["slides"]
    assert (row["mpp"], row["mpp_source"]) == (0.5, "manifest")
    _same_as_reference(out, reference, names=("a",))
    csv_row = (out / "cohort.csv").read_text().splitlines()[1].split(",")
    assert "manifest" in csv_row and "done" in csv_row
