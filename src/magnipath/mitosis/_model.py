"""Pearce's small CNN, its inputs (RGB, RGB + H + E, or stain-normalised RGB), its folder.

Network: per block two (3x3 conv + batch norm + ReLU) then a 2x2 max pool;
then one dense (affine) layer with ReLU and dropout, and a one-logit classifier.
Pearce's best setting: 256 px tiles, filters 128 then 64, affine 512.

Inputs: uint8 RGB / 255 shifted to [-0.5, 0.5]; with ``stain="rgb+he"`` three
more channels from colour deconvolution with the slide's Macenko stain matrix
(:func:`magnipath.stain.deconvolve`): haematoxylin, eosin and the residual the
two stains do not explain (OD units, halved) - the six input layers of Pearce,
who deconvolved with HistomicsTK, which complements two stains with a third
(residual) vector; with ``stain="normalise"`` the RGB is first Macenko-normalised
to the reference stain.

Model folder::

    MODEL_DIR/card.json   tile, mpp, stain, architecture, labelling, loss, metrics, history
    MODEL_DIR/model.pt    state dict
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from magnipath._io import atomic_path
from magnipath.mitosis._data import MitosisError

STAINS = ("rgb", "rgb+he", "normalise")
CARD_FORMAT = "magnipath-mitosis-model"


class MitosisNet(nn.Module):
    """Blocks of 2 x (3x3 conv + BN + ReLU) + 2x2 max pool; dense + dropout; one logit.

    Parameters
    ----------
    in_channels : int
        3 (RGB) or 6 (RGB + H + E).
    tile : int
        Input side in pixels (divisible by ``2 ** len(filters)``).
    filters : sequence of int
        Channels of each block (Pearce: 128, 64).
    affine : int
        Width of the dense layer (Pearce: 512).
    dropout : float
    """

    def __init__(self, in_channels: int = 3, tile: int = 64,
                 filters: Sequence[int] = (128, 64), affine: int = 512,
                 dropout: float = 0.5) -> None:
        super().__init__()
        if tile % (2 ** len(filters)):
            raise MitosisError(f"tile {tile} must be divisible by 2^{len(filters)} "
                               f"({len(filters)} pooling blocks).")
        layers: list[nn.Module] = []
        cin = in_channels
        for f in filters:
            for c in (cin, f):
                layers += [nn.Conv2d(c, f, 3, padding=1, bias=False), nn.BatchNorm2d(f),
                           nn.ReLU(inplace=True)]
            layers.append(nn.MaxPool2d(2))
            cin = f
        self.features = nn.Sequential(*layers)
        side = tile // 2 ** len(filters)
        self.dense = nn.Sequential(nn.Flatten(), nn.Linear(cin * side * side, affine),
                                   nn.ReLU(inplace=True), nn.Dropout(dropout))
        self.classifier = nn.Linear(affine, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dense(self.features(x))).squeeze(1)


def in_channels(stain: str) -> int:
    """Input channels of a stain mode."""
    if stain not in STAINS:
        raise MitosisError(f"stain mode {stain!r}: choose one of {', '.join(STAINS)}.")
    return 6 if stain == "rgb+he" else 3


def prepare_inputs(tiles: np.ndarray, stain: str = "rgb",
                   vectors: np.ndarray | None = None) -> np.ndarray:
    """Network inputs ``(N, C, t, t)`` float32 from uint8 tiles ``(N, t, t, 3)``.

    ``vectors`` are per-tile ``(N, 2, 3)`` (or one ``(2, 3)``) stain matrices for
    ``"rgb+he"`` and ``"normalise"``; default :data:`magnipath.stain.REFERENCE_VECTORS`.
    """
    from magnipath.stain import REFERENCE_VECTORS, deconvolve

    in_channels(stain)
    t = np.asarray(tiles)
    v = np.broadcast_to(REFERENCE_VECTORS if vectors is None else np.asarray(vectors),
                        (len(t), 2, 3))
    if stain == "normalise":
        t = np.stack([_normalised(im, vi) for im, vi in zip(t, v, strict=True)])
    x = t.astype(np.float32) / 255.0 - 0.5
    if stain == "rgb+he":
        hed = np.stack([deconvolve(im, vi) for im, vi in zip(t, v, strict=True)])
        hed[..., :2] = np.clip(hed[..., :2], 0, None)
        x = np.concatenate([x, hed * 0.5], axis=-1)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def _normalised(tile: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    from magnipath.stain import StainError, normalise

    try:
        return normalise(tile, source_vectors=vectors)
    except StainError:  # a tile without one of the stains stays as it is
        return tile


@dataclass
class MitosisModel:
    """A trained mitosis classifier with its card (see the module docstring)."""

    net: MitosisNet
    card: dict
    path: Path | None = None

    @property
    def tile(self) -> int:
        """Tile side in pixels."""
        return int(self.card["tile"])

    @property
    def stain(self) -> str:
        """Input mode: ``rgb``, ``rgb+he`` or ``normalise``."""
        return str(self.card["stain"])

    def predict(self, tiles: np.ndarray, vectors: np.ndarray | None = None,
                batch_size: int = 128, device: str | torch.device = "cpu") -> np.ndarray:
        """Mitosis probabilities ``(N,)`` float32 of uint8 tiles ``(N, t, t, 3)``."""
        self.net.to(device).eval()
        out = [np.zeros(0, np.float32)]
        with torch.no_grad():
            for s in range(0, len(tiles), batch_size):
                v = vectors
                if v is not None and np.ndim(v) == 3:
                    v = np.asarray(v)[s:s + batch_size]
                x = torch.from_numpy(prepare_inputs(tiles[s:s + batch_size], self.stain, v))
                out.append(torch.sigmoid(self.net(x.to(device))).float().cpu().numpy())
        return np.concatenate(out)


def new_card(*, tile: int, mpp: float | None, stain: str, filters: Sequence[int], affine: int,
             dropout: float, a: float, threshold: float) -> dict:
    """A fresh model card (metrics and history are added by training)."""
    return {"format": CARD_FORMAT, "version": 1, "tile": int(tile), "mpp": mpp,
            "stain": stain, "in_channels": in_channels(stain), "filters": [int(f) for f in filters],
            "affine": int(affine), "dropout": float(dropout), "a": float(a),
            "threshold": float(threshold),
            "created": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}


def build_model(card: dict) -> MitosisModel:
    """A fresh network shaped as ``card`` says."""
    net = MitosisNet(card["in_channels"], card["tile"], card["filters"], card["affine"],
                     card["dropout"])
    return MitosisModel(net, card)


def save_model(model: MitosisModel, out: str | os.PathLike) -> Path:
    """Write ``card.json`` and ``model.pt`` into the folder ``out`` (atomically)."""
    out = Path(out)
    with atomic_path(out, is_dir=True) as tmp:
        tmp.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.detach().cpu() for k, v in model.net.state_dict().items()},
                   tmp / "model.pt")
        (tmp / "card.json").write_text(json.dumps(model.card, indent=1, default=float))
    model.path = out
    return out


def load_model(path: str | os.PathLike) -> MitosisModel:
    """Read a model folder written by :func:`save_model`."""
    path = Path(path)
    try:
        card = json.loads((path / "card.json").read_text())
    except (OSError, ValueError) as e:
        raise MitosisError(f"{path} is not a mitosis model folder ({e}); train one with "
                           "'magnipath mitosis train'.") from e
    if card.get("format") != CARD_FORMAT:
        raise MitosisError(f"{path / 'card.json'} is not a mitosis model card.")
    model = build_model(card)
    try:
        model.net.load_state_dict(torch.load(path / "model.pt", map_location="cpu",
                                             weights_only=True))
    except (OSError, RuntimeError) as e:
        raise MitosisError(f"{path / 'model.pt'} cannot be loaded ({e}).") from e
    model.net.eval()
    model.path = path
    return model
