"""``infer_slide``: one slide (or a level-0 region of it) through a trained model."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np

from magnipath._errors import ModelError, SlideError
from magnipath.infer._engine import (
    InferConfig,
    InferResult,
    _fill_label,
    _Reader,
    _signature,
    run_windows,
)
from magnipath.infer._store import PredictionStore
from magnipath.infer._windows import plan_windows
from magnipath.progress import CancelCallback, ProgressCallback, report

MPP_TOLERANCE = 0.01


def _load(model, device):
    from magnipath.checkpoint import ModelCard, load_model

    if isinstance(model, tuple):
        net, card = model
        if not isinstance(card, ModelCard):
            raise ModelError("a (model, card) pair needs a magnipath.checkpoint.ModelCard")
        return net.to(device).eval(), card, getattr(card, "source", "<in memory>")
    net, card = load_model(model, device=device)
    return net.eval(), card, str(Path(model).resolve())


def infer_slide(slide: str | os.PathLike, model, out_dir: str | os.PathLike,
                config: InferConfig | None = None, *, mpp: float | None = None,
                progress: ProgressCallback | None = None,
                cancel: CancelCallback | None = None) -> InferResult:
    """Predict a label map for a slide with a model, exactly at the model's input geometry.

    Parameters
    ----------
    slide : path
        Whole-slide image (any format :func:`magnipath.slide.open_slide` reads).
    model : path or (torch.nn.Module, ModelCard)
        A model folder written by ``magnipath train`` (or one of its ``.pt``
        files), or a model with its card.
    out_dir : path
        Folder of the result; the store is ``out_dir/<slide stem>.zarr``.
    config : InferConfig
        Stride, batch size, device, tissue mask, region...
    mpp : float, optional
        Level-0 µm/px override for slides without metadata.

    Returns
    -------
    InferResult
        The store path, the label-map shape at the target mpp and its level-0
        origin and downsample (level-0 px per label px), counts and timings.

    Raises
    ------
    SlideError
        The slide cannot provide the model's magnifications.
    ModelError
        The model or its card is missing, damaged or inconsistent.
    """
    from magnipath.device import amp_dtype, resolve_device
    from magnipath.slide import open_slide
    from magnipath.tissue import detect_tissue

    cfg = config or InferConfig()
    t_start = time.perf_counter()
    device = resolve_device(cfg.device)
    net, card, model_path = _load(model, device)
    geometry = card.input_geometry
    with open_slide(slide, mpp=mpp) as s:
        finest = min(i.mpp for i in geometry.inputs)
        if finest < s.mpp * (1 - MPP_TOLERANCE):
            raise SlideError(
                f"{s.path}: scanned at {s.mpp:.4g} µm/px ({s.magnification:.3g}x) but the "
                f"model needs {finest:.4g} µm/px ({10 / finest:.3g}x) inputs; use a model "
                "trained at a lower magnification or a slide scanned at a higher one")
        card.check_input(geometry, s.mpp)
        region = cfg.region or (0.0, 0.0, float(s.width), float(s.height))
        d = geometry.target_mpp / s.mpp
        out_shape = (math.ceil(region[3] / d), math.ceil(region[2] / d))
        size = geometry.target_size
        stride = cfg.stride or size
        plan = plan_windows(out_shape, size, stride, cfg.chunk)
        keep = np.ones(len(plan.windows), bool)
        reader = _Reader(s, geometry, (region[0], region[1]), d, cfg.workers)
        if cfg.tissue_mask:
            mask = detect_tissue(s)
            boxes = np.array([reader.target_box(int(r), int(c)) for r, c in plan.windows])
            keep = mask.fractions(boxes) > cfg.min_tissue
        fill = _fill_label(card)
        store_path = Path(out_dir) / f"{Path(s.path).name.split('.')[0]}.zarr"
        store = PredictionStore(
            store_path, signature=_signature(s, card, region, stride, model_path),
            out_shape=out_shape, n_classes=card.n_classes, chunk=plan.chunk, fill=fill,
            probabilities=cfg.probabilities, overwrite=cfg.overwrite,
            meta={"target_mpp": geometry.target_mpp, "origin": list(region[:2]),
                  "downsample": d, "class_map": card.class_map, "slide": str(s.path),
                  "geometry": card.geometry})
        resumed = len(store.done)
        if store.complete:
            stats = {"forward_s": 0.0, "windows_run": 0, "chunks_written": 0}
        else:
            report(progress, "infer", 0, int(keep.sum()))
            try:
                stats = run_windows(net, card, s, plan, store, keep, reader,
                                    batch_size=cfg.batch_size, device=device,
                                    amp_dtype=amp_dtype(device, cfg.amp), fill=fill,
                                    progress=progress, cancel=cancel)
            finally:
                reader.close()
            store.finish(geometry.target_mpp, {"n_windows": len(plan.windows),
                                               "n_skipped": int((~keep).sum()),
                                               "seconds": time.perf_counter() - t_start})
        seconds = time.perf_counter() - t_start
        return InferResult(
            store=store_path, slide=Path(s.path), out_shape=out_shape,
            target_mpp=geometry.target_mpp, origin=(region[0], region[1]), downsample=d,
            n_windows=len(plan.windows), n_skipped=int((~keep).sum()),
            n_resumed_chunks=resumed, seconds=seconds,
            windows_per_s=stats["windows_run"] / seconds if seconds else 0.0,
            forward_seconds=stats["forward_s"], device=str(device),
            timings={"read_s_summed_over_threads": reader.read_s, **stats})
