"""Input channels, stain jitter, target transforms, mixed precision and the cosine schedule."""

import json
import math

import numpy as np
import pytest
import torch

from magnipath.cli import main
from magnipath.device import amp_dtype
from magnipath.magnification import (
    MagnificationError,
    MagTrainConfig,
    load_model,
    open_dataset,
    predict_patches,
    train,
)
from magnipath.magnification._inputs import (
    H_CENTER,
    H_SCALE,
    RGB_FROM_HED,
    blur_jitter,
    decode_target,
    encode_target,
    hed_jitter,
    hematoxylin,
    to_input,
)
from magnipath.magnification._nets import ShallowNet, regress, to_tensor


def _h_only(h: np.ndarray) -> np.ndarray:
    """uint8 RGB image of pure haematoxylin with optical density ``h`` (natural log)."""
    od = h[..., None] * RGB_FROM_HED[0]
    return np.clip(np.rint(255 * np.exp(-od)), 0, 255).astype(np.uint8)


def test_log_and_linear_targets_round_trip():
    v = np.array([5.0, 8.0, 40.0, np.nan, 0.0])
    assert encode_target(v, 40.0, "linear")[:3] == pytest.approx([0.125, 0.2, 1.0])
    enc = encode_target(v, 40.0, "log")
    assert enc[:3] == pytest.approx([math.log(0.125), math.log(0.2), 0.0])
    assert np.isnan(enc[3]) and np.isnan(enc[4])  # no log of 0: dropped like a missing target
    for tt in ("linear", "log"):
        assert decode_target(encode_target(v[:3], 40.0, tt), 40.0, tt) == pytest.approx(v[:3])
    with pytest.raises(MagnificationError, match="target transform"):
        encode_target(v, 40.0, "sqrt")


def test_hematoxylin_channel_recovers_a_known_density():
    h = np.linspace(0.1, 1.2, 64 * 64).reshape(1, 64, 64)
    got = hematoxylin(_h_only(h))
    assert got == pytest.approx(h, abs=0.02)
    x = to_input(_h_only(h), mode="hematoxylin")
    assert x.shape == (1, 3, 64, 64) and torch.equal(x[:, 0], x[:, 2])
    assert x[0, 1].numpy() == pytest.approx((got[0] - H_CENTER) / H_SCALE, abs=1e-5)
    rgb = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    assert torch.allclose(to_input(rgb, mode="rgb", channels_last=True), to_tensor(rgb))
    with pytest.raises(MagnificationError, match="input 'grey'"):
        to_input(rgb, mode="grey")


def test_stain_jitter_scales_and_shifts_the_densities():
    h = np.linspace(0.2, 1.0, 2 * 32 * 32).reshape(2, 32, 32)
    img = _h_only(h)
    assert hed_jitter(img, 0.0, np.random.default_rng(1)) is img
    out = hed_jitter(img, 0.2, np.random.default_rng(1))
    rng = np.random.default_rng(1)
    a = rng.uniform(0.8, 1.2, (2, 1, 1, 3))
    s = rng.uniform(-0.2, 0.2, (2, 1, 1, 3))
    assert not np.array_equal(out, img)
    assert hematoxylin(out) == pytest.approx(np.maximum(a[..., 0] * h + s[..., 0], 0),
                                             abs=0.03)


def test_regress_under_bfloat16_matches_float32():
    torch.manual_seed(0)
    net = ShallowNet(widths=(4, 8, 8, 8)).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = net(x)
        got = regress(net, x.contiguous(memory_format=torch.channels_last), torch.bfloat16)
    assert got.dtype == torch.float32 and got.shape == (2,)
    assert torch.allclose(got, ref, atol=0.05 * float(ref.abs().max()) + 1e-3)


def test_training_with_amp_log_targets_cosine_and_hematoxylin_input(dataset, tmp_path):
    cfg = MagTrainConfig(arch_kwargs={"widths": [4, 8, 8, 8]}, epochs=3, batch_size=8, lr=1e-3,
                         device="cpu", amp=True, target_transform="log", lr_schedule="cosine",
                         stain_augment=0.1, input="hematoxylin")
    out = tmp_path / "model"
    summary = train(dataset, out, cfg)
    card = json.loads((out / "card.json").read_text())
    assert card["target_transform"] == "log" and card["input"] == "hematoxylin"
    assert card["train_config"]["amp"] is True
    for hist in summary["history"].values():
        lrs = [h["lr"] for h in hist]
        assert lrs[0] < 1e-3 and lrs == sorted(lrs, reverse=True)  # cosine decay per step
        assert lrs[-1] < 0.5e-3
    ds = open_dataset(dataset)
    patches = np.asarray(ds.images[:4])
    fp32 = predict_patches(patches, load_model(out), baseline=False)
    mixed_model = load_model(out, amp=True)
    assert mixed_model.amp == amp_dtype(torch.device("cpu"), True)
    mixed = predict_patches(patches, mixed_model, baseline=False)
    assert np.all(fp32["direct"] > 0) and np.all(fp32["area_px"] > 0)  # log targets: positive
    assert mixed["direct"] == pytest.approx(fp32["direct"], rel=0.05)


def test_bad_training_options_are_named(dataset, tmp_path):
    base = MagTrainConfig(arch_kwargs={"widths": [4, 8, 8, 8]}, epochs=1, device="cpu")
    for kw, msg in (({"input": "grey"}, "input 'grey'"),
                    ({"target_transform": "sqrt"}, "target transform"),
                    ({"lr_schedule": "step"}, "lr_schedule")):
        with pytest.raises(MagnificationError, match=msg):
            train(dataset, tmp_path / "m", base.replace(**kw))


def test_cli_train_and_evaluate_with_the_new_options(dataset, tmp_path, capsys):
    model = tmp_path / "model"
    assert main(["magnification", "train", str(dataset), "--out", str(model), "--widths",
                 "4,8,8,8", "--epochs", "1", "--batch-size", "4", "--device", "cpu", "--amp",
                 "--target-transform", "log", "--lr-schedule", "cosine", "--stain-augment",
                 "0.05", "--input", "hematoxylin", "--json"]) == 0
    capsys.readouterr()
    card = json.loads((model / "card.json").read_text())
    cfg = card["train_config"]
    assert (cfg["amp"], cfg["target_transform"], cfg["lr_schedule"], cfg["stain_augment"],
            cfg["input"]) == (True, "log", "cosine", 0.05, "hematoxylin")
    assert main(["magnification", "evaluate", str(dataset), "--model", str(model), "--amp",
                 "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert np.array(ev["direct"]["confusion_matrix"]).sum() == ev["n"]


def test_blur_jitter_blurs_about_half_the_patches_and_keeps_the_frame():
    rng = np.random.default_rng(0)
    sharp = np.zeros((40, 32, 32, 3), np.uint8)
    sharp[:, :, 16:] = 255  # a vertical edge
    out = blur_jitter(sharp, 2.0, rng)
    assert out.shape == sharp.shape and out.dtype == np.uint8
    changed = np.array([not np.array_equal(o, s) for o, s in zip(out, sharp, strict=True)])
    assert 10 <= changed.sum() <= 30  # p = 0.5 of 40 patches
    # a blurred edge: intermediate grey levels next to it, flat far from it
    assert np.all((out[changed][:, :, 15] > 0) | (out[changed][:, :, 16] < 255))
    assert np.all(out[:, :, 0] == 0) and np.all(out[:, :, -1] == 255)
    assert blur_jitter(sharp, 0.0, rng) is sharp
