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

from magnipath._errors import AnnotationError
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


def evaluate_labels(labels, truth, *, class_map: ClassMap, origin: tuple[float, float],
                    downsample: float, tile_size: int = 512,
                    tile_classes: Sequence[str] | None = None,
                    progress: ProgressCallback | None = None) -> dict:
    """Compare a label map (numpy or zarr, ``(y, x)``) with truth polygons.

    Parameters
    ----------
    labels : array-like
        Predicted labels at the model's target resolution.
    truth : path or list of QuPathObject
        Ground truth (QuPath GeoJSON file or objects), level-0 pixels.
    class_map : ClassMap
        The model's classes; truth classes outside it are skipped and counted.
    origin : (float, float)
        Level-0 ``(x, y)`` of label pixel ``(0, 0)``'s top-left corner.
    downsample : float
        Level-0 pixels per label pixel.
    tile_size : int
        Side in label pixels of the tiles of the per-tile view.
    tile_classes : sequence of str, optional
        Classes of the per-tile view (default: every class but "Background").

    Returns
    -------
    dict
        ``slide``: :meth:`ConfusionMatrix.summary`; ``tiles``: per class, the
        summary restricted to tiles containing it plus the tile count;
        ``skipped_truth_classes``; ``seconds``.
    """
    t0 = time.perf_counter()
    shapes, skipped = _truth_shapes(truth, class_map)
    tree = STRtree([g for g, _ in shapes]) if shapes else None
    n = class_map.n_classes
    ignore = class_map.ignore_index
    slide_cm = ConfusionMatrix(n, ignore)
    if tile_classes is None:
        tile_classes = [c.name for c in class_map.classes if c.name.lower() != "background"]
    tile_idx = {name: class_map.index_of(name) for name in tile_classes}
    tile_cm = {name: ConfusionMatrix(n, ignore) for name in tile_classes}
    tile_count = dict.fromkeys(tile_classes, 0)
    h, w = labels.shape
    rows = range(0, h, tile_size)
    for i, r in enumerate(rows):
        for c in range(0, w, tile_size):
            pred = np.asarray(labels[r:r + tile_size, c:c + tile_size])
            th, tw = pred.shape
            box = (origin[0] + c * downsample, origin[1] + r * downsample,
                   tw * downsample, th * downsample)
            if tree is None:
                truth_tile = np.full((th, tw), ignore, np.uint8)
            else:
                hits = tree.query(shapely_box(box[0], box[1], box[0] + box[2], box[1] + box[3]))
                truth_tile = rasterize((shapes[j] for j in sorted(hits)), box, downsample,
                                       (th, tw), fill=ignore)
            slide_cm.update(pred, truth_tile)
            for name, k in tile_idx.items():
                if (truth_tile == k).any():
                    tile_cm[name].update(pred, truth_tile)
                    tile_count[name] += 1
        report(progress, "evaluate", i + 1, len(rows))
    names = [class_map.by_index(k).name if k in {c.index for c in class_map.classes} else str(k)
             for k in range(n)]
    tiles = {}
    for name, k in tile_idx.items():
        s = tile_cm[name].summary(names, nan_as_none=True)
        tiles[name] = {"n_tiles": tile_count[name], **s["per_class"][names[k]]}
    return {"slide": slide_cm.summary(names, nan_as_none=True), "tiles": tiles,
            "tile_size": tile_size, "skipped_truth_classes": skipped,
            "seconds": time.perf_counter() - t0}


def evaluate_prediction(store: str | os.PathLike, truth, *, tile_size: int = 512,
                        tile_classes: Sequence[str] | None = None,
                        progress: ProgressCallback | None = None) -> dict:
    """Evaluate a finished prediction store (``magnipath infer`` output) against truth.

    The store's run description gives the class map, the label map's level-0
    origin and downsample, and the inference time, which is reported as
    ``infer_seconds`` and ``slides_per_minute``.
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
    """A readable table of per-class slide metrics and per-tile metrics."""
    s = result["slide"]
    cols = ["iou", "dice", "precision", "recall", "specificity", "accuracy", "mcc"]
    lines = [f"{'class':<14}" + "".join(f"{c:>12}" for c in cols) + f"{'support':>12}"]

    def fmt(v):
        return f"{v:>12.3f}" if isinstance(v, float) else f"{'-':>12}"

    for name, m in s["per_class"].items():
        lines.append(f"{name:<14}" + "".join(fmt(m[c]) for c in cols) + f"{m['support']:>12}")
    lines.append(f"{'mean':<14}" + "".join(fmt(s['mean'].get(c)) for c in cols))
    o = s["overall"]
    lines.append(f"overall accuracy {o['accuracy']:.3f}  mIoU {o['mean_iou']:.3f}  "
                 f"MCC {o['mcc']:.3f}  kappa {o['kappa']:.3f}")
    if result.get("tiles"):
        lines.append(f"tiles of {result['tile_size']} px containing the class:")
        for name, m in result["tiles"].items():
            lines.append(f"  {name:<12} n={m['n_tiles']:<6}" + "".join(
                f" {c}={m[c]:.3f}" if isinstance(m.get(c), float) else f" {c}=-"
                for c in ("iou", "dice", "precision", "recall", "mcc")))
    return "\n".join(lines)
