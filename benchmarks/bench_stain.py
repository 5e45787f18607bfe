"""Stain and scanner robustness of the demo-size DMMN-M3 (issue 15, item 3).

Makes the demo's training slides (seeds 0, 1, ... at 0.25 µm/px, reference
stain) and ``--n-test`` held-out slides (seeds 1000, ...) each rendered under the
reference stain and under every ``--shifts`` preset of ``magnipath synth
--stain`` (same seed: same layout and ground truth, another look). Tiles the
training slides as the demo does (5x target, 2.5x and 1.25x context, 64 px,
partial annotations, last slide for validation) and trains the demo's DMMN-M3
(base 8, depth 3, batch norm, Adam 2e-3, batch 16, wce+dice) once per
``--variants`` entry:

* ``none``: no stain augmentation (the training before issue 15: flips,
  rotations, colour jitter only);
* ``hed``: plus the default stain augmentation (HED-space jitter and, since
  2026-12-05, JPEG at quality 50-95 on half the samples);
* ``hed+macenko``: plus Macenko re-staining with probability 0.5.

Every model is run over every test look with and without ``--normalise-stain``
and scored against the exhaustive truth (mIoU over the 7 classes, one
confusion matrix per look pooled over the test slides). One JSON line per
(variant, normalise, look) with the mIoU, its drop from the same model's
reference-stain mIoU, and per-class IoU.

``--recipe demo`` trains and runs the models as ``magnipath demo`` does since issue
14 (``TrainConfig.preset("demo")``: 1/sqrt class weights, 30 epochs; tiles with the
glass unlabelled; half-overlapping windows and glass relabelled Background at
inference), with the variants' stain augmentation in place of the preset's, plus the
variant ``demo-hed`` (the preset's own milder jitter).

Usage::

    benchmarks/bench_stain.py --work /tmp/stain --epochs 40 --threads 1 --jsonl out.jsonl
    benchmarks/bench_stain.py --work /tmp/stain --recipe demo --epochs 30 --amp \
        --variants none,hed,demo-hed --jsonl out.jsonl
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from _common import emit, make_tiles

VARIANTS = {"none": {}, "hed": None, "hed+macenko": {"macenko": 0.5}, "demo-hed": "demo"}


def make_slides(work: Path, size: int, n_train: int, n_test: int,
                looks: list[str]) -> tuple[list, dict[str, list]]:
    """Training slides (reference stain) and test slides per look (reused when present)."""
    from magnipath.synth import SynthConfig, get_scanner, synthesize

    def synth(name: str, seed: int, look: str):
        path = work / "slides" / f"{name}.tif"
        cfg = SynthConfig(width=size, height=size, mpp=0.25, seed=seed,
                          scanner=get_scanner(look))
        if path.is_file():  # same name, same settings: reuse (truth paths only)
            from magnipath.synth import SynthResult, sidecar_paths

            t, p, m = sidecar_paths(path)
            return SynthResult(path, t, p, m, {}, 0, 0.0, [], cfg)
        return synthesize(path, cfg)

    train = [synth(f"train_{i}", i, "reference") for i in range(n_train)]
    tests = {look: [synth(f"test_{j}_{look}", 1000 + j, look) for j in range(n_test)]
             for look in looks}
    return train, tests


def train_variant(name: str, dataset: Path, work: Path, args) -> tuple[Path, dict, float]:
    from magnipath.train import TrainConfig, train
    from magnipath.train._stain_aug import DEFAULT_STAIN_AUGMENT, DEMO_STAIN_AUGMENT

    extra = VARIANTS[name]
    if extra == "demo":
        stain = dict(DEMO_STAIN_AUGMENT)
    else:
        stain = {} if extra == {} else {**DEFAULT_STAIN_AUGMENT, **(extra or {})}
    common = dict(arch="dmmn-m3", arch_kwargs={"base": 8, "depth": 3, "norm": True},
                  epochs=args.epochs, time_budget_s=args.seconds, seed=args.seed,
                  device="cpu", amp=args.amp, stain_augment=stain)
    if args.recipe == "demo":
        cfg = TrainConfig.preset("demo", **common)
    else:
        cfg = TrainConfig(lr=2e-3, batch_size=16, optimizer="adam", loss="wce+dice", **common)
    out = work / "models" / f"{args.recipe}-{name}"
    t0 = time.perf_counter()
    trained = train(dataset, out, cfg, overwrite=True)
    return out, trained, time.perf_counter() - t0


def reload_variant(name: str, dataset: Path, work: Path, recipe: str) -> tuple[tuple, dict]:
    """A trained variant as an in-memory ``(net, card)`` whose stain reference is measured
    again with the current code (``--score-only``: score new normalisation code without
    retraining)."""
    import numpy as np

    from magnipath.checkpoint import load_model
    from magnipath.dataset import open_dataset
    from magnipath.train._stain_aug import training_stain_reference

    net, card = load_model(work / "models" / f"{recipe}-{name}", device="cpu")
    ds = open_dataset(dataset)
    ref = training_stain_reference(ds, np.asarray(ds.indices("train")), int(card.seed or 0))
    card.normalisation = {**card.normalisation, "stain_reference": ref}
    hist = card.metrics.get("last", {})
    return (net, card), {"epochs_done": hist.get("epoch"), "reference_recomputed": True}


def score(model, slides: list, work: Path, tag: str, normalise: bool, *,
          demo: bool = False) -> dict:
    """Pooled confusion matrix of ``model`` over ``slides`` -> mIoU and per-class IoU."""
    import shutil

    import numpy as np

    from magnipath.evaluate import evaluate_prediction
    from magnipath.infer import InferConfig, infer_slide
    from magnipath.metrics import ConfusionMatrix

    shutil.rmtree(work / "pred" / tag, ignore_errors=True)  # a store of the same run resumes
    pooled, names = None, None
    for s in slides:
        res = infer_slide(s.slide, model, work / "pred" / tag,
                          InferConfig(batch_size=16, overwrite=True, device="cpu",
                                      normalise_stain=normalise,
                                      stride=32 if demo else None, glass_background=demo))
        ev = evaluate_prediction(res.store, s.truth)
        cm = np.asarray(ev["slide"]["confusion_matrix"], dtype=np.int64)
        names = list(ev["slide"]["per_class"])
        pooled = cm if pooled is None else pooled + cm
    total = ConfusionMatrix(len(names))
    total.matrix[...] = pooled[: len(names), : len(names)]
    summary = total.summary(names, nan_as_none=True)
    return {"miou": summary["overall"]["mean_iou"],
            "iou": {k: v["iou"] for k, v in summary["per_class"].items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", required=True, help="folder for slides, tiles, models")
    ap.add_argument("--size", type=int, default=8192, help="slide side, px at 0.25 µm/px")
    ap.add_argument("--n-train", type=int, default=4)
    ap.add_argument("--n-test", type=int, default=1)
    ap.add_argument("--shifts", default="faded,scanner-b,yellow",
                    help="stain presets of the shifted test looks")
    ap.add_argument("--variants", default="none,hed", help=f"of {list(VARIANTS)}")
    ap.add_argument("--recipe", choices=("legacy", "demo"), default="legacy",
                    help="legacy: session-4 training (wce+dice); demo: as magnipath demo now")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--seconds", type=float, default=None, help="time budget per model, s")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--amp", action="store_true", help="bf16 autocast (CPUs with AMX)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads")
    ap.add_argument("--score-only", action="store_true",
                    help="reuse the trained models in WORK/models (stain reference measured "
                         "again with the current code) and score them")
    ap.add_argument("--normalise", default="0,1",
                    help="normalisation settings to score: 0 (off), 1 (on) or 0,1")
    ap.add_argument("--jsonl", default=None)
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(args.work)
    looks = ["reference", *[s.strip() for s in args.shifts.split(",") if s.strip()]]
    train_slides, tests = make_slides(work, args.size, args.n_train, args.n_test, looks)
    demo = args.recipe == "demo"
    dataset = make_tiles(work, train_slides, 5.0, 64, glass_unlabelled=demo,
                         name="dataset-glass" if demo else "dataset")
    for variant in [v.strip() for v in args.variants.split(",")]:
        if args.score_only:
            (model, trained), train_s = reload_variant(variant, dataset, work, args.recipe), None
        else:
            model, trained, train_s = train_variant(variant, dataset, work, args)
        for normalise in [bool(int(v)) for v in args.normalise.split(",")]:
            ref = None
            for look in looks:
                t0 = time.perf_counter()
                r = score(model, tests[look], work,
                          f"{args.recipe}_{variant}_{int(normalise)}_{look}", normalise,
                          demo=demo)
                if look == "reference":
                    ref = r["miou"]
                emit({"bench": "stain", "recipe": args.recipe, "variant": variant,
                      "normalise_stain": normalise,
                      "look": look, "miou": r["miou"],
                      "drop": None if ref is None or r["miou"] is None
                      else round(ref - r["miou"], 4),
                      "iou": r["iou"], "epochs": args.epochs,
                      "epochs_done": trained.get("epochs_done"),
                      "train_s": None if train_s is None else round(train_s, 1),
                      "reference_recomputed": bool(trained.get("reference_recomputed")),
                      "seed": args.seed, "amp": args.amp,
                      "test_slides": [s.slide.name for s in tests[look]],
                      "score_s": round(time.perf_counter() - t0, 1),
                      "load_avg": os.getloadavg()}, args.jsonl)


if __name__ == "__main__":
    main()
