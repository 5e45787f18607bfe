"""Slides without mpp on the command line: errors that name the estimate, info that gives it,
and --mpp estimate for infer and tile (issue 7)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import tifffile

from magnipath.cli import main
from magnipath.magnification import closest_magnification
from magnipath.magnification._suggest import suggest_mpp
from magnipath.synth import SynthConfig, make_layout, render_region


def write_slide(path: Path, rgb: np.ndarray, mpp: float | None) -> Path:
    """A tiled 2-level RGB TIFF; ``mpp=None`` writes no resolution at all."""
    res = {} if mpp is None else {"resolution": (1e4 / mpp, 1e4 / mpp),
                                  "resolutionunit": "CENTIMETER"}
    half = rgb[::2, ::2]
    with tifffile.TiffWriter(path) as tif:
        tif.write(rgb, tile=(128, 128), photometric="rgb", compression="zlib", **res)
        tif.write(half, tile=(128, 128), photometric="rgb", compression="zlib",
                  subfiletype=1, **res)
    return path


@pytest.fixture(scope="module")
def tissue() -> np.ndarray:
    """1024 x 1024 px of synthetic H&E at 40x (0.25 µm/px)."""
    return render_region(make_layout(SynthConfig(width=1024, height=1024, seed=3)),
                         (0, 0, 1024, 1024))


@pytest.fixture
def nompp(tmp_path, tissue) -> Path:
    return write_slide(tmp_path / "no mpp.tif", tissue, None)  # a space: the hint quotes it


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A tiny segmentation model folder (DSMN-S2, width 4, 10x, 64 px; untrained)."""
    import torch

    from magnipath.checkpoint import ModelCard, save_checkpoint
    from magnipath.classes import ClassMap
    from magnipath.geometry import TileGeometry
    from magnipath.models import build_model

    classes = ClassMap.from_names(("Background", "Tumor"))
    torch.manual_seed(0)
    net = build_model("dsmn-s2", n_classes=classes.n_classes, base=4)
    card = ModelCard(arch="dsmn-s2", arch_kwargs=dict(net.arch_kwargs),
                     class_map=classes.to_dict(), geometry=TileGeometry.single(1.0, 64).to_dict())
    folder = tmp_path_factory.mktemp("seg_model") / "model"
    folder.mkdir()
    save_checkpoint(folder / "best.pt", net, card)
    card.save_json(folder / "model_card.json")
    return folder


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)  # the CLI wraps long errors (also after hyphens)


def _hint_ok(err: str, path: Path) -> None:
    flat = _squeeze(err)
    assert _squeeze(f"`magnipath magnification suggest-mpp '{path}' [--model MODEL_DIR]`") in flat
    assert "ESTIMATE" in flat and "--mpp" in flat


def test_failing_commands_say_how_to_get_an_estimate(nompp, model, tmp_path, capsys):
    assert main(["tile", str(nompp), "--out", str(tmp_path / "ds")]) == 1
    err = capsys.readouterr().err
    _hint_ok(err, nompp)
    assert _squeeze("--mpp-override estimate[:MODEL_DIR]") in _squeeze(err)
    assert not (tmp_path / "ds").exists()

    assert main(["infer", str(nompp), "--model", str(model), "--out", str(tmp_path / "p"),
                 "--device", "cpu", "--quiet"]) == 1
    err = capsys.readouterr().err
    _hint_ok(err, nompp)
    assert _squeeze("--mpp estimate (or estimate:MODEL_DIR)") in _squeeze(err)


def test_info_reports_unknown_mpp_and_the_estimate(nompp, capsys):
    assert main(["info", str(nompp), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["mpp"] is None and out["magnification"] is None
    assert out["mpp_source"].startswith("unknown")
    assert [lv["mpp"] for lv in out["levels"]] == [None, None]
    assert [lv["shape"] for lv in out["levels"]] == [[1024, 1024], [512, 512]]
    expected, details = suggest_mpp(nompp)
    assert expected is not None
    assert out["mpp_estimate"] == pytest.approx(expected, rel=1e-5)
    assert out["magnification_estimate"] == float(closest_magnification(10 / expected))
    assert out["mpp_estimate_source"] == "estimated (physical)"
    assert out["estimate_votes"] == details.get("votes", {})
    assert "ESTIMATE" in out["note"] and f"--mpp {expected:.4g}" in out["note"]

    assert main(["info", str(nompp)]) == 0  # the text form marks it too
    text = capsys.readouterr().out
    assert "mpp: None" in text and "mpp_estimate_source: estimated (physical)" in text


def test_info_without_estimate_and_with_a_known_mpp(nompp, tissue, tmp_path, capsys):
    assert main(["info", str(nompp), "--no-estimate", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["mpp"] is None and out["mpp_estimate"] is None
    assert "mpp_estimate_source" not in out and "suggest-mpp" in out["note"]

    known = write_slide(tmp_path / "known.tif", tissue, 0.25)
    assert main(["info", str(known), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["mpp"] == pytest.approx(0.25) and "mpp_estimate" not in out

    assert main(["info", str(tmp_path / "missing.tif")]) == 1  # other errors still fail
    assert "no such file" in capsys.readouterr().err


def test_info_on_glass_says_nothing_could_be_estimated(tmp_path, capsys):
    glass = write_slide(tmp_path / "glass.tif", np.full((512, 512, 3), 235, np.uint8), None)
    assert main(["info", str(glass), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["mpp"] is None and out["mpp_estimate"] is None
    assert "none could be estimated" in out["note"]


def test_infer_mpp_estimate_uses_and_records_it(nompp, tissue, model, tmp_path, capsys):
    from magnipath.infer import open_prediction

    out_dir = tmp_path / "pred"
    assert main(["infer", str(nompp), "--model", str(model), "--out", str(out_dir),
                 "--mpp", "estimate", "--device", "cpu", "--workers", "1", "--json",
                 "--quiet"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)["slides"]
    expected, _ = suggest_mpp(nompp)
    assert entry["mpp"] == pytest.approx(expected, rel=1e-5)
    assert entry["mpp_source"] == "estimated (physical)"
    assert entry["mpp_estimate"]["magnification"] == float(closest_magnification(10 / expected))
    _, meta = open_prediction(entry["store"])
    assert meta["signature"]["slide_mpp"] == pytest.approx(expected, rel=1e-5)  # it was used
    assert meta["slide_mpp_source"] == "estimated (physical)"
    assert meta["slide_mpp"] == pytest.approx(expected, rel=1e-5)
    # 1024 level-0 px at the estimate, read at the model's 1 µm/px
    assert entry["label_shape"] == [math.ceil(1024 * expected - 1e-9)] * 2

    # a slide whose file gives an mpp keeps it: nothing estimated, nothing recorded
    known = write_slide(tmp_path / "known.tif", tissue, 0.25)
    assert main(["infer", str(known), "--model", str(model), "--out", str(out_dir),
                 "--mpp", "estimate", "--device", "cpu", "--workers", "1", "--json",
                 "--quiet"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)["slides"]
    assert "mpp_source" not in entry and entry["label_shape"] == [256, 256]
    _, meta = open_prediction(entry["store"])
    assert meta["signature"]["slide_mpp"] == pytest.approx(0.25)
    assert "slide_mpp_source" not in meta


def test_tile_mpp_override_estimate(nompp, tissue, tmp_path, capsys):
    out = tmp_path / "ds"
    assert main(["tile", str(nompp), "--out", str(out), "--mpp-override", "estimate",
                 "--magnification", "10", "--size", "64", "--json", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    expected, details = suggest_mpp(nompp)
    est = summary["estimated_mpp"]["no mpp"]
    assert est["mpp"] == pytest.approx(expected, rel=1e-5)
    assert est["mpp_source"] == "estimated (physical)"
    # the same record as infer's and mitosis's summaries (one resolve_slide_mpp)
    assert est["mpp_estimate"]["votes"] == details.get("votes")
    assert est["mpp_estimate"]["magnification"] == float(closest_magnification(10 / expected))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["slides"][0]["mpp"] == pytest.approx(expected, rel=1e-5)
    assert manifest["slides"][0]["mpp_source"] == "estimated (physical)"

    # a number is an override; a file's own mpp keeps the file's source
    assert main(["tile", str(nompp), "--out", str(tmp_path / "ds2"), "--mpp-override", "0.3",
                 "--magnification", "10", "--size", "64", "--quiet"]) == 0
    manifest = json.loads((tmp_path / "ds2" / "manifest.json").read_text())
    assert manifest["slides"][0]["mpp_source"] == "override"
    known = write_slide(tmp_path / "known.tif", tissue, 0.25)
    assert main(["tile", str(known), "--out", str(tmp_path / "ds3"), "--magnification", "10",
                 "--size", "64", "--quiet"]) == 0
    manifest = json.loads((tmp_path / "ds3" / "manifest.json").read_text())
    assert manifest["slides"][0]["mpp_source"] == "tiff-resolution"


@pytest.mark.parametrize("value", ["bogus", "0", "-1", "estimate:"])
def test_bad_mpp_values_are_refused_by_the_parser(nompp, tmp_path, value, capsys):
    with pytest.raises(SystemExit) as e:
        main(["tile", str(nompp), "--out", str(tmp_path / "ds"), "--mpp-override", value])
    assert e.value.code == 2
    assert "--mpp-override" in capsys.readouterr().err


def test_estimate_with_a_missing_model_folder_is_an_error(nompp, tmp_path, capsys):
    assert main(["tile", str(nompp), "--out", str(tmp_path / "ds"), "--mpp-override",
                 f"estimate:{tmp_path / 'nowhere'}"]) == 1
    assert "nosuchmodelfolder" in _squeeze(capsys.readouterr().err)
