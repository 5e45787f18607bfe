"""Tile-level scores of a mitosis classifier: accuracy, precision, recall, F1 (Pearce)."""

from __future__ import annotations

import math

import numpy as np


def binary_metrics(probabilities: np.ndarray, labels: np.ndarray,
                   threshold: float = 0.5) -> dict:
    """Accuracy, precision, recall and F1 of tiles called positive when ``p > threshold``.

    Returns
    -------
    dict
        ``accuracy``, ``precision`` (NaN when nothing is called positive),
        ``recall`` (NaN without positive tiles), ``f1`` (0 when there are
        positives but no true positive; NaN without any positive, called or
        true), and the counts ``tp``, ``fp``, ``fn``, ``tn``, ``n``.
    """
    p = np.asarray(probabilities, dtype=np.float64) > threshold
    y = np.asarray(labels).astype(bool)
    tp = int(np.sum(p & y))
    fp = int(np.sum(p & ~y))
    fn = int(np.sum(~p & y))
    tn = int(np.sum(~p & ~y))
    n = tp + fp + fn + tn
    prec = tp / (tp + fp) if tp + fp else math.nan
    rec = tp / (tp + fn) if tp + fn else math.nan
    f1 = 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else math.nan
    return {"accuracy": (tp + tn) / n if n else math.nan, "precision": prec, "recall": rec,
            "f1": f1, "tp": tp, "fp": fp, "fn": fn, "tn": tn, "n": n}


def point_hits(points_xy: np.ndarray, boxes: np.ndarray, positive: np.ndarray) -> dict:
    """How many mitosis points lie in a tile called positive (point-level recall).

    Parameters
    ----------
    points_xy : numpy.ndarray
        ``(K, 2)`` level-0 ``(x, y)``.
    boxes : numpy.ndarray
        ``(N, 4)`` level-0 tile boxes.
    positive : numpy.ndarray
        ``(N,)`` bool, the tiles called positive.

    Returns
    -------
    dict
        ``points``, ``points_found`` (inside at least one positive tile),
        ``point_recall``.
    """
    pts = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)[np.asarray(positive, bool)]
    if len(pts) == 0:
        return {"points": 0, "points_found": 0, "point_recall": math.nan}
    inside = ((pts[:, None, 0] >= b[None, :, 0]) & (pts[:, None, 0] < b[None, :, 0] + b[None, :, 2])
              & (pts[:, None, 1] >= b[None, :, 1])
              & (pts[:, None, 1] < b[None, :, 1] + b[None, :, 3]))
    found = int(inside.any(axis=1).sum()) if len(b) else 0
    return {"points": len(pts), "points_found": found, "point_recall": found / len(pts)}
