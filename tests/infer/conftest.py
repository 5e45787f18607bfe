"""Fixtures of the inference tests: small real slides and models whose output is known.

The models are ordinary ``torch.nn.Module`` objects that follow MagniPath's model
contract (a list of normalised ``(B, 3, S, S)`` inputs in, logits ``(B, C, S, S)``
out), paired with a real :class:`~magnipath.checkpoint.ModelCard`; what they
predict is a simple function of their input, so the stitched label map can be
computed independently and compared pixel by pixel.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from magnipath.checkpoint import DEFAULT_NORMALISATION, ModelCard, save_checkpoint
from magnipath.classes import ClassMap
from magnipath.geometry import TileGeometry

GLASS, TISSUE, DARK = 0, 1, 2
_HERE = Path(__file__).resolve().parent

INTENSITY_CLASSES = ClassMap.from_names(["Background", "Tissue", "Dark"])
"""Classes of :class:`IntensityNet`: bright (>= 199.5), mid, dark (< 99.5) mean intensity."""


def intensity_classes(rgb: np.ndarray) -> np.ndarray:
    """What :class:`IntensityNet` predicts for ``(y, x, 3)`` uint8 pixels, computed in numpy."""
    v = rgb.astype(np.float64).mean(-1)
    return ((v < 199.5).astype(np.uint8) + (v < 99.5)).astype(np.uint8)


class IntensityNet(torch.nn.Module):
    """Pointwise: the class of each target pixel from its mean RGB intensity (0..255).

    Thresholds 199.5 and 99.5 cannot be hit by a mean of three integers, so float
    round-off of the normalisation never flips a pixel.
    """

    def __init__(self, n_inputs: int = 1) -> None:
        super().__init__()
        norm = DEFAULT_NORMALISATION
        self.register_buffer("mean", torch.tensor(norm["mean"]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(norm["std"]).view(1, 3, 1, 1))
        self.scale = float(norm["scale"])
        self.n_inputs = n_inputs
        self.seen: list[list[torch.Tensor]] = []
        self.record = False

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        if self.record:
            self.seen.append([x.clone() for x in inputs])
        rgb = (inputs[0] * self.std + self.mean) / self.scale
        v = rgb.mean(1)
        cls = (v < 199.5).long() + (v < 99.5).long()
        return torch.nn.functional.one_hot(cls, 3).permute(0, 3, 1, 2).float() * 10.0


class ConstantNet(torch.nn.Module):
    """The same logits at every pixel of every window."""

    def __init__(self, logits: list[float], n_inputs: int = 1) -> None:
        super().__init__()
        self.register_buffer("logits", torch.tensor(logits, dtype=torch.float32))
        self.n_inputs = n_inputs

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        b, _, h, w = inputs[0].shape
        return self.logits.view(1, -1, 1, 1).expand(b, -1, h, w).clone()


def make_card(classes: ClassMap, geometry: TileGeometry, arch: str = "test-net") -> ModelCard:
    """A real model card for an in-memory test network."""
    return ModelCard(arch=arch, arch_kwargs={}, class_map=classes.to_dict(),
                     geometry=geometry.to_dict())


def constant_model_dir(folder, class_index: int, *, classes: ClassMap,
                       geometry: TileGeometry):
    """A model folder (best.pt + model_card.json) of a real DSMN-S2 whose weights are set
    so that it predicts ``class_index`` everywhere (all weights 0, final bias one-hot)."""
    from magnipath.models import build_model

    net = build_model("dsmn-s2", n_classes=classes.n_classes, base=4)
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        final = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)][-1]
        final.bias[class_index] = 5.0
    card = ModelCard(arch="dsmn-s2", arch_kwargs=dict(net.arch_kwargs),
                     class_map=classes.to_dict(), geometry=geometry.to_dict())
    folder.mkdir(parents=True, exist_ok=True)
    save_checkpoint(folder / "best.pt", net, card)
    card.save_json(folder / "model_card.json")
    return folder


@pytest.fixture(scope="session")
def infer_slide_file(tmp_path_factory):
    """A 2100 x 600 px synthetic slide at 0.5 µm/px (20x), zlib tiles, with glass and tissue."""
    from magnipath.synth import SynthConfig, synthesize

    folder = tmp_path_factory.mktemp("infer_slide")
    return synthesize(folder / "wide.tif", SynthConfig(width=2100, height=600, mpp=0.5, seed=4,
                                                       compression="zlib"))


@pytest.fixture(scope="session")
def coarse_slide_file(tmp_path_factory):
    """A 256 x 256 px synthetic slide scanned at 2 µm/px (5x)."""
    from magnipath.synth import SynthConfig, synthesize

    folder = tmp_path_factory.mktemp("coarse_slide")
    return synthesize(folder / "coarse.tif", SynthConfig(width=256, height=256, mpp=2.0, seed=5,
                                                         compression="zlib"))


@pytest.fixture()
def intensity_model():
    """``(IntensityNet, card)``: one 32 px input at 1 µm/px (10x)."""
    return IntensityNet(), make_card(INTENSITY_CLASSES, TileGeometry.single(1.0, 32))


class WindowMeanNet(torch.nn.Module):
    """The same soft prediction over a whole window, from the window's mean intensity.

    Logits ``-(v - c_k)**2 / 200`` with ``v`` the mean 0..255 intensity of the target
    input and ``c = (225, 200, 175)``: neighbouring windows disagree softly, so how
    overlapping windows are weighted changes the result.
    """

    CENTRES = (225.0, 200.0, 175.0)

    def __init__(self) -> None:
        super().__init__()
        norm = DEFAULT_NORMALISATION
        self.register_buffer("mean", torch.tensor(norm["mean"]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(norm["std"]).view(1, 3, 1, 1))
        self.scale = float(norm["scale"])
        self.n_inputs = 1

    @classmethod
    def logits_of(cls, v: np.ndarray) -> np.ndarray:
        """``(N, 3)`` logits of windows with mean intensities ``v`` (numpy reference)."""
        c = np.asarray(cls.CENTRES)
        return -((np.asarray(v, np.float64)[:, None] - c[None, :]) ** 2) / 200.0

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        rgb = (inputs[0] * self.std + self.mean) / self.scale
        v = rgb.mean(dim=(1, 2, 3))
        c = torch.tensor(self.CENTRES, device=v.device)
        logits = -((v[:, None] - c[None, :]) ** 2) / 200.0
        b, _, h, w = inputs[0].shape
        return logits[:, :, None, None].expand(b, 3, h, w).clone()
