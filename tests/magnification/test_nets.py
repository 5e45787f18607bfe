"""The regression networks: ShallowNet's blocks and both networks' output shapes."""

import pytest
import torch
from torch import nn

from magnipath.magnification import MagnificationError
from magnipath.magnification._nets import (
    ShallowNet,
    build_net,
    dihedral_views,
    regress,
    regress_tta,
    to_tensor,
)


def test_shallownet_is_four_conv_bn_relu_pool_dropout_blocks():
    net = ShallowNet()
    kinds = [type(m) for m in net.features]
    assert kinds == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d, nn.Dropout] * 4
    convs = [m for m in net.features if isinstance(m, nn.Conv2d)]
    assert all(c.kernel_size == (3, 3) for c in convs)
    assert all(m.p == 0.25 for m in net.features if isinstance(m, nn.Dropout))
    assert isinstance(net.head, nn.Linear) and net.head.out_features == 1


@pytest.mark.parametrize(("arch", "side"), [("shallownet", 224), ("densenet121", 64)])
def test_regressors_output_one_value_per_patch(arch, side):
    # DenseNet pools adaptively: a small input keeps the test fast
    net = build_net(arch).eval()
    with torch.no_grad():
        y = net(torch.rand(2, 3, side, side))
    assert y.shape == (2,) and torch.isfinite(y).all()


def test_densenet_is_randomly_initialised_121():
    net = build_net("densenet121")
    n = sum(p.numel() for p in net.parameters())
    assert 6.9e6 < n < 7.1e6  # DenseNet-121 with a one-unit head


def test_unknown_arch_and_bad_widths():
    with pytest.raises(MagnificationError, match="unknown architecture"):
        build_net("resnet")
    with pytest.raises(MagnificationError):
        ShallowNet(widths=(8, 8))


def test_to_tensor_normalises_channels_first():
    import numpy as np

    x = to_tensor(np.full((1, 4, 4, 3), 255, np.uint8))
    assert x.shape == (1, 3, 4, 4)
    assert torch.allclose(x[0, :, 0, 0], (1 - torch.tensor([0.485, 0.456, 0.406]))
                          / torch.tensor([0.229, 0.224, 0.225]))


def test_fit_head_recovers_a_linear_readout_and_sets_it():
    import numpy as np

    from magnipath.magnification._nets import fit_head, set_head

    rng = np.random.default_rng(0)
    f = rng.normal(size=(200, 8))
    w_true = rng.normal(size=8)
    w, b = fit_head(f, f @ w_true + 0.5, ridge=0.0)
    assert np.allclose(w, w_true) and b == pytest.approx(0.5)
    net = ShallowNet(widths=(4, 4, 4, 8)).eval()
    set_head(net, w, b)
    x = torch.rand(3, 3, 224, 224)
    with torch.no_grad():
        expected = net.embed(x).numpy() @ w + b
        assert np.allclose(net(x).numpy(), expected, atol=1e-5)


def test_flatten_head_reads_the_whole_map():
    net = ShallowNet(widths=(4, 4, 4, 8), head="flatten")
    assert net.head.in_features == 8 * 14 * 14
    with pytest.raises(MagnificationError, match="head"):
        ShallowNet(head="max")


def test_dihedral_views_are_the_eight_rotations_and_mirrors():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    views = dihedral_views(x)
    assert len(views) == 8 and torch.equal(views[0], x)
    flat = {tuple(v.flatten().tolist()) for v in views}
    assert len(flat) == 8  # an asymmetric image: eight different views
    # a view of a view is again one of the eight (a group)
    assert tuple(torch.rot90(views[1], 1, dims=(2, 3)).flatten().tolist()) in flat


def test_test_time_augmentation_is_the_mean_over_views_and_rotation_invariant():
    torch.manual_seed(0)
    net = build_net("shallownet", widths=(4, 4, 8, 8)).eval()
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        y = regress_tta(net, x)
        mean = torch.stack([regress(net, v) for v in dihedral_views(x)]).mean(0)
        rotated = regress_tta(net, torch.rot90(x, 1, dims=(2, 3)))
        mirrored = regress_tta(net, torch.flip(x, dims=(2,)))
        plain = regress(net, x)
    torch.testing.assert_close(y, mean)
    torch.testing.assert_close(rotated, y, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(mirrored, y, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(plain, y)  # the plain output does depend on orientation
