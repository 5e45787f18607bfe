"""Evaluation of a predicted label map against ground-truth polygons.

Metrics stream over the slide chunk by chunk through confusion matrices
(:class:`magnipath.metrics.ConfusionMatrix`), so a whole slide never sits in
memory. Two views, as in McCombe et al.'s tile vs. whole-slide comparison:

* **slide**: every pixel of the label map whose truth is labelled;
* **tiles containing class c**: only tiles (``tile_size`` target pixels) whose
  truth contains class ``c``, reported for class ``c``.

Truth pixels no polygon covers get the ignore index and do not count, so
partial annotations evaluate what they annotate.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from shapely import STRtree
from shapely.geometry import box as shapely_box

from magnipath._errors import AnnotationError, MagnipathError
from magnipath.classes import ClassMap
from magnipath.metrics import ConfusionMatrix
from magnipath.progress import ProgressCallback, report
from magnipath.rasterize import rasterize


def _truth_shapes(truth, class_map: ClassMap) -> tuple[list, dict]:
    """Polygonal truth objects whose class is in the map, as ``(geometry, index)``."""
    from qupath_bridge.geojson import read_geojson

    objects = read_geojson(truth) if isinstance(truth, str | os.PathLike) else list(truth)
    shapes, skipped = [], {}
    names = set(class_map.names)
    for obj in objects:
        if obj.geometry.geom_type not in ("Polygon", "MultiPolygon"):
            continue
        if obj.classification not in names:
            key = str(obj.classification)
            skipped[key] = skipped.get(key, 0) + 1
            continue
        shapes.append((obj.geometry, class_map.index_of(obj.classification)))
    return shapes, skipped


NOT_PREDICTED = "(not predicted)"
"""Name of the extra prediction column for label pixels no window predicted (a model
without a Background class leaves tissue-free windows at the ignore index)."""


class EvaluateError(MagnipathError):
    """A prediction cannot be evaluated as asked (missing truth, bad settings)."""


def _summary(cm: ConfusionMatrix, names: list[str]) -> dict:
    """Summary over the model's classes; the not-predicted column counts as an error only."""
    n = len(names)
    if cm.matrix[:, n].sum() == 0:  # nothing unpredicted: the plain n-class summary
        plain = ConfusionMatrix(n, cm.ignore_index)
        plain.matrix[...] = cm.matrix[:n, :n]
        out = plain.summary(names, nan_as_none=True)
        out["not_predicted_pixels"] = 0
        return out
    out = cm.summary([*names, NOT_PREDICTED], nan_as_none=True)
    out["per_class"].pop(NOT_PREDICTED)
    for metric in out["mean"]:
        vals = [m[metric] for m in out["per_class"].values() if m[metric] is not None]
        out["mean"][metric] = float(np.mean(vals)) if vals else None
    out["overall"]["mean_iou"] = out["mean"]["iou"]
    out["not_predicted_pixels"] = int(cm.matrix[:, n].sum())
    return out


def evaluate_labels(labels, truth, *, class_map: ClassMap, origin: tuple[float, float],
                    downsample: float, tile_size: int = 512,
                    tile_classes: Sequence[str] | None = None,
                    progress: ProgressCallback | None = None) -> dict:
    """Compare a label map (numpy or zarr, ``(y, x)``) with truth polygons.

    Parameters
    ----------
    labels : array-like
        Predicted labels ``(y, x)`` at the model's target resolution; the
        class map's ignore index marks pixels no window predicted.
    truth : path or list of QuPathObject
        Ground truth (QuPath GeoJSON file or objects), level-0 pixels; polygons
        are rasterised by their pixel centres, later ones over earlier ones.
    class_map : ClassMap
        The model's classes; truth classes outside it are skipped and counted.
    origin : (float, float)
        Level-0 ``(x, y)`` of label pixel ``(0, 0)``'s top-left corner.
    downsample : float
        Level-0 pixels per label pixel.
    tile_size : int
        Side in label pixels of the tiles of the per-tile view (tiles start at
        label pixel (0, 0); the last ones may be smaller).
    tile_classes : sequence of str, optional
        Classes of the per-tile view (default: every class but "Background").

    Returns
    -------
    dict
        ``slide``: :meth:`ConfusionMatrix.summary` over every label pixel whose
        truth is labelled, plus ``not_predicted_pixels`` (labelled truth pixels
        no window predicted: errors for every class, reported in the confusion
        matrix as a last column ``"(not predicted)"`` when there are any);
        ``tiles``: per class ``c``, the per-class metrics of ``c`` pooled over
        the tiles whose truth contains ``c``, plus ``n_tiles``; ``tile_size``;
        ``skipped_truth_classes`` (truth class -> count of polygons not in the
        class map); ``notes``; ``seconds``.

    Raises
    ------
    EvaluateError
        Missing truth file, a bad tile size, or a tile class the model lacks.
    """
    t0 = time.perf_counter()
    if not (isinstance(tile_size, int) and tile_size > 0):
        raise EvaluateError(f"tile size {tile_size!r}: give a positive whole number of "
                            "prediction pixels")
    if isinstance(truth, str | os.PathLike) and not Path(truth).is_file():
        raise EvaluateError(f"truth file {truth} not found; give QuPath GeoJSON with the "
                            "ground-truth polygons (level-0 pixels)")
    shapes, skipped = _truth_shapes(truth, class_map)
    tree = STRtree([g for g, _ in shapes]) if shapes else None
    n = class_map.n_classes
    ignore = class_map.ignore_index
    slide_cm = ConfusionMatrix(n + 1, ignore)
    if tile_classes is None:
        tile_classes = [c.name for c in class_map.classes if c.name.lower() != "background"]
    unknown = [c for c in tile_classes if c not in class_map.names]
    if unknown:
        raise EvaluateError(f"tile classes {unknown} are not classes of the model "
                            f"{class_map.names}")
    tile_idx = {name: class_map.index_of(name) for name in tile_classes}
    tile_cm = {name: ConfusionMatrix(n + 1, ignore) for name in tile_classes}
    tile_count = dict.fromkeys(tile_classes, 0)
    h, w = labels.shape
    # read the label map in blocks of whole tiles that cover whole storage chunks
    chunks = getattr(labels, "chunks", None) or (tile_size, tile_size)
    bh, bw = (tile_size * max(1, -(-int(ch) // tile_size)) for ch in chunks[:2])

    def level0_box(r: int, c: int, th: int, tw: int) -> tuple[float, float, float, float]:
        return (origin[0] + c * downsample, origin[1] + r * downsample,
                tw * downsample, th * downsample)

    def query(b: tuple[float, float, float, float]) -> np.ndarray:
        return tree.query(shapely_box(b[0], b[1], b[0] + b[2], b[1] + b[3]))

    bands = range(0, h, bh)
    for i, r0 in enumerate(bands):
        for c0 in range(0, w, bw):
            blk_h, blk_w = min(bh, h - r0), min(bw, w - c0)
            if tree is None or len(query(level0_box(r0, c0, blk_h, blk_w))) == 0:
                continue  # no labelled truth here: nothing to count
            block = np.asarray(labels[r0:r0 + blk_h, c0:c0 + blk_w])
            block = np.where(block == ignore, n, block)
            for r in range(0, blk_h, tile_size):
                for c in range(0, blk_w, tile_size):
                    th, tw = min(tile_size, blk_h - r), min(tile_size, blk_w - c)
                    box = level0_box(r0 + r, c0 + c, th, tw)
                    hits = query(box)
                    if len(hits) == 0:
                        continue
                    truth_tile = rasterize((shapes[j] for j in sorted(hits)), box, downsample,
                                           (th, tw), fill=ignore)
                    pred = block[r:r + th, c:c + tw]
                    slide_cm.update(pred, truth_tile)
                    for name, k in tile_idx.items():
                        if (truth_tile == k).any():
                            tile_cm[name].update(pred, truth_tile)
                            tile_count[name] += 1
        report(progress, "evaluate", i + 1, len(bands))
    known = {c.index: c.name for c in class_map.classes}
    names = [known.get(k, str(k)) for k in range(n)]
    tiles = {}
    for name, k in tile_idx.items():
        s = _summary(tile_cm[name], names)
        tiles[name] = {"n_tiles": tile_count[name], **s["per_class"][names[k]]}
    slide = _summary(slide_cm, names)
    notes = []
    if slide["n_pixels"] == 0:
        notes.append("no labelled truth pixel overlaps the prediction: every metric is "
                     "undefined (check that the truth belongs to this slide and uses the "
                     f"model's classes {class_map.names})")
    if skipped:
        notes.append(f"truth polygons of classes the model lacks were skipped: {skipped}")
    if slide["not_predicted_pixels"]:
        notes.append(f"{slide['not_predicted_pixels']} labelled truth pixels were not "
                     "predicted (windows skipped as glass by a model without a Background "
                     "class); they count as errors")
    return {"slide": slide, "tiles": tiles, "tile_size": tile_size,
            "skipped_truth_classes": skipped, "notes": notes,
            "seconds": time.perf_counter() - t0}


def evaluate_prediction(store: str | os.PathLike, truth, *, tile_size: int = 512,
                        tile_classes: Sequence[str] | None = None,
                        progress: ProgressCallback | None = None) -> dict:
    """Evaluate a finished prediction store (``magnipath infer`` output) against truth.

    Parameters
    ----------
    store : path
        The ``.zarr`` folder written by :func:`magnipath.infer.infer_slide`.
    truth : path or list of QuPathObject
        Ground-truth polygons in level-0 pixels of the same slide.
    tile_size, tile_classes, progress
        As in :func:`evaluate_labels`.

    Returns
    -------
    dict
        :func:`evaluate_labels`'s result plus ``prediction``, ``slide_path``,
        ``infer_seconds`` (wall time of the inference call that finished the
        store) and ``slides_per_minute`` (60 / infer_seconds).
    """
    from magnipath.infer import open_prediction

    root, meta = open_prediction(store)
    if "class_map" not in meta:
        raise AnnotationError(f"{store}: the prediction store has no class map")
    class_map = ClassMap.from_dict(meta["class_map"])
    out = evaluate_labels(root["labels/0"], truth, class_map=class_map,
                          origin=tuple(meta["origin"]), downsample=float(meta["downsample"]),
                          tile_size=tile_size, tile_classes=tile_classes, progress=progress)
    secs = meta.get("seconds")
    out["prediction"] = str(Path(store))
    out["slide_path"] = meta.get("slide")
    out["infer_seconds"] = secs
    out["slides_per_minute"] = (60.0 / secs) if secs else None
    return out


def format_table(result: dict) -> str:
    """A readable table of per-class slide metrics, per-tile metrics, notes and timing.

    Parameters
    ----------
    result : dict
        What :func:`evaluate_prediction` or :func:`evaluate_labels` returned.

    Returns
    -------
    str
        Lines without a trailing newline; undefined values show as ``-``.
    """
    s = result["slide"]
    cols = ["iou", "dice", "precision", "recall", "specificity", "accuracy", "mcc"]
    lines = [f"{'class':<14}" + "".join(f"{c:>12}" for c in cols) + f"{'support':>12}"]

    def fmt(v, width: int = 12) -> str:
        return f"{v:>{width}.3f}" if isinstance(v, float) else f"{'-':>{width}}"

    for name, m in s["per_class"].items():
        lines.append(f"{name:<14}" + "".join(fmt(m[c]) for c in cols) + f"{m['support']:>12}")
    lines.append(f"{'mean':<14}" + "".join(fmt(s['mean'].get(c)) for c in cols))
    o = s["overall"]
    lines.append(f"overall: accuracy {fmt(o['accuracy'], 0)}  mIoU {fmt(o['mean_iou'], 0)}  "
                 f"MCC {fmt(o['mcc'], 0)}  kappa {fmt(o['kappa'], 0)}  "
                 f"({s['n_pixels']} labelled pixels)")
    if result.get("tiles"):
        lines.append(f"tiles of {result['tile_size']} px containing the class:")
        for name, m in result["tiles"].items():
            lines.append(f"  {name:<12} n={m['n_tiles']:<6}" + "".join(
                f" {c}={fmt(m.get(c), 0)}" for c in ("iou", "dice", "precision", "recall",
                                                      "mcc")))
    secs = result.get("infer_seconds")
    if secs:
        lines.append(f"inference: {secs:.1f} s per slide, "
                     f"{result['slides_per_minute']:.2f} slides per minute")
    lines.extend(f"note: {n}" for n in result.get("notes", []))
    return "\n".join(lines)
