"""The Inference widget says so when a synthetic-only model meets a slide not made by synth."""

from __future__ import annotations

import shutil

import tifffile

from magnipath.checkpoint import card_of, training_data_from_slides
from magnipath.synth import SynthConfig, make_layout, render_region


def _synthetic_only(model, tmp_path, synth_slide):
    folder = tmp_path / "synthetic-only"
    shutil.copytree(model, folder)
    card = card_of(folder)
    card.training_data = training_data_from_slides({"s": synth_slide})
    card.save_json(folder / "model_card.json")
    return folder


def _run(viewer, widget, path, model, qtbot):
    (image,) = viewer.open(str(path), plugin="napari-magnipath")
    widget.image.value = image
    widget.model.value = model
    widget.region.value = "whole slide"
    widget.tissue_mask.value = False
    widget.run_button.native.click()
    run = widget.current
    qtbot.waitUntil(lambda: run.done, timeout=60_000)
    assert run.error is None, run.error
    return widget.message


def test_the_line_shows_for_a_foreign_slide_only(make_napari_viewer, qtbot, synthetic,
                                                 constant_model, tmp_path, one_thread):
    plain = tmp_path / "scanner.tif"
    rgb = render_region(make_layout(SynthConfig(width=512, height=512, seed=2)),
                        (0, 0, 512, 512))
    tifffile.imwrite(plain, rgb, tile=(256, 256), photometric="rgb",
                     resolution=(1e4 / 0.25, 1e4 / 0.25), resolutionunit="CENTIMETER")
    model = _synthetic_only(constant_model, tmp_path, synthetic.slide)
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-magnipath", "Inference")
    widget.device.value = "cpu"
    widget.output.value = tmp_path / "predictions"
    said = _run(viewer, widget, plain, model, qtbot)
    assert "synthetic slides only" in said and "scanner.tif" in said
    said = _run(viewer, widget, synthetic.slide, model, qtbot)
    assert "synthetic slides only" not in said
