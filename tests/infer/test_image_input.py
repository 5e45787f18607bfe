"""PNG and JPEG crops as input (issue 14 item 5): info, suggest-mpp, infer (--mpp and
--mpp estimate), evaluate, and the warning for images smaller than the model's field of view."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from magnipath.cli import main
from magnipath.geometry import TileGeometry
from magnipath.infer import FieldOfViewWarning, InferConfig, infer_slide, open_prediction
from magnipath.slide import open_slide
from magnipath.synth import SYNTH_CLASSES, SynthConfig, synthesize

from .conftest import (
    INTENSITY_CLASSES,
    IntensityNet,
    constant_model_dir,
    intensity_classes,
    make_card,
)


@pytest.fixture(scope="module")
def crops(tmp_path_factory) -> dict[str, Path]:
    """A synthetic 800 x 600 px 20x slide, its truth, and the same pixels as PNG and JPEG."""
    folder = tmp_path_factory.mktemp("crops")
    res = synthesize(folder / "s.tif", SynthConfig(width=800, height=600, mpp=0.5, seed=4,
                                                   compression="zlib"))
    with open_slide(res.slide) as s:
        rgb = s.read_region((0, 0, 800, 600))
    Image.fromarray(rgb).save(folder / "crop.png")
    Image.fromarray(rgb).save(folder / "crop.jpg", quality=95)
    return {"png": folder / "crop.png", "jpg": folder / "crop.jpg", "truth": res.truth}


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(map(str, argv)))
    out, err = capsys.readouterr()
    return code, out, err


def test_info_reads_png_and_jpeg(crops, capsys):
    code, out, _ = _run(capsys, "info", crops["jpg"], "--mpp", "0.5", "--json")
    info = json.loads(out)
    assert code == 0 and info["backend"] == "pillow" and info["mpp"] == 0.5
    assert (info["width"], info["height"]) == (800, 600)
    code, out, _ = _run(capsys, "info", crops["png"], "--json")
    info = json.loads(out)
    assert code == 0 and info["mpp"] is None and info["mpp_estimate"] > 0


def test_suggest_mpp_reads_a_jpeg(crops, capsys):
    code, out, _ = _run(capsys, "magnification", "suggest-mpp", crops["jpg"], "--json")
    assert code == 0
    text = json.dumps(json.loads(out))
    assert "estimated" in text and "crop.jpg" in text


def test_infer_and_evaluate_a_png_crop(crops, tmp_path, capsys):
    model = constant_model_dir(tmp_path / "model", SYNTH_CLASSES.index_of("Carcinoma"),
                               classes=SYNTH_CLASSES, geometry=TileGeometry.single(1.0, 64))
    out = tmp_path / "pred"
    code, stdout, err = _run(capsys, "infer", crops["png"], "--model", model, "--out", out,
                             "--mpp", "0.5", "--no-tissue-mask", "--json", "--quiet")
    assert code == 0, err
    (entry,) = json.loads(stdout)["slides"]
    assert entry["store"] == str(out / "crop.zarr") and entry["label_shape"] == [300, 400]
    code, stdout, err = _run(capsys, "evaluate", out / "crop.zarr", "--truth", crops["truth"],
                             "--json")
    assert code == 0, err
    assert "Carcinoma" in stdout


def test_infer_estimates_the_mpp_of_a_jpeg(crops, tmp_path, capsys):
    model = constant_model_dir(tmp_path / "model", SYNTH_CLASSES.index_of("Carcinoma"),
                               classes=SYNTH_CLASSES, geometry=TileGeometry.single(2.0, 32))
    code, stdout, err = _run(capsys, "infer", crops["jpg"], "--model", model, "--out",
                             tmp_path / "pred", "--mpp", "estimate", "--no-tissue-mask",
                             "--json", "--quiet")
    assert code == 0, err
    assert "estimated" in stdout


def test_unreadable_image_is_one_paragraph_naming_the_formats(tmp_path, capsys):
    bad = tmp_path / "scan.jpg"
    bad.write_bytes(b"\xff\xd8 this is not really a JPEG")
    code, _, err = _run(capsys, "info", bad, "--mpp", "0.5")
    assert code != 0 and "scan.jpg" in err and "PNG, JPEG" in err
    assert "Traceback" not in err


def test_small_image_warns_once_about_the_field_of_view(crops, tmp_path):
    net = IntensityNet(n_inputs=3)
    card = make_card(INTENSITY_CLASSES, TileGeometry.with_context(0.5, 64, [2.0, 8.0]))
    with pytest.warns(FieldOfViewWarning) as caught:
        infer_slide(crops["png"], (net, card), tmp_path / "a", mpp=0.5)
    msgs = [str(w.message) for w in caught if w.category is FieldOfViewWarning]
    assert len(msgs) == 1
    assert "400 x 300 µm" in msgs[0] and "512 µm" in msgs[0] and "padding" in msgs[0]
    # the same pixels declared at 2 µm/px cover 1600 x 1200 µm: no warning
    big_card = make_card(INTENSITY_CLASSES, TileGeometry.with_context(2.0, 64, [8.0]))
    with warnings.catch_warnings():
        warnings.simplefilter("error", FieldOfViewWarning)
        res = infer_slide(crops["png"], (IntensityNet(n_inputs=2), big_card), tmp_path / "b",
                          InferConfig(tissue_mask=False), mpp=2.0)
    # the prediction on the PNG equals the numpy reference of its pixels
    root, _ = open_prediction(res.store)
    with open_slide(crops["png"], mpp=2.0) as s:
        expected = intensity_classes(s.read_region((0, 0, 800, 600)))
    assert np.array_equal(np.asarray(root["labels/0"][:]), expected)
