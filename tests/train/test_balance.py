"""Class balancing by elastic copies: patch classes by order, r_c copies, pixel counts."""

from __future__ import annotations

import numpy as np
import pytest

from magnipath._errors import ModelError
from magnipath.classes import ClassMap
from magnipath.dataset import open_dataset
from magnipath.train import (
    DMMN_ORDER,
    DMMN_RATES,
    TileSamples,
    TrainConfig,
    patch_classes,
    plan_balance,
    resolve_balance,
)

# classes 0 Carcinoma, 1 Benign, 2 Background, 3 Stroma, 4 Necrosis, 5 Adipose
COUNTS = np.array([
    [10, 5, 0, 0, 0, 0],    # carcinoma + benign -> Benign (highest order)
    [10, 0, 3, 0, 0, 0],    # carcinoma + background -> Carcinoma
    [0, 0, 0, 50, 7, 0],    # stroma + necrosis -> Necrosis
    [0, 0, 0, 20, 0, 30],   # stroma + adipose, none ordered -> most frequent: Adipose
    [0, 0, 0, 0, 0, 0],     # nothing labelled -> no class
    [0, 0, 4, 9, 0, 0],     # background + stroma -> Background
])
NAMES = ["Carcinoma", "Benign", "Background", "Stroma", "Necrosis", "Adipose"]
ORDER = [1, 0, 4, 2]        # Benign > Carcinoma > Necrosis > Background
RATES = [2, 10, 1, 0, 3, 0]


def test_patch_class_is_highest_order_class_present():
    assert patch_classes(COUNTS, ORDER).tolist() == [1, 0, 4, 5, -1, 2]


def test_plan_makes_r_c_copies_per_patch():
    tiles = np.array([10, 11, 12, 13, 14, 15])
    plan = plan_balance(tiles, COUNTS, RATES, ORDER)
    copies_per_tile = {t: int((plan.tiles == t).sum()) - 1 for t in tiles}
    assert copies_per_tile == {10: 10, 11: 2, 12: 3, 13: 0, 14: 0, 15: 1}
    assert len(plan) == 6 + 10 + 2 + 3 + 1
    # copy numbers of each tile are 0 (original), 1..r
    assert sorted(plan.copies[plan.tiles == 10].tolist()) == list(range(11))
    assert plan.counts_before.tolist() == COUNTS.sum(0).tolist()
    mult = np.array([11, 3, 4, 1, 1, 2])
    assert plan.counts_after.tolist() == (COUNTS * mult[:, None]).sum(0).tolist()
    assert plan.patches_before.tolist() == [1, 1, 1, 0, 1, 1]
    assert plan.patches_after.tolist() == [3, 11, 2, 0, 4, 1]
    rows = plan.table(dict(enumerate(NAMES)))
    benign = next(r for r in rows if r["class"] == "Benign")
    assert benign == {"class": "Benign", "index": 1, "rate": 10, "order": 1,
                      "patches_before": 1, "patches_after": 11,
                      "pixels_before": 5, "pixels_after": 55}
    assert next(r for r in rows if r["class"] == "Stroma")["order"] is None


def test_zero_rates_leave_the_set_unchanged():
    plan = plan_balance(np.arange(6), COUNTS, [0] * 6, ORDER)
    assert plan.tiles.tolist() == list(range(6)) and not plan.copies.any()
    assert plan.counts_after.tolist() == plan.counts_before.tolist()


def test_dmmn_preset_rates_map_by_name_and_alias():
    cm = ClassMap.from_names(["Benign epithelial", "Carcinoma", "background", "Necrotic",
                              "Stroma", "Lymphocytes"])
    cfg = TrainConfig.preset("dmmn")
    assert cfg.balance == DMMN_RATES and list(cfg.balance_order) == list(DMMN_ORDER)
    rates, order = resolve_balance(cfg, cm)
    assert rates == [10, 2, 1, 3, 0, 0]
    assert order == [0, 1, 3, 2]


def test_user_rates_with_unknown_class_are_refused():
    cm = ClassMap.from_names(["Stroma", "Carcinoma"])
    cfg = TrainConfig(balance={"Carcinom": 2})
    with pytest.raises(ModelError, match="Carcinom"):
        resolve_balance(cfg, cm)
    with pytest.raises(ModelError, match="non-negative"):
        TrainConfig(balance={"Carcinoma": -1}).validate()


def test_copies_are_deformed_originals_are_not(ds3):
    ds = open_dataset(ds3)
    tiles = np.array([0, 0, 0])
    copies = np.array([0, 1, 2])
    samples = TileSamples(ds, tiles, copies, seed=0, augment=False)
    (x0, y0), (x1, y1), (_, y2) = samples[0], samples[1], samples[2]
    assert torch_equal(y0, ds.label(0).astype(np.int64))
    assert not torch_equal(y1, y0.numpy()) and not torch_equal(y1, y2.numpy())
    assert x0.shape == x1.shape == (3, 3, 32, 32)
    # the same (tile, copy) is the same sample in every epoch
    assert torch_equal(samples[(5, 1)][1], y1.numpy())


def torch_equal(t, a) -> bool:
    return bool(np.array_equal(t.numpy(), np.asarray(a)))
