"""The registry: names, builders, input counts, rebuild from arch_kwargs."""

from __future__ import annotations

import json

import pytest
import torch

from magnipath._errors import ModelError
from magnipath.models import MODELS, build_model, list_models, model_info

SMALL = {"base": 4}


def test_names_and_infos():
    assert list_models() == ["dsmn-s2", "dmmn-ms", "dmmn-m2s", "dmmn-m3", "unetpp-effb0"]
    for name in list_models():
        info = model_info(name)
        assert info is MODELS[name] and info.name == name and info.description and info.paper
    assert [MODELS[n].n_inputs for n in list_models()] == [1, 3, 3, 3, 1]


def test_unknown_name_lists_choices():
    with pytest.raises(ModelError, match="dmmn-m3"):
        build_model("unet", n_classes=2)


def test_unknown_option_is_a_model_error():
    with pytest.raises(ModelError, match="dmmn-m3"):
        build_model("dmmn-m3", n_classes=2, widht=3)


@pytest.mark.parametrize("name", ["dsmn-s2", "dmmn-ms", "dmmn-m2s", "dmmn-m3"])
def test_rebuild_from_arch_kwargs(name):
    model = build_model(name, n_classes=3, in_channels=4, norm=True, **SMALL)
    kwargs = json.loads(json.dumps(model.arch_kwargs))  # what a model card stores
    again = build_model(model.arch_name, **kwargs)
    assert again.arch_name == name
    a, b = model.state_dict(), again.state_dict()
    assert list(a) == list(b)
    assert all(a[k].shape == b[k].shape for k in a)
    again.load_state_dict(a)
    x = [torch.rand(1, 4, 64, 64) for _ in range(model.n_inputs)]
    model.eval()
    again.eval()
    assert torch.equal(model(x), again(x))


def test_input_count_checks():
    assert build_model("dmmn-m3", n_classes=2, n_inputs=3, **SMALL).n_inputs == 3
    two = build_model("dmmn-m3", n_classes=2, n_inputs=2, context_ratios=(4,), **SMALL)
    assert two.n_inputs == 2 and two.context_ratios == (4,)
    with pytest.raises(ModelError, match="context_ratios"):
        build_model("dmmn-m2s", n_classes=2, n_inputs=2, **SMALL)
    with pytest.raises(ModelError, match="1 input"):
        build_model("dsmn-s2", n_classes=2, n_inputs=3, **SMALL)
    with pytest.raises(ModelError, match="context_ratios"):
        build_model("dmmn-ms", n_classes=2, context_ratios=(1, 2), **SMALL)


def test_paper_widths_are_half_unet():
    model = build_model("dsmn-s2", n_classes=6)
    outs = [blk[2].out_channels for blk in model.encoder.blocks]
    assert outs == [32, 64, 128, 256, 512]
    assert model.size_multiple == 16
    assert build_model("dmmn-m3", n_classes=6).size_multiple == 64  # 256 is valid
