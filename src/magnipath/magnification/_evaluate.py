"""Evaluation as in Otálora et al.'s Table 2: Cohen's kappa, F1 and confusion matrices."""

from __future__ import annotations

import os

import numpy as np

from magnipath.magnification._core import MAGNIFICATIONS, MagnificationError, class_index
from magnipath.magnification._data import MagDataset, open_dataset
from magnipath.magnification._predict import MagnificationModel, load_model, predict_patches
from magnipath.progress import CancelCallback, ProgressCallback

METHODS = ("direct", "area", "fusion", "baseline")


def class_metrics(true_mag: np.ndarray, pred_mag: np.ndarray,
                  classes: tuple[float, ...] = MAGNIFICATIONS) -> dict:
    """Kappa, F1 (macro and support-weighted), accuracy and confusion matrix of class labels.

    ``pred_mag`` values that are NaN (no estimate possible) are left out of the
    confusion matrix, kappa and F1, counted in ``n_undetermined``, and count as
    wrong in ``accuracy`` (taken over all patches).
    """
    from magnipath.metrics import ConfusionMatrix

    t = np.asarray(true_mag, dtype=np.float64)
    p = np.asarray(pred_mag, dtype=np.float64)
    ok = np.isfinite(p)
    cm = ConfusionMatrix(len(classes))
    if ok.any():
        cm.update(class_index(p[ok], classes), class_index(t[ok], classes))
    # ConfusionMatrix.update(pred, target): rows are truth, columns predictions
    f1 = cm.f1()
    support = cm.matrix.sum(1)
    present = support > 0
    f1_weighted = float(np.nansum(f1[present] * support[present]) / max(support.sum(), 1))
    return {"kappa": cm.kappa(), "f1_macro": float(np.nanmean(f1[present])) if present.any()
            else float("nan"), "f1_weighted": f1_weighted,
            "accuracy": float(np.trace(cm.matrix) / max(len(t), 1)),
            "n": len(t), "n_undetermined": int((~ok).sum()),
            "classes": [float(c) for c in classes], "confusion_matrix": cm.matrix.tolist()}


def evaluate(model: str | os.PathLike | MagnificationModel | None,
             dataset: str | os.PathLike | MagDataset, *, split: str = "test",
             alpha: float | None = None, device: str = "cpu", amp: bool = False,
             tta: bool = True, progress: ProgressCallback | None = None,
             cancel: CancelCallback | None = None) -> dict:
    """Score direct, area, fusion and baseline estimates on one split of a dataset.

    Parameters
    ----------
    model : path or MagnificationModel or None
        Without a model only the baseline (default calibration table) is scored.
    dataset : path or MagDataset
    split : str
        ``"test"`` (held-out slides), ``"val"`` or ``"train"``.
    alpha : float, optional
        Fusion weight (default: the model's).
    device : str
        Torch device when ``model`` is a path.
    amp : bool
        Mixed-precision prediction when ``model`` is a path (see :func:`load_model`).
    tta : bool
        Average over the 8 rotations and mirror images of each patch (see
        :func:`predict_patches`).

    Returns
    -------
    dict
        Per method: ``kappa``, ``f1_macro``, ``f1_weighted``, ``accuracy``,
        ``confusion_matrix`` (rows: true class, columns: predicted, in the order of
        ``classes``); plus ``mae_magnification`` of the continuous direct/fusion
        estimates and ``mae_area_px`` of the area regressor.
    """
    ds = dataset if isinstance(dataset, MagDataset) else open_dataset(dataset)
    if isinstance(model, str | os.PathLike):
        model = load_model(model, device=device, amp=amp)
    idx = ds.indices(split)
    if len(idx) == 0:
        raise MagnificationError(f"{ds.path}: the dataset has no {split!r} patches.")
    pred = predict_patches(np.asarray(ds.images[idx]), model, alpha=alpha, tta=tta,
                           progress=progress, cancel=cancel)
    truth = ds.magnification[idx]
    out: dict = {"split": split, "n": len(idx), "dataset": str(ds.path),
                 "tta": bool(tta and model is not None)}
    for m in METHODS:
        if f"{m}_class" in pred:
            out[m] = class_metrics(truth, pred[f"{m}_class"])
    if "direct" in pred:
        out["direct"]["mae_magnification"] = float(np.mean(np.abs(pred["direct"] - truth)))
        out["fusion"]["mae_magnification"] = float(np.mean(np.abs(pred["fusion"] - truth)))
        ok = np.isfinite(ds.area[idx])
        out["area"]["mae_area_px"] = float(np.mean(np.abs(pred["area_px"][ok] -
                                                          ds.area[idx][ok])))
    if "baseline_area_px" in pred:
        out["baseline"]["undetermined"] = int(np.isnan(pred["baseline_area_px"]).sum())
    return out
