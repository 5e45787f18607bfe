"""The prediction store: shape, resolution, origin, pyramid, resume and re-runs."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import zarr

from magnipath._errors import Cancelled
from magnipath.geometry import TileGeometry
from magnipath.infer import (
    InferConfig,
    InferError,
    PredictionStoreError,
    infer_slide,
    open_prediction,
    store_path,
)

from .conftest import INTENSITY_CLASSES, IntensityNet, make_card


def test_store_shape_resolution_origin_and_pyramid(infer_slide_file, tmp_path):
    # target 0.5 µm/px on a 0.5 µm/px slide: d = 1, the label map is 1900 px wide -> 2 levels
    region = (150.0, 40.0, 1900.0, 500.0)
    card = make_card(INTENSITY_CLASSES, TileGeometry.single(0.5, 64))
    res = infer_slide(infer_slide_file.slide, (IntensityNet(), card), tmp_path,
                      InferConfig(region=region, tissue_mask=False))
    assert res.store == tmp_path / "wide.zarr" and res.store.is_dir()
    root, meta = open_prediction(res.store)
    assert meta["complete"] is True and meta["levels"] == 2
    assert meta["target_mpp"] == 0.5 and meta["downsample"] == 1.0
    assert meta["origin"] == [150.0, 40.0] and meta["signature"]["slide_mpp"] == 0.5
    assert meta["class_map"] == INTENSITY_CLASSES.to_dict() and meta["fill"] == 0
    lab0 = np.asarray(root["labels/0"][:])
    lab1 = np.asarray(root["labels/1"][:])
    assert lab0.shape == res.out_shape == (500, 1900) and lab0.dtype == np.uint8
    assert lab1.shape == (250, 950)
    np.testing.assert_array_equal(lab1, lab0[::2, ::2])
    assert len(np.unique(lab0)) >= 2
    ms = zarr.open_group(res.store / "labels", mode="r").attrs["multiscales"][0]
    scales = [d["coordinateTransformations"][0]["scale"] for d in ms["datasets"]]
    assert scales == [[0.5, 0.5], [1.0, 1.0]]
    # level-0 origin (y, x) in µm
    assert ms["datasets"][0]["coordinateTransformations"][1]["translation"] == [20.0, 75.0]


def test_store_name_drops_the_slide_suffix(tmp_path):
    assert store_path(tmp_path, "/a/b/case.1.ome.tiff") == tmp_path / "case.1.zarr"
    assert store_path(tmp_path, "x.svs") == tmp_path / "x.zarr"
    assert store_path(tmp_path, "x.mrxs") == tmp_path / "x.zarr"


def _cancel_after(n_batches: int):
    calls = {"n": 0}

    def cancel() -> bool:
        calls["n"] += 1
        return calls["n"] > n_batches

    return cancel


def _arrays(store) -> tuple[np.ndarray, np.ndarray]:
    root, _ = open_prediction(store)
    return np.asarray(root["labels/0"][:]), np.asarray(root["probabilities/0"][:])


def test_interrupted_run_resumes_and_equals_an_uninterrupted_run(infer_slide_file, tmp_path,
                                                                 intensity_model):
    cfg = InferConfig(chunk=64, batch_size=4, probabilities=True)
    full = infer_slide(infer_slide_file.slide, intensity_model, tmp_path / "full", cfg)
    assert full.n_resumed_chunks == 0 and not full.already_complete

    events = []
    with pytest.raises(Cancelled):
        infer_slide(infer_slide_file.slide, intensity_model, tmp_path / "cut", cfg,
                    cancel=_cancel_after(5), progress=events.append)
    store = tmp_path / "cut" / "wide.zarr"
    done = json.loads((store / "progress.json").read_text())["done"]
    assert 0 < len(done) < 5 * 17  # 5 x 17 chunks of 64 px in the 300 x 1050 label map
    with pytest.raises(PredictionStoreError, match="did not finish"):
        open_prediction(store)
    assert [e.done for e in events if e.stage == "infer"][-1] == 5 * 4

    resumed = infer_slide(infer_slide_file.slide, intensity_model, tmp_path / "cut", cfg)
    assert resumed.n_resumed_chunks == len(done) > 0
    assert 0 < resumed.windows_run < full.windows_run
    a_lab, a_prob = _arrays(full.store)
    b_lab, b_prob = _arrays(resumed.store)
    np.testing.assert_array_equal(a_lab, b_lab)
    np.testing.assert_array_equal(a_prob, b_prob)


def test_a_finished_run_is_not_redone(infer_slide_file, tmp_path, intensity_model):
    first = infer_slide(infer_slide_file.slide, intensity_model, tmp_path, InferConfig())
    files = {p: p.stat().st_mtime_ns for p in first.store.rglob("*") if p.is_file()}
    again = infer_slide(infer_slide_file.slide, intensity_model, tmp_path, InferConfig())
    assert again.already_complete and again.windows_run == 0
    assert again.n_resumed_chunks == len(json.loads(
        (first.store / "progress.json").read_text())["done"])
    assert again.n_skipped == first.n_skipped and again.out_shape == first.out_shape
    assert {p: p.stat().st_mtime_ns for p in first.store.rglob("*") if p.is_file()} == files


def test_output_holding_another_slides_result_is_refused(infer_slide_file, tmp_path,
                                                         intensity_model):
    from magnipath.synth import SynthConfig, synthesize

    other = synthesize(tmp_path / "other" / "wide.tif",  # same name, another slide
                       SynthConfig(width=640, height=320, mpp=0.5, seed=9, compression="zlib"))
    out = tmp_path / "out"
    infer_slide(infer_slide_file.slide, intensity_model, out)
    with pytest.raises(PredictionStoreError, match="another slide") as e:
        infer_slide(other.slide, intensity_model, out)
    assert "wide.zarr" in str(e.value) and "--overwrite" in str(e.value)
    res = infer_slide(other.slide, intensity_model, out, InferConfig(overwrite=True))
    _, meta = open_prediction(res.store)
    assert meta["slide"] == str(other.slide) and res.out_shape == (160, 320)


def test_other_settings_on_the_same_output_are_refused_and_named(infer_slide_file, tmp_path,
                                                                 intensity_model):
    infer_slide(infer_slide_file.slide, intensity_model, tmp_path)
    with pytest.raises(PredictionStoreError, match="stride 32 -> 16"):
        infer_slide(infer_slide_file.slide, intensity_model, tmp_path, InferConfig(stride=16))


def test_a_folder_that_is_not_a_store_is_refused(infer_slide_file, tmp_path, intensity_model):
    (tmp_path / "wide.zarr").mkdir()
    (tmp_path / "wide.zarr" / "notes.txt").write_text("mine")
    with pytest.raises(PredictionStoreError, match="not a MagniPath prediction store"):
        infer_slide(infer_slide_file.slide, intensity_model, tmp_path)
    assert (tmp_path / "wide.zarr" / "notes.txt").read_text() == "mine"


def test_slide_facts_are_in_the_store_from_its_creation(infer_slide_file, tmp_path,
                                                        intensity_model):
    import zarr

    facts = {"slide_mpp": 0.26, "slide_mpp_source": "estimated (baseline)"}
    cfg = InferConfig(chunk=64, batch_size=4)
    with pytest.raises(Cancelled):
        infer_slide(infer_slide_file.slide, intensity_model, tmp_path, cfg, slide_meta=facts,
                    cancel=_cancel_after(2))
    store = tmp_path / "wide.zarr"
    meta = zarr.open_group(store, mode="r").attrs["magnipath"]  # unfinished, yet said
    assert {k: meta[k] for k in facts} == facts and meta["complete"] is False
    res = infer_slide(infer_slide_file.slide, intensity_model, tmp_path, cfg, slide_meta=facts)
    _, meta = open_prediction(res.store)
    assert {k: meta[k] for k in facts} == facts and meta["complete"] is True


@pytest.mark.parametrize("facts, what", [
    ({"target_mpp": 9.0}, "may not set ['target_mpp']"),
    ({"complete": True, "slide_mpp": 0.3}, "may not set ['complete']"),
    ({"slide_mpp": float("nan")}, "JSON-ready"),
    ({"slide_mpp_estimate": object()}, "JSON-ready"),
])
def test_slide_facts_cannot_replace_the_stores_own(infer_slide_file, tmp_path, intensity_model,
                                                   facts, what):
    with pytest.raises(InferError, match=re.escape(what)):
        infer_slide(infer_slide_file.slide, intensity_model, tmp_path,
                    InferConfig(chunk=64, batch_size=4), slide_meta=facts)
    assert not (tmp_path / "wide.zarr").exists()  # refused before anything is written


def test_a_resumed_store_drops_what_a_killed_progress_write_left(infer_slide_file, tmp_path,
                                                               intensity_model):
    """A kill inside the atomic write of progress.json leaves its temporary folder in the
    store; the resumed run removes it, so the finished store is the same files as one run."""
    cfg = InferConfig(chunk=64, batch_size=4)
    full = infer_slide(infer_slide_file.slide, intensity_model, tmp_path / "full", cfg)
    with pytest.raises(Cancelled):
        infer_slide(infer_slide_file.slide, intensity_model, tmp_path / "cut", cfg,
                    cancel=_cancel_after(3))
    store = tmp_path / "cut" / "wide.zarr"
    stale = store / ".progress.json.k1ll3d.tmp"
    stale.mkdir()
    (stale / "progress.json").write_text('{"done": [[0, 0')  # cut mid-write

    infer_slide(infer_slide_file.slide, intensity_model, tmp_path / "cut", cfg)
    names = sorted(p.relative_to(store).as_posix() for p in store.rglob("*"))
    assert names == sorted(p.relative_to(full.store).as_posix() for p in full.store.rglob("*"))
