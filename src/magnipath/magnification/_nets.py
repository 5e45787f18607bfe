"""Regression networks of Otálora et al.: DenseNet-121 (random init) and ShallowNet.

Both take ``(B, 3, 224, 224)`` float inputs (uint8 RGB / 255, then ImageNet
mean/std, see :func:`to_tensor`) and return ``(B,)`` raw regression outputs in
the target's normalised units (the training code divides targets by a scale).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from magnipath.magnification._core import MagnificationError

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Sequence

ARCHS = ("shallownet", "densenet121")
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


class ShallowNet(nn.Module):
    """Four blocks of 3x3 conv + batch norm + ReLU + 2x2 max pool + dropout 0.25; linear out.

    Parameters
    ----------
    widths : sequence of int
        Output channels of the four blocks.
    dropout : float
        Dropout probability after every block (paper: 0.25).
    patch : int
        Input side in pixels (224).
    head : {"gap", "flatten"}
        The dense output layer reads the globally averaged feature map
        (``widths[-1]`` values, default) or the flattened map
        (``widths[-1] * (patch / 16) ** 2`` values).
    """

    def __init__(self, widths: Sequence[int] = (32, 64, 128, 128), dropout: float = 0.25,
                 patch: int = 224, head: str = "gap") -> None:
        super().__init__()
        if len(widths) != 4 or patch % 16:
            raise MagnificationError("ShallowNet needs four block widths and a patch side "
                                     "divisible by 16.")
        if head not in ("gap", "flatten"):
            raise MagnificationError(f"ShallowNet head {head!r}: choose gap or flatten.")
        layers: list[nn.Module] = []
        cin = 3
        for w in widths:
            # dropout after the pool: dropout before a max pool biases the maximum
            # upwards in training (rescaled survivors), so eval-mode regression
            # outputs would shrink
            layers += [nn.Conv2d(cin, int(w), 3, padding=1, bias=False), nn.BatchNorm2d(int(w)),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2), nn.Dropout(dropout)]
            cin = int(w)
        self.features = nn.Sequential(*layers)
        self.pool = head
        self.head = nn.Linear(cin if head == "gap" else cin * (patch // 16) ** 2, 1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The ``(B, F)`` features the output layer reads."""
        f = self.features(x)
        return f.mean(dim=(2, 3)) if self.pool == "gap" else torch.flatten(f, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x)).squeeze(1)


class _DenseRegressor(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        from torchvision.models import densenet121

        self.net = densenet121(weights=None, num_classes=1)

    @property
    def head(self) -> nn.Linear:
        return self.net.classifier

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The ``(B, 1024)`` pooled features torchvision's classifier reads."""
        f = torch.relu(self.net.features(x))
        return torch.flatten(nn.functional.adaptive_avg_pool2d(f, 1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x)).squeeze(1)


def fit_head(features: np.ndarray, targets: np.ndarray, ridge: float = 1e-3) -> tuple:
    """Least-squares (ridge) weights ``(w, b)`` of a linear read-out of ``features``.

    ``ridge`` is relative to the mean squared feature magnitude. Used to refit the
    output layer on eval-mode features: batch norm and dropout behave differently
    in training and evaluation, which shifts a regression output even when the
    features themselves are good.
    """
    f = np.asarray(features, dtype=np.float64)
    a = np.hstack([f, np.ones((len(f), 1))])
    gram = a.T @ a
    lam = ridge * np.trace(gram) / gram.shape[0]
    reg = lam * np.eye(gram.shape[0])
    reg[-1, -1] = 0.0  # no penalty on the bias
    sol = np.linalg.solve(gram + reg, a.T @ np.asarray(targets, dtype=np.float64))
    return sol[:-1], float(sol[-1])


def set_head(net: nn.Module, w: np.ndarray, b: float) -> None:
    """Write ``(w, b)`` from :func:`fit_head` into the network's output layer."""
    with torch.no_grad():
        net.head.weight.copy_(torch.as_tensor(w, dtype=torch.float32).view_as(net.head.weight))
        net.head.bias.fill_(float(b))


def build_net(arch: str, **kwargs) -> nn.Module:
    """A fresh (randomly initialised) regression network by name (:data:`ARCHS`)."""
    if arch == "shallownet":
        return ShallowNet(**kwargs)
    if arch == "densenet121":
        return _DenseRegressor()
    raise MagnificationError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}.")


def to_tensor(patches: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """``(B, y, x, 3)`` uint8 -> normalised float32 ``(B, 3, y, x)`` on ``device``.

    The RGB input (``to_input(..., mode="rgb")``, see :mod:`._inputs`).
    """
    from magnipath.magnification._inputs import to_input

    return to_input(patches, device, "rgb")


def regress(net: nn.Module, x: torch.Tensor, amp: torch.dtype | None = None) -> torch.Tensor:
    """``(B,)`` float32 outputs of ``net`` for the input batch ``x``.

    With ``amp`` the feature extractor runs under autocast in that dtype and the
    linear output layer in float32 on the float32-cast features: a bfloat16
    output keeps only ~3 significant digits (0.15x steps at 40x).
    """
    with torch.autocast(x.device.type, dtype=amp or torch.float32, enabled=amp is not None):
        f = net.embed(x)
    return net.head(f.float()).squeeze(1)


def dihedral_views(x: torch.Tensor) -> list[torch.Tensor]:
    """The 8 rotations (by 90°) and mirror images of an ``(B, C, y, x)`` batch, identity first."""
    views = []
    for k in range(4):
        r = torch.rot90(x, k, dims=(2, 3)) if k else x
        views += [r, torch.flip(r, dims=(3,))]
    return views


def regress_tta(net: nn.Module, x: torch.Tensor, amp: torch.dtype | None = None) -> torch.Tensor:
    """:func:`regress` averaged over the 8 dihedral views of ``x`` (test-time augmentation).

    Magnification does not change when a patch is rotated or mirrored, and the
    regressors were trained with those augmentations; averaging the outputs of the
    eight views (in the network's target space: log-magnification for ``log``
    targets) lowers the variance of the estimate at 8 times the cost.
    """
    return torch.stack([regress(net, v, amp) for v in dihedral_views(x)]).mean(0)
