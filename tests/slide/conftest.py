"""Session fixtures: small real slides written with tifffile."""

from __future__ import annotations

from pathlib import Path

import pytest

from ._files import pyramid, textured, write_generic


@pytest.fixture(scope="session")
def zlib_slide(tmp_path_factory) -> Path:
    """1000 x 1500 px, 4 levels by 2, zlib tiles of 128 px, 0.25 µm/px in cm units."""
    path = tmp_path_factory.mktemp("slides") / "zlib.tif"
    return write_generic(path, pyramid(textured(1000, 1500), 4), resolution=1e4 / 0.25)


@pytest.fixture(scope="session")
def jpeg_slide(tmp_path_factory) -> Path:
    """1024 x 1280 px, 3 levels by 2, JPEG tiles of 256 px, 0.25 µm/px."""
    path = tmp_path_factory.mktemp("slides") / "jpeg.tif"
    return write_generic(path, pyramid(textured(1024, 1280, seed=1), 3), tile=256,
                         compression="jpeg", resolution=1e4 / 0.25)
