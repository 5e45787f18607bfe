"""The Training dock widget, opened through the manifest, on a small real tile dataset."""

from __future__ import annotations

import math

import pytest
from napari.utils.notifications import NotificationSeverity
from qtpy.QtCore import Qt

from magnipath.checkpoint import ModelCard
from magnipath.dataset import open_dataset
from magnipath.train import DMMN_RATES, TrainConfig


@pytest.fixture
def training(make_napari_viewer, one_thread):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-magnipath", "Training")
    return viewer, widget


def _errors(notifications):
    return [str(n.message) for n in notifications if n.severity == NotificationSeverity.ERROR]


def _tiny(widget, dataset, out, *, epochs=2, batch_size=4, steps=2):
    widget.dataset.value = dataset
    widget.arch.value = "dsmn-s2"
    widget.base_width.value = 4
    widget.epochs.value = epochs
    widget.lr.value = "0.01"
    widget.batch_size.value = batch_size
    widget.max_steps.value = steps
    widget.device.value = "cpu"
    widget.output.value = out


def test_training_writes_a_model_and_plots_each_epoch(training, qtbot, tiny_dataset, tmp_path,
                                                      notifications):
    _, widget = training
    out = tmp_path / "model"
    _tiny(widget, tiny_dataset, out)
    ds = open_dataset(tiny_dataset)
    assert f"{len(ds)} tiles" in widget.dataset_info.value  # the dataset is described
    widget.run_button.native.click()
    run = widget.current
    assert run is not None and not widget.run_button.enabled and widget.cancel_button.enabled
    qtbot.waitUntil(lambda: run.done, timeout=120_000)
    assert run.error is None, run.error
    assert _errors(notifications) == []
    assert widget.run_button.enabled and not widget.cancel_button.enabled
    # the model folder, as the core writes it, with the widget's settings in its card
    assert (out / "best.pt").is_file() and (out / "last.pt").is_file()
    card = ModelCard.load_json(out / "model_card.json")
    assert card.arch == "dsmn-s2" and card.arch_kwargs["base"] == 4
    assert card.train_config["epochs"] == 2 and card.train_config["lr"] == pytest.approx(0.01)
    assert card.classes.names == ds.class_map.names
    assert widget.model_dir == out and str(out) in widget.message
    # the live plot got every batch and both epochs, with finite losses and mIoU in [0, 1]
    plot = widget.plot
    assert [e["epoch"] for e in plot.epochs] == [1.0, 2.0]
    assert all(math.isfinite(e["loss"]) and 0.0 <= e["miou"] <= 1.0 for e in plot.epochs)
    assert len(plot.batches) == 4  # 2 steps x 2 epochs
    assert plot.batches[-1][0] == pytest.approx(2.0)
    history = card.metrics["last"]
    assert plot.epochs[-1]["miou"] == pytest.approx(history["miou"])
    assert len(plot.ax_iou.lines) == 1 and len(plot.ax.lines) == 3  # batch, train, val


def test_cancel_stops_training_within_a_batch(training, qtbot, tiny_dataset, tmp_path,
                                              notifications):
    _, widget = training
    out = tmp_path / "cancelled"
    _tiny(widget, tiny_dataset, out, epochs=50, batch_size=1, steps=0)  # 16 batches an epoch
    seen: list = []
    widget.run_button.native.click()
    run = widget.current
    # a direct connection counts each batch in the worker thread when it is reported,
    # not when the busy main thread gets round to the queued event
    run._relay.event.connect(lambda ev: seen.append(ev.stage), Qt.DirectConnection)
    qtbot.waitUntil(lambda: "train/batch" in seen, timeout=120_000)
    widget.cancel_button.native.click()
    at_cancel = seen.count("train/batch")
    qtbot.waitUntil(lambda: run.done, timeout=60_000)
    assert run.cancelled and run.result is None
    # the cancel flag is checked before every batch: at most the batch in flight ends
    assert seen.count("train/batch") - at_cancel <= 1
    assert "train/epoch" not in seen and not (out / "best.pt").exists()
    assert _errors(notifications) == []
    assert "cancelled" in widget.message and widget.run_button.enabled


def test_presets_fill_the_fields(training):
    _, widget = training
    widget.preset.value = "DMMN (Ho et al.)"
    assert widget.arch.value == "dmmn-m3" and widget.optimizer.value == "sgd"
    assert float(widget.lr.value) == pytest.approx(5e-5) and widget.epochs.value == 20
    assert "Carcinoma=2" in widget.balance.value and widget.loss.value == "wce"
    cfg = widget.config()
    assert isinstance(cfg, TrainConfig) and cfg.preset_name == "dmmn"
    assert cfg.momentum == pytest.approx(0.99) and cfg.balance == DMMN_RATES
    widget.preset.value = "TLS (McCombe et al.)"
    assert widget.arch.value == "unetpp-effb0" and widget.loss.value == "dice"
    assert not widget.base_width.visible  # UNet++ has no DSMN width
    widget.epochs.value = 3          # a field changed after the preset wins
    cfg = widget.config()
    assert cfg.preset_name == "tls" and cfg.epochs == 3 and cfg.select == "TLS"


def test_bad_values_are_reported_before_running(training, tiny_dataset, tmp_path,
                                                notifications):
    _, widget = training
    assert widget.run() is None  # no dataset chosen
    assert any("Dataset folder" in e for e in _errors(notifications))
    _tiny(widget, tiny_dataset, tmp_path / "m")
    widget.lr.value = "fast"
    assert widget.run() is None
    assert any("Learning rate" in e for e in _errors(notifications))
    widget.lr.value = "0.01"
    widget.balance.value = "Stroma=two"
    assert widget.run() is None
    assert any("Balancing rates" in e for e in _errors(notifications))
    assert widget.current is None and not (tmp_path / "m").exists()


def test_training_plot_follows_the_napari_theme(training):
    from matplotlib.colors import to_hex

    viewer, widget = training
    plot = widget.plot
    viewer.theme = "dark"
    dark_bg = to_hex(plot.figure.get_facecolor())
    assert dark_bg != "#ffffff" and to_hex(plot.ax.get_facecolor()) == dark_bg
    label_colour = to_hex(plot.ax.xaxis.label.get_color())
    assert label_colour != dark_bg
    viewer.theme = "light"
    light_bg = to_hex(plot.figure.get_facecolor())
    assert light_bg != dark_bg and to_hex(plot.ax.xaxis.label.get_color()) != label_colour
