"""Segmentation architectures behind one calling convention, and their registry.

Every model is called as ``model(inputs)`` with ``inputs`` a list of tensors
``(B, in_channels, S, S)``, one per magnification of the tile geometry: input 0 is the
target tile at the highest magnification, inputs ``1..`` are concentric context tiles
whose pixels are ``context_ratios`` times larger (same pixel size ``S``). It returns
logits ``(B, n_classes, S, S)`` for the target tile (no softmax).

Every built model carries:

- ``arch_name`` (registry name) and ``arch_kwargs`` (JSON-ready keyword arguments):
  ``build_model(model.arch_name, **model.arch_kwargs)`` rebuilds the same architecture;
- ``n_inputs``, ``n_classes``, ``in_channels``, ``context_ratios`` (tuple, empty for
  single-magnification models) and ``size_multiple`` (valid tile sides are its multiples).

Examples
--------
>>> import torch
>>> from magnipath.models import build_model
>>> model = build_model("dmmn-m3", n_classes=4, base=4)
>>> x = [torch.zeros(1, 3, 64, 64) for _ in range(model.n_inputs)]
>>> tuple(model(x).shape)
(1, 4, 64, 64)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from magnipath._errors import ModelError
from magnipath.models._blocks import center_crop, conv_block, conv_final, conv_tr
from magnipath.models._dmmn import DMMNM2S, DMMNM3, DMMNMS, DSMNS2
from magnipath.models._unetpp import build_unetpp

__all__ = [
    "MODELS",
    "ModelInfo",
    "build_model",
    "center_crop",
    "conv_block",
    "conv_final",
    "conv_tr",
    "list_models",
    "model_info",
]

_DMMN_PAPER = "Ho et al., Deep Multi-Magnification Networks (papers/004)"


@dataclass(frozen=True)
class ModelInfo:
    """A registry entry.

    Attributes
    ----------
    name : str
        Registry name (``--arch`` in the CLI).
    builder : callable
        ``builder(*, n_classes, in_channels, **kwargs) -> nn.Module``.
    n_inputs : int
        Default number of inputs (magnifications); DMMNs take ``1 + len(context_ratios)``.
    description : str
        One line for menus.
    paper : str
        Where the architecture comes from.
    """

    name: str
    builder: Callable[..., nn.Module]
    n_inputs: int
    description: str
    paper: str


MODELS: dict[str, ModelInfo] = {
    info.name: info
    for info in (
        ModelInfo(
            "dsmn-s2",
            DSMNS2,
            1,
            "U-Net with halved channels on the target magnification only (DSMN-S2)",
            _DMMN_PAPER,
        ),
        ModelInfo(
            "dmmn-ms",
            DMMNMS,
            3,
            "one encoder per magnification, a single decoder (DMMN-MS)",
            _DMMN_PAPER,
        ),
        ModelInfo(
            "dmmn-m2s",
            DMMNM2S,
            3,
            "encoder-decoder per magnification, concatenated at the end (DMMN-M2S)",
            _DMMN_PAPER,
        ),
        ModelInfo(
            "dmmn-m3",
            DMMNM3,
            3,
            "encoder-decoder per magnification, context decoders concatenated into the "
            "target decoder at every level (DMMN-M3, the paper's best)",
            _DMMN_PAPER,
        ),
        ModelInfo(
            "unetpp-effb0",
            build_unetpp,
            1,
            "UNet++ with an efficientnet-b0 encoder, random init or a weights file",
            "McCombe et al., magnification and TLS segmentation (papers/002)",
        ),
    )
}


def list_models() -> list[str]:
    """Names of the registered architectures, in registry order.

    Returns
    -------
    list of str
    """
    return list(MODELS)


def model_info(name: str) -> ModelInfo:
    """The registry entry of ``name``.

    Parameters
    ----------
    name : str
        Registry name, e.g. ``"dmmn-m3"``.

    Returns
    -------
    ModelInfo

    Raises
    ------
    ModelError
        If ``name`` is not registered (the message lists the choices).
    """
    try:
        return MODELS[name]
    except KeyError:
        raise ModelError(
            f"Unknown architecture '{name}'. Choose one of: {', '.join(MODELS)}."
        ) from None


def build_model(
    name: str,
    *,
    n_classes: int,
    in_channels: int = 3,
    n_inputs: int | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build an architecture by registry name.

    Parameters
    ----------
    name : str
        Registry name (see :func:`list_models`).
    n_classes : int
        Output logits per pixel.
    in_channels : int
        Channels of each input tile (3 for RGB).
    n_inputs : int, optional
        Number of inputs the caller's tile geometry provides (target + contexts); checked
        against the architecture (for DMMNs: ``1 + len(context_ratios)``).
    **kwargs
        Architecture options: DSMN/DMMN ``base`` (level-0 width, paper 32), ``depth``
        (poolings, paper 4), ``norm`` (BatchNorm, not in the paper), DMMN
        ``context_ratios`` (mpp ratio of each context input to the target, paper
        ``(2, 4)``); UNet++ ``weights`` (state-dict file).

    Returns
    -------
    torch.nn.Module
        With ``arch_name``, ``arch_kwargs``, ``n_inputs``, ``context_ratios``,
        ``size_multiple`` attributes (module docstring).

    Raises
    ------
    ModelError
        Unknown name, unknown option, or an input count the architecture cannot take.
    """
    info = model_info(name)
    try:
        model = info.builder(n_classes=n_classes, in_channels=in_channels, **kwargs)
    except TypeError as exc:
        raise ModelError(f"Invalid option for architecture '{name}': {exc}.") from exc
    if n_inputs is not None and n_inputs != model.n_inputs:
        hint = (
            " Pass context_ratios with one ratio per context input."
            if "context_ratios" in model.arch_kwargs
            else " It uses the target magnification only."
        )
        raise ModelError(
            f"Architecture '{name}' takes {model.n_inputs} input(s) but the tile geometry "
            f"has {n_inputs}.{hint}"
        )
    return model
