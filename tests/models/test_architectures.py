"""DSMN-S2 and the DMMNs: shapes, tile-size checks, gradients, context alignment,
channels-last and autocast."""

from __future__ import annotations

import pytest
import torch

from magnipath._errors import ModelError
from magnipath.models import build_model

DMMN = ["dmmn-ms", "dmmn-m2s", "dmmn-m3"]
FAMILY = ["dsmn-s2", *DMMN]


def _inputs(model, size=64, batch=2, channels=3):
    return [torch.rand(batch, channels, size, size) for _ in range(model.n_inputs)]


@pytest.mark.parametrize("name", FAMILY)
def test_output_shape(name):
    model = build_model(name, n_classes=5, base=8)
    out = model(_inputs(model))
    assert out.shape == (2, 5, 64, 64)
    assert out.dtype == torch.float32 and bool(torch.isfinite(out).all())


@pytest.mark.parametrize("name", DMMN)
def test_four_context_inputs(name):
    model = build_model(name, n_classes=2, base=4, context_ratios=(2, 4, 8), n_inputs=4)
    assert model(_inputs(model, size=128, batch=1)).shape == (1, 2, 128, 128)


@pytest.mark.parametrize("name", FAMILY)
def test_bad_inputs_are_refused(name):
    model = build_model(name, n_classes=2, base=4)
    with pytest.raises(ModelError, match="multiple of"):
        model(_inputs(model, size=model.size_multiple + 8, batch=1))
    with pytest.raises(ModelError, match="input"):
        model(_inputs(model, batch=1)[:-1] or [])
    with pytest.raises(ModelError, match="list"):
        model(torch.rand(1, 3, 64, 64))
    with pytest.raises(ModelError, match="3, y, x"):
        model([torch.rand(1, 4, 64, 64)] * model.n_inputs)


def test_dmmn_size_multiple_matches_the_crops():
    model = build_model("dmmn-m3", n_classes=2, base=4)
    assert model.size_multiple == 64
    with pytest.raises(ModelError, match="multiple of 64"):
        model(_inputs(model, size=32, batch=1))  # divisible by 16, but crop by 4 inexact


@pytest.mark.parametrize("name", FAMILY)
def test_gradients_reach_every_parameter(name):
    model = build_model(name, n_classes=3, base=8)
    out = model(_inputs(model))
    torch.nn.functional.cross_entropy(out, torch.randint(0, 3, (2, 64, 64))).backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert dead == []
    encoders = [
        n for n, _ in model.named_modules() if n.endswith("encoder") or n[:-2].endswith("encoders")
    ]
    assert len(encoders) == model.n_inputs


@pytest.mark.parametrize("name", DMMN)
def test_inputs_all_influence_the_output(name):
    model = build_model(name, n_classes=3, base=8)
    x = [t.requires_grad_() for t in _inputs(model, batch=1)]
    model(x).sum().backward()
    assert all(float(t.grad.abs().sum()) > 0 for t in x)


def _grad_centroid(model, which: int, pixel: tuple[int, int], size: int) -> torch.Tensor:
    """Centroid (y, x), in the pixels of input ``which``, of |d logit(pixel) / d input|,
    averaged over random inputs and output directions."""
    acc = torch.zeros(size, size, dtype=torch.float64)
    for _ in range(4):
        x = [t.requires_grad_() for t in _inputs(model, size=size, batch=1)]
        out = model(x)
        w = torch.randn(out.shape[1])
        (out[0, :, pixel[0], pixel[1]] * w).sum().backward()
        acc += x[which].grad[0].abs().sum(0).double()
    c = torch.arange(size, dtype=torch.float64)
    total = acc.sum()
    return torch.stack([(acc.sum(1) * c).sum() / total, (acc.sum(0) * c).sum() / total])


def _positive(model):
    """Positive weights and biases: every ReLU passes, so no path is dead and the
    Jacobian measures pure geometry (which input pixels feed which output pixel)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                m.weight.uniform_(0.0, 2.0 / m.weight[0].numel())
                m.bias.fill_(0.01)
    return model


@pytest.mark.parametrize("name", DMMN)
def test_context_reaches_the_target_pixel_it_covers(name):
    """The output at a target pixel must depend on the context pixels centred on the same
    tissue: with context ratio r, target pixel p lies at context pixel
    S(r-1)/(2r) + (p + 0.5)/r - 0.5. Shallow model (depth 1) so the receptive field is
    small next to the tile; a missing or off-centre crop would move the centroid by
    at least S/4 context pixels."""
    size = 64
    model = _positive(build_model(name, n_classes=3, base=4, depth=1)).eval()
    for pixel in [(10, 50), (40, 20)]:
        for which, r in enumerate(model.context_ratios, start=1):
            expected = torch.tensor(
                [size * (r - 1) / (2 * r) + (p + 0.5) / r - 0.5 for p in pixel],
                dtype=torch.float64,
            )
            got = _grad_centroid(model, which, pixel, size)
            assert torch.allclose(got, expected, atol=0.5), (which, pixel, got, expected)
        got = _grad_centroid(model, 0, pixel, size)  # and the target input itself
        assert torch.allclose(got, torch.tensor(pixel, dtype=torch.float64), atol=0.5)


@pytest.mark.parametrize("name", FAMILY)
def test_channels_last_gives_the_same_logits(name):
    model = build_model(name, n_classes=3, base=4).eval()
    x = _inputs(model, batch=1)
    ref = model(x)
    cl = model.to(memory_format=torch.channels_last)
    out = cl([t.to(memory_format=torch.channels_last) for t in x])
    assert torch.allclose(out, ref, atol=1e-5)


@pytest.mark.parametrize("name", FAMILY)
def test_runs_under_autocast(name):
    model = build_model(name, n_classes=3, base=4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(_inputs(model, batch=1))
    assert out.shape == (1, 3, 64, 64) and out.dtype == torch.bfloat16
    out.float().sum().backward()
    assert all(p.grad is not None for p in model.parameters())
