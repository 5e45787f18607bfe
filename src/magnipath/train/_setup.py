"""Pieces the training loop assembles: model, optimiser, RNG state, output folder, history."""

from __future__ import annotations

import csv
import io
import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from magnipath._errors import ModelError
from magnipath._io import atomic_write_text
from magnipath.classes import ClassMap
from magnipath.geometry import TileGeometry
from magnipath.train._config import TrainConfig

OUTPUT_FILES = ("best.pt", "last.pt", "model_card.json", "history.csv", "history.json",
                "curve.png", "balance.png")


def class_names(class_map: ClassMap) -> list[str]:
    """One name per model output channel (``class_<i>`` for an index no class uses)."""
    names = [f"class_{i}" for i in range(class_map.n_classes)]
    for c in class_map.classes:
        names[c.index] = c.name
    return names


def build_training_model(cfg: TrainConfig, geometry: TileGeometry,
                         class_map: ClassMap) -> tuple[torch.nn.Module, TileGeometry]:
    """Build ``cfg.arch`` for the dataset; return it and the geometry of the inputs it uses.

    Multi-magnification architectures get ``context_ratios`` from the dataset geometry
    (µm/px of each context input / target µm/px) unless ``cfg.arch_kwargs`` gives them.
    Single-magnification architectures use the target input only, so their geometry
    is the target alone.

    Raises
    ------
    ModelError
        Unknown architecture, geometry it cannot take, or a tile size it cannot take.
    """
    from magnipath.models import build_model, model_info

    info = model_info(cfg.arch)
    kwargs = dict(cfg.arch_kwargs)
    multi = info.n_inputs > 1
    if multi:
        if geometry.n_inputs < 2:
            raise ModelError(f"architecture {cfg.arch!r} needs context inputs but the dataset "
                             "has the target magnification only; tile with context "
                             "magnifications (e.g. --context 10x,5x) or pick dsmn-s2/unetpp-effb0")
        if "context_ratios" not in kwargs:
            ratios = [inp.mpp / geometry.target_mpp for inp in geometry.inputs[1:]]
            if any(abs(r - round(r)) > 1e-3 for r in ratios):
                raise ModelError(f"architecture {cfg.arch!r} needs context inputs at integer "
                                 f"multiples of the target µm/px; the dataset has ratios "
                                 f"{[round(r, 3) for r in ratios]}")
            kwargs["context_ratios"] = [round(r) for r in ratios]
    model = build_model(cfg.arch, n_classes=class_map.n_classes, in_channels=3,
                        n_inputs=geometry.n_inputs if multi else None, **kwargs)
    n_used = int(getattr(model, "n_inputs", geometry.n_inputs))
    used = TileGeometry(geometry.target_size, geometry.target_mpp, geometry.inputs[:n_used])
    step = int(getattr(model, "size_multiple", 1))
    if geometry.target_size % step:
        raise ModelError(f"architecture {cfg.arch!r} takes tiles whose side is a multiple of "
                         f"{step} px; the dataset's tiles are {geometry.target_size} px; re-tile "
                         f"with --size {max(1, round(geometry.target_size / step)) * step}")
    return model, used


def make_optimizer(cfg: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    """SGD (lr, momentum, weight decay) or Adam (lr, weight decay) over all parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


# -- random state ------------------------------------------------------------------------
def seed_everything(seed: int) -> None:
    """Seed python, numpy's global generator and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - the global state third-party code uses
    torch.manual_seed(seed)


def get_rng_state() -> dict[str, Any]:
    """The global random states (torch CPU/CUDA, numpy, python) in checkpoint-safe types."""
    _, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002
    return {"torch": torch.get_rng_state(),
            "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
            "numpy": {"keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                      "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)},
            "python": random.getstate()}


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`get_rng_state` returned."""
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    n = state["numpy"]
    np_state = ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                n["cached"])
    np.random.set_state(np_state)  # noqa: NPY002
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))


# -- output folder ------------------------------------------------------------------------
def prepare_out_dir(out: Path, *, resume: bool, overwrite: bool) -> None:
    """Check (and for ``overwrite`` clear) the model folder before training.

    Raises
    ------
    ModelError
        ``out`` is a file, or already holds a model and neither ``resume`` nor
        ``overwrite`` was asked, or ``resume`` was asked but there is no ``last.pt``.
    """
    if out.exists() and not out.is_dir():
        raise ModelError(f"--out {out} is a file; give a folder for the model")
    if resume:
        if not (out / "last.pt").is_file():
            raise ModelError(f"cannot resume: {out / 'last.pt'} not found; train without "
                             "--resume first")
        return
    existing = [n for n in OUTPUT_FILES if (out / n).exists()]
    if existing and not overwrite:
        raise ModelError(f"model folder {out} already holds a model ({', '.join(existing)}); "
                         "continue it with --resume, replace it with --overwrite, or choose "
                         "another --out")
    for n in existing:
        (out / n).unlink()
    out.mkdir(parents=True, exist_ok=True)


# -- history files ---------------------------------------------------------------------------
def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_clean(x) for x in v]
    return v


def jsonable(v: Any) -> Any:
    """Replace NaN/inf by None (strict JSON), recursively."""
    return _clean(v)


def write_history(rows: list[dict], out: Path) -> tuple[Path, Path]:
    """Write ``history.json`` and ``history.csv`` (one row per epoch) atomically."""
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in keys})
    csv_path = atomic_write_text(out / "history.csv", buf.getvalue())
    json_path = atomic_write_text(out / "history.json", json.dumps(jsonable(rows), indent=1))
    return csv_path, json_path
