"""``make_dataset``: slides + annotations -> a tile dataset folder (written atomically)."""

from __future__ import annotations

import contextlib
import json
import os
import time
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from magnipath._errors import AnnotationError, TilingError
from magnipath._io import atomic_path
from magnipath.classes import ClassMap
from magnipath.dataset import FORMAT, SPLITS, assign_splits
from magnipath.progress import CancelCallback, ProgressCallback, check_cancel, report
from magnipath.tiling._config import SlideSource, TilingConfig
from magnipath.tiling._grid import stride_from, tile_grid
from magnipath.tiling._labels import (
    AnnotationCounts,
    SlideLabels,
    build_slide_labels,
    has_points,
    label_class_names,
    load_objects,
)
from magnipath.tiling._report import manifest as manifest_for
from magnipath.tiling._report import nothing_passed, warnings_for
from magnipath.tiling._writer import TileResult, TileWriter

UPSAMPLE_TOLERANCE = 0.01
"""A target at most 1 % finer than the scan is not an upsample (as in ``read_region``)."""


class TilingWarning(UserWarning):
    """Tiling went on but changed the input (clipped or repaired annotations...)."""


@dataclass
class _SlideJob:
    source: SlideSource
    slide: Any
    labels: SlideLabels
    split: str
    boxes: np.ndarray          # (M, 4) level-0 boxes that passed the tissue filter
    tissue: np.ndarray         # (M,) tissue fractions
    n_grid: int
    n_kept: int = 0
    mask: Any = None           # TissueMask, kept when config.glass_unlabelled


def _box_json(box: Sequence[float]) -> list[float | int]:
    return [int(v) if float(v).is_integer() else float(v) for v in box]


def _check_out(out: Path) -> None:
    if out.is_file() or out.is_symlink():
        raise TilingError(f"output {out} exists and is a file; choose a folder name for --out")
    if out.is_dir() and any(out.iterdir()):
        try:
            ok = json.loads((out / "manifest.json").read_text()).get("format") == FORMAT
        except (OSError, ValueError, AttributeError):
            ok = False
        if not ok:
            raise TilingError(
                f"output folder {out} exists and is not a MagniPath tile dataset; choose "
                "another --out or remove it (an existing dataset would be replaced)")


def _class_map_for(annotations: list[list], sources: Sequence[SlideSource],
                   class_map: ClassMap | None, config: TilingConfig) -> tuple[ClassMap, bool]:
    names_per_source = [label_class_names(a, config.point_class) for a in annotations]
    if class_map is None:
        colors: dict[str, tuple] = {}
        for d in names_per_source:
            for k, v in d.items():
                if v is not None:
                    colors.setdefault(k, tuple(int(c) for c in v))
        names = sorted({n for d in names_per_source for n in d})
        class_map, derived = ClassMap.from_names(names, colors), True
    else:
        derived = False
        missing: dict[str, list[str]] = {}
        for s, d in zip(sources, names_per_source, strict=True):
            for n in d:
                if n not in class_map.names:
                    missing.setdefault(n, []).append(str(s.annotations if isinstance(
                        s.annotations, str | os.PathLike) else s.id))
        if missing:
            where = "; ".join(f"{n!r} in {', '.join(sorted(set(f)))}"
                              for n, f in sorted(missing.items()))
            raise AnnotationError(
                f"annotation classes {sorted(missing)} are not in the class map "
                f"{class_map.names} ({where}); add them to --classes (e.g. "
                "'Stroma=1,Tumor=2') or remove those annotations")
    bad_idx = [c.index for c in class_map.classes if not 0 <= c.index <= 255]
    if bad_idx or not 0 <= class_map.ignore_index <= 255:
        raise AnnotationError(f"class indices {bad_idx} and the ignore index "
                              f"{class_map.ignore_index} must be in 0..255 (labels are uint8)")
    missing_req = [n for n in config.require_classes if n not in class_map.names]
    if missing_req:
        raise AnnotationError(f"required classes {missing_req} are not in the class map "
                              f"{class_map.names}; check --require-class")
    return class_map, derived


def _open_slides(sources: Sequence[SlideSource], config: TilingConfig,
                 stack: contextlib.ExitStack) -> list[Any]:
    from magnipath.slide import open_slide

    slides = []
    finest = min(i.mpp for i in config.geometry.inputs)
    for s in sources:
        slide = stack.enter_context(open_slide(s.path, mpp=s.mpp))
        if finest < slide.mpp * (1 - UPSAMPLE_TOLERANCE) and not config.allow_upsample:
            raise TilingError(
                f"{s.path}: the target {finest:.4g} µm/px ({10 / finest:.3g}x) is finer than "
                f"the scan ({slide.mpp:.4g} µm/px, {10 / slide.mpp:.3g}x); choose a lower "
                "--magnification or pass --allow-upsample (allow_upsample=True)")
        slides.append(slide)
    return slides


def _process(job: _SlideJob, k: int, config: TilingConfig, class_map: ClassMap,
             require: np.ndarray, with_points: bool) -> TileResult | str:
    """Label, filter and read one candidate tile; a string names the filter that rejected it."""
    g = config.geometry
    size = g.target_size
    box = tuple(float(v) for v in job.boxes[k])
    d = g.target_mpp / job.slide.mpp
    if len(require) and not job.labels.classes_near(box) & set(require.tolist()):
        return "require_classes"
    label = job.labels.label(box, d, size, class_map.ignore_index)
    if job.mask is not None:
        label = np.where(job.mask.at_pixels(box[:2], d, label.shape), label,
                         np.uint8(class_map.ignore_index)).astype(label.dtype)
    n_lab = int(np.count_nonzero(label != class_map.ignore_index))
    labelled = n_lab / label.size
    if config.min_labelled > 0 and labelled <= config.min_labelled:
        return "min_labelled"
    if len(require) and not np.isin(label, require).any():
        return "require_classes"
    images = np.stack([
        job.slide.read_region(b, mpp=inp.mpp, out_shape=(inp.size, inp.size),
                              allow_upsample=config.allow_upsample)
        for b, inp in zip(g.input_boxes(box, job.slide.mpp), g.inputs, strict=True)])
    points, n_points = None, 0
    if with_points:
        points, n_points = job.labels.points_map(box, d, size, config.point_a)
    counts = np.bincount(label.ravel(), minlength=256)
    counts[class_map.ignore_index] = 0
    record = {"slide_id": job.source.id, "group": job.source.group_id, "split": job.split,
              "box": _box_json(box), "tissue": round(float(job.tissue[k]), 4),
              "labelled": round(labelled, 4),
              "class_counts": counts[:class_map.n_classes].tolist(), "n_points": n_points}
    return TileResult(images, label, points, record)


def _run_pipeline(jobs: list[_SlideJob], fn: Any, workers: int, window: int,
                  cancel: CancelCallback | None) -> Iterator[tuple[_SlideJob, TileResult | str]]:
    """Yield ``(job, fn(job, k))`` for every candidate, in order, ``workers`` at a time.

    Up to ``window`` candidates are in flight, so the threads keep reading while
    the caller writes a shard.
    """
    items = ((job, k) for job in jobs for k in range(len(job.boxes)))
    if workers <= 1:
        for job, k in items:
            check_cancel(cancel)
            yield job, fn(job, k)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="magnipath-tile") as pool:
        inflight: deque[tuple[_SlideJob, Future]] = deque()
        try:
            for job, k in items:
                inflight.append((job, pool.submit(fn, job, k)))
                if len(inflight) >= window:
                    check_cancel(cancel)
                    j, fut = inflight.popleft()
                    yield j, fut.result()
            while inflight:
                check_cancel(cancel)
                j, fut = inflight.popleft()
                yield j, fut.result()
        finally:
            for _, fut in inflight:
                fut.cancel()


def checked_sources(sources: Sequence[SlideSource]) -> list[SlideSource]:
    """The sources as a list; refuses none at all and slide ids used twice (TilingError)."""
    sources = list(sources)
    if not sources:
        raise TilingError("no slides given; pass at least one slide to tile")
    ids = [s.id for s in sources]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise TilingError(f"slide ids {dup} are used twice; give the slides distinct file "
                          "names (or distinct slide_id values)")
    return sources


def make_dataset(sources: Sequence[SlideSource], out: str | os.PathLike, *,
                 class_map: ClassMap | None = None, config: TilingConfig,
                 progress: ProgressCallback | None = None,
                 cancel: CancelCallback | None = None) -> dict:
    """Cut the tiles of annotated slides into a dataset folder (``docs/dataset-format.md``).

    For every slide, a grid of target tiles (:func:`tile_grid`, level-0 boxes)
    is filtered by tissue fraction, labelled fraction and required classes;
    each kept tile stores its inputs (target + concentric context, read with
    ``slide.read_region``, zero-padded outside the slide), its label
    (annotation polygons rasterised at the target resolution; pixels no
    annotation covers = the ignore index) and optionally a point probability
    map. The folder is written under a temporary name and renamed at the end;
    on any error or cancel nothing is left.

    Parameters
    ----------
    sources : sequence of SlideSource
        Slides with their annotations and group (patient) ids.
    out : path
        Dataset folder to create; an existing dataset there is replaced on
        success, any other existing non-empty folder is refused.
    class_map : ClassMap, optional
        Class name -> label index; default: derived from the annotation
        classes (sorted names, indices from 0, colours from the annotations).
    config : TilingConfig
        Geometry, stride, filters, points, split and threads.
    progress, cancel : callable, optional
        See :mod:`magnipath.progress`; stages ``"tissue"`` and ``"tile"``.

    Returns
    -------
    dict
        Summary: dataset path, tiles per slide and split, class pixel counts by
        class name, annotation counts (repaired, clipped, ...), warnings,
        seconds and tiles per second.

    Raises
    ------
    AnnotationError
        Unreadable annotations, or classes missing from ``class_map`` (all listed).
    TilingError
        Bad configuration, upsampling not allowed, or no tile passes the filters.
    SlideError
        A slide cannot be opened or read.
    Cancelled
        ``cancel`` returned True.
    """
    t0 = time.perf_counter()
    config.validate()
    sources = checked_sources(sources)
    out = Path(out)
    _check_out(out)
    stride = stride_from(config.geometry.target_size, config.stride, config.overlap)
    annotations = [load_objects(s.annotations, "annotations") for s in sources]
    point_files = [load_objects(s.points, "points") for s in sources]
    class_map, derived = _class_map_for(annotations, sources, class_map, config)
    with_points = (config.point_class is not None or any(s.points is not None for s in sources)
                   or any(has_points(a, None) for a in annotations))
    require = np.asarray([class_map.index_of(n) for n in config.require_classes], dtype=np.int64)
    by_group = assign_splits([s.group_id for s in sources], config.split, config.seed)

    with contextlib.ExitStack() as stack:
        slides = _open_slides(sources, config, stack)
        jobs, totals = _prepare_jobs(sources, slides, annotations, point_files, class_map,
                                     config, stride, by_group, progress, cancel)
        del annotations, point_files  # the labels hold what they need (~25 MB on 100k² px)
        n_cand = sum(len(j.boxes) for j in jobs)
        rejected = {"min_tissue": totals["n_grid"] - n_cand, "min_labelled": 0,
                    "require_classes": 0}
        if n_cand == 0:
            raise TilingError(nothing_passed(totals["n_grid"], rejected, config))
        with atomic_path(out, is_dir=True) as tmp:
            writer = TileWriter(tmp, n_cand, config.geometry.n_inputs,
                                config.geometry.target_size, with_points)
            try:
                split_counts = _write_tiles(jobs, writer, rejected, class_map, config, require,
                                            with_points, progress, cancel)
            except BaseException:
                writer.abort()
                raise
            if writer.n == 0:
                raise TilingError(nothing_passed(totals["n_grid"], rejected, config))
            manifest = manifest_for(jobs, class_map, config, stride, with_points, writer.n,
                                    split_counts, totals["counts"], time.perf_counter() - t0,
                                    derived, rejected)
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
    seconds = time.perf_counter() - t0
    counts: AnnotationCounts = totals["counts"]
    unlabelled = [j.source.id for j in jobs if j.source.annotations is None]
    warn = warnings_for(counts, class_map if derived else None, unlabelled)
    for w in warn:
        warnings.warn(w, TilingWarning, stacklevel=2)
    names = {c.index: c.name for c in class_map.classes}
    return {
        "dataset": str(out),
        "n_tiles": writer.n,
        "n_tiles_per_slide": {j.source.id: j.n_kept for j in jobs},
        "n_tiles_per_split": {s: sum(j.n_kept for j in jobs if j.split == s) for s in SPLITS},
        "groups": by_group,
        "class_pixel_counts": {names[i]: int(split_counts["all"][i]) for i in sorted(names)},
        "class_map": {c.name: c.index for c in class_map.classes},
        "class_map_derived": derived,
        "tiles_considered": totals["n_grid"],
        "rejected": rejected,
        **counts.as_dict(),
        "warnings": warn,
        "seconds": round(seconds, 3),
        "tiles_per_s": round(writer.n / seconds, 2) if seconds > 0 else None,
    }


def _write_tiles(jobs: list[_SlideJob], writer: TileWriter, rejected: dict[str, int],
                 class_map: ClassMap, config: TilingConfig, require: np.ndarray,
                 with_points: bool, progress: ProgressCallback | None,
                 cancel: CancelCallback | None) -> dict[str, np.ndarray]:
    """Process every candidate tile, write the kept ones; class pixel counts per split."""
    split_counts = {k: np.zeros(class_map.n_classes, dtype=np.int64) for k in ("all", *SPLITS)}
    n_cand = sum(len(j.boxes) for j in jobs)

    def fn(job: _SlideJob, k: int) -> TileResult | str:
        return _process(job, k, config, class_map, require, with_points)

    window = max(4 * config.workers, writer.shard + 2 * config.workers)
    current: _SlideJob | None = None
    with contextlib.closing(_run_pipeline(jobs, fn, config.workers, window, cancel)) as results:
        for done, (job, res) in enumerate(results, 1):
            if job is not current:
                if current is not None:
                    current.labels.clear_cache()
                current = job
            if isinstance(res, str):
                rejected[res] += 1
            else:
                writer.add(res)
                job.n_kept += 1
                c = np.asarray(res.record["class_counts"], dtype=np.int64)
                split_counts["all"] += c
                split_counts[job.split] += c
            if done % 16 == 0 or done == n_cand:
                report(progress, "tile", done, n_cand, tiles=writer.count)
    writer.close()
    return split_counts


def _prepare_jobs(sources: Sequence[SlideSource], slides: list, annotations: list,
                  point_files: list, class_map: ClassMap, config: TilingConfig, stride: int,
                  by_group: dict[str, str], progress: ProgressCallback | None,
                  cancel: CancelCallback | None) -> tuple[list[_SlideJob], dict]:
    from magnipath.tissue import detect_tissue

    jobs, counts, n_grid = [], AnnotationCounts(), 0
    for i, (src, slide) in enumerate(zip(sources, slides, strict=True)):
        check_cancel(cancel)
        labels = build_slide_labels(annotations[i], point_files[i], class_map, slide.width,
                                    slide.height, config.point_class)
        counts.add(labels.counts)
        boxes = tile_grid(slide.width, slide.height, slide.mpp, config.geometry, stride)
        mask = detect_tissue(slide, mpp=config.tissue_mpp)
        tissue = np.asarray(mask.fractions(boxes), dtype=np.float64)
        keep = tissue >= config.min_tissue
        jobs.append(_SlideJob(src, slide, labels, by_group[src.group_id], boxes[keep],
                              tissue[keep], len(boxes),
                              mask=mask if config.glass_unlabelled else None))
        n_grid += len(boxes)
        report(progress, "tissue", i + 1, len(sources), slide=src.id)
    return jobs, {"counts": counts, "n_grid": n_grid}
