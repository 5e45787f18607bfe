"""``--normalise-stain``: a slide in another stain is mapped to the model card's stain reference."""

from __future__ import annotations

import json

import numpy as np
import pytest

from magnipath.cli import main
from magnipath.geometry import TileGeometry
from magnipath.infer import InferConfig, InferError, infer_slide, open_prediction
from magnipath.infer._store import PredictionStoreError
from magnipath.stainnorm import measure_reference
from magnipath.synth import SynthConfig, get_scanner, make_layout, render_region, synthesize

from .conftest import INTENSITY_CLASSES, IntensityNet, constant_model_dir, make_card

SIDE = 1024


@pytest.fixture(scope="module")
def looks(tmp_path_factory):
    """The same 1024² slide (0.25 µm/px, seed 6) in the reference and the faded stain."""
    folder = tmp_path_factory.mktemp("looks")
    return {name: synthesize(folder / f"{name}.tif",
                             SynthConfig(width=SIDE, height=SIDE, mpp=0.25, seed=6,
                                         compression="zlib", scanner=get_scanner(name)))
            for name in ("reference", "faded")}


def _card_with_reference(level0_vectors: bool = False):
    card = make_card(INTENSITY_CLASSES, TileGeometry.single(1.0, 32))
    lay = make_layout(SynthConfig(width=SIDE, height=SIDE, mpp=0.25, seed=6))
    at_model = render_region(lay, (0, 0, SIDE, SIDE), 1.0)  # the model's 1 µm/px
    if level0_vectors:
        ref = measure_reference([at_model], vector_mpp=0.25,
                                vector_images=[render_region(lay, (256, 256, 512, 512), 0.25)])
    else:
        ref = measure_reference([at_model])
    card.normalisation = {**card.normalisation, "stain_reference": ref.to_dict()}
    return card


def _labels(res) -> np.ndarray:
    return np.asarray(open_prediction(res.store)[0]["labels/0"][...])


def test_normalised_faded_slide_reads_like_the_reference(looks, tmp_path):
    card = _card_with_reference()
    cfg = InferConfig(batch_size=16, device="cpu", tissue_mask=False)
    ref = _labels(infer_slide(looks["reference"].slide, (IntensityNet(), card), tmp_path / "r",
                              cfg))
    raw = _labels(infer_slide(looks["faded"].slide, (IntensityNet(), card), tmp_path / "f", cfg))
    res = infer_slide(looks["faded"].slide, (IntensityNet(), card), tmp_path / "n",
                      InferConfig(batch_size=16, device="cpu", tissue_mask=False,
                                  normalise_stain=True))
    norm = _labels(res)
    # pixels whose intensity class differs from the reference stain's: far fewer
    wrong_raw, wrong_norm = (raw != ref).mean(), (norm != ref).mean()
    assert wrong_raw > 0.005 and wrong_norm < 0.35 * wrong_raw, (wrong_raw, wrong_norm)
    info = res.stain_normalisation
    assert info["windows_sampled"] >= 8
    # the faded slide has weaker stains than the model's reference: scaled up
    assert all(s < m for s, m in zip(info["slide_reference"]["max_conc"],
                                     info["model_reference"]["max_conc"], strict=True))


def test_a_normalised_run_is_another_run(looks, tmp_path):
    card = _card_with_reference()
    infer_slide(looks["faded"].slide, (IntensityNet(), card), tmp_path, InferConfig(device="cpu"))
    with pytest.raises(PredictionStoreError, match="normalise_stain"):
        infer_slide(looks["faded"].slide, (IntensityNet(), card), tmp_path,
                    InferConfig(device="cpu", normalise_stain=True))


def test_card_without_reference_is_refused(looks, tmp_path):
    card = make_card(INTENSITY_CLASSES, TileGeometry.single(1.0, 32))
    with pytest.raises(InferError, match="stain reference"):
        infer_slide(looks["faded"].slide, (IntensityNet(), card), tmp_path,
                    InferConfig(device="cpu", normalise_stain=True))


def test_cli_flag_refuses_a_model_without_reference(looks, tmp_path, capsys):
    model = constant_model_dir(tmp_path / "m", 1, classes=INTENSITY_CLASSES,
                               geometry=TileGeometry.single(1.0, 32))
    rc = main(["infer", str(looks["faded"].slide), "--model", str(model), "--out",
               str(tmp_path / "o"), "--normalise-stain", "--quiet", "--device", "cpu"])
    assert rc == 1
    assert "--normalise-stain" in capsys.readouterr().err
    rc = main(["infer", str(looks["faded"].slide), "--model", str(model), "--out",
               str(tmp_path / "o2"), "--quiet", "--json", "--device", "cpu"])
    assert rc == 0
    assert "stain_normalisation" not in json.loads(capsys.readouterr().out)["slides"][0]


@pytest.mark.parametrize("level0", [True, False])
def test_the_slide_vectors_are_read_as_the_model_card_s_were(looks, tmp_path, level0):
    """A card whose vectors were read on level-0 pixels gets the slide's read on its level-0
    patches (at the slide's µm/px); an older card, at the model's resolution."""
    card = _card_with_reference(level0_vectors=level0)
    res = infer_slide(looks["faded"].slide, (IntensityNet(), card), tmp_path,
                      InferConfig(batch_size=16, device="cpu", tissue_mask=False,
                                  normalise_stain=True))
    info = res.stain_normalisation
    assert info["model_reference"]["vector_mpp"] == (0.25 if level0 else None)
    assert info["slide_reference"]["vector_mpp"] == (0.25 if level0 else None)
