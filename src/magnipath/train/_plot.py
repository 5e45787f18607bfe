"""Training-curve and class-balance PNGs (matplotlib, Agg canvas; no pyplot state)."""

from __future__ import annotations

import math
from pathlib import Path

from magnipath._io import atomic_path


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _num(v: object) -> float:
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return f


def plot_curve(history: list[dict], path: str | Path, *, select: str = "miou") -> Path:
    """Write the training curve: losses (left) and validation IoU (right) per epoch.

    Parameters
    ----------
    history : list of dict
        Rows of ``history.json`` (``epoch``, ``train_loss``, ``val_loss``, ``miou``,
        ``iou/<class>``...).
    path : path
        PNG to write (atomically).
    select : str
        The selection score (``"miou"`` or a class name), drawn thicker.
    """
    fig = _figure(10, 4)
    ax_loss, ax_iou = fig.subplots(1, 2)
    epochs = [r["epoch"] for r in history]
    for key, label in (("train_loss", "train loss"), ("val_loss", "validation loss")):
        ax_loss.plot(epochs, [_num(r.get(key)) for r in history], marker="o", label=label)
    from matplotlib.ticker import MaxNLocator

    for ax in (ax_loss, ax_iou):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.legend()
    ax_loss.grid(alpha=0.3)
    iou_keys = sorted({k for r in history for k in r if k.startswith("iou/")})
    for key in iou_keys:
        name = key[4:]
        ax_iou.plot(epochs, [_num(r.get(key)) for r in history], marker=".",
                    lw=2.5 if name == select else 1, label=name)
    ax_iou.plot(epochs, [_num(r.get("miou")) for r in history], "k--", marker="o",
                lw=2.5 if select == "miou" else 1.5, label="mean IoU")
    ax_iou.set_xlabel("epoch")
    ax_iou.set_ylabel("validation IoU")
    ax_iou.set_ylim(0, 1)
    ax_iou.legend(fontsize=7, loc="lower right")
    ax_iou.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return Path(path)


def plot_balance(table: list[dict], path: str | Path) -> Path:
    """Write labelled pixels per class before and after elastic balancing (Ho et al. Fig. 5).

    Parameters
    ----------
    table : list of dict
        Rows of ``BalancePlan.table`` (``class``, ``pixels_before``, ``pixels_after``).
    path : path
        PNG to write (atomically).
    """
    fig = _figure(max(5, 1.2 * len(table) + 2), 4)
    ax = fig.subplots()
    names = [r["class"] for r in table]
    xs = range(len(names))
    w = 0.4
    ax.bar([x - w / 2 for x in xs], [r["pixels_before"] for r in table], w, label="before")
    ax.bar([x + w / 2 for x in xs], [r["pixels_after"] for r in table], w, label="after")
    ax.set_xticks(list(xs), [f"{n}\nr={r['rate']}" for n, r in zip(names, table, strict=True)],
                  fontsize=8)
    ax.set_ylabel("labelled pixels (training set)")
    ax.set_title("class balancing by elastic deformation")
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return Path(path)
