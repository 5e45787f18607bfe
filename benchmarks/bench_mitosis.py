"""Mitosis detection on held-out synthetic slides, with and without the negative feed.

1. Makes ``--slides`` synthetic 40x slides with mitoses (``--mitoses`` per mm²
   of carcinoma), split 8 : 2 : 2 (train : val : test) by slide.
2. Cuts 64 px tiles (positive where exp(-0.1 d) > 0.5); the training and
   validation sets keep every positive and at most ``--neg-ratio`` negatives per
   positive (Pearce: ~5 % positive tiles -> ratio 19).
3. Trains the small CNN three times with the same settings: negative feed with
   a stratified sample of correct tiles (1/3 positive, the default), negative
   feed with a plain random sample (the paper's literal rule), and balanced
   sampling (1/3 positive) every epoch.
4. Scores both on every tissue tile of the test slides: accuracy, precision,
   recall, F1 (tiles) and the share of mitoses inside a positive tile.

Prints one JSON line (see ``_common.emit``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import emit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/bench_mitosis"))
    ap.add_argument("--slides", type=int, default=12)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--mitoses", type=float, default=400.0)
    ap.add_argument("--neg-ratio", type=float, default=19.0)
    ap.add_argument("--filters", default="16,32")
    ap.add_argument("--affine", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--stain", default="rgb")
    ap.add_argument("--noise", type=float, default=3.0,
                    help="Gaussian noise of the negative feed, grey levels")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=200)
    ap.add_argument("--jsonl")
    args = ap.parse_args()

    import torch

    from magnipath import mitosis as mt
    from magnipath.synth import SynthConfig, synthesize

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    sources = []
    for i in range(args.slides):
        path = args.workdir / "slides" / f"mit_{args.seed + i:03d}.tif"
        cfg = SynthConfig(width=args.size, height=args.size, seed=args.seed + i,
                          mitoses_per_mm2=args.mitoses)
        if not path.exists():
            synthesize(path, cfg)
        sources.append(mt.MitosisSource(path, path.with_suffix(".mitoses.geojson")))
    n_test = n_val = max(1, args.slides // 6)
    train_src = sources[:args.slides - n_val - n_test]
    val_src = sources[len(train_src):len(train_src) + n_val]
    test_src = sources[len(train_src) + n_val:]
    tc = mt.TileConfig(tile=64, a=0.1, threshold=0.5, max_negative_ratio=args.neg_ratio,
                       seed=args.seed)
    train_tiles = mt.make_tiles(train_src, tc)
    val_tiles = mt.make_tiles(val_src, tc)
    t_data = time.perf_counter() - t0
    results = {}
    variants = {"negative_feed_stratified": (True, 1.0 / 3.0),
                "negative_feed_random": (True, None), "balanced_only": (False, None)}
    for name, (feed, frac) in variants.items():
        cfg = mt.MitosisTrainConfig(stain=args.stain,
                                    filters=tuple(int(v) for v in args.filters.split(",")),
                                    affine=args.affine, epochs=args.epochs, lr=args.lr,
                                    negative_feed=feed, feed_positive_fraction=frac,
                                    noise_sigma=args.noise, device="cpu", seed=args.seed)
        t1 = time.perf_counter()
        model, summary = mt.train(train_tiles, val_tiles, None, cfg)
        t_train = time.perf_counter() - t1
        t2 = time.perf_counter()
        ev = mt.evaluate(model, test_src)
        best = next((h for h in reversed(summary["history"]) if h.get("best")), {})
        results[name] = {
            "test_tiles": ev["tiles"], "test_points": ev["points"],
            "best_epoch": best.get("epoch"), "val_at_best": best.get("val"),
            "history": [{k: h.get(k) for k in ("epoch", "tiles", "feed", "train_loss",
                                               "misclassified")}
                        | {"val_f1": (h.get("val") or {}).get("f1")}
                        for h in summary["history"]],
            "seconds": {"train": round(t_train, 1),
                        "evaluate": round(time.perf_counter() - t2, 1)}}
    emit({"benchmark": "mitosis", "slides": {"train": len(train_src), "val": len(val_src),
                                             "test": len(test_src)},
          "size": args.size, "mitoses_per_mm2": args.mitoses,
          "train_tiles": len(train_tiles), "train_positive": int(train_tiles.labels.sum()),
          "val_tiles": len(val_tiles), "val_positive": int(val_tiles.labels.sum()),
          "filters": args.filters, "affine": args.affine, "epochs": args.epochs,
          "lr": args.lr, "stain": args.stain, "noise": args.noise, "threads": args.threads,
          "seconds_data": round(t_data, 1), "results": results}, args.jsonl)


if __name__ == "__main__":
    main()
