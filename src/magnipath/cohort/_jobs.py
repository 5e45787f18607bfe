"""What a worker does for one slide: small functions that take paths and return summaries.

They run inside dask workers (any process of the cluster); the slide is opened
there by its path and only a small dict travels back. A
:class:`~magnipath._errors.MagnipathError` (or any other exception of the
slide's own code) becomes a ``{"status": "failed", "error": ...}`` summary: a
bad slide fails alone and dask does not retry it (dask retries only tasks whose
worker died).
"""

from __future__ import annotations

import os
import time
import traceback
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from magnipath._errors import MagnipathError
from magnipath.cohort._inputs import CohortSlide
from magnipath.progress import Progress

PROGRESS_TOPIC = "magnipath-cohort-progress"
"""dask event topic on which workers publish per-slide progress."""

_MODELS: dict[tuple, Any] = {}
_THREADS: list[int] = []


def set_torch_threads(n: int | None) -> None:
    """Torch intra-op threads of this worker (once per process; None: leave them)."""
    if n is None or _THREADS == [n]:
        return
    import torch

    torch.set_num_threads(int(n))
    _THREADS[:] = [n]


def cached_model(model: str, device: str) -> tuple:
    """``(net, card, model path)`` loaded once per worker process (cache on the worker).

    The key holds the checkpoint's path, size and modification time: a model
    retrained in place is loaded again.
    """
    from magnipath.checkpoint import load_model, resolve_checkpoint
    from magnipath.device import resolve_device

    pt = resolve_checkpoint(model)
    st = pt.stat()
    dev = str(resolve_device(device))
    key = (str(Path(model).resolve()), str(pt), st.st_size, st.st_mtime_ns, dev)
    if key not in _MODELS:
        _MODELS.clear()  # one model per worker at a time
        net, card = load_model(model, device=dev)
        _MODELS[key] = (net, card, model)
    return _MODELS[key]


def _forwarder(slide: str, every_s: float = 0.5):
    """A progress callback that publishes (throttled) events to the client, or None."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return None
    last = [0.0]

    def forward(ev: Progress) -> None:
        now = time.monotonic()
        if ev.total is not None and ev.done < ev.total and now - last[0] < every_s:
            return
        last[0] = now
        try:
            worker.log_event(PROGRESS_TOPIC, {"slide": slide, "stage": ev.stage,
                                              "done": ev.done, "total": ev.total})
        except Exception:  # noqa: BLE001 - progress must never fail a slide
            pass

    return forward


def peak_rss_mb() -> float:
    """Peak resident memory of this (worker) process so far, MB (Linux ru_maxrss)."""
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _failed(slide: CohortSlide, err: BaseException, t0: float) -> dict:
    if isinstance(err, MagnipathError):
        msg = str(err)
    else:
        where = traceback.extract_tb(err.__traceback__)[-1:] if err.__traceback__ else []
        at = f" (at {Path(where[0].filename).name}:{where[0].lineno})" if where else ""
        msg = (f"{slide.path}: unexpected {type(err).__name__}: {err}{at}; the file may be "
               "damaged or of an unsupported kind; check it opens with 'magnipath info'")
    return {"name": slide.name, "slide": str(slide.path), "status": "failed", "error": msg,
            "seconds": round(time.perf_counter() - t0, 3)}


def _resolve_mpp(slide: CohortSlide, option: Any, progress) -> tuple[float | None, dict]:
    """Level-0 µm/px to open the slide with, and what the report records about it."""
    if slide.mpp is not None:
        return slide.mpp, {"mpp": slide.mpp, "mpp_source": slide.mpp_source or "override"}
    if option is None:
        return None, {}
    if isinstance(option, int | float):
        return float(option), {"mpp": float(option), "mpp_source": "override"}
    mpp, source, details = option.resolve(slide.path, progress=progress)
    if details is None:
        return None, {}
    return mpp, {"mpp": mpp, "mpp_source": source,
                 "mpp_estimate": {k: details.get(k) for k in
                                  ("magnification", "method", "votes", "n_tiles", "note")}}


@dataclass(frozen=True)
class InferOptions:
    """Everything a worker needs to infer one slide and vectorise it (paths and settings).

    Attributes
    ----------
    model : str
        Model folder or ``.pt`` file (a path every worker can read).
    out : str
        Output folder (stores ``<name>.zarr``, objects ``<name>.geojson``).
    config : InferConfig
    mpp : float, MppEstimate or None
        Level-0 µm/px for slides without a manifest/project value.
    classes : tuple of str or None
        Classes to vectorise (default every class but Background).
    min_area_um2, simplify_um : float
    object_type : {"annotation", "detection"}
    torch_threads : int or None
    """

    model: str
    out: str
    config: Any
    mpp: Any = None
    classes: tuple[str, ...] | None = None
    min_area_um2: float = 0.0
    simplify_um: float = 0.0
    object_type: str = "annotation"
    torch_threads: int | None = None
    extra: dict = field(default_factory=dict)


def infer_task(slide: CohortSlide, opts: InferOptions) -> dict:
    """Worker: :func:`magnipath.infer.infer_slide` on one slide (resumes a half store)."""
    from magnipath.infer import infer_slide

    t0 = time.perf_counter()
    try:
        set_torch_threads(opts.torch_threads)
        progress = _forwarder(slide.name)
        mpp, said = _resolve_mpp(slide, opts.mpp, progress)
        meta = ({"slide_mpp": said["mpp"], "slide_mpp_source": said["mpp_source"],
                 "slide_mpp_estimate": said["mpp_estimate"]} if "mpp_estimate" in said else None)
        model = cached_model(opts.model, opts.config.device)
        res = infer_slide(slide.path, model, opts.out, opts.config, mpp=mpp, slide_meta=meta,
                          progress=progress)
    except Exception as e:  # noqa: BLE001 - a bad slide fails alone, with its message
        return _failed(slide, e, t0)
    if not said:  # the file's own resolution: level-0 µm/px = target µm/px / downsample
        said = {"mpp": round(res.target_mpp / res.downsample, 6), "mpp_source": "file"}
    return {"name": slide.name, "slide": str(slide.path), "status": "inferred",
            "store": str(res.store), "windows": res.n_windows, "windows_run": res.windows_run,
            "skipped_no_tissue": res.n_skipped, "resumed_chunks": res.n_resumed_chunks,
            "already_complete": res.already_complete, "target_mpp": res.target_mpp,
            "label_shape": list(res.out_shape), "device": res.device,
            "infer_seconds": round(time.perf_counter() - t0, 3), "worker_pid": os.getpid(),
            "infer_peak_rss_mb": peak_rss_mb(), **said}


def _stable_ids(objs: list, name: str) -> list:
    """Object ids derived from the slide and the object's rank: re-runs write the same file."""
    return [replace(o, id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"magnipath/{name}/{i}")))
            for i, o in enumerate(objs)]


def vectorize_task(inferred: dict, opts: InferOptions) -> dict:
    """Worker (no GPU): the store's objects -> ``OUT/<name>.geojson``, counts and areas."""
    if inferred.get("status") != "inferred":
        return inferred
    from magnipath.infer import prediction_objects
    from magnipath.vectorize import AREA
    from qupath_bridge.geojson import write_geojson

    t0 = time.perf_counter()
    slide = CohortSlide(path=Path(inferred["slide"]), name=inferred["name"])
    try:
        set_torch_threads(opts.torch_threads)
        objs = prediction_objects(inferred["store"], classes=opts.classes,
                                  min_area_um2=opts.min_area_um2, simplify_um=opts.simplify_um,
                                  object_type=opts.object_type,
                                  progress=_forwarder(slide.name))
        objs = _stable_ids(objs, Path(inferred["store"]).stem)
        gj = Path(opts.out) / f"{Path(inferred['store']).stem}.geojson"
        write_geojson(objs, gj)
    except Exception as e:  # noqa: BLE001 - a bad slide fails alone, with its message
        return {**_failed(slide, e, t0), **{k: inferred[k] for k in ("store",)}}
    by_class: dict[str, int] = {}
    area: dict[str, float] = {}
    for o in objs:
        c = str(o.classification)
        by_class[c] = by_class.get(c, 0) + 1
        area[c] = area.get(c, 0.0) + float(o.measurements.get(AREA, 0.0)) / 1e6
    return {**inferred, "status": "done", "geojson": str(gj), "n_objects": len(objs),
            "objects_by_class": by_class,
            "area_mm2_by_class": {k: round(v, 6) for k, v in area.items()},
            "vectorize_seconds": round(time.perf_counter() - t0, 3),
            "vectorize_worker_pid": os.getpid(), "vectorize_peak_rss_mb": peak_rss_mb()}


@dataclass(frozen=True)
class EvaluateOptions:
    """Settings of a per-slide evaluation (paths only)."""

    predictions: str
    out: str
    tile_size: int = 512


def evaluate_task(slide: CohortSlide, truth: str | None, opts: EvaluateOptions) -> dict:
    """Worker: metrics of ``PREDICTIONS/<name>.zarr`` against the truth GeoJSON."""
    import json

    from magnipath._io import atomic_write_text
    from magnipath.evaluate import evaluate_prediction
    from magnipath.infer import store_path

    t0 = time.perf_counter()
    store = store_path(opts.predictions, slide.path)
    try:
        if truth is None or not Path(truth).is_file():
            raise MagnipathError(f"{slide.name}: no ground truth {truth}; give a folder with "
                                 f"{slide.name}.geojson (--truth-dir) or a QuPath project")
        if not Path(store).is_dir():
            raise MagnipathError(f"{slide.name}: no prediction store {store}; run "
                                 "'magnipath infer --cohort' with this --out first")
        res = evaluate_prediction(store, truth, tile_size=opts.tile_size,
                                  progress=_forwarder(slide.name))
        out = Path(opts.out) / f"{slide.name}.evaluation.json"
        atomic_write_text(out, json.dumps(res, indent=1))
    except Exception as e:  # noqa: BLE001 - a bad slide fails alone, with its message
        return _failed(slide, e, t0)
    s = res["slide"]
    return {"name": slide.name, "slide": str(slide.path), "status": "done",
            "store": str(store), "evaluation": str(out),
            "mean_iou": s["overall"]["mean_iou"], "accuracy": s["overall"]["accuracy"],
            "confusion_matrix": s["confusion_matrix"], "class_names": list(s["per_class"]),
            "not_predicted_pixels": s["not_predicted_pixels"],
            "seconds": round(time.perf_counter() - t0, 3)}


def suggest_task(slide: CohortSlide, model: str | None, n_tiles: int, seed: int,
                 device: str) -> dict:
    """Worker: :func:`magnipath.magnification.suggest_mpp` on one slide (an estimate)."""
    from magnipath.magnification import suggest_mpp

    t0 = time.perf_counter()
    try:
        mpp, details = suggest_mpp(slide.path, model, n_tiles=n_tiles, seed=seed,
                                   device=device, progress=_forwarder(slide.name))
    except Exception as e:  # noqa: BLE001 - a bad slide fails alone, with its message
        return _failed(slide, e, t0)
    return {"name": slide.name, "slide": str(slide.path), "status": "done",
            "mpp": mpp, "mpp_source": details.get("mpp_source"),
            "file_mpp": details.get("file_mpp"),
            "magnification": details.get("magnification"), "n_tiles": details.get("n_tiles"),
            "note": details.get("note"), "seconds": round(time.perf_counter() - t0, 3)}
