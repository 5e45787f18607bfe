"""Training the direct and the area regressors, and the model folder they are saved in.

One call of :func:`train` fits two networks of the same architecture on a
magnification dataset: the *direct* regressor (target: the magnification) and
the *area* regressor (target: the mean nucleus area in pixels), each with the
mean squared error of its target divided by a scale (40 for magnifications, the
largest class mean area for areas; optionally of its logarithm, ``target_transform``),
Adam (paper: lr 1e-4 from scratch), optionally with a cosine learning-rate decay
over the epochs or the time budget, bfloat16/float16 mixed precision (``amp``),
stain jitter and a haematoxylin-only input (see :mod:`._inputs`). After
training it measures, on the training patches, the mean area per class (the
area -> magnification table) and the baseline's calibration table. The weights
of the epoch with the lowest validation loss are kept (the last epoch's when
the dataset has no validation split).

Model folder (written atomically)::

    MODEL_DIR/card.json   architecture, scales, tables, alpha, metrics, settings
    MODEL_DIR/direct.pt   state dict of the direct regressor
    MODEL_DIR/area.pt     state dict of the area regressor
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from magnipath._io import atomic_path
from magnipath.magnification._baseline import calibrate_baseline
from magnipath.magnification._core import ALPHA, AreaTable, MagnificationError
from magnipath.magnification._data import MagDataset, open_dataset
from magnipath.magnification._inputs import (
    blur_jitter,
    check_input,
    check_target_transform,
    encode_target,
    hed_jitter,
    to_input,
)
from magnipath.progress import CancelCallback, ProgressCallback, check_cancel, report

CARD_FORMAT = "magnipath-magnification-model"
TARGETS = ("direct", "area")


@dataclass(frozen=True)
class MagTrainConfig:
    """Settings of :func:`train`.

    Attributes
    ----------
    arch : str
        ``"shallownet"`` or ``"densenet121"`` (random initialisation).
    arch_kwargs : dict
        Extra arguments of the architecture (ShallowNet ``widths``, ``dropout``).
    epochs : int
    lr : float
        Adam learning rate (paper: 1e-4 from scratch).
    batch_size : int
    augment : bool
        Random flips and 90° rotations (they keep the magnification).
    alpha : float
        Fusion weight stored in the card (paper: 0.2).
    time_budget_s : float or None
        Wall-clock limit for both regressors together (split evenly).
    max_steps_per_epoch : int or None
    refit_head : bool
        Refit the output layer on eval-mode features (see :func:`fit_regressor`).
    head_samples : int
        Training patches used to refit the head for each epoch's validation score.
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``...
    seed : int
    amp : bool
        Mixed precision (autocast with :func:`magnipath.device.amp_dtype`:
        bfloat16 on CUDA GPUs that have it and on CPUs with native bfloat16,
        float16 with a gradient scaler on older GPUs; float32 elsewhere), with
        channels-last tensors. Off by default, as in segmentation training.
    target_transform : {"linear", "log"}
        The network predicts ``target / scale`` or ``ln(target / scale)``.
    lr_schedule : {"constant", "cosine"}
        Cosine decay from ``lr`` to 0 over ``epochs`` or over the regressor's
        share of ``time_budget_s``, whichever ends first.
    stain_augment : float
        Strength of the random H-E-DAB stain jitter (0: off; 0.05 light, 0.2 strong).
    blur_augment : float
        Largest standard deviation, in pixels, of a random Gaussian blur applied to
        half of the training patches (0: off; see
        :func:`magnipath.magnification._inputs.blur_jitter`).
    input : {"rgb", "hematoxylin"}
        RGB or the haematoxylin optical density of a fixed colour deconvolution.
    """

    arch: str = "shallownet"
    arch_kwargs: dict = field(default_factory=dict)
    epochs: int = 10
    lr: float = 1e-4
    batch_size: int = 16
    augment: bool = True
    alpha: float = ALPHA
    time_budget_s: float | None = None
    max_steps_per_epoch: int | None = None
    refit_head: bool = True
    head_samples: int = 512
    device: str = "auto"
    seed: int = 0
    amp: bool = False
    target_transform: str = "linear"
    lr_schedule: str = "constant"
    stain_augment: float = 0.0
    blur_augment: float = 0.0
    input: str = "rgb"

    def replace(self, **kw) -> MagTrainConfig:
        """A copy with the given fields changed (``None`` values are ignored)."""
        return replace(self, **{k: v for k, v in kw.items() if v is not None})


def _augment(batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = np.empty_like(batch)
    for i, im in enumerate(batch):
        im = np.rot90(im, int(rng.integers(4)))
        out[i] = im[:, ::-1] if rng.random() < 0.5 else im
    return out


def _embed(net, images: np.ndarray, idx: np.ndarray, device, batch: int = 32, *,
           mode: str = "rgb", amp=None) -> np.ndarray:
    """Eval-mode features the output layer reads, ``(len(idx), F)``, in ``idx`` order."""
    import torch

    net.eval()
    out = []
    with torch.no_grad(), torch.autocast(device.type, dtype=amp or torch.float32,
                                         enabled=amp is not None):
        for s in range(0, len(idx), batch):
            x = to_input(np.asarray(images[idx[s:s + batch]]), device, mode, amp is not None)
            out.append(net.embed(x).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 1), np.float32)


def _head_out(net, feats: np.ndarray) -> np.ndarray:
    w = net.head.weight.detach().cpu().numpy().ravel()
    return feats @ w + float(net.head.bias.detach().cpu())


def fit_regressor(ds: MagDataset, target: str, config: MagTrainConfig, *, scale: float,
                  deadline: float | None = None, progress: ProgressCallback | None = None,
                  cancel: CancelCallback | None = None) -> tuple[object, list[dict]]:
    """Train one regressor (``target`` ``"direct"`` or ``"area"``); return it and its history.

    The network predicts ``target / scale`` (or its logarithm, see
    ``config.target_transform``); the returned network is in eval mode
    on the CPU with the weights of the best validation epoch. With
    ``config.refit_head`` the output layer is refitted by ridge regression on
    eval-mode features of training patches (:func:`fit_head`), after every epoch
    for the validation score and at the end on all training patches: batch norm
    and dropout shift a regression output between training and evaluation.
    """
    import torch

    from magnipath.device import amp_dtype, needs_grad_scaler, resolve_device
    from magnipath.magnification._nets import build_net, fit_head, regress, set_head

    torch.manual_seed(config.seed + (0 if target == "direct" else 1))
    rng = np.random.default_rng([config.seed, 0 if target == "direct" else 1])
    device = resolve_device(config.device)
    mode = check_input(config.input)
    amp = amp_dtype(device, config.amp)
    cl = amp is not None  # channels-last: measured faster with autocast only
    scaler = torch.amp.GradScaler(device.type) if needs_grad_scaler(amp) else None
    y_all = encode_target(ds.magnification if target == "direct" else ds.area, scale,
                          check_target_transform(config.target_transform))
    emb = {"mode": mode, "amp": amp}
    train_idx, val_idx = ds.indices("train"), ds.indices("val")
    train_idx = train_idx[np.isfinite(y_all[train_idx])]
    val_idx = val_idx[np.isfinite(y_all[val_idx])]
    if len(train_idx) == 0:
        raise MagnificationError(f"{ds.path}: no training patch with a {target} target.")
    net = build_net(config.arch, **config.arch_kwargs).to(device)
    if cl:
        net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    if config.lr_schedule not in ("constant", "cosine"):
        raise MagnificationError(f"lr_schedule {config.lr_schedule!r}: choose constant or "
                                 "cosine.")
    for name in ("stain_augment", "blur_augment"):
        if not getattr(config, name) >= 0:
            raise MagnificationError(f"{name} must be 0 (off) or positive, got "
                                     f"{getattr(config, name)}.")
    t_start = time.monotonic()
    history: list[dict] = []
    best, best_state = math.inf, None
    cal_idx = np.sort(rng.choice(train_idx, min(len(train_idx), config.head_samples),
                                 replace=False))
    steps = math.ceil(len(train_idx) / config.batch_size)
    if config.max_steps_per_epoch:
        steps = min(steps, config.max_steps_per_epoch)
    stage = f"magnification/train/{target}"
    for epoch in range(config.epochs):
        net.train()
        order = rng.permutation(train_idx)
        losses = []
        for k in range(steps):
            check_cancel(cancel)
            if deadline is not None and time.monotonic() > deadline and (epoch or k):
                break
            bi = np.sort(order[k * config.batch_size:(k + 1) * config.batch_size])
            if len(bi) < 2:
                continue
            if config.lr_schedule == "cosine":
                for g in opt.param_groups:
                    g["lr"] = config.lr * _cosine(epoch * steps + k, config.epochs * steps,
                                                  t_start, deadline)
            imgs = np.asarray(ds.images[bi])
            if config.augment:
                imgs = _augment(imgs, rng)
            imgs = hed_jitter(imgs, config.stain_augment, rng)
            imgs = blur_jitter(imgs, config.blur_augment, rng)
            x = to_input(imgs, device, mode, cl)
            y = torch.as_tensor(y_all[bi], dtype=torch.float32, device=device)
            loss = torch.nn.functional.mse_loss(regress(net, x, amp), y)
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
            losses.append(loss.item())
            report(progress, stage, epoch * steps + k + 1, config.epochs * steps,
                   epoch=epoch + 1, loss=losses[-1])
        rec = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)) if losses else None,
               "steps": len(losses), "lr": opt.param_groups[0]["lr"],
               "seconds": round(time.monotonic() - t_start, 1)}
        if len(val_idx):
            f_val = _embed(net, ds.images, val_idx, device, **emb)
            rec["val_loss"] = float(np.mean((_head_out(net, f_val) - y_all[val_idx]) ** 2))
            score = rec["val_loss"]
            if config.refit_head:
                w, b = fit_head(_embed(net, ds.images, cal_idx, device, **emb),
                                y_all[cal_idx])
                rec["val_loss_refit"] = float(np.mean((f_val @ w + b - y_all[val_idx]) ** 2))
                score = rec["val_loss_refit"]
        else:
            score = -epoch  # no validation: keep the last epoch
        if score < best:
            best, best_state = score, copy.deepcopy(net.state_dict())
        history.append(rec)
        report(progress, stage + "/epoch", epoch + 1, config.epochs, **{
            k: v for k, v in rec.items() if isinstance(v, float)})
        if deadline is not None and time.monotonic() > deadline:
            break
    if best_state is not None:
        net.load_state_dict(best_state)
    if config.refit_head:
        report(progress, stage + "/refit", 0, 1)
        set_head(net, *fit_head(_embed(net, ds.images, train_idx, device, **emb),
                                y_all[train_idx]))
    return net.to("cpu", memory_format=torch.contiguous_format).eval(), history


def _cosine(step: int, total: int, t_start: float, deadline: float | None) -> float:
    """Cosine learning-rate factor at the later of the step and the time progress."""
    frac = step / max(total, 1)
    if deadline is not None:
        frac = max(frac, (time.monotonic() - t_start) / max(deadline - t_start, 1e-9))
    return 0.5 * (1.0 + math.cos(math.pi * min(frac, 1.0)))


def train(dataset: str | os.PathLike | MagDataset, out: str | os.PathLike,
          config: MagTrainConfig = MagTrainConfig(), *, overwrite: bool = False,
          progress: ProgressCallback | None = None,
          cancel: CancelCallback | None = None) -> dict:
    """Train the direct and area regressors on a dataset and write a model folder.

    Parameters
    ----------
    dataset : path or MagDataset
        Made by :func:`magnipath.magnification.make_dataset`.
    out : path
        Model folder (see the module docstring).
    config : MagTrainConfig
    overwrite : bool
        Replace an existing folder.
    progress, cancel : callable, optional
        Progress per step and epoch (stages ``magnification/train/direct`` and
        ``.../area``), and cancellation (checked every step).

    Returns
    -------
    dict
        Summary: model folder, training histories, tables, seconds.
    """
    import torch

    ds = dataset if isinstance(dataset, MagDataset) else open_dataset(dataset)
    out = Path(out)
    if out.exists() and not overwrite:
        raise MagnificationError(f"{out} exists; choose another folder or pass overwrite=True "
                                 "(--overwrite).")
    t0 = time.monotonic()
    tr = ds.indices("train")
    if len(tr) == 0:
        raise MagnificationError(f"{ds.path}: the dataset has no training patches.")
    area_table = AreaTable.fit(ds.area[tr], ds.magnification[tr])
    area_scale = float(np.nanmax(area_table.mean_areas))
    scales = {"direct": 40.0, "area": area_scale}
    nets, histories = {}, {}
    for i, target in enumerate(TARGETS):
        deadline = None
        if config.time_budget_s:
            deadline = t0 + config.time_budget_s * (i + 1) / len(TARGETS)
        nets[target], histories[target] = fit_regressor(
            ds, target, config, scale=scales[target], deadline=deadline, progress=progress,
            cancel=cancel)
    report(progress, "magnification/calibrate", 0, 1)
    base_table = calibrate_baseline(ds.images[tr], ds.magnification[tr], cancel=cancel)
    card = {"format": CARD_FORMAT, "version": 1, "arch": config.arch,
            "arch_kwargs": config.arch_kwargs, "patch": int(ds.images.shape[1]),
            "alpha": config.alpha, "scales": scales,
            "target_transform": config.target_transform, "input": config.input,
            "area_table": area_table.to_dict(),
            "baseline_table": base_table.to_dict(), "dataset": str(ds.path),
            "train_config": asdict(config), "history": histories,
            "created": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "torch": str(torch.__version__)}
    with atomic_path(out, is_dir=True) as tmp:
        tmp.mkdir(parents=True, exist_ok=True)
        for target, net in nets.items():
            torch.save(net.state_dict(), tmp / f"{target}.pt")
        (tmp / "card.json").write_text(json.dumps(card, indent=1))
    return {"model": str(out), "arch": config.arch, "history": histories,
            "area_table": area_table.to_dict(), "baseline_table": base_table.to_dict(),
            "seconds": round(time.monotonic() - t0, 1)}
