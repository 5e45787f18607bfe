"""`magnipath train` end to end on a tiny dataset."""

from __future__ import annotations

import json

import pytest

from magnipath.checkpoint import load_model
from magnipath.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_cli_trains_and_resumes(ds3, tmp_path, capsys):
    out = tmp_path / "model"
    args = ["train", str(ds3), "--arch", "dmmn-ms", "--out", str(out), "--base", "4",
            "--arch-kwargs", '{"depth": 2}', "--epochs", "1", "--batch-size", "4",
            "--max-steps-per-epoch", "2", "--balance", "Benign=1", "--balance-order",
            "Benign,Carcinoma", "--device", "cpu", "--seed", "1", "--workers", "0", "--json",
            "--quiet"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["epochs_done"] == 1 and summary["arch"] == "dmmn-ms"
    assert summary["best"]["epoch"] == 1 and "iou" in summary["best"]
    benign = next(r for r in summary["balance"] if r["class"] == "Benign")
    assert benign["rate"] == 1 and benign["pixels_after"] == 2 * benign["pixels_before"]
    _, card = load_model(summary["best_checkpoint"])
    assert card.arch == "dmmn-ms" and card.arch_kwargs["base"] == 4
    assert card.train_config["balance"] == {"Benign": 1}

    assert main(["train", str(ds3), "--out", str(out), "--resume", "--epochs", "2",
                 "--json", "--quiet"]) == 0
    resumed = json.loads(capsys.readouterr().out)
    assert resumed["resumed_from_epoch"] == 1 and resumed["epochs_done"] == 2
    assert resumed["warnings"] == []


def test_cli_errors_are_one_paragraph(ds3, tmp_path, capsys):
    assert main(["train", str(ds3), "--out", str(tmp_path / "m"), "--quiet"]) == 1
    assert "--arch" in capsys.readouterr().err
    assert main(["train", str(ds3), "--out", str(tmp_path / "m"), "--arch", "dsmn-s2",
                 "--balance", "Benign:3", "--quiet"]) == 1
    assert "CLASS=RATE" in capsys.readouterr().err
    assert main(["train", str(ds3), "--out", str(tmp_path / "m"), "--arch", "nope",
                 "--device", "cpu", "--quiet"]) == 1
    assert "nope" in capsys.readouterr().err


def test_cli_preset_with_overrides(ds3, tmp_path, capsys):
    out = tmp_path / "m"
    assert main(["train", str(ds3), "--preset", "dmmn", "--out", str(out), "--base", "4",
                 "--arch-kwargs", '{"depth": 2}', "--epochs", "1", "--max-steps-per-epoch",
                 "1", "--batch-size", "2", "--device", "cpu", "--workers", "0", "--json",
                 "--quiet"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["arch"] == "dmmn-m3" and s["preset"] == "dmmn"
    cfg = json.loads((out / "model_card.json").read_text())["train_config"]
    assert cfg["optimizer"] == "sgd" and cfg["lr"] == 5e-5 and cfg["momentum"] == 0.99
    assert cfg["weight_decay"] == 1e-4 and cfg["loss"] == "wce" and cfg["epochs"] == 1
    rates = {r["class"]: r["rate"] for r in s["balance"]}
    assert rates == {"Background": 1, "Stroma": 0, "Carcinoma": 2, "Benign": 10}


def test_cli_mixed_precision_and_channels_last_on_the_cpu(ds3, tmp_path, capsys):
    from magnipath.device import cpu_has_native_bf16

    out = tmp_path / "amp"
    assert main(["train", str(ds3), "--arch", "dsmn-s2", "--out", str(out), "--base", "4",
                 "--arch-kwargs", '{"depth": 2}', "--epochs", "1", "--batch-size", "4",
                 "--max-steps-per-epoch", "2", "--device", "cpu", "--workers", "0", "--amp",
                 "--channels-last", "--json", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    _, card = load_model(summary["best_checkpoint"])
    assert card.train_config["amp"] is True and card.train_config["channels_last"] is True
    ignored = any("--amp ignored" in w for w in summary.get("warnings", []))
    # bf16 where the CPU has it natively, otherwise float32 with a warning saying so
    assert ignored is not cpu_has_native_bf16()
