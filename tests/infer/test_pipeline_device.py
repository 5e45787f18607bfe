"""The engine on a CUDA device (``gpu`` marker, skipped without one) and the device helpers
that must be no-ops on a CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from magnipath.device import configure_for_training, loader_options
from magnipath.infer import InferConfig, infer_slide, open_prediction

from .conftest import INTENSITY_CLASSES, IntensityNet, make_card

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _labels(store) -> np.ndarray:
    root, _ = open_prediction(store)
    return np.asarray(root["labels/0"][:])


def _model(mpp: float = 1.0, size: int = 32):
    from magnipath.geometry import TileGeometry

    return IntensityNet(), make_card(INTENSITY_CLASSES, TileGeometry.single(mpp, size))


def test_training_switches_are_no_ops_on_a_cpu():
    before = (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32)
    assert configure_for_training(torch.device("cpu")) == {}
    assert (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32) == before
    assert loader_options(torch.device("cpu"), 0) == {"num_workers": 0, "pin_memory": False,
                                                       "persistent_workers": False}
    opts = loader_options(torch.device("cuda"), 3)
    assert opts["pin_memory"] and opts["persistent_workers"] and opts["prefetch_factor"] == 4


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("probabilities", [False, True])
def test_cuda_float32_labels_equal_the_cpu_labels(infer_slide_file, tmp_path, probabilities):
    common = dict(batch_size=5, chunk=64, tissue_mask=False, amp=False, stride=24,
                  probabilities=probabilities, region=(0.0, 0.0, 1200.0, 500.0))
    a = infer_slide(infer_slide_file.slide, _model(), tmp_path / "cpu",
                    InferConfig(device="cpu", **common))
    b = infer_slide(infer_slide_file.slide, _model(), tmp_path / "gpu",
                    InferConfig(device="cuda", pipeline_depth=3, **common))
    assert b.device.startswith("cuda") and b.timings["forward_gpu_s"] > 0
    np.testing.assert_array_equal(_labels(a.store), _labels(b.store))


@pytest.mark.gpu
@cuda
def test_cuda_auto_batch_and_nvjpeg_decode_give_the_cpu_labels(tmp_path):
    from magnipath.synth import SynthConfig, synthesize

    slide = synthesize(tmp_path / "j.tif", SynthConfig(width=1024, height=512, mpp=0.25, seed=3,
                                                       compression="jpeg", quality=90)).slide
    common = dict(chunk=64, tissue_mask=False, amp=False)
    a = infer_slide(slide, _model(0.5, 32), tmp_path / "cpu",
                    InferConfig(device="cpu", decode="cpu", batch_size=8, **common))
    b = infer_slide(slide, _model(0.5, 32), tmp_path / "gpu",
                    InferConfig(device="cuda", decode="device", batch_size="auto", **common))
    assert b.timings["decode"] == "device" and b.timings["batch_size"] >= 8
    la, lb = _labels(a.store), _labels(b.store)
    # nvJPEG's IDCT and upsampling differ from libjpeg-turbo's by a grey level or two;
    # the intensity classes only move for pixels that close to a threshold
    assert (la != lb).mean() < 0.01


@pytest.mark.gpu
@cuda
def test_cuda_bf16_runs_and_mostly_agrees_with_float32(infer_slide_file, tmp_path):
    common = dict(batch_size=4, chunk=64, tissue_mask=False, region=(0.0, 0.0, 600.0, 300.0))
    a = infer_slide(infer_slide_file.slide, _model(), tmp_path / "f32",
                    InferConfig(device="cuda", amp=False, **common))
    b = infer_slide(infer_slide_file.slide, _model(), tmp_path / "bf16",
                    InferConfig(device="cuda", amp=True, **common))
    assert (_labels(a.store) != _labels(b.store)).mean() < 0.02
