"""Learning-rate schedules and class-balanced sampling (fast convergence in few steps).

Both are functions of the run's seed, epoch and step only, so training stays
deterministic and a resumed run follows exactly the curve of an uninterrupted one.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import Sampler

WARMUP_START = 1.0 / 25.0
"""First learning rate of the warm-up, as a fraction of the peak ``lr``."""


def lr_factor(step: int, total: int, *, schedule: str, warmup: float = 0.0,
              final: float = 0.01) -> float:
    """Learning rate of optimisation step ``step`` (0-based) as a fraction of the peak.

    Parameters
    ----------
    step, total : int
        Step index and number of steps of the whole run (``epochs x`` steps per epoch).
    schedule : {"constant", "cosine"}
        ``constant``: 1. ``cosine``: linear warm-up from :data:`WARMUP_START` to 1
        over the first ``warmup`` share of the steps, then a half cosine from 1 to
        ``final`` at the last step.
    warmup : float
        Share of the steps spent warming up (0-1).
    final : float
        Last factor of the cosine decay.
    """
    if schedule == "constant" or total <= 1:
        return 1.0
    n_warm = round(warmup * total)
    if step < n_warm:
        return WARMUP_START + (1.0 - WARMUP_START) * step / max(n_warm, 1)
    t = min(1.0, (step - n_warm) / max(total - n_warm - 1, 1))
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * t))


def presence(class_counts: np.ndarray, min_fraction: float) -> np.ndarray:
    """bool ``(n_items, n_classes)``: class ``c`` holds >= ``min_fraction`` of the
    item's labelled pixels (and at least one pixel)."""
    counts = np.asarray(class_counts, dtype=np.float64)
    total = counts.sum(axis=1, keepdims=True)
    return (counts > 0) & (counts >= min_fraction * np.maximum(total, 1.0))


def balanced_weights(class_counts: np.ndarray, min_fraction: float = 0.01) -> np.ndarray:
    """Sampling probability of each item so that every class present anywhere is
    equally likely to be present in a drawn item.

    ``p_i = (1 / C') * sum_c [i holds c] / n_c`` over the ``C'`` classes held by at
    least one item (``n_c`` items hold class ``c``). Items holding no labelled pixel
    get probability 0 (they teach nothing). Returns float64 ``(n_items,)`` summing to 1.
    """
    pres = presence(class_counts, min_fraction)
    n_c = pres.sum(axis=0)
    used = n_c > 0
    if not used.any():
        return np.full(len(pres), 1.0 / max(len(pres), 1))
    w = (pres[:, used] / n_c[used]).sum(axis=1) / used.sum()
    return w / w.sum()


def expected_counts(class_counts: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Expected labelled pixels per class of one item drawn with ``weights`` (float64 ``(C,)``)."""
    return (np.asarray(weights, dtype=np.float64)[:, None]
            * np.asarray(class_counts, dtype=np.float64)).sum(axis=0)


class BalancedEpochSampler(Sampler):
    """Yields ``(epoch, item)`` keys: ``n_draws`` items drawn with replacement by ``weights``.

    The draw of epoch ``e`` is seeded by ``(seed, e)`` only (same keys as
    :class:`~magnipath.train.EpochSampler`, so augmentation stays per-epoch seeded).

    Parameters
    ----------
    weights : ndarray
        Probability of each item (:func:`balanced_weights`).
    seed : int
        Run seed.
    n_draws : int
        Items per epoch.
    """

    def __init__(self, weights: np.ndarray, seed: int, n_draws: int) -> None:
        self.weights = torch.as_tensor(np.asarray(weights, dtype=np.float64))
        self.seed = int(seed)
        self.n_draws = int(n_draws)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose draw the next iteration yields."""
        self.epoch = int(epoch)

    def order(self) -> list[int]:
        """Item positions of the current epoch."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + 500_009 + self.epoch)
        return torch.multinomial(self.weights, self.n_draws, replacement=True,
                                 generator=g).tolist()

    def __iter__(self):
        return iter([(self.epoch, i) for i in self.order()])

    def __len__(self) -> int:
        return self.n_draws
