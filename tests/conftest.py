"""Shared session fixtures: small synthetic slides with ground truth, made once per session.

``synth_small``       4096 x 4096 px at 0.25 µm/px (40x), seed 1, zlib tiles (lossless,
                      so pixel-exact comparisons work).
``synth_small_jpeg``  the same slide with JPEG tiles (quality 90).

Both are :class:`magnipath.synth.SynthResult` objects: ``.slide`` (the pyramidal
TIFF), ``.truth`` / ``.partial`` / ``.mitoses`` (QuPath GeoJSON, level-0 px),
``.levels``, ``.n_objects``, ``.config``. Treat the files as read-only.
"""

from __future__ import annotations

import pytest

import magnipath._napari  # noqa: F401 - hides triton from torch in this process (see its docstring)


@pytest.fixture
def one_torch_thread():
    """Run the test with one torch thread (steadier timing on a shared 2-core machine)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


SMALL = dict(width=4096, height=4096, mpp=0.25, seed=1)


@pytest.fixture(scope="session")
def synth_small(tmp_path_factory):
    """A 4096 x 4096 px synthetic slide at 0.25 µm/px, seed 1, zlib (lossless) tiles."""
    from magnipath.synth import SynthConfig, synthesize

    folder = tmp_path_factory.mktemp("synth_small")
    return synthesize(folder / "small.tif", SynthConfig(**SMALL, compression="zlib"))


@pytest.fixture(scope="session")
def synth_small_jpeg(tmp_path_factory):
    """The slide of ``synth_small`` with JPEG tiles (quality 90)."""
    from magnipath.synth import SynthConfig, synthesize

    folder = tmp_path_factory.mktemp("synth_small_jpeg")
    return synthesize(folder / "small.tif", SynthConfig(**SMALL, compression="jpeg", quality=90))
