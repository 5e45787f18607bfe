"""Predicted label maps -> QuPath objects (polygons with measurements)."""

from __future__ import annotations

import os
from collections.abc import Sequence

from magnipath.classes import ClassMap
from magnipath.infer._config import InferError
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
        Class names to vectorise (the model's QuPath path classes); default
        every class except one named "Background".
    min_area_um2 : float
        Drop objects smaller than this area, µm².
    simplify_um : float
        Simplify outlines with this tolerance, µm (0: exact pixel edges).
    object_type : {"annotation", "detection"}
        QuPath object type of the result.
    progress, cancel : callables, optional
        Passed to :func:`magnipath.vectorize.vectorize`.

    Returns
    -------
    list of QuPathObject
        One object per 4-connected component and class. Geometries in level-0
        pixels of the slide (the label map's origin and downsample applied);
        class names and colours of the model; measurements "Area µm^2",
        "Perimeter µm" and, when the run stored probabilities, "Mean
        probability"; ``metadata["magnipath"]`` names the model that made them.
        An empty list when no pixel has a chosen class.

    Raises
    ------
    InferError
        A class name that is not one of the model's.
    PredictionStoreError
        The store is missing or unfinished.
    """
    from magnipath.infer._store import open_prediction
    from magnipath.vectorize import vectorize

    root, meta = open_prediction(store)
    cmap = ClassMap.from_dict(meta["class_map"])
    if classes is None:
        classes = [c.name for c in cmap.classes if c.name.lower() != "background"]
    classes = list(classes)
    unknown = [c for c in classes if c not in cmap.names]
    if unknown:
        raise InferError(f"classes {unknown} are not classes of the model that made {store}; "
                         f"choose among {cmap.names}")
    indices = [cmap.index_of(c) for c in classes]
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
