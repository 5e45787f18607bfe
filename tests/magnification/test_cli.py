"""The magnification command line: estimate, suggest-mpp, make-data, train, evaluate."""

import json

import numpy as np
from PIL import Image

from magnipath.cli import main
from magnipath.synth import SynthConfig, make_layout, render_region


def test_cli_estimate_an_image(tmp_path, capsys):
    layout = make_layout(SynthConfig(width=2048, height=2048, seed=40))
    path = tmp_path / "shot.jpg"
    Image.fromarray(render_region(layout, (256, 256, 900, 700))).save(path, quality=95)
    assert main(["magnification", "estimate", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["is_estimate"] is True and out["image"] == str(path)
    assert out["magnification"] in (5, 8, 10, 15, 20, 30, 40)
    assert out["method"] == "physical" and out["physical"]["n_nuclei"] >= 15
    # the baseline is still there; the option may also come before the action
    assert main(["magnification", "--json", "estimate", str(path), "--method", "baseline",
                 "--mode", "tiles"]) == 0
    base = json.loads(capsys.readouterr().out)
    assert base["method"] == "baseline" and 8 <= base["n_tiles"] <= 12  # 4 x 3, glass skipped


def test_cli_make_data_train_evaluate(sources, tmp_path, capsys):
    ds = tmp_path / "ds"
    slides = [str(s.slide) for s in sources]
    assert main(["magnification", "make-data", *slides, "--out", str(ds), "--per-class", "1",
                 "--magnifications", "10,20,40", "--ratios", "1,1,1", "--json"]) == 0
    made = json.loads(capsys.readouterr().out)
    assert made["patches"] == 9 and set(made["per_split"]) == {"train", "val", "test"}
    model = tmp_path / "model"
    assert main(["magnification", "train", str(ds), "--out", str(model), "--widths", "4,8,8,8",
                 "--epochs", "1", "--batch-size", "2", "--device", "cpu", "--json"]) == 0
    trained = json.loads(capsys.readouterr().out)
    assert trained["arch"] == "shallownet" and (model / "card.json").is_file()
    assert main(["magnification", "evaluate", str(ds), "--model", str(model), "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["n"] == 3 and np.array(ev["fusion"]["confusion_matrix"]).sum() == 3


def test_cli_user_errors(tmp_path, capsys):
    assert main(["magnification", "estimate", str(tmp_path / "none.png")]) == 1
    assert "no such image file" in capsys.readouterr().err
    assert main(["magnification", "make-data", "--out", str(tmp_path / "d")]) == 1
    assert "--synthetic" in capsys.readouterr().err
    assert main(["magnification", "evaluate", str(tmp_path)]) == 1
    assert "make-data" in capsys.readouterr().err
