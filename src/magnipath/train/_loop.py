"""The training loop: epochs of optimisation and validation, checkpoints, resume.

Determinism: the model is initialised after seeding python, numpy and torch with
``config.seed``; the sample order of epoch ``e`` is a permutation seeded by
``(seed, e)``; balancing copies and augmentations are seeded per sample (see
``_data``). ``last.pt`` stores the model, optimiser, gradient-scaler and global
RNG states, the history and the best score after each epoch's validation, so
``train(epochs=2)`` and ``train(epochs=1)`` followed by ``train(epochs=2,
resume=True)`` give bit-identical weights on the CPU. (On CUDA, cuDNN picks
fast non-deterministic kernels; results then agree only approximately.)

Cancellation is checked before every batch; it raises :class:`Cancelled` and
leaves the files of the last finished epoch intact (every file is written
atomically at the end of an epoch). ``time_budget_s`` ends the current epoch
early after the batch that exceeds it; that epoch is validated and saved.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from magnipath._errors import ModelError
from magnipath.checkpoint import (
    ModelCard,
    load_checkpoint,
    save_checkpoint,
    training_data_from_slides,
    update_card,
)
from magnipath.device import (
    amp_dtype,
    configure_for_training,
    describe_device,
    needs_grad_scaler,
    resolve_device,
)
from magnipath.progress import CancelCallback, ProgressCallback, check_cancel, report
from magnipath.train._config import TrainConfig, resolve_balance
from magnipath.train._data import EpochSampler, TileSamples, preload_tiles
from magnipath.train._elastic import plan_balance
from magnipath.train._epoch import Runner
from magnipath.train._plot import plot_balance, plot_curve
from magnipath.train._schedule import (
    BalancedEpochSampler,
    balanced_weights,
    expected_counts,
    lr_factor,
)
from magnipath.train._setup import (
    build_training_model,
    class_names,
    get_rng_state,
    jsonable,
    make_optimizer,
    prepare_out_dir,
    seed_everything,
    set_rng_state,
    write_history,
)
from magnipath.train._stain_aug import training_stain_reference

_RUN_FIELDS = ("epochs", "time_budget_s", "num_workers", "device", "cache_mb")
"""Settings that may change on resume without changing the numbers."""


def default_workers(device: torch.device) -> int:
    """DataLoader workers when the user gave none.

    CPU: 0 on machines with fewer than 4 cores (workers would take cores from the
    model step), else 2. GPU/MPS: ``min(8, CPUs - 1)``. Preparing one sample costs
    about 2-5 ms of one core (256 px x 3 inputs, augmented) and 10-20 ms for an
    elastic copy, while a GPU step takes a few ms per sample, so a GPU needs
    several workers to stay fed. ``history.csv`` records the share of step time
    spent waiting for data (``data_wait_share``) to check the choice.
    """
    import os

    cpus = os.cpu_count() or 1
    if device.type == "cpu":
        return 0 if cpus < 4 else 2
    return max(1, min(8, cpus - 1))


def resume_config(out_dir: str | Path) -> TrainConfig:
    """The configuration stored in ``out_dir/last.pt`` (to resume with changes)."""
    data = load_checkpoint(Path(out_dir) / "last.pt")
    state = data.get("train_state") or {}
    if "config" not in state:
        raise ModelError(f"{Path(out_dir) / 'last.pt'} holds no training state; it cannot be "
                         "resumed (it may be an exported best.pt)")
    return TrainConfig.from_dict(state["config"])


def _resolve_select(select: str, class_map: Any) -> str:
    if select.lower() == "miou":
        return "miou"
    for name in class_map.names:
        if name.lower() == select.lower():
            return name
    raise ModelError(f"--select {select!r} is neither 'miou' nor a class of the dataset "
                     f"{class_map.names}")


def _dataset_identity(ds: Any, used_geometry: dict, plan: Any, val_split: str) -> dict:
    slides = ds.manifest.get("slides", [])
    return {"dataset_id": ds.manifest.get("dataset_id"), "path": str(ds.path),
            "splits": {s: sorted(x["slide_id"] for x in slides if x.get("split") == s)
                       for s in ("train", "val", "test")},
            "n_tiles": {s: len(ds.indices(s)) for s in ("train", "val", "test")},
            "validation_split": val_split, "dataset_geometry": ds.geometry.to_dict(),
            "model_geometry": used_geometry,
            "train_pixels_before_balancing": plan.counts_before.tolist(),
            "train_pixels_after_balancing": plan.counts_after.tolist()}


def _score(summary: dict, select: str) -> float:
    v = (summary["overall"]["mean_iou"] if select == "miou"
         else summary["per_class"][select]["iou"])
    return -math.inf if v is None or not math.isfinite(v) else float(v)


def _entry(epoch: int, select: str, score: float, tr: dict, val: dict, named: list[str]) -> dict:
    s = val["summary"]
    return {"epoch": epoch, "select": select, "score": None if score == -math.inf else score,
            "miou": s["overall"]["mean_iou"], "train_loss": tr["loss"], "val_loss": val["loss"],
            "iou": {n: s["per_class"][n]["iou"] for n in named},
            "per_class": {n: s["per_class"][n] for n in named}, "mean": s["mean"],
            "overall": s["overall"]}


def train(dataset: Any, out_dir: str | Path, config: TrainConfig | None = None, *,
          resume: bool = False, overwrite: bool = False, progress: ProgressCallback | None = None,
          cancel: CancelCallback | None = None) -> dict:
    """Train a segmentation model on a tile dataset; write checkpoints and the model card.

    Parameters
    ----------
    dataset : TileDataset or path
        Dataset written by ``magnipath tile`` (``docs/dataset-format.md``).
    out_dir : path
        Model folder: ``best.pt``, ``last.pt``, ``model_card.json``, ``history.csv``,
        ``history.json``, ``curve.png``, ``balance.png``.
    config : TrainConfig, optional
        Defaults to ``TrainConfig()``; on resume, to the stored configuration.
    resume : bool
        Continue from ``out_dir/last.pt`` up to ``config.epochs``.
    overwrite : bool
        Replace a model already in ``out_dir``.
    progress : callable, optional
        Receives ``train/batch`` (loss), ``train/val`` and ``train/epoch`` (losses,
        mean IoU, per-class IoU, score) events.
    cancel : callable, optional
        Returns True to stop; checked before every batch.

    Returns
    -------
    dict
        Summary: checkpoint paths, best and last metrics, balancing table, timing
        (samples/s, time per step, share of step time spent waiting for data), warnings.

    Raises
    ------
    ModelError, Cancelled, DatasetError
    """
    from magnipath.dataset import open_dataset
    from magnipath.losses import build_loss

    t_start = time.perf_counter()
    ds = open_dataset(dataset) if isinstance(dataset, str | Path) else dataset
    out = Path(out_dir)
    prepare_out_dir(out, resume=resume, overwrite=overwrite)
    warnings: list[str] = []
    ckpt, state = None, {}
    if resume:
        ckpt = load_checkpoint(out / "last.pt")
        state = ckpt.get("train_state") or {}
        saved = resume_config(out)
        cfg = saved if config is None else config
        if (cfg.arch, cfg.arch_kwargs) != (saved.arch, saved.arch_kwargs):
            raise ModelError(f"{out / 'last.pt'} is a {saved.arch} {saved.arch_kwargs} model; "
                             f"it cannot resume as {cfg.arch} {cfg.arch_kwargs}")
        changed = [k for k, v in cfg.to_dict().items()
                   if k not in _RUN_FIELDS and saved.to_dict().get(k) != v]
        if changed:
            warnings.append(f"resumed with changed settings {changed}: the result differs from "
                            "an uninterrupted run")
        if cfg.schedule != "constant" and cfg.epochs != saved.epochs:
            warnings.append(f"resumed with --epochs {cfg.epochs} instead of {saved.epochs} "
                            f"under the {cfg.schedule} learning-rate schedule: the schedule "
                            "now spans the new number of epochs, so the result differs from "
                            "an uninterrupted run")
        if state.get("dataset_id") != ds.manifest.get("dataset_id"):
            raise ModelError(f"{out / 'last.pt'} was trained on dataset "
                             f"{state.get('dataset_id')}, not {ds.path} "
                             f"({ds.manifest.get('dataset_id')}); resume on the same dataset")
    else:
        cfg = config or TrainConfig()
    cfg.validate()
    class_map, geometry = ds.class_map, ds.geometry
    n_classes, ignore = class_map.n_classes, class_map.ignore_index
    names = class_names(class_map)
    select = _resolve_select(cfg.select, class_map)

    train_idx, val_idx, val_split = ds.indices("train"), ds.indices("val"), "val"
    if len(train_idx) == 0:
        raise ModelError(f"dataset {ds.path} has no training tiles; re-split it so that at "
                         "least one slide is in the train split")
    if len(val_idx) == 0:
        val_idx, val_split = train_idx, "train"
        warnings.append("the dataset has no validation tiles: validated on the training tiles "
                        "(scores are optimistic; best.pt is chosen on training data)")
    rates, order = resolve_balance(cfg, class_map)
    counts = np.zeros((len(train_idx), n_classes), dtype=np.int64)
    for row, i in enumerate(train_idx):
        cc = np.asarray(ds.records[int(i)]["class_counts"], dtype=np.int64)[:n_classes]
        counts[row, :len(cc)] = cc
    plan = plan_balance(train_idx, counts, rates, order)
    table = plan.table({c.index: c.name for c in class_map.classes})
    loss_counts = plan.counts_after
    weights = None
    if cfg.sampling == "balanced":
        row_of = {int(t): r for r, t in enumerate(train_idx)}
        item_counts = counts[[row_of[int(t)] for t in plan.tiles]]
        weights = balanced_weights(item_counts, cfg.min_class_fraction)
        loss_counts = expected_counts(item_counts, weights) * len(plan)

    device = resolve_device(cfg.device)
    configure_for_training(device)  # cudnn.benchmark + TF32 on CUDA; nothing elsewhere
    amp = amp_dtype(device, cfg.amp)
    if cfg.amp and amp is None:
        warnings.append(f"--amp ignored: mixed precision needs CUDA or a CPU with native "
                        f"bfloat16 (AMX / AVX512-BF16); device {device} trains in float32")
    channels_last = device.type == "cuda" if cfg.channels_last is None else cfg.channels_last
    workers = default_workers(device) if cfg.num_workers is None else cfg.num_workers

    seed_everything(cfg.seed)
    model, used_geometry = build_training_model(cfg, geometry, class_map)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    loss_fn = build_loss(cfg.loss, n_classes=n_classes, class_counts=loss_counts,
                         ignore_index=ignore).to(device)
    optimizer = make_optimizer(cfg, model)
    scaler = torch.amp.GradScaler("cuda") if needs_grad_scaler(amp) else None
    card = ModelCard(arch=cfg.arch, arch_kwargs=dict(getattr(model, "arch_kwargs", {})),
                     class_map=class_map.to_dict(), geometry=used_geometry.to_dict(),
                     train_config=cfg.to_dict(), seed=cfg.seed,
                     dataset=_dataset_identity(ds, used_geometry.to_dict(), plan, val_split),
                     training_data=training_data_from_slides(
                         {x["slide_id"]: x.get("path", "") for x in ds.manifest.get("slides", [])
                          if x.get("split") == "train"},
                         stain_augmentation=dict(cfg.stain_augment or {})))
    history: list[dict] = []
    best: dict | None = None
    start = 1
    if ckpt is not None:
        try:
            model.load_state_dict(ckpt["model_state"])
            optimizer.load_state_dict(ckpt["optimizer_state"])
        except (RuntimeError, ValueError, KeyError) as e:
            raise ModelError(f"{out / 'last.pt'} does not fit the model or optimiser ({e})") from e
        if scaler is not None and ckpt.get("scaler_state"):
            scaler.load_state_dict(ckpt["scaler_state"])
        history, best = list(state["history"]), state.get("best")
        start = int(state["epoch"]) + 1
        card.metrics = dict(ckpt["card"].get("metrics") or {})
        set_rng_state(state["rng"])
        if start > cfg.epochs:
            warnings.append(f"{out / 'last.pt'} already finished epoch {start - 1} of "
                            f"{cfg.epochs}; raise --epochs to train further")

    stain_ref = training_stain_reference(ds, train_idx, cfg.seed)
    if stain_ref is not None:  # the look of the training tiles, for infer --normalise-stain
        card.normalisation["stain_reference"] = stain_ref
    cache = preload_tiles(ds, np.concatenate([plan.tiles, val_idx]), cfg.cache_mb)
    common = dict(seed=cfg.seed, jitter=cfg.jitter, elastic_grid=cfg.elastic_grid,
                  elastic_sigma=cfg.elastic_sigma, normalisation=card.normalisation, cache=cache)
    train_set = TileSamples(ds, plan.tiles, plan.copies, augment=cfg.augment,
                            stain=cfg.stain_augment, **common)
    val_set = TileSamples(ds, val_idx, np.zeros(len(val_idx), np.int64), augment=False, **common)
    cap = None if cfg.max_steps_per_epoch is None else cfg.max_steps_per_epoch * cfg.batch_size
    if weights is None:
        sampler = EpochSampler(len(train_set), cfg.seed, shuffle=True, max_items=cap)
    else:
        sampler = BalancedEpochSampler(weights, cfg.seed, len(train_set) if cap is None
                                       else min(cap, len(train_set)))
    gen = torch.Generator()
    loader_kw = dict(batch_size=cfg.batch_size, num_workers=workers,
                     pin_memory=device.type == "cuda", persistent_workers=workers > 0,
                     generator=gen)
    # a last batch of one sample breaks BatchNorm layers (UNet++): drop it, only then
    loader = DataLoader(train_set, sampler=sampler, **loader_kw,
                        drop_last=len(sampler) % cfg.batch_size == 1 and len(sampler) > 1)
    val_loader = DataLoader(val_set, sampler=EpochSampler(len(val_set), cfg.seed, shuffle=False),
                            **loader_kw)
    runner = Runner(model, loss_fn, optimizer, scaler, device=device, amp=amp,
                    channels_last=channels_last, n_inputs=used_geometry.n_inputs,
                    n_classes=n_classes, ignore_index=ignore, class_names=names,
                    progress=progress, cancel=cancel)
    if cfg.schedule != "constant":
        n_steps = cfg.epochs * len(loader)

        def _lr(step: int) -> float:
            return cfg.lr * lr_factor(step, n_steps, schedule=cfg.schedule, warmup=cfg.warmup,
                                      final=cfg.final_lr)
        runner.lr_at = _lr
    deadline = None if cfg.time_budget_s is None else t_start + float(cfg.time_budget_s)
    stopped, epoch, tr = "completed", start - 1, None
    named = class_map.names
    paths = {k: out / n for k, n in (("best_checkpoint", "best.pt"), ("last_checkpoint", "last.pt"),
                                     ("model_card", "model_card.json"),
                                     ("history_csv", "history.csv"),
                                     ("history_json", "history.json"), ("curve_png", "curve.png"),
                                     ("balance_png", "balance.png"))}
    for epoch in range(start, cfg.epochs + 1):
        check_cancel(cancel)
        sampler.set_epoch(epoch)
        gen.manual_seed(cfg.seed * 7919 + epoch)
        tr = runner.train_epoch(loader, epoch, deadline)
        val = runner.validate(val_loader, epoch)
        score = _score(val["summary"], select)
        entry = _entry(epoch, select, score, tr, val, named)
        history.append({"epoch": epoch, "train_loss": tr["loss"], "val_loss": val["loss"],
                        "miou": entry["miou"], "score": entry["score"],
                        **{f"iou/{n}": entry["iou"][n] for n in named},
                        "lr": optimizer.param_groups[0]["lr"], "steps": tr["steps"],
                        "samples": tr["samples"], "train_s": tr["seconds"],
                        "val_s": val["seconds"], "step_s": tr["step_s"],
                        "data_wait_share": tr["data_wait_share"],
                        "samples_per_s": tr["samples_per_s"]})
        improved = best is None or score > (best["score"] if best["score"] is not None
                                            else -math.inf)
        if improved:
            best = entry
        card.metrics = {"best": best, "last": entry}
        card.metrics = jsonable(card.metrics)
        if improved:
            save_checkpoint(paths["best_checkpoint"], model, card)
        save_checkpoint(paths["last_checkpoint"], model, card,
                        optimizer_state=optimizer.state_dict(),
                        scaler_state=None if scaler is None else scaler.state_dict(),
                        train_state={"epoch": epoch, "history": jsonable(history), "best": best,
                                     "rng": get_rng_state(), "config": cfg.to_dict(),
                                     "dataset_id": ds.manifest.get("dataset_id")})
        card.save_json(paths["model_card"])
        write_history(history, out)
        plot_curve(history, paths["curve_png"], select=select)
        if not paths["balance_png"].exists():
            plot_balance(table, paths["balance_png"])
        report(progress, "train/epoch", epoch, cfg.epochs, loss=tr["loss"],
               val_loss=val["loss"], miou=entry["miou"], score=entry["score"],
               best_epoch=best["epoch"], iou=entry["iou"])
        if tr["stopped"]:
            stopped = "time_budget"
            break
    if paths["best_checkpoint"].exists() and card.metrics:
        update_card(paths["best_checkpoint"], card)
        card.save_json(paths["model_card"])
    metrics = card.metrics or {}
    last_row = history[-1] if history else {}
    return jsonable({
        "model_dir": str(out), **{k: str(p) for k, p in paths.items()},
        "arch": cfg.arch, "arch_kwargs": card.arch_kwargs, "preset": cfg.preset_name,
        "device": describe_device(device), "amp": None if amp is None else str(amp),
        "epochs": cfg.epochs, "epochs_done": epoch, "resumed_from_epoch": start - 1 if resume
        else None, "stopped": stopped, "select": select,
        "best": {k: v for k, v in (metrics.get("best") or {}).items() if k != "per_class"},
        "last": {k: v for k, v in (metrics.get("last") or {}).items() if k != "per_class"},
        "balance": table, "n_train_tiles": len(train_idx), "n_train_items": len(plan),
        "n_val_tiles": len(val_idx), "validation_split": val_split, "workers": workers,
        "samples_per_s": last_row.get("samples_per_s"), "step_s": last_row.get("step_s"),
        "data_wait_share": last_row.get("data_wait_share"),
        "seconds": round(time.perf_counter() - t_start, 3), "warnings": warnings})
