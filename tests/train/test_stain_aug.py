"""Stain augmentation (HED jitter, Macenko re-staining) and the stain reference in the card."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from magnipath._errors import ModelError
from magnipath.synth import SynthConfig, make_layout, render_region
from magnipath.train import TrainConfig
from magnipath.train._data import TileSamples
from magnipath.train._stain_aug import (
    _HED,
    DEFAULT_STAIN_AUGMENT,
    DEMO_STAIN_AUGMENT,
    hed_jitter,
    jpeg_roundtrip,
    macenko_restain,
    stain_augment,
)


def _he_tile(side: int = 64) -> torch.Tensor:
    """A real synthetic H&E tile (stroma with nuclei), float (1, 3, S, S) in [0, 1]."""
    lay = make_layout(SynthConfig(width=2048, height=2048, mpp=0.25, seed=4))
    g = max((g for n, g in lay.objects if n == "Stroma"), key=lambda g: g.area)
    p = g.representative_point()
    rgb = render_region(lay, (int(p.x) - 4 * side, int(p.y) - 4 * side, 8 * side, 8 * side), 2.0)
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0


def _conc(images: torch.Tensor) -> np.ndarray:
    od = -np.log(np.clip(images.numpy(), 1 / 255, 1)).transpose(0, 2, 3, 1)
    return od @ np.linalg.inv(_HED)


def test_zero_jitter_is_the_identity():
    x = _he_tile()
    y = hed_jitter(x, np.random.default_rng(0), 0.0, 0.0, 0.0)
    assert torch.allclose(x, y, atol=1e-5)
    assert torch.equal(stain_augment(x, np.random.default_rng(0), {}), x)


def test_scale_multiplies_each_stain_concentration_by_one_factor():
    x = _he_tile()
    y = hed_jitter(x, np.random.default_rng(3), 0.3, 0.0, 0.0)
    cx, cy = _conc(x), _conc(y)
    for k in range(2):  # haematoxylin, eosin
        sel = cx[..., k] > 0.1
        sel &= (y.numpy().transpose(0, 2, 3, 1) > 1.5 / 255).all(-1)  # not clipped at black
        ratio = cy[..., k][sel] / cx[..., k][sel]
        assert np.exp(-0.3) - 1e-3 <= np.median(ratio) <= np.exp(0.3) + 1e-3
        assert np.std(ratio) < 0.02
    assert not torch.allclose(x, y, atol=0.02)


def test_one_draw_for_every_input_of_a_sample_and_reproducible():
    x = _he_tile().expand(3, -1, -1, -1).contiguous()
    a = stain_augment(x, np.random.default_rng(5), DEFAULT_STAIN_AUGMENT)
    b = stain_augment(x, np.random.default_rng(5), DEFAULT_STAIN_AUGMENT)
    assert torch.equal(a, b)
    assert torch.equal(a[0], a[1]) and torch.equal(a[0], a[2])
    c = stain_augment(x, np.random.default_rng(6), DEFAULT_STAIN_AUGMENT)
    assert not torch.equal(a, c)
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0


def _blockiness(x: torch.Tensor) -> float:
    """Mean jump across 8-px block borders over the mean jump elsewhere (JPEG's signature)."""
    d = (x[..., :, 1:] - x[..., :, :-1]).abs().mean(dim=(0, 1, 2))  # per column border
    at = d[7::8].mean()
    off = torch.cat([d[k::8] for k in range(7)]).mean()
    return float(at / off)


def test_jpeg_roundtrip_compresses_every_input_at_the_quality_asked():
    x = _he_tile().expand(3, -1, -1, -1).contiguous()
    lo, hi = jpeg_roundtrip(x, 10), jpeg_roundtrip(x, 95)
    assert lo.shape == x.shape and lo.dtype == x.dtype
    assert float(lo.min()) >= 0.0 and float(lo.max()) <= 1.0
    err_lo, err_hi = float((lo - x).abs().mean()), float((hi - x).abs().mean())
    assert 0 < err_hi < 0.5 * err_lo
    assert _blockiness(lo) > 2.0 > 1.1 > _blockiness(hi)


def test_jpeg_augmentation_hits_about_half_the_samples_reproducibly():
    x = _he_tile()
    hit = 0
    for seed in range(40):
        a = stain_augment(x, np.random.default_rng(seed), {"jpeg": 20})
        b = stain_augment(x, np.random.default_rng(seed), {"jpeg": 20})
        assert torch.equal(a, b)
        hit += int(not torch.equal(a, x))
    assert 10 <= hit <= 30, hit
    assert torch.equal(stain_augment(x, np.random.default_rng(0), {"jpeg": 0}), x)


def test_macenko_restain_changes_the_stain_not_the_structure():
    x = _he_tile()
    y = macenko_restain(x, np.random.default_rng(1), 0.1)
    assert y.shape == x.shape and not torch.allclose(x, y, atol=0.02)
    # dark nuclei stay the darkest pixels
    gx, gy = x.mean(1).flatten(), y.mean(1).flatten()
    assert np.corrcoef(gx.numpy(), gy.numpy())[0, 1] > 0.8
    blank = torch.ones(1, 3, 32, 32)  # no tissue: returned as it is
    assert torch.equal(macenko_restain(blank, np.random.default_rng(1), 0.1), blank)


def test_stain_augmentation_leaves_geometry_and_labels_alone(ds3):
    from magnipath.dataset import open_dataset

    ds = open_dataset(ds3)
    tiles = ds.indices("train")[:6]
    kw = dict(seed=2, augment=True)
    off = TileSamples(ds, tiles, np.zeros(len(tiles), np.int64), stain={}, **kw)
    on = TileSamples(ds, tiles, np.zeros(len(tiles), np.int64), stain=DEFAULT_STAIN_AUGMENT,
                     **kw)
    differ = 0
    for i in range(len(tiles)):
        (xa, la), (xb, lb) = off[(1, i)], on[(1, i)]
        assert torch.equal(la, lb)
        differ += int(not torch.allclose(xa, xb, atol=1e-3))
    assert differ == len(tiles)


def test_on_by_default_in_every_preset_and_checked():
    assert TrainConfig().stain_augment == DEFAULT_STAIN_AUGMENT
    for name in ("dmmn", "tls"):
        assert TrainConfig.preset(name).stain_augment == DEFAULT_STAIN_AUGMENT
    demo = TrainConfig.preset("demo").stain_augment  # on, milder (one stain in the demo)
    assert demo == DEMO_STAIN_AUGMENT and 0 < demo["scale"] < DEFAULT_STAIN_AUGMENT["scale"]
    assert TrainConfig.preset("dmmn", stain_augment={}).stain_augment == {}
    for bad in ({"scale": -0.1}, {"macenko": 2.0}, {"hue": 0.1}, {"scale": "x"},
                {"jpeg": 100}, {"jpeg": 0.5}, {"jpeg": -5}):
        with pytest.raises(ModelError, match="stain_augment"):
            TrainConfig(stain_augment=bad).validate()
    d = TrainConfig().to_dict()
    assert TrainConfig.from_dict(d).stain_augment == DEFAULT_STAIN_AUGMENT


def test_cli_training_records_stain_settings_and_reference(ds3, tmp_path, capsys):
    import json

    from magnipath.cli import main

    common = ["--preset", "dmmn", "--base", "4", "--arch-kwargs", '{"depth": 2}', "--epochs",
              "1", "--max-steps-per-epoch", "1", "--batch-size", "2", "--device", "cpu",
              "--workers", "0", "--json", "--quiet"]
    assert main(["train", str(ds3), "--out", str(tmp_path / "a"), *common]) == 0
    assert main(["train", str(ds3), "--out", str(tmp_path / "b"), "--no-stain-augment",
                 *common]) == 0
    assert main(["train", str(ds3), "--out", str(tmp_path / "c"), "--stain-macenko", "0.5",
                 *common]) == 0
    assert main(["train", str(ds3), "--out", str(tmp_path / "d"), "--jpeg-augment", "30",
                 *common]) == 0
    capsys.readouterr()
    cards = {k: json.loads((tmp_path / k / "model_card.json").read_text()) for k in "abcd"}
    assert cards["d"]["train_config"]["stain_augment"] == {**DEFAULT_STAIN_AUGMENT, "jpeg": 30}
    assert DEFAULT_STAIN_AUGMENT["jpeg"] == 50
    assert cards["a"]["train_config"]["stain_augment"] == DEFAULT_STAIN_AUGMENT
    assert cards["b"]["train_config"]["stain_augment"] == {}
    assert cards["c"]["train_config"]["stain_augment"]["macenko"] == 0.5
    ref = cards["a"]["normalisation"]["stain_reference"]
    assert np.asarray(ref["vectors"]).shape == (2, 3) and all(v > 0 for v in ref["max_conc"])
    assert ref["tiles"] > 0
    assert ref["vector_mpp"] is None  # ds3's slides are not on disk: vectors from the tiles
