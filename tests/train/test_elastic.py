"""Elastic deformation keeps images and labels aligned, across all inputs of a sample."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from magnipath.train import elastic_deform, elastic_field
from magnipath.train._elastic import copy_rng

PALETTE = torch.tensor([[0.9, 0.1, 0.1], [0.1, 0.8, 0.2], [0.1, 0.2, 0.9], [0.9, 0.9, 0.1]])


S = 128
GRID = 9  # control points 16 px apart, as the paper's 17 points on 256 px


def _blocks(size: int = S, seed: int = 0, block: int = 16) -> torch.Tensor:
    """A label of ``block`` px squares with random classes 0..3 (int64, (S, S))."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 4, size=(size // block, size // block))
    return torch.from_numpy(np.kron(coarse, np.ones((block, block), dtype=np.int64)))


def _paint(label: torch.Tensor, palette: torch.Tensor) -> torch.Tensor:
    """Image (3, S, S) whose colour encodes ``label``."""
    return palette[label].permute(2, 0, 1).contiguous()


def _decode(image: torch.Tensor, palette: torch.Tensor) -> torch.Tensor:
    """Nearest palette colour of every pixel -> label (S, S)."""
    d = ((image.permute(1, 2, 0)[:, :, None, :] - palette[None, None]) ** 2).sum(-1)
    return d.argmin(-1)


def _interior(label: torch.Tensor, margin: int = 2) -> torch.Tensor:
    """Pixels whose (2 margin + 1)^2 neighbourhood holds one class only."""
    lab = label[None, None].float()
    mx = torch.nn.functional.max_pool2d(lab, 2 * margin + 1, 1, margin)
    mn = -torch.nn.functional.max_pool2d(-lab, 2 * margin + 1, 1, margin)
    return (mx == mn)[0, 0]


def test_field_shape_and_spread():
    # the paper's setting: 256 px tile, 17 x 17 control points (16 px apart), sigma 4 px
    disp = elastic_field(256, np.random.default_rng(0), grid=17, sigma=4.0)
    assert disp.shape == (2, 256, 256) and disp.dtype == torch.float32
    # bicubic through the control points: the std of the field is about sigma
    assert 3.0 < float(disp.std()) < 5.0
    # smooth: neighbouring pixels move by much less than sigma
    step = (disp[:, 1:] - disp[:, :-1]).abs()
    assert float(step.median()) < 0.5 and float(step.max()) < 2.0


def test_zero_sigma_is_identity():
    label = _blocks()
    image = _paint(label, PALETTE)[None]
    disp = elastic_field(S, np.random.default_rng(1), sigma=0.0)
    out, lab = elastic_deform(image, label, disp)
    torch.testing.assert_close(out, image, atol=1e-5, rtol=0)
    assert torch.equal(lab, label)


def test_label_matches_colour_after_deformation():
    label = _blocks(seed=2)
    image = _paint(label, PALETTE)[None]
    disp = elastic_field(S, np.random.default_rng(3), grid=GRID, sigma=4.0)
    out, lab = elastic_deform(image, label, disp)
    assert lab.dtype == label.dtype
    assert not torch.equal(lab, label), "the deformation moved nothing"
    decoded = _decode(out[0], PALETTE)
    inside = _interior(lab)
    assert inside.float().mean() > 0.4
    # away from class edges (where bicubic blends colours) colour and label agree exactly
    assert torch.equal(decoded[inside], lab[inside])
    assert (decoded == lab).float().mean() > 0.93
    assert set(torch.unique(lab).tolist()) <= set(torch.unique(label).tolist())


def test_same_field_for_every_input_and_the_label():
    label = _blocks(seed=4)
    other = PALETTE[[2, 3, 0, 1]]  # input 1 paints the same label with other colours
    images = torch.stack([_paint(label, PALETTE), _paint(label, other), _paint(label, PALETTE)])
    disp = elastic_field(S, np.random.default_rng(5), grid=GRID, sigma=4.0)
    out, lab = elastic_deform(images, label, disp)
    torch.testing.assert_close(out[0], out[2])
    inside = _interior(lab)
    d0, d1 = _decode(out[0], PALETTE), _decode(out[1], other)
    assert torch.equal(d0[inside], d1[inside])
    assert torch.equal(d1[inside], lab[inside])


def test_ignore_index_survives_and_no_new_values():
    label = _blocks(seed=6)
    label[:, :40] = 255
    out, lab = elastic_deform(_paint(label.clamp(max=3), PALETTE)[None], label,
                              elastic_field(S, np.random.default_rng(7), grid=GRID))
    assert set(torch.unique(lab).tolist()) <= {0, 1, 2, 3, 255}
    assert (lab == 255).float().mean() == pytest.approx(40 / S, abs=0.05)
    assert float(out.min()) >= 0 and float(out.max()) <= 1


def test_copies_are_deterministic_per_tile_and_copy():
    a = elastic_field(32, copy_rng(0, tile=5, copy=1))
    b = elastic_field(32, copy_rng(0, tile=5, copy=1))
    c = elastic_field(32, copy_rng(0, tile=5, copy=2))
    d = elastic_field(32, copy_rng(1, tile=5, copy=1))
    assert torch.equal(a, b)
    assert not torch.equal(a, c) and not torch.equal(a, d)
