"""Evaluate a prediction (magnipath infer output) against ground-truth polygons.

Per-class and mean IoU, Dice, precision, recall, specificity, accuracy and
Matthews correlation, over the whole slide and over the tiles that contain each
class (McCombe et al.'s tile vs. slide comparison), plus inference time per
slide. Truth pixels no annotation covers are not counted.

With --cohort FOLDER|CSV, PRED is the folder of a cohort's prediction stores
('magnipath infer --cohort ... --out PRED') and the truth of slide NAME is
TRUTH_DIR/NAME.geojson (--truth-dir) or the project's annotations; every slide
is evaluated on dask and the pooled confusion matrix is reported
(docs/cohort.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from magnipath._errors import MagnipathError

NAME = "evaluate"
HELP = "metrics of a prediction against ground truth"
ORDER = 60


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("prediction", type=Path, metavar="PRED",
                   help="prediction store (OUT/<slide>.zarr written by 'magnipath infer')")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--truth", type=Path, help="ground truth as QuPath GeoJSON (level-0 px)")
    src.add_argument("--qupath-project", type=Path,
                     help="QuPath project whose annotations are the ground truth")
    src.add_argument("--truth-dir", type=Path, default=None,
                     help="with --cohort: folder of ground truth NAME.geojson per slide")
    p.add_argument("--image", default=None,
                   help="with --qupath-project: image name (default: the prediction's slide)")
    p.add_argument("--tile-size", type=int, default=512,
                   help="side of the per-tile view, in prediction pixels (default 512)")
    p.add_argument("--out", type=Path, default=None,
                   help="also write the full JSON result (every metric, confusion matrices) "
                        "to this file; with --cohort: the report folder (default "
                        "PRED/evaluation)")
    from magnipath.cli.infer import add_cohort_arguments

    add_cohort_arguments(p)
    p.add_argument("--workers", type=int, default=None,
                   help="with --cohort: dask worker processes (default: sized to the machine)")


def _run_cohort(args: argparse.Namespace, progress) -> dict:
    from magnipath.cli.infer import cohort_progress
    from magnipath.cohort import CohortError, collect, evaluate_job, run_cohort

    if args.qupath_project is not None:
        if args.cohort:
            raise CohortError("give --cohort alone (no FOLDER) with --qupath-project: the "
                              "project's images are the cohort")
        slides = collect(args.qupath_project, qupath=True,
                         images=[args.image] if args.image else None)
    elif args.truth_dir is None or not args.cohort:
        raise CohortError("evaluate --cohort FOLDER|CSV needs the ground truth as --truth-dir "
                          "FOLDER (NAME.geojson per slide), or use --cohort --qupath-project P")
    else:
        slides = collect(args.cohort)
    out = args.out or Path(args.prediction) / "evaluation"
    job = evaluate_job(args.prediction, out, truth_dir=args.truth_dir,
                       qupath_project=args.qupath_project, tile_size=args.tile_size)
    rep = run_cohort(slides, job, out, scheduler=args.scheduler, workers=args.workers,
                     gpus=None, dashboard=args.dashboard, progress=cohort_progress(progress))
    for r in rep["slides"]:
        r.pop("confusion_matrix", None)
    return rep


def run(args: argparse.Namespace, progress) -> dict:
    from magnipath.evaluate import evaluate_prediction, format_table

    if args.cohort is not None:
        return _run_cohort(args, progress)
    if args.truth_dir is not None:
        raise MagnipathError("--truth-dir needs --cohort FOLDER|CSV (the slides); for one "
                             "prediction give --truth FILE")
    truth = args.truth
    if args.qupath_project is not None:
        from magnipath.infer import open_prediction
        from qupath_bridge.project import Project

        _, meta = open_prediction(args.prediction)
        name = args.image or Path(meta.get("slide", "")).name
        with Project(args.qupath_project, mode="r") as proj:
            truth = proj.read_objects(name, types=("annotation",), include_points=False,
                                      include_predictions=False)
    elif not args.truth.exists():
        raise MagnipathError(f"truth file {args.truth} not found")
    result = evaluate_prediction(args.prediction, truth, tile_size=args.tile_size,
                                 progress=progress)
    if args.out:
        from magnipath._io import atomic_write_text

        atomic_write_text(args.out, json.dumps(result, indent=1))
    args.table = format_table(result)  # printed last, by human_lines
    s = result["slide"]
    return {"prediction": str(args.prediction), "mean_iou": s["overall"]["mean_iou"],
            "accuracy": s["overall"]["accuracy"], "mcc": s["overall"]["mcc"],
            "per_class_iou": {k: v["iou"] for k, v in s["per_class"].items()},
            "tiles": {k: {"n_tiles": v["n_tiles"], "iou": v["iou"], "dice": v["dice"]}
                      for k, v in result["tiles"].items()},
            "not_predicted_pixels": s["not_predicted_pixels"],
            "infer_seconds": result["infer_seconds"],
            "slides_per_minute": result["slides_per_minute"],
            "notes": result["notes"],
            **({"result_json": str(args.out)} if args.out else {})}


def human_lines(summary: dict, args: argparse.Namespace) -> list[str]:
    """The summary lines, then the metrics table (the last thing printed)."""
    from magnipath.cli._common import summary_lines

    return [*summary_lines(summary)[0], "", *str(getattr(args, "table", "")).splitlines()]
