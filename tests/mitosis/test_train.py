"""Negative feed, balanced sampling, distortions, losses, the network and short training runs."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from magnipath.mitosis import (
    MitosisError,
    MitosisNet,
    MitosisTrainConfig,
    balanced_indices,
    bce_loss,
    binary_metrics,
    distort,
    hinge_loss,
    load_model,
    negative_feed,
    prepare_inputs,
    rare_hinge_loss,
    train,
)

TINY = MitosisTrainConfig(filters=(8, 16), affine=32, epochs=2, lr=1e-3, batch_size=32,
                          device="cpu")


def test_negative_feed_picks_every_misclassified_tile_plus_the_sample():
    labels = np.array([1, 1, 0, 0, 0, 0, 0, 0, 1, 0])
    probs = np.array([0.9, 0.2, 0.7, 0.1, 0.3, 0.6, 0.4, 0.0, 0.8, 0.5])
    wrong = {1, 2, 5}  # a missed positive and two false positives (0.5 is not > 0.5)
    right = set(range(10)) - wrong
    for n in (0, 3, 7, 50):
        idx = negative_feed(probs, labels, n, np.random.default_rng(n))
        got = set(idx.tolist())
        assert len(idx) == len(got) == 3 + min(n, 7)
        assert wrong <= got and got - wrong <= right
        assert np.all(np.diff(idx) > 0)
    a = negative_feed(probs, labels, 3, np.random.default_rng(1))
    b = negative_feed(probs, labels, 3, np.random.default_rng(1))
    assert np.array_equal(a, b)
    # 0/1 predictions work too
    assert set(negative_feed(probs > 0.5, labels, 0, np.random.default_rng(0))) == wrong


def test_negative_feed_checks_shapes():
    with pytest.raises(MitosisError):
        negative_feed(np.zeros(3), np.zeros(4), 1, np.random.default_rng(0))


def test_balanced_sampling_is_one_third_positive():
    labels = np.zeros(1000, np.uint8)
    labels[:50] = 1
    idx = balanced_indices(labels, np.random.default_rng(0))
    assert len(idx) == 150 and labels[idx].sum() == 50 and len(set(idx.tolist())) == 150
    idx = balanced_indices(labels, np.random.default_rng(0), n_negatives=400)
    assert (labels[idx] == 0).sum() == 400 and labels[idx].sum() == 200  # positives repeated
    with pytest.raises(MitosisError, match="no positive"):
        balanced_indices(np.zeros(5), np.random.default_rng(0))


def test_distort_rotates_by_quarter_turns_and_adds_noise():
    rng = np.random.default_rng(0)
    t = rng.integers(0, 256, (6, 8, 8, 3)).astype(np.uint8)
    out = distort(t, np.random.default_rng(1), noise_sigma=0.0)
    for a, b in zip(t, out, strict=True):
        assert any(np.array_equal(np.rot90(a, k), b) for k in range(4))
    flat = np.full((200, 16, 16, 3), 128, np.uint8)
    noisy = distort(flat, np.random.default_rng(2), noise_sigma=8.0).astype(float)
    assert abs(noisy.mean() - 128) < 0.2 and abs(noisy.std() - 8.0) < 0.2


def test_losses_hand_values():
    s = torch.tensor([2.0, -1.0, 0.5, -3.0])
    y = torch.tensor([1, 1, 0, 0])
    bce = -(math.log(1 / (1 + math.exp(-2))) + math.log(1 / (1 + math.exp(1)))
            + math.log(1 - 1 / (1 + math.exp(-0.5))) + math.log(1 - 1 / (1 + math.exp(3)))) / 4
    assert bce_loss(s, y).item() == pytest.approx(bce, rel=1e-6)
    # hinge: max(0, 1 - t s) = [0, 2, 1.5, 0]
    assert hinge_loss(s, y).item() == pytest.approx(3.5 / 4)
    # rare hinge: positives x e^a
    a = 2.0
    assert rare_hinge_loss(s, y, a).item() == pytest.approx((2 * math.exp(a) + 1.5) / 4,
                                                            rel=1e-6)


def test_network_blocks_and_six_channel_inputs():
    net = MitosisNet(6, 64, (8, 16), 32)
    kinds = [type(m) for m in net.features]
    block = [nn.Conv2d, nn.BatchNorm2d, nn.ReLU] * 2 + [nn.MaxPool2d]
    assert kinds == block * 2
    assert [type(m) for m in net.dense] == [nn.Flatten, nn.Linear, nn.ReLU, nn.Dropout]
    x = prepare_inputs(np.full((3, 64, 64, 3), 200, np.uint8), "rgb+he")
    assert x.shape == (3, 6, 64, 64) and x.dtype == np.float32
    assert net(torch.from_numpy(x)).shape == (3,)
    with pytest.raises(MitosisError):
        MitosisNet(3, 60, (8, 16, 32))


def test_a_short_run_trains_saves_and_reloads(tiles, tmp_path):
    train_tiles, val_tiles = tiles
    model, summary = train(train_tiles, val_tiles, tmp_path / "m", TINY)
    h = summary["history"]
    assert len(h) == 2 and h[0]["tiles"] == 3 * int(train_tiles.labels.sum())
    wrong, n = h[0]["misclassified"], len(train_tiles)
    assert h[1]["feed"] is True and h[1]["tiles"] == wrong + min(wrong, n - wrong)
    assert "val" in h[0] and sum(r.get("best", False) for r in h) >= 1
    back = load_model(tmp_path / "m")
    p1 = model.predict(val_tiles.images[:50])
    assert np.array_equal(p1, back.predict(val_tiles.images[:50]))
    assert ((p1 >= 0) & (p1 <= 1)).all()
    assert back.card["tile"] == 64 and back.card["mpp"] == pytest.approx(0.25)


@pytest.mark.slow
@pytest.mark.parametrize("feed", [True, False])
def test_training_improves_f1_on_a_held_out_slide(tiles, feed):
    train_tiles, val_tiles = tiles
    cfg = TINY.replace(epochs=10, filters=(16, 32), affine=64)
    cfg = MitosisTrainConfig(**{**cfg.__dict__, "negative_feed": feed})
    torch.manual_seed(0)
    untrained = MitosisNet(3, 64, (16, 32), 64).eval()
    with torch.no_grad():
        p0 = torch.sigmoid(untrained(torch.from_numpy(prepare_inputs(val_tiles.images)))).numpy()
    before = binary_metrics(p0, val_tiles.labels)["f1"]
    model, _ = train(train_tiles, val_tiles, None, cfg)
    after = binary_metrics(model.predict(val_tiles.images), val_tiles.labels)["f1"]
    assert after > max(0.3, before if before == before else 0.0), (before, after)


def test_batchnorm_is_recalibrated_on_the_given_tiles(tiles):
    from magnipath.mitosis import recalibrate_batchnorm

    train_tiles, _ = tiles
    net = MitosisNet(3, 64, (8, 16), 32)
    idx = np.arange(40)
    recalibrate_batchnorm(net, train_tiles, idx, "rgb", "cpu", batch_size=64)
    assert not net.training
    conv, bn = net.features[0], net.features[1]
    with torch.no_grad():
        z = conv(torch.from_numpy(prepare_inputs(train_tiles.images[idx])))
    torch.testing.assert_close(bn.running_mean, z.mean(dim=(0, 2, 3)), rtol=1e-4, atol=1e-5)


def test_stratified_negative_feed_draws_a_third_of_the_sample_from_positives():
    labels = np.array([1] * 10 + [0] * 30)
    probs = labels.astype(float)  # all correct ...
    probs[[0, 10, 11]] = [0.1, 0.9, 0.8]  # ... except a missed positive and two false positives
    idx = negative_feed(probs, labels, 9, np.random.default_rng(0), positive_fraction=1 / 3)
    assert {0, 10, 11} <= set(idx.tolist()) and len(idx) == 12
    sample = sorted(set(idx.tolist()) - {0, 10, 11})
    assert labels[sample].sum() == 3  # round(9 / 3) correct positives, 6 correct negatives
    few = negative_feed(probs, labels, 60, np.random.default_rng(0), positive_fraction=0.9)
    assert len(few) == 40  # every tile: all misclassified and all correct ones
