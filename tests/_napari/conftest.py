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
    # napari cannot detect the system theme under Xvfb/offscreen; says so on every viewer
    config.addinivalue_line("filterwarnings",
                            "ignore:System theme detection requires:UserWarning")


# -- fixtures of the Training / Inference / QuPath widget tests ------------------------------------
_HERE = Path(__file__).resolve().parent



@pytest.fixture
def magnification(make_napari_viewer):
    """``(viewer, widget)``: a viewer with the Magnification dock widget, opened through
    the manifest."""
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-magnipath", "Magnification")
    return viewer, widget


def run_widget(widget, qtbot, timeout_ms: int = 120_000):
    """Press the widget's run button, wait for its job, fail on an error; its result."""
    widget.run_button.native.click()
    run = widget.current
    assert run is not None
    qtbot.waitUntil(lambda: run.done, timeout=timeout_ms)
    assert run.error is None, run.error
    return widget.result


@pytest.fixture
def one_thread(one_torch_thread):
    """torch on one thread during the test (``one_torch_thread`` of tests/conftest.py)."""
    return None


TINY_MPP = 1.0       # 10x target: a 64 px tile covers 256 level-0 px of the 0.25 µm/px slide
TINY_TILE = 64


@pytest.fixture(scope="session")
def tiny_dataset(synthetic, tmp_path_factory) -> Path:
    """A real tile dataset of ``synthetic`` (16 tiles of 64 px at 10x, ground-truth labels)."""
    from magnipath.classes import ClassMap
    from magnipath.geometry import TileGeometry
    from magnipath.tiling import SlideSource, TilingConfig, make_dataset
    from qupath_bridge.geojson import read_geojson

    names = sorted({o.classification for o in read_geojson(synthetic.truth)
                    if o.classification and o.geometry.geom_type != "Point"})
    out = tmp_path_factory.mktemp("tiny_dataset") / "dataset"
    make_dataset([SlideSource(synthetic.slide, annotations=synthetic.truth)], out,
                 class_map=ClassMap.from_names(names),
                 config=TilingConfig(geometry=TileGeometry.single(TINY_MPP, TINY_TILE),
                                     min_tissue=0.0, workers=1))
    return out


TINY_TRAIN = dict(arch="dsmn-s2", arch_kwargs={"base": 4}, epochs=1, batch_size=4,
                  max_steps_per_epoch=2, device="cpu", num_workers=0, seed=0)


@pytest.fixture(scope="session")
def tiny_model(tiny_dataset, tmp_path_factory) -> Path:
    """A model folder trained on ``tiny_dataset`` (DSMN-S2, width 4, one short epoch)."""
    import torch

    from magnipath.train import TrainConfig, train

    out = tmp_path_factory.mktemp("tiny_model") / "model"
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(tiny_dataset, out, TrainConfig(**TINY_TRAIN))
    finally:
        torch.set_num_threads(n)
    return out


CONSTANT_CLASSES = ("Background", "Stroma", "Tumor")
CONSTANT_COLORS = {"Background": (230, 230, 230), "Stroma": (0, 160, 60), "Tumor": (200, 0, 0)}


@pytest.fixture(scope="session")
def constant_model(tmp_path_factory) -> Path:
    """A model folder whose real DSMN-S2 predicts "Tumor" at every pixel (10x, 64 px).

    All weights are zero and the final bias is one-hot, so the prediction is known
    exactly: what the widgets show is then a test of geometry, not of learning.
    """
    import torch

    from magnipath.checkpoint import ModelCard, save_checkpoint
    from magnipath.classes import ClassMap
    from magnipath.geometry import TileGeometry
    from magnipath.models import build_model

    classes = ClassMap.from_names(CONSTANT_CLASSES, colors=CONSTANT_COLORS)
    net = build_model("dsmn-s2", n_classes=classes.n_classes, base=4)
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        final = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)][-1]
        final.bias[classes.index_of("Tumor")] = 5.0
    card = ModelCard(arch="dsmn-s2", arch_kwargs=dict(net.arch_kwargs),
                     class_map=classes.to_dict(),
                     geometry=TileGeometry.single(TINY_MPP, TINY_TILE).to_dict())
    folder = tmp_path_factory.mktemp("constant_model") / "tumor-everywhere"
    folder.mkdir()
    save_checkpoint(folder / "best.pt", net, card)
    card.save_json(folder / "model_card.json")
    return folder


@pytest.fixture(scope="session")
def mitosis_slide(tmp_path_factory):
    """A 1024 x 1024 px synthetic 40x slide with at least 4 mitoses (SynthResult)."""
    from magnipath.synth import SynthConfig, make_layout, synthesize

    for seed in range(200):
        cfg = SynthConfig(width=1024, height=1024, seed=seed, density=6.0,
                          mitoses_per_mm2=1500.0, tile=256, compression="zlib")
        if len(make_layout(cfg).mitoses) >= 4:
            folder = tmp_path_factory.mktemp("mitosis_slide")
            return synthesize(folder / "mitoses.tif", cfg)
    raise RuntimeError("no synthetic layout with mitoses found; the synth generator changed")
