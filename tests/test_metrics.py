"""Confusion-matrix metrics: hand-computed examples and scikit-learn on random data."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from sklearn import metrics as skm

from magnipath.metrics import PER_CLASS_METRICS, ConfusionMatrix, MetricsError

IGN = 255


def _hand_example() -> ConfusionMatrix:
    # truth  0 0 1 1 2 | ignored    prediction 0 1 1 1 0 | 2
    truth = np.array([[0, 0, 1], [1, 2, IGN]], dtype=np.uint8)
    pred = np.array([[0, 1, 1], [1, 0, 2]], dtype=np.uint8)
    cm = ConfusionMatrix(4, ignore_index=IGN)  # class 3 never occurs
    cm.update(pred, truth)
    return cm


def test_hand_computed():
    cm = _hand_example()
    assert cm.matrix.tolist() == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    assert cm.total == 5
    # class 0: TP 1, FP 1, FN 1, TN 2; class 1: TP 2, FP 1, FN 0, TN 2; class 2: TP 0, FN 1
    np.testing.assert_allclose(cm.iou()[:3], [1 / 3, 2 / 3, 0.0])
    np.testing.assert_allclose(cm.dice()[:3], [0.5, 0.8, 0.0])
    np.testing.assert_allclose(cm.precision()[:2], [0.5, 2 / 3])
    np.testing.assert_allclose(cm.recall()[:3], [0.5, 1.0, 0.0])
    np.testing.assert_allclose(cm.specificity()[:3], [2 / 3, 2 / 3, 1.0])
    np.testing.assert_allclose(cm.accuracy_per_class()[:3], [0.6, 0.8, 0.8])
    np.testing.assert_allclose(
        cm.mcc_per_class()[:3],
        [(2 - 1) / math.sqrt(2 * 2 * 3 * 3), 4 / math.sqrt(3 * 2 * 3 * 2), 0.0],
    )
    assert math.isnan(cm.precision()[2])  # class 2 never predicted
    for values in (cm.iou(), cm.dice(), cm.precision(), cm.recall(), cm.mcc_per_class()):
        assert math.isnan(values[3])  # class 3 absent from truth and prediction
    assert cm.accuracy() == 0.6
    assert math.isclose(cm.mean_iou(), (1 / 3 + 2 / 3 + 0) / 3)  # NaN class skipped
    # kappa: po = 3/5, pe = (2*2 + 2*3 + 1*0) / 25 = 10/25
    assert math.isclose(cm.kappa(), (0.6 - 0.4) / 0.6)


def test_summary_is_json_ready():
    cm = _hand_example()
    names = ["tumor", "stroma", "necrosis", "fat"]
    summary = cm.summary(names)
    assert list(summary["per_class"]) == names
    assert summary["per_class"]["tumor"]["support"] == 2
    assert summary["per_class"]["stroma"]["predicted"] == 3
    assert set(summary["per_class"]["fat"]) == {*PER_CLASS_METRICS, "support", "predicted"}
    assert math.isnan(summary["per_class"]["fat"]["iou"])
    assert math.isclose(summary["overall"]["mean_iou"], summary["mean"]["iou"])
    strict = cm.summary(names, nan_as_none=True)
    text = json.dumps(strict, allow_nan=False)
    assert json.loads(text)["per_class"]["fat"]["iou"] is None
    with pytest.raises(MetricsError, match="3 class names"):
        cm.summary(names[:3])


def test_empty_matrix_is_nan_not_an_error():
    cm = ConfusionMatrix(3)
    assert np.isnan(cm.iou()).all() and math.isnan(cm.mean_iou())
    assert math.isnan(cm.accuracy()) and math.isnan(cm.mcc()) and math.isnan(cm.kappa())
    cm.update(np.zeros((2, 2), int), np.full((2, 2), IGN))
    assert cm.total == 0


def test_streaming_merge_and_mask():
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 3, (4, 16, 16))
    pred = rng.integers(0, 3, (4, 16, 16))
    whole = ConfusionMatrix(3)
    whole.update(pred, truth)
    a, b = ConfusionMatrix(3), ConfusionMatrix(3)
    for i in range(4):
        (a if i % 2 else b).update(pred[i], truth[i])
    a.merge(b)
    assert np.array_equal(a.matrix, whole.matrix)
    masked = ConfusionMatrix(3)
    mask = truth[0] > 0
    masked.update(pred[0], truth[0], mask=mask)
    assert masked.total == int(mask.sum())
    a.reset()
    assert a.total == 0
    with pytest.raises(MetricsError, match="merge"):
        a.merge(ConfusionMatrix(4))


def test_bad_input():
    cm = ConfusionMatrix(3)
    with pytest.raises(MetricsError, match="shape"):
        cm.update(np.zeros((2, 2), int), np.zeros((2, 3), int))
    with pytest.raises(MetricsError, match=r"label holds values \[5\]"):
        cm.update(np.zeros((1, 2), int), np.array([[0, 5]]))
    with pytest.raises(MetricsError, match=r"prediction holds values \[-1\]"):
        cm.update(np.array([[0, -1]]), np.array([[0, 1]]))
    with pytest.raises(MetricsError, match="integer"):
        cm.update(np.zeros((2, 2)), np.zeros((2, 2), int))
    with pytest.raises(MetricsError, match="Unknown metric"):
        cm.mean("auc")


@pytest.mark.parametrize("seed", range(5))
def test_against_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    n = 5
    # skewed, some classes rare or absent, ~10% unlabelled
    truth = rng.choice(n, size=(3, 40, 40), p=[0.5, 0.3, 0.15, 0.05, 0.0]).astype(np.uint8)
    pred = np.where(rng.random(truth.shape) < 0.6, truth, rng.integers(0, n - 1, truth.shape))
    truth[rng.random(truth.shape) < 0.1] = IGN
    cm = ConfusionMatrix(n, ignore_index=IGN)
    for i in range(3):
        cm.update(pred[i], truth[i])
    keep = truth != IGN
    t, p = truth[keep].astype(int), pred[keep].astype(int)
    labels = list(range(n))
    nan = np.nan
    np.testing.assert_array_equal(cm.matrix, skm.confusion_matrix(t, p, labels=labels))
    kw = {"labels": labels, "average": None, "zero_division": nan}
    present = (cm.matrix.sum(0) + cm.matrix.sum(1)) > 0
    assert not present[4] and np.isnan(cm.iou()[4])  # class 4 absent: NaN, not 0
    jac = skm.jaccard_score(t, p, labels=labels, average=None, zero_division=0)
    np.testing.assert_allclose(cm.iou()[present], jac[present])
    np.testing.assert_allclose(cm.dice(), skm.f1_score(t, p, **kw))
    np.testing.assert_allclose(cm.precision(), skm.precision_score(t, p, **kw))
    np.testing.assert_allclose(cm.recall(), skm.recall_score(t, p, **kw))
    assert math.isclose(cm.mcc(), skm.matthews_corrcoef(t, p), rel_tol=1e-9)
    assert math.isclose(cm.kappa(), skm.cohen_kappa_score(t, p), rel_tol=1e-9)
    assert math.isclose(cm.accuracy(), skm.accuracy_score(t, p), rel_tol=1e-12)
    for c in labels:
        tb, pb = t == c, p == c
        spec = skm.recall_score(~tb, ~pb, zero_division=nan)
        np.testing.assert_allclose(cm.specificity()[c], spec)
        np.testing.assert_allclose(cm.accuracy_per_class()[c], skm.accuracy_score(tb, pb))
        if tb.any() or pb.any():
            np.testing.assert_allclose(cm.mcc_per_class()[c], skm.matthews_corrcoef(tb, pb))
        else:
            assert math.isnan(cm.mcc_per_class()[c])
    assert math.isclose(cm.mean_iou(), float(jac[present].mean()))


def test_metrics_do_not_import_torch():
    code = "import sys, magnipath.metrics; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
