"""Accuracy of every architecture on held-out synthetic slides (the papers' Table I, our data).

Makes ``--n-train`` training slides (seeds 0, 1, ... as ``magnipath demo``) and
``--n-test`` held-out slides (seeds 1000, 1001, ...), tiles the training slides
from their *partial* annotations with DMMN concentric context (target
magnification and its halves), then trains each architecture with the same
settings and the same number of epochs, runs it over every held-out slide and
evaluates against the *exhaustive* ground truth. Per-class IoU and mIoU are
pooled over all held-out slides (one confusion matrix). One JSON line per
architecture (``--jsonl`` appends).

Single-magnification models (dsmn-s2, unetpp-effb0) see only the target input
of the same tiles; DMMN models see all three.

Usage::

    benchmarks/bench_accuracy.py --work /tmp/acc --epochs 40 --jsonl results.jsonl
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from _common import emit, make_tiles

ARCHS = ("dsmn-s2", "dmmn-ms", "dmmn-m2s", "dmmn-m3", "unetpp-effb0")


def make_slides(work: Path, size: int, n_train: int, n_test: int) -> tuple[list, list]:
    """Synthetic slides with ground truth (reused when present)."""
    from magnipath.synth import SynthConfig, synthesize

    out = []
    for name, seed in ([(f"train_{i}", i) for i in range(n_train)]
                       + [(f"test_{j}", 1000 + j) for j in range(n_test)]):
        out.append(synthesize(work / "slides" / f"{name}.tif",
                              SynthConfig(width=size, height=size, mpp=0.25, seed=seed)))
    return out[:n_train], out[n_train:]


def run_arch(arch: str, dataset: Path, tests: list, work: Path, args) -> dict:
    """Train ``arch``, infer the held-out slides, pool their confusion matrices."""
    import numpy as np

    from magnipath.evaluate import evaluate_prediction
    from magnipath.infer import InferConfig, infer_slide
    from magnipath.metrics import ConfusionMatrix
    from magnipath.train import TrainConfig, train

    kwargs = ({} if arch.startswith("unetpp") else
              {"base": args.base, "depth": args.depth, "norm": True})
    cfg = TrainConfig(arch=arch, arch_kwargs=kwargs, epochs=args.epochs, lr=args.lr,
                      batch_size=args.batch_size, optimizer="adam", loss="wce+dice",
                      time_budget_s=args.seconds, seed=0, device="cpu", amp=args.amp)
    t0 = time.perf_counter()
    trained = train(dataset, work / "models" / arch, cfg, overwrite=True)
    train_s = time.perf_counter() - t0
    pooled, names, infer_s = None, None, 0.0
    tiles: dict[str, list] = {}
    for t in tests:
        t0 = time.perf_counter()
        res = infer_slide(t.slide, work / "models" / arch, work / "pred" / arch,
                          InferConfig(batch_size=16, overwrite=True, device="cpu"))
        infer_s += time.perf_counter() - t0
        ev = evaluate_prediction(res.store, t.truth)
        cm = np.asarray(ev["slide"]["confusion_matrix"], dtype=np.int64)
        names = list(ev["slide"]["per_class"])
        pooled = cm if pooled is None else pooled + cm
        for cls, v in ev["tiles"].items():
            tiles.setdefault(cls, []).append(v["iou"])
    total = ConfusionMatrix(len(names))
    total.matrix[...] = pooled[: len(names), : len(names)]
    summary = total.summary(names, nan_as_none=True)
    return {
        "bench": "accuracy", "arch": arch, "arch_kwargs": kwargs, "epochs": args.epochs,
        "epochs_done": trained.get("epochs_done"), "train_s": round(train_s, 1),
        "infer_s_all_test_slides": round(infer_s, 1),
        "samples_per_s": trained.get("samples_per_s"), "amp": args.amp,
        "val_best": {k: trained["best"][k] for k in ("epoch", "miou") if k in trained["best"]},
        "test_slides": [str(t.slide.name) for t in tests],
        "miou": summary["overall"]["mean_iou"], "accuracy": summary["overall"]["accuracy"],
        "iou": {k: v["iou"] for k, v in summary["per_class"].items()},
        "tile_iou_mean_over_slides": {k: float(np.mean([x for x in v if x is not None]))
                                      for k, v in tiles.items() if any(x is not None for x in v)},
        "confusion_matrix": pooled.tolist(), "classes": names,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", required=True, help="folder for slides, tiles, models")
    ap.add_argument("--size", type=int, default=8192, help="slide side, px at 0.25 µm/px")
    ap.add_argument("--n-train", type=int, default=4)
    ap.add_argument("--n-test", type=int, default=3)
    ap.add_argument("--magnification", type=float, default=5.0)
    ap.add_argument("--tile", type=int, default=64, help="target tile side, px")
    ap.add_argument("--archs", default=",".join(ARCHS))
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--seconds", type=float, default=None, help="time budget per model, s")
    ap.add_argument("--base", type=int, default=8)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--amp", action="store_true", help="bf16 autocast (CPUs with AMX)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (default torch's; 1 on a shared machine)")
    ap.add_argument("--jsonl", default=None)
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(args.work)
    train_slides, tests = make_slides(work, args.size, args.n_train, args.n_test)
    dataset = make_tiles(work, train_slides, args.magnification, args.tile)
    for arch in args.archs.split(","):
        emit(run_arch(arch.strip(), dataset, tests, work, args), args.jsonl)


if __name__ == "__main__":
    main()
