"""Training configuration, presets and device choice."""

from __future__ import annotations

import pytest
import torch

from magnipath._errors import ModelError
from magnipath.device import (
    DeviceError,
    amp_dtype,
    cpu_has_native_bf16,
    needs_grad_scaler,
    resolve_device,
)
from magnipath.train import TrainConfig


def test_presets_follow_the_papers_and_overrides_win():
    d = TrainConfig.preset("dmmn")
    assert (d.optimizer, d.lr, d.momentum, d.weight_decay, d.epochs, d.loss, d.select) == \
        ("sgd", 5e-5, 0.99, 1e-4, 20, "wce", "miou")
    assert d.balance["Benign"] == 10 and d.balance_order[0] == "Benign"
    t = TrainConfig.preset("TLS")
    assert (t.arch, t.optimizer, t.lr, t.batch_size, t.epochs, t.loss, t.select) == \
        ("unetpp-effb0", "adam", 1e-3, 8, 5, "dice", "TLS")
    o = TrainConfig.preset("dmmn", epochs=3, lr=1e-3, arch="dmmn-ms", seed=None)
    assert (o.epochs, o.lr, o.arch, o.optimizer, o.seed) == (3, 1e-3, "dmmn-ms", "sgd", 0)
    assert o.preset_name == "dmmn"
    with pytest.raises(ModelError, match="preset"):
        TrainConfig.preset("unet")


def test_round_trip_and_validation():
    cfg = TrainConfig.preset("dmmn", arch_kwargs={"base": 8}, time_budget_s=30.0)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ModelError, match="colour"):
        TrainConfig.from_dict({**cfg.to_dict(), "colour": 1})
    for field, value in (("lr", 0.0), ("batch_size", 0), ("optimizer", "rmsprop"),
                         ("loss", "focal"), ("max_steps_per_epoch", 0),
                         ("time_budget_s", -1.0), ("num_workers", -1)):
        with pytest.raises(ModelError, match=field):
            cfg.replace(**{field: value}).validate()


def test_device_choice():
    assert resolve_device("cpu") == torch.device("cpu")
    auto = resolve_device("auto")
    assert auto.type == ("cuda" if torch.cuda.is_available() else auto.type)
    with pytest.raises(DeviceError, match="tpu"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="CUDA"):
            resolve_device("cuda")
    cpu_amp = torch.bfloat16 if cpu_has_native_bf16() else None
    assert amp_dtype(torch.device("cpu"), True) == cpu_amp
    assert amp_dtype(torch.device("cpu"), False) is None
    assert amp_dtype(torch.device("cuda"), False) is None
    assert amp_dtype(torch.device("mps"), True) is None
    assert needs_grad_scaler(torch.float16) and not needs_grad_scaler(torch.bfloat16)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_amp_dtype_on_cuda():
    dt = amp_dtype(torch.device("cuda"), True)
    assert dt == (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)


def test_parse_rates_reads_class_rate_pairs_and_names_the_field():
    from magnipath.train import parse_rates

    assert parse_rates("Carcinoma=2, Benign=10; TLS = 3") == {"Carcinoma": 2, "Benign": 10,
                                                             "TLS": 3}
    assert parse_rates(" ") == {}
    for bad in ("Carcinoma", "=3", "TLS=two", "TLS=1.5"):
        with pytest.raises(ModelError, match="--balance: entry"):
            parse_rates(bad)
    with pytest.raises(ModelError, match="Balancing rates: entry 'x'"):
        parse_rates("x", "Balancing rates")
