"""Synthetic 40x slides and a small magnification dataset, made once per session."""

from __future__ import annotations

import pytest
import torch

from magnipath.magnification import MagDataConfig, make_dataset, synthetic_sources


@pytest.fixture(autouse=True)
def _one_thread_seeded():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def sources(tmp_path_factory):
    """Three synthetic 2048 x 2048 slides at 0.25 µm/px (40x) with their stain vectors."""
    return synthetic_sources(tmp_path_factory.mktemp("mag_slides"), 3, size=2048, seed=40)


@pytest.fixture(scope="session")
def dataset(sources, tmp_path_factory):
    """Two patches per magnification (5..40x) per slide; one slide per split."""
    out = tmp_path_factory.mktemp("mag_data") / "ds"
    make_dataset(sources, out, MagDataConfig(per_class=2, ratios=(1, 1, 1), seed=1))
    return out
