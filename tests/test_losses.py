"""Losses against hand-computed values on 2x2 images; the ignore index is ignored."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from magnipath._errors import ModelError
from magnipath.losses import (
    CombinedLoss,
    DiceLoss,
    WeightedCrossEntropy,
    build_loss,
    class_weights_from_counts,
    inverse_sqrt_weights,
)

IGN = 255


def _two_class_logits() -> torch.Tensor:
    """(1, 2, 2, 2) logits with p(class 1) = 3/4 everywhere, except the pixel (1, 0)."""
    logits = torch.zeros(1, 2, 2, 2)
    logits[0, 1] = math.log(3.0)
    logits[0, :, 1, 0] = torch.tensor([7.0, -3.0])  # the ignored pixel: anything
    return logits


TARGET = torch.tensor([[[0, 1], [IGN, 1]]])


def test_class_weights():
    assert class_weights_from_counts([1, 3]).tolist() == [0.75, 0.25]
    w = class_weights_from_counts(np.array([0, 5, 15]))
    assert w.dtype == torch.float32 and w.tolist() == [1.0, 0.75, 0.25]
    assert math.isclose(float(w.sum()), 2.0)  # C - 1
    for bad in ([0, 0], [-1, 2], [[1, 2]]):
        with pytest.raises(ModelError):
            class_weights_from_counts(bad)


def test_inverse_sqrt_weights():
    # counts 100, 400, 0, 10000: w ~ 1/10, 1/20, -, 1/100, scaled to a mean pixel weight of 1
    w = inverse_sqrt_weights([100, 400, 0, 10_000])
    raw = np.array([1 / 10, 1 / 20, 1 / 100])
    raw /= (np.array([100, 400, 10_000]) * raw).sum() / 10_500
    assert w.dtype == torch.float32
    np.testing.assert_allclose(w.numpy()[[0, 1, 3]], raw, rtol=1e-6)
    assert float(w[2]) == 1.0  # a class without pixels
    assert float(w[0]) / float(w[3]) == pytest.approx(10.0)  # sqrt of the rarity
    # a class 10^6 times rarer than the rest is capped
    assert float(inverse_sqrt_weights([1, 10**8]).max()) == pytest.approx(10.0)
    iwce = build_loss("iwce+dice", n_classes=4, class_counts=[100, 400, 0, 10_000])
    assert torch.equal(iwce.losses[0].weights, w)
    for bad in ([0, 0], [-1, 2]):
        with pytest.raises(ModelError):
            inverse_sqrt_weights(bad)


def test_weighted_cross_entropy_by_hand():
    loss = WeightedCrossEntropy([0.75, 0.25], ignore_index=IGN)(_two_class_logits(), TARGET)
    expected = (0.75 * math.log(4) + 2 * 0.25 * math.log(4 / 3)) / (0.75 + 2 * 0.25)
    assert math.isclose(float(loss), expected, rel_tol=1e-6)
    plain = WeightedCrossEntropy(None, ignore_index=IGN)(_two_class_logits(), TARGET)
    assert math.isclose(float(plain), (math.log(4) + 2 * math.log(4 / 3)) / 3, rel_tol=1e-6)


@pytest.mark.parametrize(
    "loss",
    [
        WeightedCrossEntropy([0.3, 0.7]),
        DiceLoss("binary"),
        DiceLoss("multiclass"),
        CombinedLoss([WeightedCrossEntropy(), DiceLoss("binary")], [1.0, 2.0]),
    ],
)
def test_ignored_pixels_contribute_nothing(loss):
    logits = _two_class_logits().requires_grad_()
    value = loss(logits, TARGET)
    value.backward()
    assert float(logits.grad[0, :, 1, 0].abs().sum()) == 0.0
    other = _two_class_logits()
    other[0, :, 1, 0] = torch.tensor([-5.0, 9.0])
    assert float(loss(other, TARGET)) == value.item()
    # and a labelled pixel does matter
    other[0, :, 0, 0] = torch.tensor([-5.0, 9.0])
    assert float(loss(other, TARGET)) != value.item()


def test_all_ignored_batch_gives_zero_with_a_graph():
    logits = torch.randn(1, 2, 2, 2, requires_grad=True)
    target = torch.full((1, 2, 2), IGN)
    for loss in (WeightedCrossEntropy([0.5, 0.5]), DiceLoss("binary")):
        value = loss(logits, target)
        assert math.isfinite(value.item())
        value.backward()
    assert WeightedCrossEntropy([0.5, 0.5])(logits, target).item() == 0.0


def test_binary_dice_by_hand():
    target = torch.tensor([[[1, 0], [IGN, 1]]])
    # p = 0.5 on the 3 labelled pixels: sum p*y = 1, sum p = 1.5, sum y = 2
    expected = 1 - (2 * 1 + 1) / (1.5 + 2 + 1)
    one = DiceLoss("binary", ignore_index=IGN)(torch.zeros(1, 1, 2, 2), target)
    two = DiceLoss("binary", ignore_index=IGN)(torch.zeros(1, 2, 2, 2), target)
    assert math.isclose(float(one), expected, rel_tol=1e-6)
    assert math.isclose(float(two), expected, rel_tol=1e-6)
    no_smooth = DiceLoss("binary", smooth=0.0)(torch.zeros(1, 1, 2, 2), target)
    assert math.isclose(float(no_smooth), 1 - 2 / 3.5, rel_tol=1e-6)
    with pytest.raises(ModelError, match="1 or 2"):
        DiceLoss("binary")(torch.zeros(1, 3, 2, 2), target)


def test_multiclass_dice_by_hand():
    target = torch.tensor([[[0, 1], [2, IGN]]])
    # p = 1/3 everywhere; each class: inter 1/3, sum p = 1, sum y = 1
    dice = (2 / 3 + 1) / (2 + 1)
    value = DiceLoss("multiclass")(torch.zeros(1, 3, 2, 2), target)
    assert math.isclose(float(value), 1 - dice, rel_tol=1e-6)
    perfect = torch.full((1, 3, 2, 2), -20.0)
    for cls, (y, x) in enumerate([(0, 0), (0, 1), (1, 0)]):
        perfect[0, cls, y, x] = 20.0
    assert float(DiceLoss("multiclass", smooth=0.0)(perfect, target)) < 1e-6


def test_bad_labels_are_refused():
    with pytest.raises(ModelError, match=r"\[3\]"):
        WeightedCrossEntropy()(torch.zeros(1, 2, 2, 2), torch.tensor([[[0, 3], [1, 1]]]))
    with pytest.raises(ModelError, match="target"):
        WeightedCrossEntropy()(torch.zeros(1, 2, 2, 2), torch.zeros(1, 3, 3, dtype=torch.long))
    with pytest.raises(ModelError, match="3 class weights"):
        WeightedCrossEntropy([1, 1, 1])(torch.zeros(1, 2, 2, 2), TARGET)


def test_build_loss():
    counts = [10, 30]
    wce = build_loss("wce", n_classes=2, class_counts=counts, ignore_index=IGN)
    assert wce.weights.tolist() == [0.75, 0.25]
    logits = torch.randn(2, 2, 2, 2)
    target = torch.tensor([[[0, 1], [IGN, 1]], [[1, 1], [0, IGN]]])
    both = build_loss("wce+dice", n_classes=2, class_counts=counts)
    dice = build_loss("dice", n_classes=2)
    assert isinstance(dice, DiceLoss) and dice.mode == "binary"
    assert build_loss("dice", n_classes=4).mode == "multiclass"
    assert math.isclose(
        float(both(logits, target)),
        float(wce(logits, target) + dice(logits, target)),
        rel_tol=1e-6,
    )
    assert build_loss("ce", n_classes=3).weights is None
    with pytest.raises(ModelError, match="class_counts"):
        build_loss("wce", n_classes=2)
    with pytest.raises(ModelError, match="3 entries"):
        build_loss("wce", n_classes=2, class_counts=[1, 2, 3])
    with pytest.raises(ModelError, match="wce\\+dice"):
        build_loss("focal", n_classes=2)
    with pytest.raises(ModelError, match="2 output classes"):
        build_loss("ce", n_classes=1)


def test_losses_are_float32_under_autocast():
    logits = torch.randn(1, 3, 4, 4).bfloat16()
    target = torch.randint(0, 3, (1, 4, 4))
    for name in ("ce", "dice"):
        assert build_loss(name, n_classes=3)(logits, target).dtype == torch.float32
