"""Binary losses of Pearce's mitosis classifier, on one raw score ``s`` per tile.

With ``y`` in {0, 1} and ``t = 2y - 1`` in {-1, +1}:

- ``bce``: binary cross-entropy of ``sigmoid(s)``;
- ``hinge``: SVM hinge ``max(0, margin - t * s)``;
- ``rare_hinge``: the hinge multiplied by ``exp(a * y)``: a positive tile's loss
  is amplified by ``e^a``, a negative's is unchanged (Pearce tried a = 2 and 4).

Each returns the batch mean. The probability reported for any loss is
``sigmoid(s)`` (for the hinge losses a monotone score with 0.5 at ``s = 0``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from magnipath.mitosis._data import MitosisError

LOSSES = ("bce", "hinge", "rare_hinge")


def bce_loss(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy of ``sigmoid(scores)`` against 0/1 ``labels``."""
    return F.binary_cross_entropy_with_logits(scores, labels.float())


def hinge_loss(scores: torch.Tensor, labels: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """Mean ``max(0, margin - t * s)`` with ``t = 2 * labels - 1``."""
    t = 2.0 * labels.float() - 1.0
    return torch.clamp(margin - t * scores, min=0).mean()


def rare_hinge_loss(scores: torch.Tensor, labels: torch.Tensor, a: float = 2.0,
                    margin: float = 1.0) -> torch.Tensor:
    """Mean ``max(0, margin - t * s) * exp(a * y)``: positive tiles weigh ``e^a`` times more."""
    y = labels.float()
    t = 2.0 * y - 1.0
    return (torch.clamp(margin - t * scores, min=0) * torch.exp(a * y)).mean()


def make_loss(name: str, *, rare_a: float = 2.0):
    """The loss function ``(scores, labels) -> scalar`` called ``name`` (:data:`LOSSES`)."""
    if name == "bce":
        return bce_loss
    if name == "hinge":
        return hinge_loss
    if name == "rare_hinge":
        return lambda s, y: rare_hinge_loss(s, y, rare_a)
    raise MitosisError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}.")
