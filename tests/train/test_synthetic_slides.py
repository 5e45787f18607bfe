"""Training on a dataset cut by the real tiler from a synthetic slide (synth -> tile -> train)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from magnipath.checkpoint import load_model, normalize_inputs
from magnipath.dataset import open_dataset
from magnipath.geometry import TileGeometry
from magnipath.train import TrainConfig, train


@pytest.fixture(scope="module")
def synth_dataset(synth_small, tmp_path_factory):
    from magnipath.synth import SYNTH_CLASSES
    from magnipath.tiling import SlideSource, TilingConfig, make_dataset

    out = tmp_path_factory.mktemp("synth_ds") / "dataset"
    make_dataset([SlideSource(path=synth_small.slide, annotations=synth_small.partial)], out,
                 class_map=SYNTH_CLASSES,
                 config=TilingConfig(geometry=TileGeometry.dmmn(mpp=2.0, size=32),
                                     min_tissue=0.05, min_labelled=0.01, split=(1.0, 0.0, 0.0)))
    return out


def test_dmmn_preset_on_tiled_synthetic_slide(synth_dataset, synth_small, tmp_path):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = TrainConfig.preset("dmmn", arch_kwargs={"base": 4, "depth": 2}, epochs=2,
                                 optimizer="adam", lr=1e-2, max_steps_per_epoch=4,
                                 batch_size=4, device="cpu", num_workers=0)
        s = train(synth_dataset, tmp_path / "m", cfg)
    finally:
        torch.set_num_threads(n)
    ds = open_dataset(synth_dataset)
    hist = json.loads((tmp_path / "m" / "history.json").read_text())
    assert all(np.isfinite(r["train_loss"]) for r in hist)
    # DMMN rates by class name on the synthetic classes: Benign copies 10 per patch
    benign = next(r for r in s["balance"] if r["class"] == "Benign")
    assert benign["rate"] == 10 and benign["order"] == 1
    assert benign["patches_after"] == 11 * benign["patches_before"]
    model, card = load_model(tmp_path / "m")
    assert card.input_geometry == ds.geometry
    assert card.dataset["dataset_id"] == ds.manifest["dataset_id"]
    assert card.dataset["splits"]["train"] == [r["slide_id"] for r in ds.manifest["slides"]]
    assert card.classes.names == ds.class_map.names
    card.check_input(ds.geometry, synth_small.config.mpp)
    # the stain vectors of the card's reference were read on the slide's level-0 pixels
    assert card.normalisation["stain_reference"]["vector_mpp"] == synth_small.config.mpp
    with torch.no_grad():
        logits = model(normalize_inputs(ds.images(0)[None]))
    assert logits.shape == (1, ds.class_map.n_classes, 32, 32)


def test_stain_reference_reads_vectors_on_level0_unless_the_slides_are_gone(synth_dataset,
                                                                             synth_small,
                                                                             tmp_path):
    import shutil

    from magnipath.train._stain_aug import training_stain_reference

    ds = open_dataset(synth_dataset)
    ref = training_stain_reference(ds, ds.indices("train"), 0)
    assert ref["vector_mpp"] == synth_small.config.mpp and "level-0" in ref["method"]
    moved = tmp_path / "dataset"
    shutil.copytree(synth_dataset, moved)
    manifest = json.loads((moved / "manifest.json").read_text())
    for s in manifest["slides"]:
        s["path"] = str(tmp_path / "gone.tif")
    (moved / "manifest.json").write_text(json.dumps(manifest))
    ds2 = open_dataset(moved)
    ref2 = training_stain_reference(ds2, ds2.indices("train"), 0)
    assert ref2["vector_mpp"] is None and "level-0" not in ref2["method"]
    assert ref2["max_conc"] != ref["max_conc"] or ref2["vectors"] != ref["vectors"]
