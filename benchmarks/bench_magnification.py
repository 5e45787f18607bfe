"""Magnification estimation on held-out synthetic slides and on scikit-image's IHC image.

1. Makes ``--slides`` synthetic 40x slides, cuts 224 px patches at 5..40x
   (``--per-class`` per magnification per slide), splits by slide.
2. Trains the direct and area regressors (``--arch``, ``--widths`` for
   ShallowNet) within ``--time-budget`` seconds of CPU.
3. Scores direct, area, fusion (alpha 0.2) and the baseline on the test slides:
   Cohen's kappa, F1 (macro and weighted), accuracy, confusion matrices.
4. Rescales ``skimage.data.immunohistochemistry()`` (IHC: haematoxylin + DAB,
   *not* H&E; native magnification unknown) by known factors and reports the
   estimates, which should follow the factors.

Prints one JSON line (see ``_common.emit``). Example::

    .venv/bin/python benchmarks/bench_magnification.py --workdir /tmp/bench_mag \\
        --slides 12 --per-class 30 --time-budget 1800 --jsonl bench.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import emit


def ihc_check(model, factors: list[float]) -> list[dict]:
    """Estimates on the IHC image rescaled by each factor (Pillow, area filter down)."""
    from PIL import Image
    from skimage import data

    from magnipath.magnification import estimate

    img = data.immunohistochemistry()
    out = []
    for f in factors:
        h, w = img.shape[:2]
        size = (max(32, round(w * f)), max(32, round(h * f)))
        res = np.asarray(Image.fromarray(img).resize(
            size, Image.Resampling.BOX if f < 1 else Image.Resampling.BICUBIC))
        r = estimate(res, model, mode="tiles" if min(res.shape[:2]) >= 448 else "center")
        rec = {"factor": f, "shape": list(res.shape[:2]),
               "baseline": r["baseline"]["class"], "baseline_area_px": r["baseline"]["area_px"]}
        if model is not None:
            rec.update(direct=r["direct"]["magnification"], fusion=r["fusion"]["magnification"],
                       fusion_class=r["fusion"]["class"], area_px=r["area"]["area_px"])
        out.append(rec)
    return out


def follows(rows: list[dict], key: str) -> dict:
    """Whether estimates rise with the factor, and the log-log slope (ideal: 1 for
    magnifications, 2 for areas)."""
    f = np.array([r["factor"] for r in rows])
    v = np.array([r[key] for r in rows], dtype=float)
    ok = v > 0
    slope = float(np.polyfit(np.log(f[ok]), np.log(v[ok]), 1)[0]) if ok.sum() >= 2 else None
    return {"monotonic": bool(np.all(np.diff(v) > 0)), "loglog_slope": slope,
            "ratio_last_first": float(v[-1] / v[0]) if v[0] else None,
            "factor_ratio": float(f[-1] / f[0])}


def amp_agreement(model_dir: Path, ds) -> dict:
    """float32 vs mixed-precision prediction on the test patches."""
    from magnipath import magnification as mg

    patches = np.asarray(ds.images[ds.indices("test")])
    out = {}
    for amp in (False, True):
        m = mg.load_model(model_dir, amp=amp)
        t = time.perf_counter()
        out[amp] = mg.predict_patches(patches, m, baseline=False)
        out[f"s{amp}"] = time.perf_counter() - t
    a, b = out[False], out[True]
    return {"direct_class_agree": float(np.mean(a["direct_class"] == b["direct_class"])),
            "fusion_class_agree": float(np.mean(a["fusion_class"] == b["fusion_class"])),
            "direct_max_abs_diff": float(np.max(np.abs(a["direct"] - b["direct"]))),
            "area_max_rel_diff": float(np.max(np.abs(a["area_px"] / b["area_px"] - 1))),
            "seconds_fp32": round(out["sFalse"], 2), "seconds_amp": round(out["sTrue"], 2),
            "n": len(patches)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/bench_magnification"))
    ap.add_argument("--slides", type=int, default=12)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--per-class", type=int, default=30)
    ap.add_argument("--arch", default="shallownet")
    ap.add_argument("--widths", default="16,32,64,64")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--time-budget", type=float, default=1800.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=100)
    ap.add_argument("--factors", default="0.25,0.35,0.5,0.7,1.0,1.4,2.0",
                    help="rescale factors of the IHC image; its nuclei (~7 x 14 µm epithelial "
                         "nuclei ~15 x 30 px) put it near 25x, so factors up to 1.4 stay "
                         "within the trained 5..40x")
    ap.add_argument("--in-range-max", type=float, default=1.4,
                    help="largest factor of the IHC check's 'in range' slope")
    ap.add_argument("--evaluate-only", action="store_true",
                    help="score the existing model folder (same --tag) instead of training")
    ap.add_argument("--amp", action="store_true", help="mixed-precision training")
    ap.add_argument("--target-transform", default="linear", choices=("linear", "log"))
    ap.add_argument("--lr-schedule", default="constant", choices=("constant", "cosine"))
    ap.add_argument("--stain-augment", type=float, default=0.0)
    ap.add_argument("--blur-augment", type=float, default=0.0)
    ap.add_argument("--input", default="rgb", choices=("rgb", "hematoxylin"))
    ap.add_argument("--tag", default="", help="suffix of the model folder name")
    ap.add_argument("--jsonl")
    args = ap.parse_args()

    import torch

    from magnipath import magnification as mg

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    ds_dir = args.workdir / "dataset"
    if not (ds_dir / "index.json").is_file():
        sources = mg.synthetic_sources(args.workdir / "slides", args.slides, size=args.size,
                                       seed=args.seed)
        mg.make_dataset(sources, ds_dir, mg.MagDataConfig(per_class=args.per_class,
                                                          ratios=(8, 2, 2), seed=args.seed))
    t_data = time.perf_counter() - t0
    ds = mg.open_dataset(ds_dir)
    counts = {s: int((ds.split == s).sum()) for s in ("train", "val", "test")}

    model_dir = args.workdir / f"model_{args.arch}{args.tag}"
    kw = {"widths": [int(v) for v in args.widths.split(",")]} if args.arch == "shallownet" \
        else {}
    cfg = mg.MagTrainConfig(arch=args.arch, arch_kwargs=kw, epochs=args.epochs,
                            batch_size=args.batch_size, lr=args.lr,
                            time_budget_s=args.time_budget, device="cpu", seed=args.seed,
                            amp=args.amp, target_transform=args.target_transform,
                            lr_schedule=args.lr_schedule, stain_augment=args.stain_augment,
                            blur_augment=args.blur_augment, input=args.input)
    t1 = time.perf_counter()
    if args.evaluate_only:
        card = json.loads((model_dir / "card.json").read_text())
        summary = {k: card[k] for k in ("history", "area_table", "baseline_table")}
        cfg = mg.MagTrainConfig(**{k: v for k, v in card["train_config"].items()
                                   if k in mg.MagTrainConfig.__dataclass_fields__})
    else:
        summary = mg.train(ds, model_dir, cfg, overwrite=True)
    t_train = time.perf_counter() - t1
    model = mg.load_model(model_dir)
    t2 = time.perf_counter()
    ev = mg.evaluate(model, ds, split="test")  # with test-time augmentation (the default)
    t_eval = time.perf_counter() - t2
    plain = mg.evaluate(model, ds, split="test", tta=False)
    base_default = mg.evaluate(None, ds, split="test")["baseline"]
    factors = [float(v) for v in args.factors.split(",")]
    agree = amp_agreement(model_dir, ds) if args.amp else None
    ihc = ihc_check(model, factors)
    emit({"benchmark": "magnification", "arch": args.arch, "arch_kwargs": kw,
          "slides": args.slides, "size": args.size, "patches": counts,
          "epochs_run": {k: len(v) for k, v in summary["history"].items()},
          "history": summary["history"], "lr": args.lr, "time_budget_s": args.time_budget,
          "threads": args.threads,
          "seconds": {"data": round(t_data, 1), "train": round(t_train, 1),
                      "evaluate": round(t_eval, 1)},
          "test": {m: {k: ev[m][k] for k in ("kappa", "f1_macro", "f1_weighted", "accuracy",
                                             "confusion_matrix") if k in ev[m]}
                   for m in ("direct", "area", "fusion", "baseline")},
          "mae": {"direct": ev["direct"]["mae_magnification"],
                  "fusion": ev["fusion"]["mae_magnification"],
                  "area_px": ev["area"]["mae_area_px"]},
          "test_without_tta": {m: {k: plain[m][k] for k in ("kappa", "f1_macro", "accuracy")}
                               for m in ("direct", "area", "fusion")},
          "evaluate_only": args.evaluate_only,
          "baseline_default_table": {k: base_default[k] for k in ("kappa", "f1_macro",
                                                                 "accuracy")},
          "area_table": summary["area_table"], "baseline_table": summary["baseline_table"],
          "config": {k: getattr(cfg, k) for k in ("amp", "target_transform", "lr_schedule",
                                                  "stain_augment", "blur_augment", "input")},
          "amp_predict_agreement": agree,
          "ihc": ihc, "ihc_follow": {k: follows(ihc, k) for k in ("direct", "fusion",
                                                                  "area_px")},
          "ihc_follow_in_range": {k: follows([r for r in ihc
                                              if r["factor"] <= args.in_range_max], k)
                                  for k in ("direct", "fusion", "area_px")},
          "ihc_baseline_only": ihc_check(None, factors)},
         args.jsonl)


if __name__ == "__main__":
    main()
