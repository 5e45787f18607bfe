"""Learning-rate schedule and class-balanced sampling (the demo's fast-converging recipe)."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch

from magnipath._errors import Cancelled, ModelError
from magnipath.checkpoint import load_checkpoint
from magnipath.train import TrainConfig, train
from magnipath.train._schedule import (
    WARMUP_START,
    BalancedEpochSampler,
    balanced_weights,
    lr_factor,
    presence,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAST = dict(arch="dmmn-m3", arch_kwargs={"base": 4, "depth": 2}, optimizer="adam", lr=1e-2,
            batch_size=4, max_steps_per_epoch=3, device="cpu", seed=3, num_workers=0,
            schedule="cosine", warmup=0.25, sampling="balanced")


def test_cosine_schedule_warms_up_then_decays_to_the_final_fraction():
    f = [lr_factor(s, 100, schedule="cosine", warmup=0.1, final=0.01) for s in range(100)]
    assert f[0] == pytest.approx(WARMUP_START)
    assert all(a < b for a, b in itertools.pairwise(f[:11]))  # warm-up rises
    assert f[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(f[10:]))  # then decays
    assert f[-1] == pytest.approx(0.01)
    assert f[55] == pytest.approx(0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 45 / 89)))
    assert lr_factor(7, 100, schedule="constant") == 1.0


def test_balanced_weights_make_every_class_equally_likely():
    # 10 tiles of class 0 only, 1 tile holding class 0 and a rare class 1 (5 %),
    # 1 tile with a trace of class 2 (0.5 %: below the 1 % presence threshold)
    counts = np.array([[1000, 0, 0]] * 10 + [[950, 50, 0], [995, 0, 5]])
    assert presence(counts, 0.01)[:, 1].sum() == 1 and presence(counts, 0.01)[:, 2].sum() == 0
    w = balanced_weights(counts, 0.01)
    assert w.sum() == pytest.approx(1.0)
    pres = presence(counts, 0.01)
    p_class = (w[:, None] * pres).sum(axis=0)
    assert p_class[1] == pytest.approx(0.5 + 0.5 / 12)  # the rare tile: half the draws
    assert w[10] > 5 * w[0]
    s = BalancedEpochSampler(w, seed=1, n_draws=200)
    s.set_epoch(3)
    first = list(s)
    s.set_epoch(3)
    assert list(s) == first and len(first) == 200  # seeded by (seed, epoch) only
    assert sum(item == 10 for _, item in first) > 60


def test_schedule_and_sampling_are_validated_and_resume_bit_identically(ds3, tmp_path):
    with pytest.raises(ModelError, match="schedule"):
        TrainConfig(schedule="linear").validate()
    with pytest.raises(ModelError, match="sampling"):
        TrainConfig(sampling="rare").validate()
    full = train(ds3, tmp_path / "full", TrainConfig(epochs=2, **FAST))
    seen: list = []

    def after_epoch_1() -> bool:  # interrupt the 2-epoch run after its first epoch
        return any(ev.stage == "train/epoch" for ev in seen)

    with pytest.raises(Cancelled):
        train(ds3, tmp_path / "half", TrainConfig(epochs=2, **FAST), progress=seen.append,
              cancel=after_epoch_1)
    resumed = train(ds3, tmp_path / "half", TrainConfig(epochs=2, **FAST), resume=True)
    assert resumed["resumed_from_epoch"] == 1 and resumed["warnings"] == []
    a = load_checkpoint(tmp_path / "full" / "last.pt")["model_state"]
    b = load_checkpoint(tmp_path / "half" / "last.pt")["model_state"]
    for k in a:
        assert torch.equal(a[k], b[k]), k
    hist = json.loads((tmp_path / "full" / "history.json").read_text())
    # 6 steps in all, 2 of warm-up: epoch 1 ends at the peak, epoch 2 at lr * final_lr
    assert hist[0]["lr"] == pytest.approx(1e-2)
    assert hist[-1]["lr"] == pytest.approx(1e-2 * 0.01)
    assert full["epochs_done"] == 2


def test_demo_preset_is_the_demo_recipe():
    cfg = TrainConfig.preset("demo", epochs=3)
    assert (cfg.schedule, cfg.sampling, cfg.optimizer, cfg.epochs) == (
        "cosine", "balanced", "adam", 3)
    assert cfg.arch_kwargs == {"base": 8, "depth": 3, "norm": True}
    with pytest.raises(ModelError, match="'dmmn', 'tls' or 'demo'"):
        TrainConfig.preset("fast")
