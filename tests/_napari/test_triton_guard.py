"""Regression: torch models load after napari drew with OpenGL (no LLVM clash, no segfault)."""

import os
import subprocess
import sys

import pytest

CODE = """
import magnipath._napari  # the guard
import numpy as np
import napari
viewer = napari.Viewer(show=False)
viewer.add_image(np.zeros((16, 16)))
viewer.screenshot(canvas_only=True)
import torch
from magnipath.models import build_model
model = build_model("unetpp-effb0", n_classes=2)
print(tuple(model([torch.zeros(1, 3, 64, 64)]).shape))
viewer.close()
"""


@pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="needs an X display (pytest-xvfb)")
def test_segmentation_model_after_opengl_context():
    env = dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"))
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, env=env,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "(1, 2, 64, 64)" in out.stdout
