"""Segmentation losses for partial annotations: weighted cross-entropy and Dice.

Shapes: ``logits`` are ``(B, C, y, x)`` (raw scores, no softmax), ``target`` is
``(B, y, x)`` integer class indices in ``0..C-1`` or ``ignore_index`` for unlabelled
pixels. Unlabelled pixels contribute nothing to any loss (nor to its gradient). Losses
are computed in float32 even under autocast.

- Weighted cross-entropy (DMMN, papers/004): class weights ``w_c = 1 - N_c / sum_k N_k``
  from the training set's labelled pixel counts (:func:`class_weights_from_counts`);
  the loss is ``sum_i w_{t_i} * (-log p_{i, t_i}) / sum_i w_{t_i}`` over labelled pixels
  ``i`` of the batch (PyTorch's weighted mean).
- Dice (TLS paper, papers/002): ``1 - (2 * sum p*y + smooth) / (sum p + sum y + smooth)``
  over the labelled pixels of the whole batch; ``binary`` mode scores the foreground
  class (1 logit with a sigmoid, or 2 logits with a softmax, class 1), ``multiclass``
  mode averages ``1 - dice_c`` over all classes (softmax probabilities).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from magnipath._errors import ModelError

__all__ = [
    "LOSSES",
    "CombinedLoss",
    "DiceLoss",
    "WeightedCrossEntropy",
    "build_loss",
    "class_weights_from_counts",
    "inverse_sqrt_weights",
]

LOSSES = ("wce", "ce", "dice", "wce+dice", "iwce", "iwce+dice")

MAX_INVERSE_WEIGHT = 10.0
"""Cap of :func:`inverse_sqrt_weights` relative to the pixel-weighted mean weight."""


def class_weights_from_counts(counts: Sequence[int] | np.ndarray | Tensor) -> Tensor:
    """DMMN class weights ``w_c = 1 - N_c / sum_k N_k``.

    Parameters
    ----------
    counts : sequence of int, numpy array or tensor
        ``N_c``: labelled pixels of each class in the training set (unlabelled pixels not
        counted), index = class index.

    Returns
    -------
    torch.Tensor
        float32 ``(C,)`` weights in ``[0, 1]``, summing to ``C - 1``. A class with no
        pixel gets weight 1 (the formula as is); it never occurs in a target, so the weight
        only matters if such pixels appear later. A class holding every pixel gets 0.

    Raises
    ------
    ModelError
        If counts are negative, not one-dimensional, or all zero.
    """
    c = torch.as_tensor(np.asarray(counts, dtype=np.float64))
    if c.ndim != 1 or c.numel() == 0:
        raise ModelError(f"Class pixel counts must be a 1-D list, got shape {tuple(c.shape)}.")
    if bool((c < 0).any()) or not bool(torch.isfinite(c).all()):
        raise ModelError(f"Class pixel counts must be non-negative numbers, got {c.tolist()}.")
    total = float(c.sum())
    if total <= 0:
        raise ModelError(
            "Every class pixel count is zero: the training set has no labelled pixel; "
            "check the annotations and the class map."
        )
    return (1.0 - c / total).to(torch.float32)


def inverse_sqrt_weights(counts: Sequence[int] | np.ndarray | Tensor) -> Tensor:
    """Class weights ``w_c ∝ 1 / sqrt(N_c)``, for classes with few labelled pixels.

    The DMMN weights (:func:`class_weights_from_counts`) stay close to 1 for every class
    that holds a small share of the pixels, so a class with 0.3 % of the labelled pixels
    (thin benign ducts after partial annotation) contributes 0.3 % of the loss. These
    weights grow with the square root of a class's rarity: scaled so that the mean weight
    of a labelled pixel is 1, capped at :data:`MAX_INVERSE_WEIGHT`; a class without pixels
    gets 1.

    Parameters
    ----------
    counts : sequence of int, numpy array or tensor
        ``N_c``: labelled pixels of each class (index = class index).

    Returns
    -------
    torch.Tensor
        float32 ``(C,)`` weights, all > 0.

    Raises
    ------
    ModelError
        As :func:`class_weights_from_counts`.
    """
    class_weights_from_counts(counts)  # the same checks
    c = np.asarray(counts, dtype=np.float64)
    w = np.ones_like(c)
    present = c > 0
    w[present] = 1.0 / np.sqrt(c[present])
    w[present] /= float((c[present] * w[present]).sum() / c[present].sum())
    return torch.as_tensor(np.minimum(w, MAX_INVERSE_WEIGHT), dtype=torch.float32)


def _check_target(logits: Tensor, target: Tensor, ignore_index: int, n_classes: int) -> Tensor:
    if target.ndim == logits.ndim and target.shape[1] == 1:
        target = target[:, 0]
    if logits.ndim != 4 or target.shape != (logits.shape[0], *logits.shape[2:]):
        raise ModelError(
            f"Loss expects logits (B, C, y, x) and target (B, y, x); got logits "
            f"{tuple(logits.shape)} and target {tuple(target.shape)}."
        )
    target = target.long()
    bad = (target != ignore_index) & ((target < 0) | (target >= n_classes))
    if bool(bad.any()):
        values = torch.unique(target[bad])[:5].tolist()
        raise ModelError(
            f"Label values {values} are neither a class index (0..{n_classes - 1}) nor the "
            f"ignore index {ignore_index}; the dataset and the model disagree on the classes."
        )
    return target


class WeightedCrossEntropy(nn.Module):
    """Cross-entropy with per-class weights; unlabelled pixels ignored.

    Parameters
    ----------
    weights : sequence of float or torch.Tensor, optional
        ``(C,)`` class weights (see :func:`class_weights_from_counts`); None = unweighted.
    ignore_index : int
        Label value of unlabelled pixels.

    Notes
    -----
    Returns ``sum_i w_{t_i} * nll_i / sum_i w_{t_i}`` over labelled pixels; 0 (with a
    gradient graph) when a batch has no labelled pixel or all its weights are zero.
    """

    def __init__(
        self, weights: Sequence[float] | Tensor | None = None, ignore_index: int = 255
    ) -> None:
        super().__init__()
        w = None if weights is None else torch.as_tensor(weights, dtype=torch.float32)
        if w is not None and (w.ndim != 1 or bool((w < 0).any())):
            raise ModelError(f"Class weights must be a 1-D list of values >= 0, got {w}.")
        self.register_buffer("weights", w)
        self.ignore_index = ignore_index

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Loss of ``logits`` ``(B, C, y, x)`` against ``target`` ``(B, y, x)``."""
        n_classes = logits.shape[1]
        target = _check_target(logits, target, self.ignore_index, n_classes)
        if self.weights is not None and self.weights.numel() != n_classes:
            raise ModelError(
                f"{self.weights.numel()} class weights for a model with {n_classes} classes."
            )
        logits = logits.float()
        nll = F.cross_entropy(logits, target, ignore_index=self.ignore_index, reduction="none")
        labelled = target != self.ignore_index
        if self.weights is None:
            w = labelled.to(logits.dtype)
        else:
            w = self.weights.to(logits.device)[target.clamp(0, n_classes - 1)] * labelled
        denom = w.sum()
        return (nll * w).sum() / denom.clamp_min(torch.finfo(logits.dtype).tiny)


class DiceLoss(nn.Module):
    """Soft Dice loss over labelled pixels.

    Parameters
    ----------
    mode : {"binary", "multiclass"}
        ``binary``: foreground Dice from 1 logit (sigmoid) or 2 logits (softmax, class 1);
        targets are 0/1. ``multiclass``: mean over classes of ``1 - dice_c`` (softmax).
    ignore_index : int
        Label value of unlabelled pixels: they count in neither numerator nor denominator.
    smooth : float
        Added to numerator and denominator (a batch with no foreground and no predicted
        foreground scores Dice 1, loss 0).
    """

    def __init__(
        self,
        mode: Literal["binary", "multiclass"] = "multiclass",
        ignore_index: int = 255,
        smooth: float = 1.0,
    ) -> None:
        super().__init__()
        if mode not in ("binary", "multiclass"):
            raise ModelError(f"Dice mode must be 'binary' or 'multiclass', got '{mode}'.")
        if smooth < 0:
            raise ModelError(f"Dice smooth must be >= 0, got {smooth}.")
        self.mode = mode
        self.ignore_index = ignore_index
        self.smooth = float(smooth)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Loss of ``logits`` ``(B, C, y, x)`` against ``target`` ``(B, y, x)``."""
        n_classes = logits.shape[1]
        if self.mode == "binary" and n_classes not in (1, 2):
            raise ModelError(f"Binary Dice needs 1 or 2 output channels, got {n_classes}.")
        target = _check_target(logits, target, self.ignore_index, max(n_classes, 2))
        logits = logits.float()
        mask = (target != self.ignore_index).unsqueeze(1).to(logits.dtype)
        if self.mode == "binary":
            probs = torch.sigmoid(logits) if n_classes == 1 else logits.softmax(1)[:, 1:]
            onehot = (target == 1).unsqueeze(1).to(logits.dtype)
        else:
            probs = logits.softmax(1)
            onehot = F.one_hot(target.clamp(0, n_classes - 1), n_classes).permute(0, 3, 1, 2)
            onehot = onehot.to(logits.dtype)
        probs, onehot = probs * mask, onehot * mask
        dims = (0, 2, 3)
        inter = (probs * onehot).sum(dims)
        denom = probs.sum(dims) + onehot.sum(dims)
        dice = (2 * inter + self.smooth) / (denom + self.smooth).clamp_min(1e-12)
        return (1 - dice).mean()


class CombinedLoss(nn.Module):
    """Weighted sum of losses: ``sum_k weights[k] * losses[k](logits, target)``.

    Parameters
    ----------
    losses : sequence of torch.nn.Module
        Each called as ``loss(logits, target)``.
    weights : sequence of float, optional
        One weight per loss; default all 1.
    """

    def __init__(self, losses: Sequence[nn.Module], weights: Sequence[float] | None = None):
        super().__init__()
        if not losses:
            raise ModelError("CombinedLoss needs at least one loss.")
        weights = [1.0] * len(losses) if weights is None else [float(w) for w in weights]
        if len(weights) != len(losses):
            raise ModelError(f"{len(weights)} loss weights for {len(losses)} losses.")
        self.losses = nn.ModuleList(losses)
        self.weights = weights

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Sum of the weighted losses."""
        return sum(
            (w * loss(logits, target) for w, loss in zip(self.weights, self.losses, strict=True)),
            start=logits.new_zeros((), dtype=torch.float32),
        )


def build_loss(
    name: str,
    *,
    n_classes: int,
    class_counts: Sequence[int] | np.ndarray | None = None,
    ignore_index: int = 255,
) -> nn.Module:
    """Build a loss by name.

    Parameters
    ----------
    name : {"wce", "ce", "dice", "wce+dice", "iwce", "iwce+dice"}
        ``wce``: DMMN weighted cross-entropy (needs ``class_counts``); ``iwce``: cross-entropy
        weighted by :func:`inverse_sqrt_weights` (needs ``class_counts``); ``ce``: unweighted;
        ``dice``: binary Dice when ``n_classes <= 2`` (TLS paper), else multi-class;
        ``wce+dice`` / ``iwce+dice``: the sum with Dice.
    n_classes : int
        Output channels of the model.
    class_counts : sequence of int, optional
        Labelled training pixels per class (index = class), for ``wce``.
    ignore_index : int
        Label value of unlabelled pixels.

    Returns
    -------
    torch.nn.Module
        Called as ``loss(logits (B, C, y, x), target (B, y, x)) -> scalar``.

    Raises
    ------
    ModelError
        Unknown name, missing or mismatched class counts, or a cross-entropy on 1 channel.
    """
    if name not in LOSSES:
        raise ModelError(f"Unknown loss '{name}'. Choose one of: {', '.join(LOSSES)}.")
    parts: list[nn.Module] = []
    if name in ("wce", "ce", "wce+dice", "iwce", "iwce+dice"):
        if n_classes < 2:
            raise ModelError(
                "Cross-entropy needs at least 2 output classes; use the 'dice' loss for a "
                "single-logit model, or give the model 2 classes (background, foreground)."
            )
        weights = None
        if name != "ce":
            if class_counts is None:
                raise ModelError(
                    f"Loss '{name}' needs the training set's pixel count per class "
                    "(class_counts); use 'ce' for an unweighted cross-entropy."
                )
            weights = (inverse_sqrt_weights(class_counts) if name.startswith("iwce")
                       else class_weights_from_counts(class_counts))
            if weights.numel() != n_classes:
                raise ModelError(
                    f"class_counts has {weights.numel()} entries but the model has "
                    f"{n_classes} classes."
                )
        parts.append(WeightedCrossEntropy(weights, ignore_index=ignore_index))
    if name in ("dice", "wce+dice", "iwce+dice"):
        mode = "binary" if n_classes <= 2 else "multiclass"
        parts.append(DiceLoss(mode, ignore_index=ignore_index))
    return parts[0] if len(parts) == 1 else CombinedLoss(parts)
