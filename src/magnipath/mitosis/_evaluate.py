"""Scoring a mitosis model on slides against point ground truth."""

from __future__ import annotations

import os

import numpy as np

from magnipath.mitosis._data import MitosisSource
from magnipath.mitosis._detect import detect
from magnipath.mitosis._labels import load_points, positive_tiles, tile_probabilities
from magnipath.mitosis._metrics import binary_metrics, point_hits
from magnipath.mitosis._model import MitosisModel, load_model
from magnipath.progress import CancelCallback, ProgressCallback


def evaluate(model: MitosisModel | str | os.PathLike, sources: list[MitosisSource], *,
             threshold: float = 0.5, a: float | None = None, label_threshold: float | None = None,
             device: str = "cpu", progress: ProgressCallback | None = None,
             cancel: CancelCallback | None = None) -> dict:
    """Tile accuracy, precision, recall, F1 and point recall over whole slides (or regions).

    Every tissue tile of each slide is classified (``p > threshold``) and
    compared with its label from the points (map ``exp(-a d)`` above
    ``label_threshold``; defaults: the values the model was trained with).

    Returns
    -------
    dict
        Pooled ``tiles`` metrics (:func:`binary_metrics`), ``points`` (how many
        mitoses lie in a tile called positive) and the same per slide.
    """
    if not isinstance(model, MitosisModel):
        model = load_model(model)
    a = float(model.card["a"] if a is None else a)
    lt = float(model.card["threshold"] if label_threshold is None else label_threshold)
    all_p, all_y, per = [], [], []
    n_pts, n_found = 0, 0
    for src in sources:
        det = detect(model, src.slide, region=src.region, slide_mpp=src.mpp, device=device,
                     progress=progress, cancel=cancel)
        pts = load_points(src.points)
        y = positive_tiles(tile_probabilities(pts, det.boxes, model.tile, a), lt)
        hits = point_hits(pts, det.boxes, det.probs > threshold)
        per.append({"slide": str(src.slide), "tiles": binary_metrics(det.probs, y, threshold),
                    "points": hits})
        all_p.append(det.probs)
        all_y.append(y)
        n_pts += hits["points"]
        n_found += hits["points_found"]
    p = np.concatenate(all_p) if all_p else np.zeros(0)
    y = np.concatenate(all_y) if all_y else np.zeros(0, np.uint8)
    return {"tiles": binary_metrics(p, y, threshold),
            "points": {"points": n_pts, "points_found": n_found,
                       "point_recall": n_found / n_pts if n_pts else float("nan")},
            "threshold": threshold, "a": a, "label_threshold": lt, "per_slide": per}
