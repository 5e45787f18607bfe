"""The mpp of slides without one: file_mpp, estimate_source, MppEstimate (issue 7)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from magnipath._errors import SlideError
from magnipath.cli import main
from magnipath.magnification import MagnificationError, MagTrainConfig, suggest_mpp, train
from magnipath.magnification._suggest import MppEstimate, estimate_source, file_mpp
from magnipath.synth import SynthConfig, make_layout, render_region


def _write(path: Path, rgb: np.ndarray, mpp: float | None) -> Path:
    res = {} if mpp is None else {"resolution": (1e4 / mpp, 1e4 / mpp),
                                  "resolutionunit": "CENTIMETER"}
    tifffile.imwrite(path, rgb, tile=(256, 256), photometric="rgb", **res)
    return path


@pytest.fixture(scope="module")
def tissue() -> np.ndarray:
    return render_region(make_layout(SynthConfig(width=1024, height=1024, seed=5)),
                         (0, 0, 1024, 1024))


def test_file_mpp_tells_missing_from_unreadable(tmp_path, tissue):
    assert file_mpp(_write(tmp_path / "a.tif", tissue, None)) is None
    assert file_mpp(_write(tmp_path / "b.tif", tissue, 0.5)) == pytest.approx(0.5)
    with pytest.raises(SlideError, match="no such file"):
        file_mpp(tmp_path / "missing.tif")
    (tmp_path / "junk.tif").write_bytes(b"not a tiff at all")
    with pytest.raises(SlideError):
        file_mpp(tmp_path / "junk.tif")


def test_estimate_source_labels():
    assert estimate_source("baseline") == "estimated (baseline)"
    assert estimate_source(None) == "estimated (physical)"
    assert estimate_source("physical", Path("/m/mag-v1")) == "estimated (physical)"
    assert estimate_source("physical+fusion", Path("/m/mag-v1")) == \
        "estimated (physical+fusion, model mag-v1)"
    assert estimate_source("fusion", Path("/m/mag-v1")) == "estimated (fusion, model mag-v1)"
    assert estimate_source("baseline", Path("/m/mag-v1")) == "estimated (baseline)"


def test_parse_the_estimate_request():
    assert MppEstimate.parse("estimate") == MppEstimate()
    assert MppEstimate.parse(" Estimate ") == MppEstimate()
    assert MppEstimate.parse("estimate:/models/mag") == MppEstimate(model=Path("/models/mag"))
    assert MppEstimate.parse("0.25") is None and MppEstimate.parse("estimated") is None
    with pytest.raises(MagnificationError, match="model folder"):
        MppEstimate.parse("estimate:")


def test_resolve_keeps_the_file_mpp_and_estimates_the_missing_one(tmp_path, tissue):
    known = _write(tmp_path / "known.tif", tissue, 0.25)
    assert MppEstimate().resolve(known) == (pytest.approx(0.25), "file", None)
    nompp = _write(tmp_path / "nompp.tif", tissue, None)
    mpp, source, details = MppEstimate(n_tiles=8).resolve(nompp)
    assert (mpp, details) == suggest_mpp(nompp, n_tiles=8)
    assert source == "estimated (physical)" == details["mpp_source"]
    assert details["is_estimate"] is True
    assert mpp == pytest.approx(10 / details["magnification_continuous"])


def test_resolve_refuses_when_nothing_can_be_estimated(tmp_path):
    glass = _write(tmp_path / "glass.tif", np.full((512, 512, 3), 235, np.uint8), None)
    mpp, details = suggest_mpp(glass)
    assert mpp is None and details["mpp_source"] == "estimated (physical)"
    assert "too few nuclei" in details["cannot_estimate"]
    with pytest.raises(MagnificationError, match="none could be estimated"):
        MppEstimate().resolve(glass)
    with pytest.raises(MagnificationError, match="no such model folder"):
        MppEstimate(model=tmp_path / "nowhere").resolve(glass)


def test_info_with_a_trained_model_marks_the_fusion_estimate(dataset, tmp_path, tissue,
                                                            capsys):
    model = tmp_path / "mag-model"
    train(dataset, model, MagTrainConfig(arch_kwargs={"widths": [4, 8, 8, 8]}, epochs=1,
                                         batch_size=8, device="cpu"))
    nompp = _write(tmp_path / "nompp.tif", tissue, None)
    assert main(["info", str(nompp), "--estimate-model", str(model), "--estimate-tiles", "4",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    expected, details = suggest_mpp(nompp, model, n_tiles=4)
    assert out["mpp"] is None
    # the model's answer is used only where the physical estimate agrees with it
    assert out["mpp_estimate_source"] == details["mpp_source"] in (
        "estimated (physical+fusion, model mag-model)", "estimated (physical)",
        "estimated (fusion, model mag-model)")
    assert ("disagreement" in details) == (details["method"] == "physical")
    assert out["mpp_estimate"] == pytest.approx(expected, rel=1e-5)
    assert out["estimate_votes"] == details.get("votes", {}) and out["estimate_tiles"] == 4
