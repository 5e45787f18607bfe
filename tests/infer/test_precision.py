"""Mixed precision on the CPU: bfloat16 autocast where the CPU computes it natively."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from magnipath.checkpoint import ModelCard, normalize_inputs, save_checkpoint
from magnipath.classes import ClassMap
from magnipath.device import cpu_has_native_bf16
from magnipath.geometry import TileGeometry
from magnipath.infer import InferConfig, infer_slide, open_prediction


def _model_dir(folder, slide):
    """A random-init DSMN-S2 (seeded) at 1 µm/px, 64 px tiles, three classes, its final
    bias centred on the slide so that every class wins somewhere."""
    from magnipath.models import build_model
    from magnipath.slide import open_slide

    torch.manual_seed(3)
    classes = ClassMap.from_names(["Background", "Tissue", "Other"])
    net = build_model("dsmn-s2", n_classes=3, base=8, depth=2).eval()
    with open_slide(slide) as s:
        tile = s.read_region((0, 0, 512, 512), mpp=1.0)
    with torch.no_grad():
        logits = net(normalize_inputs(tile[None, None].copy()))
        final = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)][-1]
        final.bias -= logits.mean(dim=(0, 2, 3))
    card = ModelCard(arch="dsmn-s2", arch_kwargs=dict(net.arch_kwargs),
                     class_map=classes.to_dict(),
                     geometry=TileGeometry.single(1.0, 64).to_dict())
    folder.mkdir(parents=True)
    save_checkpoint(folder / "best.pt", net, card)
    card.save_json(folder / "model_card.json")
    return folder


def _run(slide, model, out, amp):
    res = infer_slide(slide, model, out, InferConfig(amp=amp, tissue_mask=False, device="cpu"))
    root, meta = open_prediction(res.store)
    return np.asarray(root["labels/0"][:]), meta["precision"]


def test_channels_last_inputs_hold_the_same_values():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 3, 16, 16, 3), dtype=np.uint8)
    plain = normalize_inputs(images)
    last = normalize_inputs(images, channels_last=True)
    for a, b in zip(plain, last, strict=True):
        assert b.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(a, b)


def test_float32_when_amp_is_off(infer_slide_file, tmp_path):
    model = _model_dir(tmp_path / "m", infer_slide_file.slide)
    labels, precision = _run(infer_slide_file.slide, model, tmp_path / "a", amp=False)
    assert precision == "float32" and labels.shape == (300, 1050)


@pytest.mark.skipif(not cpu_has_native_bf16(), reason="this CPU has no native bfloat16 "
                    "(AMX / AVX512-BF16): mixed precision stays off on it")
def test_bfloat16_on_this_cpu_agrees_with_float32(infer_slide_file, tmp_path):
    model = _model_dir(tmp_path / "m", infer_slide_file.slide)
    fp32, p32 = _run(infer_slide_file.slide, model, tmp_path / "a", amp=False)
    bf16, p16 = _run(infer_slide_file.slide, model, tmp_path / "b", amp=True)
    assert (p32, p16) == ("float32", "bfloat16")
    assert fp32.shape == bf16.shape
    # a random-init net has near-tied logits; bf16 may flip a few of those pixels only
    agree = float((fp32 == bf16).mean())
    assert agree > 0.95, agree
    # the comparison is not between two constant maps
    assert min(np.bincount(fp32.ravel(), minlength=3)) > 0.01 * fp32.size
