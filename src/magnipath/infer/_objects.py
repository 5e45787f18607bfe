"""Predicted label maps -> QuPath objects (polygons with measurements)."""

from __future__ import annotations

import os
from collections.abc import Sequence

from magnipath.classes import ClassMap
from magnipath.progress import CancelCallback, ProgressCallback

MARKER_KEY = "magnipath"
"""Metadata key set on every object MagniPath predicts (value: the model path)."""


def prediction_objects(store: str | os.PathLike, *, classes: Sequence[str] | None = None,
                       min_area_um2: float = 0.0, simplify_um: float = 0.0,
                       object_type: str = "annotation",
                       progress: ProgressCallback | None = None,
                       cancel: CancelCallback | None = None) -> list:
    """Vectorise the chosen classes of a finished prediction into QuPath objects.

    Parameters
    ----------
    store : path
        A complete prediction store written by :func:`magnipath.infer.infer_slide`.
    classes : sequence of str, optional
        Class names to vectorise; default every class except one named
        "Background".
    min_area_um2, simplify_um : float
        Drop objects smaller than this area (µm²); simplify outlines with this
        tolerance (µm).
    object_type : {"annotation", "detection"}

    Returns
    -------
    list of QuPathObject
        Geometries in level-0 pixels of the slide; class names and colours of
        the model; measurements "Area µm^2", "Perimeter µm" and, when the run
        stored probabilities, "Mean probability"; ``metadata["magnipath"]``
        names the model that made them.
    """
    from magnipath.infer._store import open_prediction
    from magnipath.vectorize import vectorize

    root, meta = open_prediction(store)
    cmap = ClassMap.from_dict(meta["class_map"])
    if classes is None:
        classes = [c.name for c in cmap.classes if c.name.lower() != "background"]
    indices = cmap.lookup(classes)
    probs = root["probabilities/0"] if "probabilities" in root else None
    sig = meta["signature"]
    objects = vectorize(root["labels/0"], origin=tuple(meta["origin"]),
                        downsample=float(meta["downsample"]), slide_mpp=float(sig["slide_mpp"]),
                        class_map=cmap, classes=indices, simplify_um=simplify_um,
                        min_area_um2=min_area_um2, probabilities=probs,
                        object_type=object_type, progress=progress, cancel=cancel)
    for obj in objects:
        obj.metadata[MARKER_KEY] = str(sig.get("model", ""))
    return objects
