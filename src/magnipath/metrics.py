"""Segmentation metrics streamed through a confusion matrix (numpy only, no torch).

:class:`ConfusionMatrix` accumulates pixel counts ``M[t, p]`` (row = true class,
column = predicted class, the scikit-learn convention) over any number of tiles or
whole slides, skipping pixels whose truth is the ignore index. Every metric is
computed from ``M``; for class ``c`` (one-vs-rest), with ``N = sum(M)``:

- ``TP = M[c, c]``, ``FP = sum_t M[t, c] - TP``, ``FN = sum_p M[c, p] - TP``,
  ``TN = N - TP - FP - FN``;
- IoU (Jaccard) ``TP / (TP + FP + FN)``; Dice = F1 ``2TP / (2TP + FP + FN)``;
- precision ``TP / (TP + FP)``; recall (sensitivity) ``TP / (TP + FN)``;
  specificity ``TN / (TN + FP)``; accuracy ``(TP + TN) / N``;
- per-class MCC ``(TP*TN - FP*FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN))``.

Overall: accuracy ``trace(M) / N``; multi-class Matthews correlation (Gorodkin's
R_K, as scikit-learn) ``(N*trace - sum_k p_k t_k) / sqrt((N^2 - sum p_k^2)(N^2 - sum t_k^2))``
with ``t_k``/``p_k`` the true/predicted totals of class k; Cohen's kappa
``(p_o - p_e) / (1 - p_e)``, ``p_o = trace / N``, ``p_e = sum_k t_k p_k / N^2``.

Undefined values are NaN: a ratio whose denominator is 0 (e.g. IoU, Dice and
recall of a class absent from both truth and prediction; precision of a class never
predicted; recall of a class absent from the truth; everything when no pixel was
counted). MCC follows scikit-learn where its denominator is 0 but the class occurs
(0.0: a constant predictor is no better than chance); it is NaN for a class absent
from both truth and prediction. Kappa is NaN when ``p_e = 1``. Means over classes skip
NaN (NaN only if every class is NaN).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from magnipath._errors import MagnipathError

__all__ = ["PER_CLASS_METRICS", "ConfusionMatrix", "MetricsError"]

PER_CLASS_METRICS = (
    "iou",
    "dice",
    "f1",
    "precision",
    "recall",
    "specificity",
    "accuracy",
    "mcc",
)


class MetricsError(MagnipathError):
    """Predictions or labels cannot be scored (shape or class index mismatch)."""


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _nanmean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else math.nan


class ConfusionMatrix:
    """Pixel confusion matrix that streams over tiles and slides.

    Parameters
    ----------
    n_classes : int
        Number of classes; valid labels and predictions are ``0..n_classes-1``.
    ignore_index : int
        Truth value of unlabelled pixels; they are skipped.

    Examples
    --------
    >>> import numpy as np
    >>> cm = ConfusionMatrix(2)
    >>> cm.update(np.array([[0, 1], [1, 1]]), np.array([[0, 1], [0, 255]]))
    >>> cm.matrix.tolist()
    [[1, 1], [0, 1]]
    >>> cm.iou().tolist()
    [0.5, 0.5]
    """

    def __init__(self, n_classes: int, ignore_index: int = 255) -> None:
        if int(n_classes) < 1:
            raise MetricsError(f"n_classes must be >= 1, got {n_classes}.")
        self.n_classes = int(n_classes)
        self.ignore_index = int(ignore_index)
        self.matrix = np.zeros((self.n_classes, self.n_classes), dtype=np.int64)

    # -- accumulation ----------------------------------------------------------------
    def update(self, pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> None:
        """Count the pixels of one prediction against its truth.

        Parameters
        ----------
        pred : numpy.ndarray
            Integer class indices, any shape (e.g. ``(y, x)`` or ``(B, y, x)``).
        target : numpy.ndarray
            Integer truth of the same shape; ``ignore_index`` pixels are skipped.
        mask : numpy.ndarray of bool, optional
            Same shape; only True pixels are counted (e.g. a tissue mask).

        Raises
        ------
        MetricsError
            Shape mismatch, non-integer arrays, or class values out of range.
        """
        pred, target = np.asarray(pred), np.asarray(target)
        if pred.shape != target.shape:
            raise MetricsError(
                f"Prediction shape {pred.shape} differs from label shape {target.shape}."
            )
        for name, arr in (("prediction", pred), ("label", target)):
            if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
                raise MetricsError(f"The {name} must hold integer class indices, got {arr.dtype}.")
        keep = target.reshape(-1) != self.ignore_index
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != target.shape:
                raise MetricsError(f"Mask shape {mask.shape} differs from label {target.shape}.")
            keep &= mask.reshape(-1)
        t = target.reshape(-1)[keep].astype(np.int64)
        p = pred.reshape(-1)[keep].astype(np.int64)
        n = self.n_classes
        for name, arr in (("label", t), ("prediction", p)):
            if arr.size and (arr.min() < 0 or arr.max() >= n):
                bad = np.unique(arr[(arr < 0) | (arr >= n)])[:5].tolist()
                raise MetricsError(
                    f"The {name} holds values {bad} outside the classes 0..{n - 1}"
                    f" (ignore index {self.ignore_index}); check the class map."
                )
        self.matrix += np.bincount(t * n + p, minlength=n * n).reshape(n, n)

    def merge(self, other: ConfusionMatrix) -> None:
        """Add the counts of another matrix with the same classes (e.g. another slide)."""
        if other.n_classes != self.n_classes or other.ignore_index != self.ignore_index:
            raise MetricsError(
                f"Cannot merge a {other.n_classes}-class matrix (ignore {other.ignore_index}) "
                f"into a {self.n_classes}-class one (ignore {self.ignore_index})."
            )
        self.matrix += other.matrix

    def reset(self) -> None:
        """Set every count to zero."""
        self.matrix[...] = 0

    # -- counts ----------------------------------------------------------------------
    @property
    def total(self) -> int:
        """Number of pixels counted."""
        return int(self.matrix.sum())

    def _counts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        m = self.matrix.astype(np.float64)
        tp = np.diag(m)
        fp = m.sum(0) - tp
        fn = m.sum(1) - tp
        tn = m.sum() - tp - fp - fn
        return tp, fp, fn, tn

    # -- per-class metrics (arrays of shape (n_classes,)) -------------------------------
    def iou(self) -> np.ndarray:
        """Per-class IoU (Jaccard), NaN for a class absent from truth and prediction."""
        tp, fp, fn, _ = self._counts()
        return _ratio(tp, tp + fp + fn)

    def dice(self) -> np.ndarray:
        """Per-class Dice = F1, NaN for a class absent from truth and prediction."""
        tp, fp, fn, _ = self._counts()
        return _ratio(2 * tp, 2 * tp + fp + fn)

    f1 = dice

    def precision(self) -> np.ndarray:
        """Per-class precision, NaN for a class never predicted."""
        tp, fp, _, _ = self._counts()
        return _ratio(tp, tp + fp)

    def recall(self) -> np.ndarray:
        """Per-class recall (sensitivity), NaN for a class absent from the truth."""
        tp, _, fn, _ = self._counts()
        return _ratio(tp, tp + fn)

    def specificity(self) -> np.ndarray:
        """Per-class specificity ``TN / (TN + FP)``, NaN when every pixel is that class."""
        _, fp, _, tn = self._counts()
        return _ratio(tn, tn + fp)

    def accuracy_per_class(self) -> np.ndarray:
        """Per-class one-vs-rest accuracy ``(TP + TN) / N``."""
        tp, _, _, tn = self._counts()
        return _ratio(tp + tn, np.full_like(tp, self.total))

    def mcc_per_class(self) -> np.ndarray:
        """Per-class (one-vs-rest) Matthews correlation; see the module notes."""
        tp, fp, fn, tn = self._counts()
        den = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
        out = _ratio(tp * tn - fp * fn, den)
        out[np.isnan(out)] = 0.0
        out[(tp + fp + fn) == 0] = np.nan
        return out

    # -- overall metrics ---------------------------------------------------------------
    def accuracy(self) -> float:
        """Overall pixel accuracy ``trace / N``."""
        return float(_ratio(np.trace(self.matrix), self.total))

    def mcc(self) -> float:
        """Multi-class Matthews correlation (scikit-learn's definition)."""
        m = self.matrix.astype(np.float64)
        n, t, p = m.sum(), m.sum(1), m.sum(0)
        if n == 0:
            return math.nan
        cov_tp = n * np.trace(m) - float(t @ p)
        den = math.sqrt((n * n - float(p @ p)) * (n * n - float(t @ t)))
        return 0.0 if den == 0 else float(cov_tp / den)

    def kappa(self) -> float:
        """Cohen's kappa between truth and prediction."""
        m = self.matrix.astype(np.float64)
        n = m.sum()
        if n == 0:
            return math.nan
        po = np.trace(m) / n
        pe = float(m.sum(1) @ m.sum(0)) / (n * n)
        return math.nan if pe == 1 else float((po - pe) / (1 - pe))

    def mean(self, metric: str) -> float:
        """Mean over classes of a per-class metric (:data:`PER_CLASS_METRICS`), NaN skipped."""
        return _nanmean(self._per_class(metric))

    def mean_iou(self) -> float:
        """Mean IoU over classes, skipping classes absent from truth and prediction."""
        return self.mean("iou")

    def _per_class(self, metric: str) -> np.ndarray:
        funcs = {
            "iou": self.iou,
            "dice": self.dice,
            "f1": self.dice,
            "precision": self.precision,
            "recall": self.recall,
            "specificity": self.specificity,
            "accuracy": self.accuracy_per_class,
            "mcc": self.mcc_per_class,
        }
        if metric not in funcs:
            raise MetricsError(f"Unknown metric '{metric}'; choose one of {PER_CLASS_METRICS}.")
        return funcs[metric]()

    def summary(
        self, class_names: Sequence[str] | None = None, *, nan_as_none: bool = False
    ) -> dict[str, Any]:
        """Every metric as a JSON-ready dict.

        Parameters
        ----------
        class_names : sequence of str, optional
            One name per class index; default ``"0"``, ``"1"``, ...
        nan_as_none : bool
            Write undefined values as None (strict JSON ``null``) instead of NaN.

        Returns
        -------
        dict
            ``n_classes``, ``ignore_index``, ``n_pixels``, ``class_names``,
            ``confusion_matrix`` (rows truth, columns prediction), ``per_class``
            (name -> metric -> value, plus ``support`` true pixels and ``predicted``
            pixels), ``mean`` (metric -> mean over classes), ``overall`` (``accuracy``,
            ``mcc``, ``kappa``, ``mean_iou``).
        """
        names = (
            [str(i) for i in range(self.n_classes)] if class_names is None else list(class_names)
        )
        if len(names) != self.n_classes:
            raise MetricsError(f"{len(names)} class names for {self.n_classes} classes.")

        def val(x: float) -> float | None:
            x = float(x)
            return None if nan_as_none and math.isnan(x) else x

        per = {m: self._per_class(m) for m in PER_CLASS_METRICS}
        support, predicted = self.matrix.sum(1), self.matrix.sum(0)
        per_class = {
            name: {
                **{m: val(per[m][i]) for m in PER_CLASS_METRICS},
                "support": int(support[i]),
                "predicted": int(predicted[i]),
            }
            for i, name in enumerate(names)
        }
        return {
            "n_classes": self.n_classes,
            "ignore_index": self.ignore_index,
            "n_pixels": self.total,
            "class_names": names,
            "confusion_matrix": self.matrix.tolist(),
            "per_class": per_class,
            "mean": {m: val(_nanmean(per[m])) for m in PER_CLASS_METRICS},
            "overall": {
                "accuracy": val(self.accuracy()),
                "mcc": val(self.mcc()),
                "kappa": val(self.kappa()),
                "mean_iou": val(_nanmean(per["iou"])),
            },
        }
