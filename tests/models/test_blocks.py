"""The paper's blocks and the centre-crop geometry."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from magnipath._errors import ModelError
from magnipath.models import center_crop, conv_block, conv_final, conv_tr
from magnipath.models._blocks import ContextAlign


def _coords(size: int, pixel: float, start: float) -> torch.Tensor:
    """(1, 2, size, size) map whose channels hold the y / x centre of each pixel, in
    target (20x) pixel units, for a grid of ``pixel``-sized pixels starting at ``start``."""
    c = start + pixel * (torch.arange(size, dtype=torch.float64) + 0.5)
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([yy, xx])[None]


def test_conv_block_and_final_structure():
    block = conv_block(3, 8)
    convs = [m for m in block if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.padding) for c in convs] == [
        (3, 8, (3, 3), (1, 1)),
        (8, 8, (3, 3), (1, 1)),
    ]
    assert sum(isinstance(m, nn.ReLU) for m in block) == 2
    assert sum(isinstance(m, nn.BatchNorm2d) for m in conv_block(3, 8, norm=True)) == 2
    final = conv_final(8, 8, 5)
    assert [type(m) for m in final] == [nn.Conv2d, nn.ReLU, nn.Conv2d]
    assert final[0].kernel_size == (3, 3) and final[2].kernel_size == (1, 1)
    assert final(torch.zeros(1, 8, 6, 6)).shape == (1, 5, 6, 6)


@pytest.mark.parametrize(("rate", "n_tr"), [(2, 1), (4, 2), (8, 3), (3, 1)])
def test_conv_tr_rates(rate, n_tr):
    up = conv_tr(4, 6, rate)
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in up) == n_tr  # CONV_TR_4 = 2 x TR_2
    assert up(torch.zeros(2, 4, 3, 5)).shape == (2, 6, 3 * rate, 5 * rate)


def test_center_crop_keeps_the_central_part():
    x = torch.arange(64.0).reshape(1, 1, 8, 8)
    assert center_crop(x, 2)[0, 0].tolist() == x[0, 0, 2:6, 2:6].tolist()
    assert center_crop(x, 4)[0, 0].tolist() == x[0, 0, 3:5, 3:5].tolist()
    with pytest.raises(ModelError, match="centre-crop"):
        center_crop(torch.zeros(1, 1, 4, 4), 4)  # margin 1.5 px: not exact


@pytest.mark.parametrize("rate", [2, 4])
@pytest.mark.parametrize("level", [0, 1, 2])
def test_context_align_maps_context_pixels_onto_target_pixels(rate, level):
    """A context tile of side S at ``rate`` times the target's pixel size, concentric with
    the target, covers [-(rate-1)S/2, (rate+1)S/2) in target pixels. After centre-crop and
    CONV_TR with identity-like weights, every target pixel must see the context pixel that
    covers it (its centre within half a context pixel)."""
    size = 64
    n = size // 2**level  # feature-map side at this level
    pix_t = 2**level  # target feature pixel, in target (20x) pixels
    ctx = _coords(n, pix_t * rate, -(rate - 1) * size / 2)
    align = ContextAlign(2, rate).double()
    with torch.no_grad():  # copy each channel unchanged: out[c] = in[c]
        for m in align.up:
            if isinstance(m, nn.ConvTranspose2d):
                m.weight.zero_()
                m.weight[0, 0] = 1.0
                m.weight[1, 1] = 1.0
                m.bias.zero_()
    out = align(ctx)
    target = _coords(n, pix_t, 0.0)
    assert out.shape == target.shape
    out = out.detach()
    assert float((out - target).abs().max()) <= pix_t * rate / 2
    # the crop is centred: the mean offset over the tile is zero
    assert float((out - target).mean().abs()) < 1e-9
