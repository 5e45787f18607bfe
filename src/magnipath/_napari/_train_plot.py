"""The live training plot of the Training widget: loss per batch and epoch, validation mIoU.

A matplotlib figure on a Qt canvas (``FigureCanvasQTAgg``). It is fed the
core's progress events on the main thread: ``train/batch`` (loss of one
optimisation step) and ``train/epoch`` (mean training loss, validation loss
and validation mean IoU of a finished epoch). The x axis is in epochs: batch
``b`` of ``n`` in epoch ``e`` sits at ``e - 1 + b / n``. Redraws are limited to
a few per second so that fast batches do not slow training down. Its colours
follow napari's theme (:meth:`TrainingPlot.set_theme`; the Training widget
passes the viewer's theme and follows its changes).
"""

from __future__ import annotations

import math
import time
from typing import Any

from magnipath.progress import Progress

REDRAW_S = 0.25
"""Minimum seconds between two redraws for batch events (epoch events always redraw)."""


def _num(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.nan
    return f


class TrainingPlot:
    """Loss (left axis) and validation mean IoU (right axis, 0..1) over epochs.

    Attributes
    ----------
    canvas : FigureCanvasQTAgg
        The Qt widget to put in a layout.
    batches : list of (float, float)
        ``(epoch position, loss)`` of every optimisation step shown.
    epochs : list of dict
        ``{"epoch", "loss", "val_loss", "miou"}`` of every finished epoch shown.
    """

    def __init__(self, background: str = "#23242b", foreground: str = "#f0f1f2") -> None:
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(4.0, 2.6), dpi=90, layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(220)
        self.ax = self.figure.add_subplot(1, 1, 1)
        self.ax_iou = self.ax.twinx()
        self.batches: list[tuple[float, float]] = []
        self.epochs: list[dict[str, float]] = []
        self._last_draw = 0.0
        self.background, self.foreground = background, foreground
        self._draw()

    def set_theme(self, background: str, foreground: str) -> None:
        """Draw on ``background`` with text, axes and grid in ``foreground`` (any matplotlib
        colour, e.g. napari's theme ``background`` and ``text`` as hex strings)."""
        self.background, self.foreground = background, foreground
        self._draw()

    def _style(self) -> None:
        bg, fg = self.background, self.foreground
        self.figure.set_facecolor(bg)
        for ax in (self.ax, self.ax_iou):
            ax.set_facecolor(bg)
            ax.tick_params(colors=fg, which="both")
            ax.xaxis.label.set_color(fg)
            ax.yaxis.label.set_color(fg)
            for spine in ax.spines.values():
                spine.set_color(fg)
        self.ax_iou.patch.set_visible(False)  # the twin must not hide the loss axes

    def clear(self) -> None:
        """Forget every point (a new run starts)."""
        self.batches.clear()
        self.epochs.clear()
        self._draw()

    def on_progress(self, ev: Progress) -> None:
        """Take one core progress event (main thread); ignores stages it does not plot."""
        if ev.stage == "train/batch" and ev.total:
            epoch = int(ev.info.get("epoch", 1))
            self.batches.append((epoch - 1 + ev.done / ev.total, _num(ev.info.get("loss"))))
            if time.monotonic() - self._last_draw >= REDRAW_S:
                self._draw()
        elif ev.stage == "train/epoch":
            self.epochs.append({"epoch": float(ev.done), "loss": _num(ev.info.get("loss")),
                                "val_loss": _num(ev.info.get("val_loss")),
                                "miou": _num(ev.info.get("miou"))})
            self._draw()

    def _draw(self) -> None:
        ax, ax2 = self.ax, self.ax_iou
        ax.clear()
        ax2.clear()
        if self.batches:
            x, y = zip(*self.batches, strict=True)
            ax.plot(x, y, color="tab:blue", alpha=0.35, lw=1, label="batch loss")
        if self.epochs:
            ex = [e["epoch"] for e in self.epochs]
            ax.plot(ex, [e["loss"] for e in self.epochs], "o-", color="tab:blue",
                    label="train loss")
            ax.plot(ex, [e["val_loss"] for e in self.epochs], "s-", color="tab:orange",
                    label="val loss")
            ax2.plot(ex, [e["miou"] for e in self.epochs], "D--", color="tab:green",
                     label="val mIoU")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax2.yaxis.set_label_position("right")  # clear() puts a twin's axis back on the left
        ax2.yaxis.tick_right()
        ax2.set_ylabel("validation mIoU")
        ax2.set_ylim(0.0, 1.0)
        ax.set_xlim(left=0.0)
        ax.grid(alpha=0.3, color=self.foreground)
        self._style()
        handles = ax.get_legend_handles_labels()
        handles2 = ax2.get_legend_handles_labels()
        if handles[0] or handles2[0]:
            legend = ax.legend(handles[0] + handles2[0], handles[1] + handles2[1], fontsize=7,
                               loc="upper right", facecolor=self.background,
                               edgecolor=self.foreground, labelcolor=self.foreground)
            legend.get_frame().set_alpha(0.8)
        self.canvas.draw_idle()
        self._last_draw = time.monotonic()
