"""Fixtures of the cohort tests: three small real slides, a real (random-weight) model, helpers.

The model is a real DSMN-S2 with seeded random weights saved as a model folder:
its labels vary with the pixels, so stitching, resume and vectorising all show
in the comparison with single-slide runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from magnipath.checkpoint import ModelCard, save_checkpoint
from magnipath.geometry import TileGeometry
from magnipath.synth import SYNTH_CLASSES, SynthConfig, synthesize

_HERE = Path(__file__).resolve().parent


def random_model_dir(folder: Path, seed: int = 0) -> Path:
    """A model folder of a real DSMN-S2 (base 4) with seeded random weights, 64 px at 1 µm/px."""
    from magnipath.models import build_model

    torch.manual_seed(seed)
    net = build_model("dsmn-s2", n_classes=SYNTH_CLASSES.n_classes, base=4)
    with torch.no_grad():  # larger weights: labels vary with the pixels (3 classes here)
        for m in net.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.mul_(2.0)
    card = ModelCard(arch="dsmn-s2", arch_kwargs=dict(net.arch_kwargs),
                     class_map=SYNTH_CLASSES.to_dict(),
                     geometry=TileGeometry.single(1.0, 64).to_dict())
    folder.mkdir(parents=True, exist_ok=True)
    save_checkpoint(folder / "best.pt", net, card)
    card.save_json(folder / "model_card.json")
    return folder


@pytest.fixture(scope="session")
def cohort_dir(tmp_path_factory) -> Path:
    """A folder of three 768 x 512 px synthetic slides at 0.5 µm/px (a sub-folder included)."""
    folder = tmp_path_factory.mktemp("cohort")
    (folder / "sub").mkdir()
    for i, rel in enumerate(["a.tif", "b.tif", "sub/c.tif"]):
        synthesize(folder / rel, SynthConfig(width=768, height=512, mpp=0.5, seed=10 + i,
                                             tile=256, compression="zlib"))
    return folder


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    return random_model_dir(tmp_path_factory.mktemp("model") / "m")


def store_files(store: Path) -> dict[str, bytes]:
    """Every file of a prediction store by relative path; the run's timing is left out."""
    out = {}
    for p in sorted(store.rglob("*")):
        if p.is_file():
            data = p.read_bytes()
            if p.name == "zarr.json":
                meta = json.loads(data)
                mp = meta.get("attributes", {}).get("magnipath", {})
                mp.pop("seconds", None)
                data = json.dumps(meta, sort_keys=True).encode()
            out[str(p.relative_to(store))] = data
    return out


def geojson_without_ids(path: Path) -> list:
    """The features of a GeoJSON file with their (random or derived) ids left out."""
    feats = json.loads(Path(path).read_text())["features"]
    for f in feats:
        f.pop("id", None)
    return feats
