"""Re-assign the train/val/test splits of a tile dataset by patient/group, in place.

Every group (patient) goes whole to one split; the ratios apply to the number
of groups. With one group everything is train; with two, test is empty. Only
manifest.json and tiles.jsonl are rewritten (each atomically); images and
labels stay as they are.
"""

from __future__ import annotations

import argparse

from magnipath._errors import TilingError
from magnipath.progress import ProgressCallback

NAME = "split"
HELP = "re-assign train/val/test splits of a tile dataset by group"
ORDER = 21


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", metavar="DATASET", help="tile dataset folder (magnipath tile)")
    p.add_argument("--ratios", default="70,15,15", metavar="TR,VA,TE",
                   help="train,val,test shares of the groups (any scale), e.g. 70,15,15")
    p.add_argument("--seed", type=int, default=0, help="seed of the assignment (integer)")


def run(args: argparse.Namespace, progress: ProgressCallback) -> dict:
    from magnipath.dataset import resplit_dataset

    try:
        ratios = [float(v) for v in args.ratios.split(",") if v.strip()]
    except ValueError:
        raise TilingError(f"--ratios must be three numbers, e.g. 70,15,15, got "
                          f"{args.ratios!r}") from None
    return resplit_dataset(args.dataset, ratios, args.seed)
