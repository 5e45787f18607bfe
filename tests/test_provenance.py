"""Where a model comes from: the card's training_data, synth slides recognised, the one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from magnipath.checkpoint import (
    ModelCard,
    card_of,
    is_synth_slide,
    provenance_note,
    training_data_from_slides,
)
from magnipath.cli import main
from magnipath.geometry import TileGeometry
from magnipath.synth import SYNTH_CLASSES, SynthConfig, render_region, synthesize
from tests.infer.conftest import constant_model_dir


def _plain_tiff(path: Path, mpp: float = 0.5, size: int = 512) -> Path:
    """A TIFF with the synth renderer's pixels but written as any scanner would: no synth mark."""
    from magnipath.synth import make_layout

    rgb = render_region(make_layout(SynthConfig(width=size, height=size, seed=3)),
                        (0, 0, size, size), mpp=mpp)
    tifffile.imwrite(path, rgb, tile=(256, 256), photometric="rgb",
                     resolution=(1e4 / mpp, 1e4 / mpp), resolutionunit="CENTIMETER")
    return path


def test_synth_slides_are_recognised_and_others_are_not(tmp_path):
    synth = synthesize(tmp_path / "s.tif", SynthConfig(width=512, height=512, seed=1)).slide
    plain = _plain_tiff(tmp_path / "p.tif")
    png = tmp_path / "x.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(png)
    assert is_synth_slide(synth) is True
    assert is_synth_slide(plain) is False and is_synth_slide(png) is False
    assert is_synth_slide(tmp_path / "missing.tif") is None


def test_training_data_and_the_note(tmp_path):
    synth = synthesize(tmp_path / "s.tif", SynthConfig(width=512, height=512, seed=1)).slide
    plain = _plain_tiff(tmp_path / "p.tif")
    only = training_data_from_slides({"s": synth}, stain_augmentation="hed 0.05")
    assert only == {"synthetic_only": True, "n_slides": 1, "n_synthetic": 1,
                    "slides": {"s": "synthetic"}, "stain_augmentation": "hed 0.05"}
    mixed = training_data_from_slides({"s": synth, "p": plain})
    assert mixed["synthetic_only"] is False and mixed["n_synthetic"] == 1
    assert training_data_from_slides({"s": synth, "g": tmp_path / "gone.tif"})[
        "synthetic_only"] is None
    card = ModelCard(arch="a", arch_kwargs={}, class_map=SYNTH_CLASSES.to_dict(),
                     geometry=TileGeometry.single(1.0, 64).to_dict(), training_data=only)
    back = ModelCard.from_dict(json.loads(json.dumps(card.to_dict())))
    assert back.training_data == only
    note = provenance_note(back, plain)
    assert note and "synthetic slides only" in note and "p.tif" in note and "\n" not in note
    assert provenance_note(back, synth) is None
    card.training_data = mixed
    assert provenance_note(card, plain) is None
    legacy = card.to_dict()
    del legacy["training_data"]
    assert ModelCard.from_dict(legacy).training_data == {}  # older cards: unknown, no note


def test_infer_prints_the_line_only_for_foreign_slides(tmp_path, capsys):
    synth = synthesize(tmp_path / "s.tif", SynthConfig(width=512, height=512, mpp=0.5,
                                                       seed=1, compression="zlib")).slide
    plain = _plain_tiff(tmp_path / "p.tif")
    model = tmp_path / "model"
    constant_model_dir(model, 0, classes=SYNTH_CLASSES, geometry=TileGeometry.single(1.0, 64))
    card = card_of(model)
    card.training_data = training_data_from_slides({"s": synth})
    card.save_json(model / "model_card.json")
    entries = {}
    for slide in (synth, plain):
        assert main(["infer", str(slide), "--model", str(model), "--out",
                     str(tmp_path / f"pred-{Path(slide).stem}"), "--no-tissue-mask",
                     "--json"]) == 0
        entries[Path(slide).stem] = json.loads(capsys.readouterr().out)["slides"][0]
    assert "provenance" not in entries["s"]
    assert "synthetic slides only" in entries["p"]["provenance"]
