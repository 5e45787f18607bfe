"""The Training dock widget: the ``magnipath train`` command, point and click.

The widget only collects values: it turns its fields into a
:class:`magnipath.train.TrainConfig` (from a paper's preset or from scratch)
and runs :func:`magnipath.train.train` in a thread worker
(:func:`._worker.run_core`). The core's progress events feed the live plot
(:mod:`._train_plot`: loss per batch, training/validation loss and
validation mean IoU per epoch). Cancel stops before the next batch. At the end
the status line names the model folder (``best.pt``, ``model_card.json``...).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    LineEdit,
    PushButton,
    SpinBox,
)
from napari.utils.notifications import show_error, show_info

from magnipath._errors import MagnipathError, ModelError
from magnipath._napari._jobs import DEVICES, JobWidget, parse_float, path_value, wrap_label
from magnipath._napari._train_plot import TrainingPlot
from magnipath._napari._worker import CoreRun
from magnipath.progress import Progress

if TYPE_CHECKING:
    import napari

PRESETS = {"none": None, "DMMN (Ho et al.)": "dmmn", "TLS (McCombe et al.)": "tls"}
"""Preset choices -> :meth:`magnipath.train.TrainConfig.preset` names."""
WIDTH_ARCHS = ("dsmn-s2", "dmmn-ms", "dmmn-m2s", "dmmn-m3")
"""Architectures that take a first-layer width (``arch_kwargs["base"]``)."""


def parse_rates(text: str) -> dict[str, int]:
    """Balancing rates ``"Carcinoma=2, Benign=10"`` -> ``{"Carcinoma": 2, "Benign": 10}``
    (:func:`magnipath.train.parse_rates`, errors naming the widget's field)."""
    from magnipath.train import parse_rates as parse

    return parse(text, "Balancing rates")


def format_rates(rates: dict[str, int]) -> str:
    """Inverse of :func:`parse_rates`."""
    return ", ".join(f"{k}={v}" for k, v in rates.items())


def _models() -> list[str]:
    from magnipath.models import list_models

    return list_models()


def _theme_colors(viewer: Any) -> tuple[str, str]:
    """``(background, text)`` hex colours of the viewer's napari theme."""
    from napari.utils.theme import get_theme

    try:
        theme = get_theme(viewer.theme)
    except (KeyError, ValueError):  # 'system' or an unknown name: napari's dark theme
        theme = get_theme("dark")
    return theme.background.as_hex(), theme.text.as_hex()


class TrainingWidget(JobWidget):
    """Dock widget: train a segmentation model on a tile dataset (``magnipath train``).

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        The viewer (napari passes it when the widget is opened from the menu).
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        from magnipath.train import LOSSES, OPTIMIZERS

        self.dataset = FileEdit(label="Dataset folder", mode="d",
                                tooltip="A tile dataset written by Tiling / 'magnipath tile'")
        self.dataset_info = Label(value="")
        self.preset = ComboBox(label="Preset", choices=list(PRESETS), value="none",
                               tooltip="Fill every field with a paper's settings")
        self.arch = ComboBox(label="Architecture", choices=_models(), value="dmmn-m3")
        self.base_width = SpinBox(label="Width (channels)", value=32, min=2, max=256,
                             tooltip="First-layer width of DSMN/DMMN models (paper: 32)")
        self.epochs = SpinBox(label="Epochs", value=20, min=1, max=100_000)
        self.lr = LineEdit(label="Learning rate", value="0.001",
                           tooltip="Step size of the optimiser, e.g. 5e-5 (DMMN) or 1e-3 (TLS)")
        self.batch_size = SpinBox(label="Batch size", value=8, min=1, max=4096,
                                  tooltip="Tiles per optimisation step")
        self.optimizer = ComboBox(label="Optimiser", choices=list(OPTIMIZERS), value="adam")
        self.loss = ComboBox(label="Loss", choices=list(LOSSES), value="wce", tooltip=(
            "wce: weighted cross-entropy (w_c = 1 - N_c / sum N); ce; dice; wce+dice. "
            "Unlabelled pixels never count"))
        self.balance = LineEdit(label="Balancing rates", tooltip=(
            "Elastic copies per patch by class, e.g. 'Carcinoma=2, Benign=10' (empty: none)"))
        self.balance_order = LineEdit(label="Balancing order", tooltip=(
            "Class order, highest first: a patch belongs to its highest class present"))
        self.device = ComboBox(label="Device", choices=DEVICES, value="auto",
                               tooltip="auto = CUDA, then Apple MPS, then the CPU")
        self.time_budget = FloatSpinBox(label="Time budget (min)", value=0.0, min=0.0,
                                        max=100_000.0, step=5.0,
                                        tooltip="Stop after this many minutes (0: no limit); "
                                                "the cut epoch is validated and saved")
        self.max_steps = SpinBox(label="Max steps per epoch", value=0, min=0, max=10_000_000,
                                 tooltip="At most this many batches per epoch (0: all)")
        self.output = FileEdit(label="Model folder", mode="d",
                               tooltip="Folder to write best.pt, model_card.json, history...")
        self.resume = CheckBox(label="Resume", value=False,
                               tooltip="Continue the run in the model folder (its settings; "
                                       "epochs, time budget and device from here)")
        self.overwrite = CheckBox(label="Replace an existing model", value=False)
        self.run_button = PushButton(text="Train")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.plot = TrainingPlot(*_theme_colors(napari_viewer))
        self.model_dir: Path | None = None
        self.summary: dict | None = None
        super().__init__(napari_viewer, "Training", [
            self.dataset, self.dataset_info, self.preset, self.arch, self.base_width, self.epochs,
            self.lr, self.batch_size, self.optimizer, self.loss, self.balance,
            self.balance_order, self.device, self.time_budget, self.max_steps, self.output,
            Container(widgets=[self.resume, self.overwrite], layout="horizontal", labels=False),
            Container(widgets=[self.run_button, self.cancel_button], layout="horizontal",
                      labels=False)])
        self.form.layout().addWidget(self.plot.canvas)
        napari_viewer.events.theme.connect(self._follow_theme)
        wrap_label(self.dataset_info)
        self.preset.changed.connect(self._apply_preset)
        self.arch.changed.connect(self._toggle_width)
        self.dataset.changed.connect(self._show_dataset)
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)
        self._toggle_width()

    # -- reactions ----------------------------------------------------------------------------
    def _follow_theme(self, *_: Any) -> None:
        """Redraw the plot in the viewer's (new) theme colours."""
        self.plot.set_theme(*_theme_colors(self._viewer))

    def _apply_preset(self, *_: Any) -> None:
        key = PRESETS[self.preset.value]
        if key is None:
            return
        from magnipath.train import TrainConfig

        cfg = TrainConfig.preset(key)
        self.arch.value = cfg.arch
        self.epochs.value = cfg.epochs
        self.lr.value = f"{cfg.lr:g}"
        self.batch_size.value = cfg.batch_size
        self.optimizer.value = cfg.optimizer
        self.loss.value = cfg.loss
        self.balance.value = format_rates(cfg.balance)
        self.balance_order.value = ", ".join(cfg.balance_order)

    def _toggle_width(self, *_: Any) -> None:
        self.base_width.visible = self.arch.value in WIDTH_ARCHS

    def _show_dataset(self, *_: Any) -> None:
        try:
            from magnipath.dataset import open_dataset

            ds = open_dataset(path_value(self.dataset, "Dataset folder"))
        except MagnipathError as e:
            self.dataset_info.value = str(e)[:200]
            return
        g = ds.geometry
        mags = ", ".join(f"{10 / i.mpp:g}x" for i in g.inputs)
        self.dataset_info.value = (f"{len(ds)} tiles of {g.target_size} px at {mags}; "
                                   f"classes: {', '.join(ds.class_map.names)}")

    # -- values -> TrainConfig (main thread) -----------------------------------------------------
    def config_overrides(self) -> dict[str, Any]:
        """The TrainConfig fields the widget sets (for a preset or from scratch).

        Raises
        ------
        ModelError
            A field that cannot be read (learning rate, balancing rates...).
        """
        arch = self.arch.value
        minutes = float(self.time_budget.value)
        steps = int(self.max_steps.value)
        return {
            "arch": arch,
            "arch_kwargs": {"base": int(self.base_width.value)} if arch in WIDTH_ARCHS else {},
            "epochs": int(self.epochs.value),
            "lr": parse_float(self.lr.value, "Learning rate", ModelError),
            "batch_size": int(self.batch_size.value), "optimizer": self.optimizer.value,
            "loss": self.loss.value, "balance": parse_rates(self.balance.value),
            "balance_order": [s.strip() for s in self.balance_order.value.split(",")
                              if s.strip()],
            "device": self.device.value,
            "time_budget_s": minutes * 60.0 if minutes > 0 else None,
            "max_steps_per_epoch": steps if steps > 0 else None,
        }

    def config(self) -> Any:
        """The :class:`~magnipath.train.TrainConfig` of the fields (not used on resume)."""
        from magnipath.train import TrainConfig

        kw = self.config_overrides()
        key = PRESETS[self.preset.value]
        if key is not None:
            return TrainConfig.preset(key, **kw)
        cfg = TrainConfig(**kw)
        cfg.validate()
        return cfg

    # -- actions --------------------------------------------------------------------------------
    def run(self, *_: Any) -> CoreRun | None:
        """Train into the model folder (the Train button)."""
        if self.busy():
            return None
        try:
            dataset = path_value(self.dataset, "Dataset folder", ModelError, must_exist=True)
            out = path_value(self.output, "Model folder", ModelError)
            resume, overwrite = bool(self.resume.value), bool(self.overwrite.value)
            config = None if resume else self.config()
            run_fields = self.config_overrides()
        except MagnipathError as e:
            show_error(str(e))
            return None

        def job(progress: Any, cancel: Any) -> dict:
            from magnipath.train import resume_config, train

            cfg = config
            if resume:  # the stored settings; only what may change on resume comes from here
                cfg = resume_config(out).replace(
                    epochs=run_fields["epochs"], device=run_fields["device"],
                    time_budget_s=run_fields["time_budget_s"])
            return train(dataset, out, cfg, resume=resume, overwrite=overwrite,
                         progress=progress, cancel=cancel)

        self.plot.clear()
        self.model_dir = None
        return self.start(job, "Training", self._done, busy=[self.run_button],
                          idle=[self.cancel_button], on_progress=self._on_progress)

    def _on_progress(self, ev: Progress) -> None:
        self.plot.on_progress(ev)
        if ev.stage == "train/epoch":
            loss, miou = ev.info.get("loss"), ev.info.get("miou")
            self.say(f"Training: epoch {ev.done} of {ev.total}"
                     + (f", loss {loss:.4g}" if isinstance(loss, float) else "")
                     + (f", val mIoU {miou:.3f}" if isinstance(miou, float) else ""))

    def _done(self, summary: dict) -> None:
        self.summary = summary
        self.model_dir = Path(summary["model_dir"])
        best = summary.get("best") or {}
        score = best.get("miou")
        text = (f"Model folder: {self.model_dir} (best epoch {best.get('epoch')}"
                + (f", val mIoU {score:.3f}" if isinstance(score, float) else "") + ")")
        self.say(text)
        show_info(f"Training finished. {text}")
        for w in summary.get("warnings", []):
            show_info(f"Training: {w}")
