"""``infer_slide``: one slide (or a level-0 region of it) through a trained model."""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from pathlib import Path

import numpy as np

from magnipath._errors import ModelError, SlideError
from magnipath.infer._config import InferConfig, InferError, InferResult
from magnipath.infer._engine import fill_label, run_signature, run_windows
from magnipath.infer._reader import WindowReader
from magnipath.infer._store import PredictionStore, store_path
from magnipath.infer._windows import plan_windows
from magnipath.progress import CancelCallback, ProgressCallback, report
from magnipath.types import Box


def _load(model, device):
    """``(net in eval mode on device, card, model path or '<in memory>')``."""
    from magnipath.checkpoint import ModelCard, load_model

    if isinstance(model, tuple):
        if len(model) not in (2, 3) or not isinstance(model[1], ModelCard):
            raise ModelError("a model given in memory must be a (torch.nn.Module, ModelCard) "
                             "pair")
        net, card = model[:2]
        source = "<in memory>"
        if len(model) == 3:  # loaded from a file by the caller (the cohort's worker cache)
            source = str(Path(model[2]).resolve())
        if not callable(net):
            raise ModelError(f"the model of the (model, card) pair is a {type(net).__name__}, "
                             "not a torch.nn.Module")
        return net.to(device).eval(), card, source
    if not isinstance(model, str | os.PathLike):
        raise ModelError(f"model must be a model folder, a .pt file or a (module, ModelCard) "
                         f"pair, got {type(model).__name__}")
    net, card = load_model(model, device=device)
    return net.eval(), card, str(Path(model).resolve())


def _check_model(net, card) -> None:
    """The card's geometry must fit the network (inputs, size multiple)."""
    geometry = card.input_geometry
    n_inputs = getattr(net, "n_inputs", None)
    if n_inputs is not None and int(n_inputs) != geometry.n_inputs:
        raise ModelError(f"the model ({card.arch}) takes {n_inputs} inputs but its card's "
                         f"geometry has {geometry.n_inputs}; the card does not describe it")
    multiple = getattr(net, "size_multiple", None)
    if multiple and geometry.target_size % int(multiple):
        raise ModelError(f"the card's target size {geometry.target_size} px is not a multiple "
                         f"of {multiple} px, which the model ({card.arch}) needs")
    if any(i.size != geometry.target_size for i in geometry.inputs):
        raise ModelError(f"the card's inputs ({[i.size for i in geometry.inputs]} px) differ "
                         f"from its target size {geometry.target_size} px; inference needs "
                         "every input at the target's pixel size")


def _check_magnification(s, geometry) -> None:
    """Refuse a slide scanned coarser than the model's finest input."""
    from magnipath.slide._base import UPSAMPLE_TOLERANCE

    finest = min(i.mpp for i in geometry.inputs)
    if finest < s.mpp * (1 - UPSAMPLE_TOLERANCE):
        raise SlideError(
            f"{s.path}: scanned at {s.mpp:.4g} µm/px ({s.magnification:.3g}x) but the model "
            f"needs inputs at {finest:.4g} µm/px ({10 / finest:.3g}x); use a model trained at "
            "a lower magnification or a slide scanned at a higher one (if the slide's "
            "resolution metadata is wrong, give the right one with --mpp)")


class FieldOfViewWarning(UserWarning):
    """The image is smaller than the model's field of view: its surroundings are padding."""


def field_of_view_message(s, geometry) -> str | None:
    """Why predictions on a small image are less reliable, or ``None`` when it is big enough.

    The model's field of view is its coarsest input's extent (size x µm/px);
    an image narrower or shorter than that in µm (level-0 side x slide mpp)
    fills the rest of every window's context with zero (black) padding.
    """
    widest = max(geometry.inputs, key=lambda i: i.field_um)
    fov_um = widest.field_um
    w_um, h_um = s.width * s.mpp, s.height * s.mpp
    if min(w_um, h_um) >= fov_um:
        return None
    return (f"{s.path}: the image covers {w_um:.0f} x {h_um:.0f} µm ({s.width} x {s.height} px "
            f"at {s.mpp:.4g} µm/px), less than the model's field of view of {fov_um:.0f} µm "
            f"(its coarsest input: {widest.size} px at {widest.mpp:g} µm/px). Everything the "
            "model sees beyond the image is zero (black) padding, which it met in training "
            "only at slide borders: predictions are less reliable, most near the edges and "
            "everywhere when the image is much smaller than the field of view (tissue may be "
            "called Background or classed from too little context). Use a larger crop (at "
            f"least {fov_um:.0f} µm a side), or a model with a smaller context; check that "
            "the mpp is right (a wrong --mpp changes the µm the image covers).")


def _region(region: Box | None, s) -> Box:
    if region is None:
        return (0.0, 0.0, float(s.width), float(s.height))
    try:
        x, y, w, h = (float(v) for v in region)
    except (TypeError, ValueError):
        raise InferError(f"region {region!r}: give (x, y, width, height) in level-0 "
                         "pixels") from None
    if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
        raise InferError(f"region {region!r}: give finite (x, y, width, height) in level-0 "
                         "pixels with a positive width and height")
    if x >= s.width or y >= s.height or x + w <= 0 or y + h <= 0:
        raise InferError(f"region {region!r} lies outside the slide ({s.width} x {s.height} "
                         "level-0 pixels)")
    return (x, y, w, h)


# keys of the store's own ``magnipath`` metadata: slide_meta may not replace them
_RUN_KEYS = frozenset({"signature", "complete", "fill", "levels", "target_mpp", "origin",
                       "downsample", "class_map", "slide", "geometry", "ignore_index",
                       "precision", "n_windows", "n_skipped", "seconds"})


def _slide_meta(slide_meta: dict | None) -> dict:
    """``slide_meta`` checked: JSON-ready, with string keys that are not the run's own."""
    if not slide_meta:
        return {}
    if not isinstance(slide_meta, dict) or not all(isinstance(k, str) for k in slide_meta):
        raise InferError("slide_meta must be a dict with string keys, e.g. "
                         "{'slide_mpp_source': 'estimated (baseline)'}")
    clash = sorted(_RUN_KEYS & set(slide_meta))
    if clash:
        raise InferError(f"slide_meta may not set {clash}: the prediction store records "
                         "them itself; use other names (e.g. 'slide_mpp_source')")
    try:
        return json.loads(json.dumps(slide_meta, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise InferError(f"slide_meta must be JSON-ready (numbers, strings, lists, dicts; "
                         f"no NaN): {e}") from None


def _make_reader(cfg: InferConfig, s, geometry, origin, d, device):
    """The window reader: device JPEG decoding when asked and possible, else threads.

    Stain normalisation works on the threads' uint8 windows, so it keeps the CPU reader.
    """
    decode = cfg.decode
    if decode == "auto":
        decode = "device" if device.type == "cuda" else "cpu"
    if decode == "device" and not cfg.normalise_stain:
        from magnipath.infer._jpeg import JpegBatchReader, jpeg_levels_supported

        if jpeg_levels_supported(s) is None:
            return JpegBatchReader(s, geometry, origin, d, device, workers=cfg.workers)
    return WindowReader(s, geometry, origin, d, cfg.workers)


def _batch_size(cfg: InferConfig, net, card, device, amp) -> int:
    if cfg.batch_size != "auto":
        return int(cfg.batch_size)
    from magnipath.infer._batching import auto_batch_size

    return auto_batch_size(net, card, device, amp, channels_last=amp is not None)


def infer_slide(slide: str | os.PathLike, model, out_dir: str | os.PathLike,
                config: InferConfig | None = None, *, mpp: float | None = None,
                slide_meta: dict | None = None,
                progress: ProgressCallback | None = None,
                cancel: CancelCallback | None = None) -> InferResult:
    """Predict a label map for a slide with a model, exactly at the model's input geometry.

    Windows of the card's target size are laid from the region's top-left
    corner every ``stride`` target pixels; each window's inputs (target and
    concentric contexts) are read at the card's µm/px, zero-padded beyond the
    slide. Windows whose target box has no tissue are skipped (their pixels get
    the 'Background' class, or the ignore index when the model has none). The
    label map is written chunk by chunk to ``out_dir/<slide name>.zarr``; a
    re-run with the same slide, model and settings resumes an interrupted run
    and does nothing for a finished one.

    Parameters
    ----------
    slide : path
        Whole-slide image (any format :func:`magnipath.slide.open_slide` reads).
    model : path or (torch.nn.Module, ModelCard) or (torch.nn.Module, ModelCard, path)
        A model folder written by ``magnipath train`` (or one of its ``.pt``
        files), or a model with its card; with a third item, the model was
        loaded from that path (:func:`magnipath.checkpoint.load_model`) and the
        run is identified by it exactly as if the path had been given.
    out_dir : path
        Folder of the result.
    config : InferConfig, optional
        Stride, batch size, device, tissue mask, region (level-0 box)...
    mpp : float, optional
        Level-0 µm/px override for slides without (or with wrong) metadata.
    slide_meta : dict, optional
        JSON-ready facts about the slide kept in the store's ``magnipath``
        metadata from the moment it is created (e.g. ``slide_mpp_source:
        "estimated (baseline)"`` when ``mpp`` is an estimate); it may not
        replace the store's own keys (``target_mpp``, ``signature``...).
    progress, cancel : callables, optional
        Progress events (stages ``"infer"`` and ``"infer/pyramid"``) and a
        cancel check (raises :class:`~magnipath._errors.Cancelled`; finished
        chunks are kept and a re-run resumes from them).

    Returns
    -------
    InferResult
        The store path, the label-map shape at the target mpp, its level-0
        origin and downsample (level-0 px per label px), counts and timings.

    Raises
    ------
    SlideError
        The slide cannot be read or cannot provide the model's magnifications.
    ModelError
        The model or its card is missing, damaged or inconsistent.
    InferError
        Bad settings (``slide_meta`` included), or the output folder holds another
        run (without ``overwrite``).

    Warns
    -----
    FieldOfViewWarning
        Once per call, when the image is smaller (in µm) than the model's
        coarsest input: the message says what the zero padding does.
    """
    from magnipath.device import amp_dtype, resolve_device
    from magnipath.slide import open_slide

    cfg = config or InferConfig()
    facts = _slide_meta(slide_meta)
    t_start = time.perf_counter()
    device = resolve_device(cfg.device)
    net, card, model_path = _load(model, device)
    geometry = card.input_geometry
    _check_model(net, card)
    stride = cfg.check(geometry.target_size)
    amp = amp_dtype(device, cfg.amp)
    precision = "float32" if amp is None else str(amp).removeprefix("torch.")
    with open_slide(slide, mpp=mpp) as s:
        _check_magnification(s, geometry)
        small = field_of_view_message(s, geometry)
        if small is not None:
            warnings.warn(small, FieldOfViewWarning, stacklevel=2)
        region = _region(cfg.region, s)
        d = geometry.target_mpp / s.mpp
        out_shape = (math.ceil(region[3] / d - 1e-9), math.ceil(region[2] / d - 1e-9))
        plan = plan_windows(out_shape, geometry.target_size, stride, cfg.chunk)
        fill = fill_label(card)
        path = store_path(out_dir, s.path)
        signature = run_signature(s, card, region, stride, model_path, chunk=plan.chunk,
                                  tissue_mask=cfg.tissue_mask, min_tissue=cfg.min_tissue)
        if cfg.normalise_stain:  # only then: other runs keep their signature
            signature["normalise_stain"] = True
        if cfg.glass_background:
            signature["glass_background"] = True
        store = PredictionStore(
            path, signature=signature, out_shape=out_shape, n_classes=card.n_classes,
            chunk=plan.chunk, fill=fill, probabilities=cfg.probabilities,
            overwrite=cfg.overwrite,
            meta={"target_mpp": geometry.target_mpp, "origin": list(region[:2]),
                  "downsample": d, "class_map": card.class_map, "slide": str(s.path),
                  "geometry": card.geometry, "ignore_index": card.ignore_index,
                  "precision": precision, **facts})
        resumed = len(store.done)

        def result(**kw) -> InferResult:
            seconds = time.perf_counter() - t_start
            return InferResult(
                store=path, slide=Path(s.path), out_shape=out_shape,
                target_mpp=geometry.target_mpp, origin=(region[0], region[1]), downsample=d,
                n_windows=len(plan.windows), n_resumed_chunks=resumed, seconds=seconds,
                device=str(device), **kw)

        if store.complete:
            meta = store.root.attrs["magnipath"]
            return result(n_skipped=int(meta.get("n_skipped", 0)), windows_per_s=0.0,
                          forward_seconds=0.0, already_complete=True)
        timings = {"setup_s": time.perf_counter() - t_start}
        keep = np.ones(len(plan.windows), bool)
        stain_info = None
        reader = _make_reader(cfg, s, geometry, (region[0], region[1]), d, device)
        try:
            if cfg.tissue_mask:
                from magnipath.tissue import detect_tissue

                t0 = time.perf_counter()
                mask = detect_tissue(s)
                keep = mask.fractions(reader.target_boxes(plan.windows)) > cfg.min_tissue
                timings["tissue_s"] = time.perf_counter() - t0
            if cfg.normalise_stain:
                from magnipath.infer._stain import slide_normaliser

                reader.transform, stain_info = slide_normaliser(reader, plan.windows, keep, card,
                                                                str(s.path))
            t0 = time.perf_counter()
            report(progress, "infer", 0, None)
            batch_size = _batch_size(cfg, net, card, device, amp)
            stats = run_windows(net, card, plan, store, keep, reader,
                                batch_size=batch_size, device=device,
                                amp_dtype=amp, fill=fill, compile_model=cfg.compile,
                                depth=cfg.pipeline_depth,
                                progress=progress, cancel=cancel)
            timings["run_s"] = time.perf_counter() - t0
            if cfg.glass_background:
                from magnipath.infer._glass import relabel_glass

                t0 = time.perf_counter()
                relabel_glass(store.labels, mask, (region[0], region[1]), d, fill, plan.chunk)
                timings["glass_s"] = time.perf_counter() - t0
        finally:
            reader.close()
        t0 = time.perf_counter()
        n_skipped = int((~keep).sum())
        report(progress, "infer/pyramid", 0, 1)
        store.finish(geometry.target_mpp,
                     {"n_windows": len(plan.windows), "n_skipped": n_skipped,
                      "seconds": time.perf_counter() - t_start},
                     origin_um=(region[1] * s.mpp, region[0] * s.mpp))
        report(progress, "infer/pyramid", 1, 1)
        timings["pyramid_s"] = time.perf_counter() - t0
        timings.update(read_s_summed_over_threads=reader.read_s, **stats)
        if hasattr(reader, "decode_s"):  # device JPEG decoding
            timings.update(decode="device", decode_s=reader.decode_s,
                           assemble_s=reader.assemble_s, tiles_decoded=reader.n_tiles)
        res = result(n_skipped=n_skipped, windows_per_s=0.0,
                     forward_seconds=stats["forward_s"], timings=timings,
                     windows_run=stats["windows_run"], stain_normalisation=stain_info)
        res.windows_per_s = res.windows_run / res.seconds if res.seconds > 0 else 0.0
        return res
