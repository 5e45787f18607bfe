"""Fixtures of the napari plugin tests: small real slides and annotations in tmp dirs.

These tests open real napari viewers (``make_napari_viewer`` from napari's
pytest plugin); pytest-xvfb runs them under a virtual X server.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from napari.utils.notifications import notification_manager
from shapely.geometry import MultiPolygon, Point, Polygon

from qupath_bridge.geojson import write_geojson
from qupath_bridge.objects import QuPathObject

SLIDE_MPP = 0.5


def write_pyramid(path: Path, level0: np.ndarray, mpp: float | None, n_levels: int = 3,
                  tile: int = 128) -> Path:
    """A tiled pyramidal RGB TIFF: level 0 then 2x-reduced pages (SVS-like)."""
    levels = [level0]
    for _ in range(n_levels - 1):
        a = levels[-1]
        h, w = a.shape[0] // 2 * 2, a.shape[1] // 2 * 2
        levels.append(a[:h, :w].reshape(h // 2, 2, w // 2, 2, 3).mean(axis=(1, 3))
                      .astype(np.uint8))
    res = {} if mpp is None else {"resolution": (1e4 / mpp, 1e4 / mpp),
                                  "resolutionunit": "CENTIMETER"}
    with tifffile.TiffWriter(path) as tif:
        for i, a in enumerate(levels):
            tif.write(a, tile=(tile, tile), photometric="rgb", compression="zlib",
                      subfiletype=1 if i else 0, **res)
    return path


def tissue_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """White background with a pink 'tissue' disc covering the centre."""
    rng = np.random.default_rng(seed)
    img = np.full((height, width, 3), 240, np.uint8)
    yy, xx = np.mgrid[0:height, 0:width]
    disc = (yy - height / 2) ** 2 + (xx - width / 2) ** 2 < (0.4 * min(height, width)) ** 2
    pink = np.array([200, 110, 170]) + rng.normal(0, 10, size=(int(disc.sum()), 3))
    img[disc] = np.clip(pink, 0, 255).astype(np.uint8)
    return img


@pytest.fixture
def slide_path(tmp_path: Path) -> Path:
    """A 1024 x 768 px, 3-level pyramidal TIFF at 0.5 µm/px with tissue in the middle."""
    return write_pyramid(tmp_path / "slide.tif", tissue_image(768, 1024), SLIDE_MPP)


def sample_objects() -> list[QuPathObject]:
    """Annotations exercising holes, multi-part objects, points, measurements, colours."""
    holed = Polygon([(100, 100), (500, 100), (500, 500), (100, 500)],
                    [[(150, 150), (250, 150), (250, 250), (150, 250)],
                     [(300, 300), (400, 300), (350, 420)]])
    multi = MultiPolygon([Polygon([(600, 100), (800, 100), (800, 300)]),
                          Polygon([(600, 400), (900, 400), (900, 700), (600, 700)],
                                  [[(700, 500), (800, 500), (800, 600), (700, 600)]])])
    return [
        QuPathObject(holed, classification="Tumor", class_color=(200, 0, 0),
                     measurements={"Area px": 12.5}, name="nest 1", metadata={"k": "v"}),
        QuPathObject(multi, classification="Stroma", class_color=(0, 150, 0), is_locked=True,
                     color=(10, 20, 30)),
        QuPathObject(Point(420.5, 333.25), object_type="detection", classification="Mitosis",
                     class_color=(250, 250, 0)),
    ]


@pytest.fixture
def geojson_path(tmp_path: Path) -> Path:
    return write_geojson(sample_objects(), tmp_path / "annotations.geojson")


@pytest.fixture
def notifications():
    """Notifications shown during the test (level, message), newest last."""
    seen: list = []

    def record(n):
        seen.append(n)

    notification_manager.notification_ready.connect(record)
    yield seen
    notification_manager.notification_ready.disconnect(record)


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory):
    """A small synthetic slide (1024 x 1024 px at 0.25 µm/px) with its GeoJSON files."""
    from magnipath.synth import SynthConfig, synthesize

    folder = tmp_path_factory.mktemp("synth")
    return synthesize(folder / "synthetic.tif", SynthConfig(width=1024, height=1024, seed=3))


def pytest_configure(config):
    # napari on PyQt5 cannot detect the system theme; says so on every viewer
    config.addinivalue_line("filterwarnings",
                            "ignore:System theme detection requires:UserWarning")
