"""Take the screenshots of ``docs/napari.md`` from a real napari viewer.

Run it with a display, or under a virtual one::

    xvfb-run -a python docs/screenshots.py

It opens the "MagniPath synthetic slide" sample (made once into the cache,
see ``docs/napari.md``) and saves, into ``docs/images/``:

* ``napari-sample.png``: the canvas with the ground truth;
* ``napari-tiling.png``: the Tiling widget after "Preview grid";
* ``napari-training.png``: the Training widget after a short real training run
  on tiles of the sample (its live plot filled);
* ``napari-inference.png``: the Inference widget after running that model over
  the slide (label map and objects);
* ``napari-qupath.png``: the QuPath widget (disabled, with the reason, where
  QuPath is not installed);
* ``napari-magnification.png``: the Magnification widget's estimate for the
  current view (the baseline: no model needed);
* ``napari-mitosis.png``: the Mitosis widget after training on the sample's
  mitoses and detecting over the slide (heat map and detections);

so the pictures always show the plugin as it is. The dataset, models and a
mitosis-rich synthetic slide go to ``<MagniPath cache>/screenshots/``
(replaced on every run). It takes about 5 minutes on a 2-core CPU, most of it
training.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

IMAGES = Path(__file__).resolve().parent / "images"


def _wait(run, timeout: float = 300.0) -> None:
    from qtpy.QtWidgets import QApplication

    t0 = time.monotonic()
    while run is not None and not run.done:
        QApplication.processEvents()
        time.sleep(0.02)
        if time.monotonic() - t0 > timeout:
            raise TimeoutError("the preview did not finish in time")


def _settle(seconds: float = 1.0) -> None:
    from qtpy.QtWidgets import QApplication

    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        QApplication.processEvents()
        time.sleep(0.02)


def main(out: Path = IMAGES) -> list[Path]:
    """Make the screenshots into ``out``; return their paths."""
    import os

    # only errors as pop-ups (napari's notices would cover the canvas); an
    # environment setting, so the user's napari settings are left alone
    os.environ.setdefault("NAPARI_APPLICATION_GUI_NOTIFICATION_LEVEL", "error")
    os.environ.setdefault("QT_API", "pyqt6")  # the `qt` extra's binding
    import napari

    out.mkdir(parents=True, exist_ok=True)
    viewer = napari.Viewer(show=True, title="MagniPath in napari")
    viewer.window.resize(1500, 950)
    viewer.open_sample("napari-magnipath", "synthetic_slide")
    viewer.scale_bar.visible = True
    viewer.reset_view()
    _settle()
    sample = viewer.screenshot(str(out / "napari-sample.png"), canvas_only=True)

    _, widget = viewer.window.add_plugin_dock_widget("napari-magnipath", "Tiling")
    widget.image.value = viewer.layers["synthetic.tif"]
    widget.annotations.value = viewer.layers["ground truth"]
    widget.magnification.value = 10.0
    widget.tile_size.value = 256
    widget.preset.value = "DMMN (x1/2, x1/4)"
    widget.min_tissue.value = 0.5
    widget.output.value = Path.home() / "magnipath-datasets" / "synthetic-10x"
    _wait(widget.preview())
    viewer.reset_view()
    _settle()
    tiling = viewer.screenshot(str(out / "napari-tiling.png"), canvas_only=False)
    paths = [out / "napari-sample.png", out / "napari-tiling.png"] if sample is not None \
        and tiling is not None else []
    viewer.window.remove_dock_widget("all")
    paths += _pipeline_shots(viewer, out)
    viewer.close()
    return paths


def _dock(viewer, name: str):
    viewer.window.remove_dock_widget("all")
    return viewer.window.add_plugin_dock_widget("napari-magnipath", name)[1]


def _pipeline_shots(viewer, out: Path) -> list[Path]:
    """Tile the sample at 5x, train a small model, run it; screenshot each widget."""
    import shutil

    from magnipath._napari._sample_data import cache_dir

    work = cache_dir() / "screenshots"
    shutil.rmtree(work, ignore_errors=True)
    slide, truth = viewer.layers["synthetic.tif"], viewer.layers["ground truth"]
    widget = _dock(viewer, "Tiling")
    widget.image.value, widget.annotations.value = slide, truth
    widget.magnification.value, widget.tile_size.value = 5.0, 64
    widget.min_tissue.value = 0.0
    widget.output.value = work / "dataset"
    _wait(widget.run())
    for name in ("tile grid", "tissue mask"):
        if name in viewer.layers:
            viewer.layers.remove(name)
    shots = []

    widget = _dock(viewer, "Training")
    widget.dataset.value = work / "dataset"
    widget.arch.value = "dsmn-s2"
    widget.base_width.value = 8
    widget.epochs.value = 12
    widget.lr.value = "0.005"
    widget.batch_size.value = 8
    widget.output.value = work / "model"
    _wait(widget.run(), timeout=1200.0)
    _settle()
    viewer.screenshot(str(out / "napari-training.png"), canvas_only=False)
    shots.append(out / "napari-training.png")

    widget = _dock(viewer, "Inference")
    widget.image.value = slide
    widget.model.value = work / "model"
    widget.output.value = work / "predictions"
    widget.overwrite.value = True
    truth.visible = False
    _wait(widget.run())
    viewer.layers.selection.active = slide
    viewer.reset_view()
    _settle()
    viewer.screenshot(str(out / "napari-inference.png"), canvas_only=False)
    shots.append(out / "napari-inference.png")

    _dock(viewer, "QuPath")
    _settle()
    viewer.screenshot(str(out / "napari-qupath.png"), canvas_only=False)
    shots.append(out / "napari-qupath.png")
    for name in list(viewer.layers):
        if name.name.startswith("synthetic ") and name.name != "synthetic.tif":
            viewer.layers.remove(name)
    shots.append(_magnification_shot(viewer, slide, out))
    shots.append(_mitosis_shot(viewer, slide, work, out))
    return shots


def _magnification_shot(viewer, slide, out: Path) -> Path:
    from magnipath._napari._regions import camera

    widget = _dock(viewer, "Magnification")
    widget.image.value = slide
    widget.region.value = "current view"
    viewer.reset_view()
    camera(viewer).zoom = camera(viewer).zoom * 3
    _wait(widget.run())
    viewer.layers.selection.active = slide
    _settle()
    viewer.screenshot(str(out / "napari-magnification.png"), canvas_only=False)
    viewer.layers.remove("magnification tiles")
    return out / "napari-magnification.png"


def _mitosis_shot(viewer, slide, work: Path, out: Path) -> Path:
    """On a synthetic slide rich in mitoses (the sample has only a few)."""
    from magnipath.synth import SynthConfig, make_layout, synthesize

    seed = next(s for s in range(200) if len(make_layout(SynthConfig(
        width=2048, height=2048, seed=s, density=6.0, mitoses_per_mm2=1500.0)).mitoses) >= 12)
    rich = synthesize(work / "mitoses" / "mitoses.tif", SynthConfig(
        width=2048, height=2048, seed=seed, density=6.0, mitoses_per_mm2=1500.0))
    viewer.layers.clear()
    (slide,) = viewer.open(str(rich.slide), plugin="napari-magnipath")
    (points,) = viewer.open(str(rich.mitoses), plugin="napari-magnipath")
    widget = _dock(viewer, "Mitosis")
    widget.image.value = slide
    widget.points.value = points
    widget.filters.value = "32, 16"
    widget.epochs.value = 8
    widget.lr.value = "1e-3"
    widget.model.value = work / "mitosis-model"
    widget.overwrite.value = True
    _wait(widget.train(), timeout=1200.0)
    widget.threshold.value = 0.5
    _wait(widget.detect(), timeout=1200.0)
    viewer.layers.selection.active = slide
    viewer.reset_view()
    _settle()
    viewer.screenshot(str(out / "napari-mitosis.png"), canvas_only=False)
    return out / "napari-mitosis.png"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=IMAGES, help="folder of the PNG files")
    for p in main(parser.parse_args().out):
        print(p)
