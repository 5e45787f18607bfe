"""Train a segmentation model on a tile dataset made by `magnipath tile`.

The model folder (--out) receives best.pt (best validation score), last.pt
(everything needed to --resume bit-for-bit), model_card.json (classes, colours,
input geometry, normalisation, training settings, metrics), history.csv/.json
(per epoch: losses, IoU per class, mean IoU, time per step, share of time spent
waiting for data), curve.png and balance.png (labelled pixels per class before
and after elastic class balancing).

Presets reproduce the papers: --preset dmmn (Ho et al.: dmmn-m3, SGD lr 5e-5,
momentum 0.99, weight decay 1e-4, 20 epochs, weighted cross-entropy, elastic
balancing carcinoma 2, benign 10, background 1, necrosis 3; order benign >
carcinoma > necrosis > background; best by mean IoU) and --preset tls (McCombe
et al.: unetpp-effb0, Adam lr 1e-3, batch 8, 5 epochs, Dice loss, best by the
IoU of class TLS). --preset demo is the quick CPU setting of `magnipath demo`
(small dmmn-m3, Adam 3e-3 with warm-up + cosine schedule, class-balanced
sampling, WCE + Dice, 20 epochs). Any option given next to a preset wins.

With --resume the stored settings are used; only the options you give change
(--epochs to train further, --time-budget, --workers, --device keep the run
identical to an uninterrupted one).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from magnipath._errors import ModelError
from magnipath.progress import ProgressCallback

NAME = "train"
HELP = "train a segmentation model (DSMN/DMMN, UNet++) on a tile dataset"
ORDER = 40

ARCH_NAMES = "dsmn-s2, dmmn-ms, dmmn-m2s, dmmn-m3, unetpp-effb0"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", metavar="DATASET", help="tile dataset folder (magnipath tile)")
    p.add_argument("--out", required=True, metavar="MODEL_DIR",
                   help="model folder to write (checkpoints, model card, history, plots)")
    p.add_argument("--arch", metavar="NAME",
                   help=f"architecture: {ARCH_NAMES} (default: the preset's)")
    p.add_argument("--preset", choices=("dmmn", "tls", "demo"),
                   help="settings of a paper, or 'demo' (quick on a CPU; see the "
                        "description); options given win")
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, metavar="N", help="passes over the balanced training set")
    g.add_argument("--lr", type=float, metavar="LR", help="learning rate (unitless)")
    g.add_argument("--batch-size", type=int, metavar="N", help="tiles per optimisation step")
    g.add_argument("--optimizer", choices=("sgd", "adam"), help="optimiser (default adam)")
    g.add_argument("--momentum", type=float, metavar="M", help="SGD momentum (unitless)")
    g.add_argument("--weight-decay", type=float, metavar="WD", help="L2 weight decay (unitless)")
    g.add_argument("--loss", choices=("wce", "ce", "dice", "wce+dice", "iwce", "iwce+dice"),
                   help="loss: weighted cross-entropy (wce: w_c = 1 - N_c / sum N; iwce: "
                        "w_c ~ 1 / sqrt(N_c), for rare classes), plain cross-entropy, Dice, or "
                        "either WCE + Dice; unlabelled pixels never count")
    g.add_argument("--select", metavar="SCORE",
                   help="validation score that picks best.pt: 'miou' or a class name (IoU)")
    g.add_argument("--seed", type=int, metavar="N", help="random seed (default 0)")
    d = p.add_argument_group("data")
    d.add_argument("--balance", metavar="RATES",
                   help="elastic copies per patch by class, e.g. 'Carcinoma=2,Benign=10' "
                        "(non-negative integers; replaces the preset's rates)")
    d.add_argument("--balance-order", metavar="CLASSES",
                   help="class order for balancing, highest first, e.g. "
                        "'Benign,Carcinoma,Necrosis,Background'")
    d.add_argument("--no-augment", action="store_true",
                   help="no rotations, flips, colour jitter or stain augmentation")
    d.add_argument("--no-stain-augment", action="store_true",
                   help="keep flips/rotations/colour jitter but no HED stain augmentation "
                        "(on by default)")
    d.add_argument("--stain-macenko", type=float, metavar="P",
                   help="also re-stain a fraction P (0-1) of the samples to a random "
                        "reference by Macenko's method (default 0)")
    d.add_argument("--jpeg-augment", type=int, metavar="Q",
                   help="JPEG-compress half the samples at a random quality between Q and 95, "
                        "as another scanner would (default 50 with stain augmentation; 0 = "
                        "off)")
    d.add_argument("--workers", type=int, metavar="N",
                   help="data loader processes (default: CPU 0 with < 4 cores, else 2; GPU "
                        "min(8, CPUs - 1))")
    d.add_argument("--max-steps-per-epoch", type=int, metavar="N",
                   help="at most N optimisation steps per epoch (a random subset each epoch)")
    d.add_argument("--time-budget", type=float, metavar="SECONDS",
                   help="stop after this many seconds of wall-clock time (the current epoch "
                        "is cut short, validated and saved)")
    m = p.add_argument_group("model and device")
    m.add_argument("--base", type=int, metavar="N",
                   help="DSMN/DMMN first-layer width in channels (paper 32)")
    m.add_argument("--arch-kwargs", metavar="JSON",
                   help="extra architecture arguments as JSON, e.g. '{\"depth\": 3}'")
    m.add_argument("--device", metavar="DEV",
                   help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps (default auto)")
    m.add_argument("--amp", action="store_true",
                   help="mixed precision: on CUDA bf16 where supported, else fp16 + scaler; on "
                        "CPUs with AMX / AVX512-BF16 bf16 (3-4x faster there)")
    m.add_argument("--channels-last", action="store_true",
                   help="channels-last memory format (default on CUDA only; with --amp on an "
                        "AMX CPU it speeds up paper-width models ~2x)")
    r = p.add_argument_group("output")
    r.add_argument("--resume", action="store_true",
                   help="continue the run in MODEL_DIR from last.pt")
    r.add_argument("--overwrite", action="store_true",
                   help="replace a model already in MODEL_DIR")


def _stain_augment(args: argparse.Namespace) -> dict[str, float] | None:
    """``TrainConfig.stain_augment`` from --no-stain-augment / --stain-macenko /
    --jpeg-augment (None: the preset's)."""
    from magnipath.train._stain_aug import DEFAULT_STAIN_AUGMENT

    if getattr(args, "no_stain_augment", False):
        return {}
    p = getattr(args, "stain_macenko", None)
    q = getattr(args, "jpeg_augment", None)
    if p is None and q is None:
        return None
    out = dict(DEFAULT_STAIN_AUGMENT)
    if p is not None:
        out["macenko"] = float(p)
    if q is not None:
        out["jpeg"] = int(q)
    return out


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """TrainConfig fields given on the command line (None = not given)."""
    kw: dict[str, Any] = {
        "arch": args.arch, "epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size,
        "optimizer": args.optimizer, "momentum": args.momentum,
        "weight_decay": args.weight_decay, "loss": args.loss, "select": args.select,
        "seed": args.seed, "num_workers": args.workers, "device": args.device,
        "max_steps_per_epoch": args.max_steps_per_epoch, "time_budget_s": args.time_budget,
        "amp": True if args.amp else None, "augment": False if args.no_augment else None,
        "channels_last": True if args.channels_last else None,
        "stain_augment": _stain_augment(args),
    }
    arch_kwargs: dict[str, Any] = {}
    if args.arch_kwargs:
        try:
            arch_kwargs = dict(json.loads(args.arch_kwargs))
        except (ValueError, TypeError) as e:
            raise ModelError(f"--arch-kwargs {args.arch_kwargs!r} is not a JSON object ({e})") \
                from e
    if args.base is not None:
        arch_kwargs["base"] = args.base
    if arch_kwargs:
        kw["arch_kwargs"] = arch_kwargs
    if args.balance is not None:
        from magnipath.train import parse_rates

        kw["balance"] = parse_rates(args.balance, "--balance")
        kw["balance_missing_ok"] = False
    if args.balance_order is not None:
        kw["balance_order"] = [s.strip() for s in args.balance_order.split(",") if s.strip()]
        kw["balance_missing_ok"] = False
    return kw


def run(args: argparse.Namespace, progress: ProgressCallback) -> dict:
    from magnipath.train import TrainConfig, resume_config, train

    kw = _overrides(args)
    if args.resume:
        cfg = resume_config(args.out).replace(**kw)
    elif args.preset:
        cfg = TrainConfig.preset(args.preset, **kw)
    else:
        if args.arch is None:
            raise ModelError(f"give --arch NAME ({ARCH_NAMES}) or --preset dmmn|tls")
        cfg = TrainConfig().replace(**kw)
    return train(args.dataset, args.out, cfg, resume=args.resume, overwrite=args.overwrite,
                 progress=progress)
