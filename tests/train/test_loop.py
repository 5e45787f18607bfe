"""The training loop: resume bit-for-bit, cancel, learning, outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from magnipath._errors import Cancelled, ModelError
from magnipath.checkpoint import load_checkpoint
from magnipath.dataset import open_dataset
from magnipath.losses import build_loss
from magnipath.metrics import ConfusionMatrix
from magnipath.models import build_model
from magnipath.train import TileSamples, TrainConfig, train

from .conftest import write_tile_dataset

SMALL = dict(arch="dmmn-m3", arch_kwargs={"base": 4, "depth": 2}, optimizer="sgd", lr=1e-2,
             momentum=0.9, batch_size=4, max_steps_per_epoch=3, device="cpu", seed=7,
             num_workers=0, balance={"Benign": 2, "Carcinoma": 1},
             balance_order=["Benign", "Carcinoma"])


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _state(path):
    return load_checkpoint(path)


def test_resume_equals_uninterrupted_run(ds3, tmp_path):
    full = train(ds3, tmp_path / "full", TrainConfig(epochs=2, **SMALL))
    half = train(ds3, tmp_path / "half", TrainConfig(epochs=1, **SMALL))
    assert half["epochs_done"] == 1
    after_1 = _state(tmp_path / "half" / "last.pt")["model_state"]
    resumed = train(ds3, tmp_path / "half", TrainConfig(epochs=2, **SMALL), resume=True)
    assert resumed["resumed_from_epoch"] == 1 and resumed["epochs_done"] == 2
    assert resumed["warnings"] == []
    a, b = _state(tmp_path / "full" / "last.pt"), _state(tmp_path / "half" / "last.pt")
    assert a["model_state"].keys() == b["model_state"].keys()
    for k in a["model_state"]:
        assert torch.equal(a["model_state"][k], b["model_state"][k]), k
    for pa, pb in zip(a["optimizer_state"]["state"].values(),
                      b["optimizer_state"]["state"].values(), strict=True):
        assert torch.equal(pa["momentum_buffer"], pb["momentum_buffer"])
    la = [r["train_loss"] for r in a["train_state"]["history"]]
    lb = [r["train_loss"] for r in b["train_state"]["history"]]
    assert la == lb and full["best"] == resumed["best"]
    # epoch 2 did change the weights, so the comparison is not vacuous
    assert any(not torch.equal(after_1[k], b["model_state"][k]) for k in after_1)


def test_same_seed_same_weights_other_seed_differs(ds3, tmp_path):
    cfg = TrainConfig(epochs=1, **SMALL)
    train(ds3, tmp_path / "a", cfg)
    train(ds3, tmp_path / "b", cfg)
    train(ds3, tmp_path / "c", cfg.replace(seed=8))
    a, b, c = (_state(tmp_path / n / "last.pt")["model_state"] for n in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_cancel_between_batches_keeps_last_finished_epoch(ds3, tmp_path):
    calls = {"n": 0}
    events = []

    def cancel() -> bool:
        calls["n"] += 1
        return any(e.stage == "train/batch" and e.info["epoch"] == 2 for e in events)

    with pytest.raises(Cancelled):
        train(ds3, tmp_path / "m", TrainConfig(epochs=3, **SMALL), progress=events.append,
              cancel=cancel)
    batches_2 = [e for e in events if e.stage == "train/batch" and e.info["epoch"] == 2]
    assert len(batches_2) == 1  # stopped right after the first batch of epoch 2
    state = _state(tmp_path / "m" / "last.pt")
    assert state["train_state"]["epoch"] == 1
    assert not [p for p in (tmp_path / "m").iterdir() if p.name.startswith(".")]
    history = json.loads((tmp_path / "m" / "history.json").read_text())
    assert [r["epoch"] for r in history] == [1]


def test_cancel_in_first_epoch_writes_no_checkpoint(ds3, tmp_path):
    with pytest.raises(Cancelled):
        train(ds3, tmp_path / "m", TrainConfig(epochs=1, **SMALL), cancel=lambda: True)
    assert not (tmp_path / "m" / "last.pt").exists()
    assert not (tmp_path / "m" / "best.pt").exists()


def test_short_run_reduces_loss_and_writes_everything(ds1, tmp_path):
    events = []
    cfg = TrainConfig(arch="dsmn-s2", arch_kwargs={"base": 8, "depth": 2}, epochs=5,
                      optimizer="adam", lr=1e-2, batch_size=4, loss="wce", augment=False,
                      device="cpu", seed=0, num_workers=0)
    s = train(ds1, tmp_path / "m", cfg, progress=events.append)
    out = tmp_path / "m"
    for name in ("best.pt", "last.pt", "model_card.json", "history.csv", "history.json",
                 "curve.png", "balance.png"):
        assert (out / name).is_file(), name
    hist = json.loads((out / "history.json").read_text())
    assert len(hist) == 5
    assert hist[-1]["train_loss"] < 0.8 * hist[0]["train_loss"]
    assert {"step_s", "data_wait_share", "samples_per_s", "miou", "iou/Carcinoma"} <= set(hist[0])
    assert 0 <= hist[0]["data_wait_share"] <= 1
    csv_lines = (out / "history.csv").read_text().splitlines()
    assert len(csv_lines) == 6 and "train_loss" in csv_lines[0]
    # no val split: validated on train, with a warning
    assert s["validation_split"] == "train"
    assert any("no validation tiles" in w for w in s["warnings"])
    epochs = [e for e in events if e.stage == "train/epoch"]
    assert [e.done for e in epochs] == [1, 2, 3, 4, 5] and "miou" in epochs[0].info
    assert all(np.isfinite(e.info["loss"]) for e in events if e.stage == "train/batch")
    best = max(hist, key=lambda r: (r["score"] is not None, r["score"] or 0))
    assert s["best"]["epoch"] == best["epoch"]
    card = json.loads((out / "model_card.json").read_text())
    assert card["metrics"]["last"]["epoch"] == 5
    assert card["geometry"]["inputs"] == [{"mpp": 0.5, "size": 32, "magnification": 20.0}]


def test_overfits_one_batch(tmp_path):
    root = write_tile_dataset(tmp_path / "ds", size=64, ratios=(), slide_px=128, seed=5,
                              slides=(("train_0", "train"),))
    ds = open_dataset(root)
    idx = ds.indices("train")[:4]
    samples = TileSamples(ds, idx, np.zeros(len(idx), np.int64), seed=0, augment=False)
    x = torch.stack([samples[i][0] for i in range(len(idx))])
    y = torch.stack([samples[i][1] for i in range(len(idx))])
    torch.manual_seed(0)
    model = build_model("dsmn-s2", n_classes=4, base=8)
    loss_fn = build_loss("wce", n_classes=4, class_counts=ds.class_pixel_counts("train"))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(150):
        opt.zero_grad()
        loss = loss_fn(model([x[:, 0]]), y)
        loss.backward()
        opt.step()
        first = first if first is not None else float(loss.detach())
    model.eval()
    with torch.no_grad():
        pred = model([x[:, 0]]).argmax(1)
    cm = ConfusionMatrix(4, 255)
    cm.update(pred.numpy(), y.numpy())
    assert float(loss.detach()) < 0.2 * first
    assert cm.mean_iou() > 0.9


def test_refuses_existing_model_without_resume_or_overwrite(ds1, tmp_path):
    cfg = TrainConfig(arch="dsmn-s2", arch_kwargs={"base": 4, "depth": 2}, epochs=1,
                      batch_size=8, max_steps_per_epoch=1, device="cpu", num_workers=0)
    train(ds1, tmp_path / "m", cfg)
    with pytest.raises(ModelError, match="--resume"):
        train(ds1, tmp_path / "m", cfg)
    s = train(ds1, tmp_path / "m", cfg, overwrite=True)
    assert s["epochs_done"] == 1
    with pytest.raises(ModelError, match=r"last\.pt"):
        train(ds1, tmp_path / "other", cfg, resume=True)


def test_bad_settings_are_named(ds1, ds3, tmp_path):
    with pytest.raises(ModelError, match="select"):
        train(ds1, tmp_path / "a", TrainConfig(arch="dsmn-s2", select="TLS", device="cpu"))
    with pytest.raises(ModelError, match="context"):
        train(ds1, tmp_path / "b", TrainConfig(arch="dmmn-m3", device="cpu"))
    with pytest.raises(ModelError, match="multiple of"):
        train(ds3, tmp_path / "c", TrainConfig(arch="dsmn-s2", arch_kwargs={"depth": 6},
                                               device="cpu"))
    with pytest.raises(ModelError, match="epochs"):
        train(ds1, tmp_path / "d", TrainConfig(arch="dsmn-s2", epochs=0))


def test_worker_processes_give_the_same_run(ds3, tmp_path):
    cfg = TrainConfig(epochs=1, **SMALL)
    train(ds3, tmp_path / "w0", cfg.replace(num_workers=0))
    s = train(ds3, tmp_path / "w2", cfg.replace(num_workers=2, cache_mb=0))
    assert s["workers"] == 2
    a = _state(tmp_path / "w0" / "last.pt")["model_state"]
    b = _state(tmp_path / "w2" / "last.pt")["model_state"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_mixed_precision_run(ds3, tmp_path):
    cfg = TrainConfig(epochs=1, **{**SMALL, "device": "cuda"}, amp=True)
    s = train(ds3, tmp_path / "m", cfg)
    assert s["amp"] in ("torch.bfloat16", "torch.float16")
    assert s["device"].startswith("cuda") and np.isfinite(s["last"]["train_loss"])


def test_time_budget_cuts_the_epoch_and_saves_it(ds3, tmp_path):
    cfg = TrainConfig(epochs=3, **{**SMALL, "max_steps_per_epoch": None}, time_budget_s=1e-3)
    s = train(ds3, tmp_path / "m", cfg)
    assert s["stopped"] == "time_budget" and s["epochs_done"] == 1
    hist = json.loads((tmp_path / "m" / "history.json").read_text())
    assert hist[0]["steps"] == 1
    assert _state(tmp_path / "m" / "last.pt")["train_state"]["epoch"] == 1


@pytest.mark.slow
def test_tls_preset_trains_unetpp(tmp_path):
    root = write_tile_dataset(tmp_path / "ds", ratios=(), classes=("Other", "TLS"),
                              slide_px=128, slides=(("t", "train"), ("v", "val")))
    s = train(root, tmp_path / "m", TrainConfig.preset("tls", epochs=2, max_steps_per_epoch=2,
                                                       device="cpu", num_workers=0))
    assert s["arch"] == "unetpp-effb0" and s["select"] == "TLS"
    assert s["best"]["score"] == s["best"]["iou"]["TLS"]
