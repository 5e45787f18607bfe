"""UNet++ / efficientnet-b0: offline construction, list calling convention, weight files."""

from __future__ import annotations

import socket

import pytest
import torch

from magnipath._errors import ModelError
from magnipath.models import build_model


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access attempted during the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture(scope="module")
def model_state():
    torch.manual_seed(1)
    model = build_model("unetpp-effb0", n_classes=2)
    return model.state_dict()


def test_builds_offline_and_runs(no_network):
    model = build_model("unetpp-effb0", n_classes=2, in_channels=3, n_inputs=1)
    assert (model.arch_name, model.arch_kwargs) == (
        "unetpp-effb0",
        {"n_classes": 2, "in_channels": 3},
    )
    out = model([torch.rand(2, 3, 64, 64)])
    assert out.shape == (2, 2, 64, 64)
    out.sum().backward()
    assert any(p.grad is not None and p.grad.any() for p in model.net.encoder.parameters())
    assert all(p.grad is not None and p.grad.any() for p in model.net.decoder.parameters())
    with pytest.raises(ModelError, match="multiple of 32"):
        model([torch.rand(1, 3, 48, 48)])
    with pytest.raises(ModelError, match="1 input"):
        build_model("unetpp-effb0", n_classes=2, n_inputs=3)


def test_weights_file_full_model(tmp_path, model_state, no_network):
    path = tmp_path / "w.pt"
    torch.save(model_state, path)
    model = build_model("unetpp-effb0", n_classes=2, weights=path).eval()
    assert model.init_weights == str(path)
    assert "weights" not in model.arch_kwargs
    for k, v in model.net.state_dict().items():
        assert torch.equal(v, model_state[f"net.{k}"]), k


def test_weights_file_encoder_only(tmp_path, model_state):
    enc = {
        k.removeprefix("net.encoder."): v
        for k, v in model_state.items()
        if k.startswith("net.encoder.")
    }
    enc["_fc.weight"] = torch.zeros(1000, 1280)  # an ImageNet classifier head is dropped
    path = tmp_path / "enc.pt"
    torch.save(enc, path)
    model = build_model("unetpp-effb0", n_classes=4, weights=path)
    got = model.net.encoder.state_dict()
    assert all(torch.equal(got[k], v) for k, v in enc.items() if not k.startswith("_fc."))


def test_weights_file_errors(tmp_path, model_state):
    with pytest.raises(ModelError, match="does not exist"):
        build_model("unetpp-effb0", n_classes=2, weights=tmp_path / "missing.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a torch file" * 10)
    with pytest.raises(ModelError, match="Cannot read"):
        build_model("unetpp-effb0", n_classes=2, weights=corrupt)
    path = tmp_path / "w.pt"
    torch.save(model_state, path)
    with pytest.raises(ModelError, match="wrong shape"):  # 2-class weights, 5-class model
        build_model("unetpp-effb0", n_classes=5, weights=path)
    with pytest.raises(ModelError, match="does not match"):
        torch.save({"foo": torch.zeros(1)}, path)
        build_model("unetpp-effb0", n_classes=2, weights=path)
