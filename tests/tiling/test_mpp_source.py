"""The manifest says where each slide's mpp came from: the file, an override, or an estimate."""

import numpy as np
import pytest
import tifffile

from magnipath.dataset import open_dataset
from magnipath.geometry import TileGeometry
from magnipath.tiling import SlideSource, TilingConfig, make_dataset

pytestmark = pytest.mark.filterwarnings("ignore::magnipath.tiling.TilingWarning")

# 1 µm/px tiles of 32 px; background tiles kept (the pixels do not matter here)
CONFIG = TilingConfig(geometry=TileGeometry.single(1.0, 32), min_tissue=0.0, workers=1)


def _slide(path, mpp: float | None):
    """A 256 x 256 px RGB TIFF with noise; ``mpp=None`` writes no resolution."""
    rgb = np.random.default_rng(0).integers(0, 255, (256, 256, 3), np.uint8)
    res = {} if mpp is None else {"resolution": (1e4 / mpp, 1e4 / mpp),
                                  "resolutionunit": "CENTIMETER"}
    tifffile.imwrite(path, rgb, tile=(128, 128), photometric="rgb", **res)
    return path


@pytest.mark.parametrize("mpp, mpp_source, expected", [
    (None, None, "tiff-resolution"),             # the file's own mpp: its source
    (0.25, None, "override"),                    # a value given by the user
    (0.25, "estimated (baseline)", "estimated (baseline)"),  # an estimate, said as such
])
def test_manifest_records_the_mpp_source(tmp_path, mpp, mpp_source, expected):
    path = _slide(tmp_path / "s.tif", 0.5)
    make_dataset([SlideSource(path, mpp=mpp, mpp_source=mpp_source)], tmp_path / "ds",
                 config=CONFIG)
    (entry,) = open_dataset(tmp_path / "ds").manifest["slides"]
    assert entry["mpp_source"] == expected
    assert entry["mpp"] == pytest.approx(mpp or 0.5)


def test_an_estimate_on_a_slide_without_mpp(tmp_path):
    path = _slide(tmp_path / "nompp.tif", None)
    make_dataset([SlideSource(path, mpp=0.26, mpp_source="estimated (fusion, model m)")],
                 tmp_path / "ds", config=CONFIG)
    (entry,) = open_dataset(tmp_path / "ds").manifest["slides"]
    assert entry["mpp"] == pytest.approx(0.26)
    assert entry["mpp_source"] == "estimated (fusion, model m)"
