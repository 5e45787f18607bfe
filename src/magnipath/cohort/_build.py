"""The cohort jobs: infer (+ objects, + QuPath write-back), evaluate, suggest-mpp."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from magnipath.cohort._engine import CohortJob, Step, file_identity
from magnipath.cohort._inputs import CohortError, CohortSlide
from magnipath.cohort._jobs import (
    EvaluateOptions,
    InferOptions,
    evaluate_task,
    infer_task,
    suggest_task,
    vectorize_task,
)


def _model_identity(model: str | os.PathLike) -> dict:
    from magnipath.checkpoint import resolve_checkpoint

    try:
        return file_identity(resolve_checkpoint(model))
    except Exception as e:  # noqa: BLE001 - said once, before any slide runs
        raise CohortError(f"model {model}: {e}") from None


def infer_job(model: str | os.PathLike, out: str | os.PathLike, config=None, *,
              mpp=None, classes: Sequence[str] | None = None, min_area_um2: float = 0.0,
              simplify_um: float = 0.0, object_type: str = "annotation",
              qupath_project: str | os.PathLike | None = None) -> CohortJob:
    """Per slide: :func:`~magnipath.infer.infer_slide` (a GPU task when the cluster has GPUs),
    then its objects as ``OUT/<name>.geojson`` (a CPU task), then, for a QuPath project,
    the objects written into the image by the client (serially; replaces MagniPath's
    earlier objects only).

    Parameters
    ----------
    model : path
        Model folder or ``.pt`` file, readable by every worker.
    out : path
        Output folder, shared by the workers.
    config : InferConfig, optional
        As for a single slide; ``workers`` are reader threads inside each task.
    mpp : float or MppEstimate, optional
        Level-0 µm/px for slides whose manifest/project gives none (see ``magnipath
        infer --mpp``).
    classes, min_area_um2, simplify_um, object_type
        What to vectorise, as ``magnipath infer --classes/--min-area/--simplify/--as``.
    qupath_project : path, optional
        Write each slide's objects into this project (``CohortSlide.image``).
    """
    from magnipath.infer import InferConfig

    cfg = config or InferConfig()
    opts = InferOptions(model=str(model), out=str(out), config=cfg, mpp=mpp,
                        classes=tuple(classes) if classes else None,
                        min_area_um2=float(min_area_um2), simplify_um=float(simplify_um),
                        object_type=object_type)
    model_id = _model_identity(model)
    settings = {k: v for k, v in dataclasses.asdict(cfg).items()
                if k not in ("workers", "overwrite")}
    vec = {"classes": opts.classes, "min_area_um2": opts.min_area_um2,
           "simplify_um": opts.simplify_um, "object_type": object_type}

    def fingerprint(slide: CohortSlide) -> dict:
        return {"job": "infer", "slide": file_identity(slide.path), "mpp": slide.mpp,
                "mpp_option": str(mpp), "model": model_id, "config": settings, "vectorize": vec,
                "qupath": [str(Path(qupath_project).resolve()), slide.image]
                if qupath_project else None}

    def outputs(slide: CohortSlide, summary: dict) -> list[str]:
        return [summary.get("store", "/nonexistent"), summary.get("geojson", "/nonexistent")]

    on_done = None
    if qupath_project is not None:
        def on_done(slide: CohortSlide, summary: dict) -> dict:
            from qupath_bridge.geojson import read_geojson
            from qupath_bridge.project import Project

            if slide.image is None:
                return {}
            objs = read_geojson(summary["geojson"])
            with Project(qupath_project, mode="r+") as proj:
                res = proj.write_predictions(slide.image, objs, as_type=object_type)
            return {"qupath": {k: res.get(k) for k in ("image", "removed", "added", "backup")}}

    return CohortJob(
        kind="infer",
        steps=lambda s: [Step(infer_task, (opts,), gpu=True, name="infer"),
                         Step(vectorize_task, (opts,), gpu=False, name="vectorize")],
        fingerprint=fingerprint, outputs=outputs, on_done=on_done,
        settings={"model": str(model), **settings, **vec,
                  "qupath_project": str(qupath_project) if qupath_project else None})


def _pool_confusion(rows: list[dict]) -> dict:
    """Pooled pixel confusion matrix and its metrics over every evaluated slide."""
    from magnipath.metrics import ConfusionMatrix

    rows = [r for r in rows if r.get("confusion_matrix") is not None]
    if not rows:
        return {}
    shapes = {np.asarray(r["confusion_matrix"]).shape for r in rows}
    names = rows[0]["class_names"]
    if len(shapes) != 1 or any(r["class_names"] != names for r in rows):
        return {"note": "slides evaluated with different class maps: no pooled matrix"}
    total = sum(np.asarray(r["confusion_matrix"], np.int64) for r in rows)
    n = total.shape[0]
    cm = ConfusionMatrix(n)
    cm.matrix[...] = total
    labels = list(names) + [f"not predicted {i}" for i in range(n - len(names))]
    summary = cm.summary(labels, nan_as_none=True)
    return {"n_slides": len(rows), "confusion_matrix": total.tolist(),
            "mean_iou": summary["overall"].get("mean_iou"),
            "accuracy": summary["overall"].get("accuracy"),
            "per_class_iou": {k: v.get("iou") for k, v in summary["per_class"].items()
                              if k in names}}


def evaluate_job(predictions: str | os.PathLike, out: str | os.PathLike, *,
                 truth_dir: str | os.PathLike | None = None,
                 qupath_project: str | os.PathLike | None = None,
                 tile_size: int = 512) -> CohortJob:
    """Per slide: ``PREDICTIONS/<name>.zarr`` against ``TRUTH_DIR/<name>.geojson`` (or the
    project image's annotations, exported by the client); pooled confusion matrix.

    Writes ``OUT/<name>.evaluation.json`` per slide.
    """
    from magnipath.infer import store_path

    if (truth_dir is None) == (qupath_project is None):
        raise CohortError("give the ground truth as --truth-dir FOLDER (NAME.geojson per "
                          "slide) or a QuPath project, one of them")
    truth_root = Path(out) / ".magnipath-cohort" / "truth" if qupath_project else Path(truth_dir)
    opts = EvaluateOptions(predictions=str(predictions), out=str(out), tile_size=tile_size)

    def truth_of(slide: CohortSlide) -> str:
        return str(truth_root / f"{slide.name}.geojson")

    def before(slides: list[CohortSlide]) -> None:
        if qupath_project is None:
            return
        from qupath_bridge.geojson import write_geojson
        from qupath_bridge.project import Project

        truth_root.mkdir(parents=True, exist_ok=True)
        with Project(qupath_project, mode="r") as proj:
            for s in slides:
                objs = proj.read_objects(s.image or s.name, types=("annotation",),
                                         include_points=False, include_predictions=False)
                write_geojson(objs, truth_of(s))

    def fingerprint(slide: CohortSlide) -> dict:
        store = store_path(predictions, slide.path)
        t = Path(truth_of(slide))
        return {"job": "evaluate", "store": str(Path(store).resolve()),
                "store_mtime": (store / "zarr.json").stat().st_mtime_ns
                if (store / "zarr.json").exists() else None,
                # a project's annotations may change in QuPath at any time: always re-evaluate
                "truth": file_identity(t) if t.exists() and not qupath_project
                else (str(t), time.time_ns() if qupath_project else None),
                "tile_size": tile_size}

    return CohortJob(
        kind="evaluate",
        steps=lambda s: [Step(evaluate_task, (truth_of(s), opts), name="evaluate")],
        fingerprint=fingerprint,
        outputs=lambda s, r: [r.get("evaluation", "/nonexistent")],
        before=before, pooled=_pool_confusion,
        settings={"predictions": str(predictions), "truth_dir": str(truth_dir),
                  "qupath_project": str(qupath_project) if qupath_project else None,
                  "tile_size": tile_size})


def suggest_job(model: str | os.PathLike | None = None, *, n_tiles: int = 16, seed: int = 0,
                device: str = "cpu") -> CohortJob:
    """Per slide: an *estimate* of the level-0 µm/px from its pixels (``suggest-mpp``)."""
    model_id = _model_identity(model) if model else None

    def fingerprint(slide: CohortSlide) -> dict:
        return {"job": "suggest-mpp", "slide": file_identity(slide.path), "model": model_id,
                "n_tiles": n_tiles, "seed": seed}

    return CohortJob(
        kind="suggest-mpp",
        steps=lambda s: [Step(suggest_task, (str(model) if model else None, n_tiles, seed,
                                             device), gpu=device != "cpu", name="suggest")],
        fingerprint=fingerprint, outputs=lambda s, r: [],
        settings={"model": str(model) if model else "baseline", "n_tiles": n_tiles,
                  "seed": seed})
