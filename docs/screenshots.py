"""Take the screenshots of ``docs/napari.md`` from a real napari viewer.

Run it with a display, or under a virtual one::

    xvfb-run -a python docs/screenshots.py

It opens the "MagniPath synthetic slide" sample (made once into the cache,
see ``docs/napari.md``), docks the Tiling widget, presses "Preview grid" and
saves ``docs/images/napari-tiling.png`` (the whole window) and
``docs/images/napari-sample.png`` (the canvas with the ground truth), so the
pictures always show the plugin as it is.
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

    # only errors as pop-ups (napari's PyQt5 notice would cover the canvas); an
    # environment setting, so the user's napari settings are left alone
    os.environ.setdefault("NAPARI_APPLICATION_GUI_NOTIFICATION_LEVEL", "error")
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
    viewer.close()
    return [out / "napari-sample.png", out / "napari-tiling.png"] if sample is not None \
        and tiling is not None else []


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=IMAGES, help="folder of the PNG files")
    for p in main(parser.parse_args().out):
        print(p)
