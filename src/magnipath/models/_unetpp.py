"""UNet++ with an efficientnet-b0 encoder (McCombe et al., papers/002), via
segmentation-models-pytorch.

The encoder starts from random weights (``encoder_weights=None``): nothing is ever
downloaded. Pretrained weights come only from a file the user gives (``weights``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from magnipath._errors import ModelError
from magnipath.models._blocks import check_inputs

ARCH = "unetpp-effb0"
ENCODER = "efficientnet-b0"
SIZE_MULTIPLE = 32  # five stride-2 stages in the encoder


class UNetPlusPlusEffB0(nn.Module):
    """UNet++ / efficientnet-b0 taking ``[target]`` ``(B, in_channels, S, S)``, S a
    multiple of 32, and returning logits ``(B, n_classes, S, S)``."""

    def __init__(self, *, n_classes: int, in_channels: int = 3) -> None:
        super().__init__()
        if n_classes < 1 or in_channels < 1:
            raise ModelError(
                f"n_classes and in_channels must be >= 1, got {n_classes} and {in_channels}."
            )
        import segmentation_models_pytorch as smp  # heavy import, only when built

        self.net = smp.UnetPlusPlus(
            encoder_name=ENCODER,
            encoder_weights=None,
            in_channels=in_channels,
            classes=n_classes,
        )
        self.arch_name = ARCH
        self.arch_kwargs: dict[str, Any] = {"n_classes": n_classes, "in_channels": in_channels}
        self.n_inputs = 1
        self.n_classes = n_classes
        self.in_channels = in_channels
        self.context_ratios: tuple[int, ...] = ()
        self.size_multiple = SIZE_MULTIPLE
        self.init_weights: str | None = None

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        """``[target]`` -> logits ``(B, n_classes, S, S)``."""
        sy, sx = check_inputs(inputs, n_inputs=1, in_channels=self.in_channels, arch=ARCH)
        if sy % SIZE_MULTIPLE or sx % SIZE_MULTIPLE:
            raise ModelError(
                f"Model '{ARCH}' cannot take {sy}x{sx} tiles: the tile side must be a "
                f"multiple of {SIZE_MULTIPLE} (e.g. 256 or 512 px)."
            )
        return self.net(inputs[0])

    def load_weights(self, path: str | os.PathLike[str]) -> None:
        """Load a state-dict file: the whole UNet++ or only its efficientnet-b0 encoder.

        Parameters
        ----------
        path : str or os.PathLike
            A file written by ``torch.save(state_dict)``: keys of this model (with or
            without the ``net.`` prefix), of the smp ``UnetPlusPlus``, or of its encoder
            alone (e.g. ImageNet weights; classifier keys ``_fc.*`` are dropped).

        Raises
        ------
        ModelError
            If the file is missing, unreadable, or its keys/shapes do not match.
        """
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"Weights file '{path}' does not exist. Give an existing file.")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for a corrupt file
            raise ModelError(
                f"Cannot read weights file '{path}' ({type(exc).__name__}: {exc}). It must be "
                "a PyTorch state dict saved with torch.save(model.state_dict(), path)."
            ) from exc
        if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
            state = state["state_dict"]
        if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
            raise ModelError(
                f"Weights file '{path}' does not hold a state dict (name -> tensor mapping)."
            )
        state = {str(k).removeprefix("net."): v for k, v in state.items()}
        own = self.net.state_dict()
        enc = {k.removeprefix("encoder."): v for k, v in state.items()}
        enc = {k: v for k, v in enc.items() if not k.startswith(("_fc.", "classifier."))}
        if set(state) == set(own):
            target, module = state, self.net
        elif set(enc) == set(self.net.encoder.state_dict()):
            target, module = enc, self.net.encoder
        else:
            missing = sorted(set(self.net.encoder.state_dict()) - set(enc))
            raise ModelError(
                f"Weights file '{path}' does not match UNet++/{ENCODER} with "
                f"{self.in_channels} input channels and {self.n_classes} classes: neither "
                f"the whole model's nor the encoder's keys ({len(missing)} encoder keys "
                f"missing, e.g. {missing[:3]})."
            )
        bad = [
            f"{k} {tuple(v.shape)} vs {tuple(module.state_dict()[k].shape)}"
            for k, v in target.items()
            if v.shape != module.state_dict()[k].shape
        ]
        if bad:
            raise ModelError(
                f"Weights file '{path}' has tensors of the wrong shape for this model "
                f"({len(bad)}, e.g. {bad[:2]}); check in_channels and the number of classes."
            )
        module.load_state_dict(target, strict=True)
        self.init_weights = str(path)


def build_unetpp(
    *, n_classes: int, in_channels: int = 3, weights: str | os.PathLike[str] | None = None
) -> UNetPlusPlusEffB0:
    """Build UNet++ / efficientnet-b0, random init unless ``weights`` names a file.

    Parameters
    ----------
    n_classes : int
        Output logits per pixel.
    in_channels : int
        Channels of the input tile.
    weights : str or os.PathLike, optional
        State-dict file of the whole model or of its encoder (see
        :meth:`UNetPlusPlusEffB0.load_weights`). Not kept in ``arch_kwargs``: the
        path is recorded in ``model.init_weights``; a checkpoint restores its own state.

    Returns
    -------
    UNetPlusPlusEffB0
    """
    model = UNetPlusPlusEffB0(n_classes=n_classes, in_channels=in_channels)
    if weights is not None:
        model.load_weights(weights)
    return model
