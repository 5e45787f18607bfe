"""Multi-process dask clusters: identical results, a killed worker, resume after interrupts."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest

from magnipath._errors import Cancelled
from magnipath.cohort import CohortSlide, collect, infer_job, run_cohort
from magnipath.infer import InferConfig, infer_slide, prediction_objects
from magnipath.synth import SynthConfig, synthesize
from qupath_bridge.geojson import write_geojson

from .conftest import geojson_without_ids, store_files

CHUNKED = InferConfig(device="cpu", chunk=64)
"""Small output chunks: a slide is many chunks, so an interrupted one resumes part-way."""


def _reference(slide, model_dir, out, cfg):
    """One single-slide run of the core functions: the store and its objects as GeoJSON."""
    res = infer_slide(slide, model_dir, out, cfg)
    write_geojson(prediction_objects(res.store), out / f"{res.store.stem}.geojson")
    return res.store


@pytest.fixture()
def process_client():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        yield client


def test_two_process_cluster_matches_single_slide_runs(cohort_dir, model_dir, tmp_path,
                                                       process_client):
    ref = tmp_path / "ref"
    for s in collect(cohort_dir):
        _reference(s.path, model_dir, ref, CHUNKED)
    out = tmp_path / "pred"
    rep = run_cohort(collect(cohort_dir), infer_job(model_dir, out, CHUNKED), out,
                     client=process_client)
    assert rep["done"] == 3 and rep["failed"] == 0
    assert len({r["worker_pid"] for r in rep["slides"]}) >= 1
    assert all(r["worker_pid"] != os.getpid() for r in rep["slides"])
    for n in "abc":
        assert store_files(out / f"{n}.zarr") == store_files(ref / f"{n}.zarr")
        assert geojson_without_ids(out / f"{n}.geojson") == \
            geojson_without_ids(ref / f"{n}.geojson")


@pytest.fixture(scope="module")
def big_slide(tmp_path_factory):
    """A 2048 x 1536 px slide at 0.5 µm/px: 192 windows, 192 output chunks of 64 px."""
    folder = tmp_path_factory.mktemp("big")
    synthesize(folder / "big.tif", SynthConfig(width=2048, height=1536, mpp=0.5, seed=3,
                                               tile=256, compression="zlib"))
    return folder / "big.tif"


def test_killed_worker_is_retried_with_identical_results(big_slide, model_dir, tmp_path,
                                                         process_client):
    cfg = InferConfig(device="cpu", chunk=64, batch_size=1, tissue_mask=False)
    ref = _reference(big_slide, model_dir, tmp_path / "ref", cfg)
    out = tmp_path / "pred"
    slides = [CohortSlide(path=big_slide, name="big")]
    box: dict = {}
    runner = threading.Thread(target=lambda: box.update(rep=run_cohort(
        slides, infer_job(model_dir, out, cfg), out, client=process_client)))
    runner.start()
    killed = None
    deadline = time.monotonic() + 60
    while killed is None and time.monotonic() < deadline and runner.is_alive():
        try:  # the chunks the store records as finished (what a resume starts from)
            done = json.loads((out / "big.zarr" / "progress.json").read_text())["done"]
        except (OSError, ValueError, KeyError):
            done = []
        busy = {w: keys for w, keys in process_client.processing().items()
                if any(str(k).startswith("infer-") for k in keys)}
        if 4 <= len(done) < 150 and busy:
            worker = next(iter(busy))
            pid = process_client.run(os.getpid, workers=[worker])[worker]
            os.kill(pid, signal.SIGKILL)
            killed = pid
        time.sleep(0.05)
    runner.join(120)
    assert killed is not None, "the slide finished before a worker could be killed"
    rep = box["rep"]
    (row,) = rep["slides"]
    assert row["status"] == "done" and row["worker_pid"] != killed
    # the retry resumed from the chunks finished before the kill
    assert row["resumed_chunks"] > 0, row
    assert store_files(out / "big.zarr") == store_files(ref)
    assert geojson_without_ids(out / "big.geojson") == \
        geojson_without_ids(tmp_path / "ref" / "big.geojson")


def test_rerun_after_interrupt_skips_finished_and_resumes_the_half_one(
        cohort_dir, model_dir, tmp_path):
    from distributed import Client, LocalCluster

    slides = collect(cohort_dir)
    ref = tmp_path / "ref"
    for s in slides:
        _reference(s.path, model_dir, ref, CHUNKED)
    out = tmp_path / "pred"
    job = infer_job(model_dir, out, CHUNKED)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        first = run_cohort(slides[:2], job, out, client=client)
        assert first["done"] == 2
        # slide c is interrupted part-way (the user cancels): its finished chunks stay
        seen = []
        with pytest.raises(Cancelled):
            infer_slide(slides[2].path, model_dir, out, CHUNKED,
                        progress=lambda ev: seen.append(ev.done),
                        cancel=lambda: any(d > 0 for d in seen))
        assert not (out / "c.geojson").exists()
        again = run_cohort(slides, job, out, client=client)
    status = {r["name"]: r["status"] for r in again["slides"]}
    assert status == {"a": "skipped", "b": "skipped", "c": "done"} and again["ran"] == 1
    (c,) = [r for r in again["slides"] if r["name"] == "c"]
    assert 0 < c["resumed_chunks"] < c["windows"] and 0 < c["windows_run"] < c["windows"]
    for n in "abc":
        assert store_files(out / f"{n}.zarr") == store_files(ref / f"{n}.zarr")
        assert geojson_without_ids(out / f"{n}.geojson") == \
            geojson_without_ids(ref / f"{n}.geojson")
    report = json.loads((out / "cohort.json").read_text())
    assert report["skipped"] == 2 and report["done"] == 1
