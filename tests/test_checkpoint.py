"""Checkpoints and model cards: round trip, damaged files, input checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from magnipath._errors import ModelError
from magnipath.checkpoint import (
    DEFAULT_NORMALISATION,
    ModelCard,
    load_checkpoint,
    load_model,
    normalize_inputs,
    save_checkpoint,
)
from magnipath.classes import ClassMap
from magnipath.geometry import TileGeometry
from magnipath.models import build_model

GEOM = TileGeometry.dmmn(0.5, 32)


def _model_and_card():
    torch.manual_seed(0)
    model = build_model("dmmn-m3", n_classes=3, base=4, depth=2, context_ratios=[2, 4])
    cm = ClassMap.from_names(["Stroma", "Carcinoma", "Benign"],
                             colors={"Carcinoma": (200, 0, 0)})
    card = ModelCard(arch=model.arch_name, arch_kwargs=model.arch_kwargs,
                     class_map=cm.to_dict(), geometry=GEOM.to_dict(),
                     train_config={"lr": 0.01}, seed=3,
                     metrics={"best": {"epoch": 2, "miou": 0.5, "iou": {"Stroma": 0.4}}},
                     dataset={"dataset_id": "abc", "splits": {"train": ["s1"]}})
    return model, card


def _inputs(seed: int = 0):
    rng = np.random.default_rng(seed)
    return normalize_inputs(rng.integers(0, 256, size=(2, 3, 32, 32, 3), dtype=np.uint8))


def test_round_trip_restores_outputs_and_card(tmp_path):
    model, card = _model_and_card()
    model.eval()
    save_checkpoint(tmp_path / "m" / "best.pt", model, card)
    card.save_json(tmp_path / "m" / "model_card.json")
    for source in (tmp_path / "m", tmp_path / "m" / "best.pt"):
        loaded, card2 = load_model(source)
        assert not loaded.training
        with torch.no_grad():
            assert torch.equal(loaded(_inputs()), model(_inputs()))
        assert card2.to_dict() == card.to_dict()
    assert card2.classes.by_index(1).color == (200, 0, 0)
    assert card2.input_geometry == GEOM
    assert card2.ignore_index == 255 and card2.n_classes == 3
    assert {"torch", "numpy", "magnipath"} <= set(card2.versions)
    on_disk = json.loads((tmp_path / "m" / "model_card.json").read_text())
    assert on_disk["arch"] == "dmmn-m3" and on_disk["normalisation"] == DEFAULT_NORMALISATION


def test_last_is_used_when_there_is_no_best(tmp_path):
    model, card = _model_and_card()
    save_checkpoint(tmp_path / "last.pt", model, card, optimizer_state={"x": 1},
                    train_state={"epoch": 1})
    net, _ = load_model(tmp_path)
    assert load_checkpoint(tmp_path / "last.pt")["train_state"] == {"epoch": 1}
    assert net.arch_name == "dmmn-m3"


def test_missing_files_are_named(tmp_path):
    with pytest.raises(ModelError, match="nothing_here"):
        load_model(tmp_path / "nothing_here")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="empty"):
        load_model(tmp_path / "empty")
    with pytest.raises(ModelError, match=r"gone\.pt"):
        load_checkpoint(tmp_path / "gone.pt")


def test_corrupt_and_foreign_files_are_named(tmp_path):
    model, card = _model_and_card()
    good = save_checkpoint(tmp_path / "good.pt", model, card)
    data = good.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match=r"cut\.pt"):
        load_model(tmp_path / "cut.pt")
    (tmp_path / "text.pt").write_text("not a checkpoint")
    with pytest.raises(ModelError, match=r"text\.pt"):
        load_model(tmp_path / "text.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(ModelError, match=r"foreign\.pt.*not a MagniPath checkpoint"):
        load_model(tmp_path / "foreign.pt")


def test_inconsistent_files_are_refused(tmp_path):
    model, card = _model_and_card()
    save_checkpoint(tmp_path / "best.pt", model, card)
    other = ModelCard.from_dict({**card.to_dict(), "arch": "dmmn-ms"})
    other.save_json(tmp_path / "model_card.json")
    with pytest.raises(ModelError, match=r"model_card\.json.*disagree.*arch"):
        load_model(tmp_path)
    (tmp_path / "model_card.json").unlink()
    wrong = ModelCard.from_dict({**card.to_dict(), "arch_kwargs": {**card.arch_kwargs,
                                                                   "base": 8}})
    save_checkpoint(tmp_path / "wrong.pt", model, card)
    raw = load_checkpoint(tmp_path / "wrong.pt")
    raw["card"] = wrong.to_dict()
    torch.save(raw, tmp_path / "wrong.pt")
    with pytest.raises(ModelError, match=r"wrong\.pt.*do not fit"):
        load_model(tmp_path / "wrong.pt")
    (tmp_path / "card.json").write_text('{"arch": "dmmn-m3"}')
    with pytest.raises(ModelError, match=r"card\.json.*lacks"):
        ModelCard.load_json(tmp_path / "card.json")


def test_check_input_refuses_other_geometry_and_coarse_slides():
    _, card = _model_and_card()
    card.check_input(TileGeometry.dmmn(0.5, 32), slide_mpp=0.25)
    card.check_input(TileGeometry.dmmn(0.5, 32), slide_mpp=0.52)  # within 10 %
    with pytest.raises(ModelError, match=r"trained on target 32 px at 0\.5"):
        card.check_input(TileGeometry.dmmn(0.25, 32))
    with pytest.raises(ModelError, match="trained on"):
        card.check_input(TileGeometry.single(0.5, 32))
    with pytest.raises(ModelError, match="trained on"):
        card.check_input(TileGeometry.dmmn(0.5, 64))
    with pytest.raises(ModelError, match="coarser"):
        card.check_input(TileGeometry.dmmn(0.5, 32), slide_mpp=1.0)


def test_normalize_inputs_shapes_and_values():
    x = np.zeros((2, 3, 8, 8, 3), np.uint8)
    x[..., 0] = 255
    out = normalize_inputs(x)
    assert len(out) == 3 and out[0].shape == (2, 3, 8, 8) and out[0].dtype == torch.float32
    m, s = DEFAULT_NORMALISATION["mean"], DEFAULT_NORMALISATION["std"]
    assert float(out[1][0, 0, 0, 0]) == pytest.approx((1 - m[0]) / s[0])
    assert float(out[1][0, 1, 0, 0]) == pytest.approx(-m[1] / s[1])
    with pytest.raises(ModelError, match="uint8"):
        normalize_inputs(np.zeros((3, 8, 8), np.uint8))
