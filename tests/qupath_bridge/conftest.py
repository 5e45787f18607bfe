"""QuPath fixtures of the bridge tests.

Tests marked ``qupath`` run once per QuPath flavour: against the 0.5-like and
0.6-like QuPath test doubles (tests/_qupath_double, everywhere) and against real
QuPath where paquo finds one (``PAQUO_QUPATH_DIR``); see tests/conftest.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

_HERE = Path(__file__).resolve().parent



def write_slide(path: Path, width: int, height: int, mpp: float) -> Path:
    """A small pyramidal, tiled OME-TIFF (2 levels, RGB) with its pixel size in µm.

    The size is stored both in the OME-XML (Bio-Formats) and in the TIFF resolution
    tags (OpenSlide), so whichever reader QuPath picks reports ``mpp``.
    """
    import tifffile

    yy, xx = np.mgrid[0:height, 0:width]
    img = np.stack([xx * 255 // width, yy * 255 // height, np.full_like(xx, 180)],
                   axis=-1).astype(np.uint8)
    opts = {"tile": (256, 256), "photometric": "rgb", "compression": "zlib",
            "resolutionunit": "CENTIMETER"}
    path.parent.mkdir(parents=True, exist_ok=True)
    with tifffile.TiffWriter(path, ome=True) as tif:
        tif.write(img, subifds=1, resolution=(1e4 / mpp, 1e4 / mpp),
                  metadata={"axes": "YXS", "PhysicalSizeX": mpp, "PhysicalSizeXUnit": "µm",
                            "PhysicalSizeY": mpp, "PhysicalSizeYUnit": "µm"}, **opts)
        tif.write(img[::2, ::2], subfiletype=1, resolution=(5e3 / mpp, 5e3 / mpp), **opts)
    return path


@pytest.fixture
def make_slide(tmp_path: Path) -> Callable[..., Path]:
    """``make_slide(name, width=1024, height=768, mpp=0.5, folder="slides")`` -> path."""
    def make(name: str, width: int = 1024, height: int = 768, mpp: float = 0.5,
             folder: str = "slides") -> Path:
        return write_slide(tmp_path / folder / name, width, height, mpp)
    return make
