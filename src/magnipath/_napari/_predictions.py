"""Inference results as napari layers: the label map (lazy, multiscale) and its objects.

The label map of a prediction store (:func:`magnipath.infer.open_prediction`)
becomes ONE Labels layer whose data are the store's zarr levels
``labels/0, labels/1, ...`` (level ``k`` at ``2**k`` x the model's target
µm/px), read lazily tile by tile like a slide. Its place in the world comes
from the run description: label pixel ``(r, c)`` of level 0 covers level-0
``[x0 + c d, x0 + (c + 1) d) x [y0 + r d, ...)`` (``origin = (x0, y0)``,
``downsample = d``), so with the slide's mpp ``m``
(:func:`._frames.raster_frame` shifted by the origin)::

    scale = (d m, d m)      translate = (y0 m + (d - 1) m / 2, x0 m + (d - 1) m / 2)

and every label pixel lies exactly on the slide pixels it was predicted from.
Colours are the model card's class colours; a class named "Background" is
transparent (its pixels keep their label value). ``layer.features`` maps each
label value to its class name (``index``, ``classification``), so napari's
status bar names the class under the cursor and the GeoJSON writer keeps the
names. ``layer.metadata["magnipath"]`` holds ``kind="prediction"``, ``mpp``,
``class_map``, ``store``, ``origin``, ``downsample`` and ``target_mpp``.

The predicted objects (:func:`magnipath.infer.prediction_objects`) become a
Shapes layer made by :func:`._layers.objects_to_layer_data` (level-0 pixel
data, measurements as features).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from magnipath._napari._frames import raster_frame, vector_frame
from magnipath._napari._layers import legible_on_dark, objects_to_layer_data
from magnipath.classes import ClassMap

LayerData = tuple[Any, dict, str]
PREDICTION_OPACITY = 0.5
"""Opacity of predicted label maps over the slide."""


def class_colormap(class_map: ClassMap, transparent: tuple[str, ...] = ("background",)) -> Any:
    """A napari ``DirectLabelColormap``: each class in its colour, ``transparent`` names clear.

    Values that are no class (the ignore index) are transparent too. Colours
    too dark for napari's dark theme are lightened for display
    (:func:`._layers.legible_on_dark`).
    """
    from napari.utils.colormaps import DirectLabelColormap

    colors: dict[Any, Any] = {None: np.zeros(4)}
    for c in class_map.classes:
        alpha = 0.0 if c.name.lower() in transparent else 1.0
        colors[int(c.index)] = np.array([*(v / 255.0 for v in legible_on_dark(c.color)),
                                         alpha])
    colors.setdefault(int(class_map.ignore_index), np.zeros(4))
    return DirectLabelColormap(color_dict=colors)


def class_features(class_map: ClassMap) -> pd.DataFrame:
    """``index`` -> ``classification`` table of a label map (napari Labels ``features``)."""
    return pd.DataFrame({"index": [int(c.index) for c in class_map.classes],
                         "classification": [c.name for c in class_map.classes]})


def prediction_frame(mpp: float | None, origin: tuple[float, float],
                     downsample: float) -> dict[str, Any]:
    """``scale``/``translate``/``units`` of a label map at ``downsample`` from level-0 ``origin``.

    Parameters
    ----------
    mpp : float or None
        Slide µm per level-0 pixel (``None``: world units are level-0 pixels).
    origin : (float, float)
        Level-0 ``(x, y)`` of the corner of label pixel ``(0, 0)``.
    downsample : float
        Level-0 pixels per label pixel.
    """
    frame = raster_frame(mpp, downsample)
    m = float(mpp) if mpp else 1.0
    ty, tx = frame["translate"]
    frame["translate"] = (ty + float(origin[1]) * m, tx + float(origin[0]) * m)
    return frame


def prediction_layer_data(store: str | os.PathLike, *, name: str | None = None,
                          mpp: float | None = None) -> LayerData:
    """The Labels layer-data tuple of a finished prediction store (see the module docstring).

    Parameters
    ----------
    store : path
        The ``.zarr`` folder written by :func:`magnipath.infer.infer_slide`.
    name : str, optional
        Layer name; default ``"<store name> labels"``.
    mpp : float, optional
        µm per level-0 pixel of the slide layer it goes over; default the
        slide mpp recorded in the store.

    Raises
    ------
    PredictionStoreError
        The store is not a finished MagniPath prediction.
    """
    from magnipath.infer import open_prediction

    root, meta = open_prediction(store)
    group = root["labels"]
    keys = sorted((k for k in group.array_keys() if k.isdigit()), key=int)
    levels = [group[k] for k in keys]
    slide_mpp = mpp if mpp is not None else meta.get("signature", {}).get("slide_mpp")
    class_map = ClassMap.from_dict(meta["class_map"])
    origin = tuple(float(v) for v in meta["origin"])
    downsample = float(meta["downsample"])
    frame = prediction_frame(slide_mpp, origin, downsample)  # type: ignore[arg-type]
    kwargs = {
        "name": name or f"{Path(store).stem} labels", "opacity": PREDICTION_OPACITY,
        "colormap": class_colormap(class_map), "features": class_features(class_map),
        "metadata": {"magnipath": {
            "kind": "prediction", "mpp": slide_mpp, "class_map": class_map.to_dict(),
            "store": str(Path(store).resolve()), "origin": list(origin),
            "downsample": downsample, "target_mpp": meta.get("target_mpp"),
            "slide": meta.get("slide")}},
        **frame,
    }
    if len(levels) > 1:
        kwargs["multiscale"] = True
        return (levels, kwargs, "labels")
    return (levels[0], kwargs, "labels")


def objects_layer_data(objects: list, *, mpp: float | None, name: str,
                       source: str | None = None) -> LayerData:
    """The Shapes layer-data tuple of predicted objects (an empty layer when none).

    Parameters
    ----------
    objects : list of QuPathObject
        Geometries in level-0 pixels (points are not expected: predictions are areas).
    mpp : float or None
        Slide µm per level-0 pixel.
    name : str
        Layer name.
    source : str, optional
        The prediction store, kept in the metadata.
    """
    layers = [d for d in objects_to_layer_data(objects, mpp=mpp, name=name, source=source)
              if d[2] == "shapes"]
    if layers:
        return layers[0]
    meta = {"magnipath": {"kind": "annotations", "mpp": mpp, "source": source,
                          "class_colors": {}, "measurements": [], "objects": {}}}
    return ([], {"name": name, "metadata": meta, "ndim": 2, **vector_frame(mpp)}, "shapes")


def build_layer(data: LayerData) -> Any:
    """A napari layer from a layer-data tuple, without a viewer.

    Safe in a worker thread (no Qt involved): building a Shapes layer of many
    polygons triangulates them, which is better done off the UI thread; add
    the layer on the main thread with :func:`add_layer_data`.
    """
    from napari.layers import Layer

    arr, kwargs, kind = data
    return Layer.create(arr, kwargs, kind)


def add_layer_data(viewer: Any, data: LayerData | Any, *, replace: bool = True) -> Any:
    """Add a layer-data tuple (or a built layer) to ``viewer``; return the layer.

    A layer of the same name is replaced when ``replace``.
    """
    layer = data if not isinstance(data, tuple) else None
    name = layer.name if layer is not None else data[1].get("name")
    if replace and name in viewer.layers:
        viewer.layers.remove(viewer.layers[name])
    if layer is not None:
        return viewer.add_layer(layer)
    arr, kwargs, kind = data
    return getattr(viewer, f"add_{kind}")(arr, **kwargs)


def region_tag(region: tuple[int, int, int, int] | None) -> str:
    """Folder name of a region: ``"whole"`` or ``"x{x}_y{y}_w{w}_h{h}"`` (level-0 px)."""
    if region is None:
        return "whole"
    x, y, w, h = (round(float(v)) for v in region)
    return f"x{x}_y{y}_w{w}_h{h}"


def model_tag(model_dir: str | os.PathLike) -> str:
    """Folder name of a model: its folder name and a digest of its full path."""
    import hashlib

    full = str(Path(model_dir).expanduser().resolve())
    return f"{Path(full).name}-{hashlib.sha1(full.encode()).hexdigest()[:8]}"


def default_output_root() -> Path:
    """Where predictions go when no folder is chosen: ``<MagniPath cache>/predictions``."""
    from magnipath._napari._sample_data import cache_dir

    return cache_dir() / "predictions"


def run_inference(slide: str | os.PathLike, model_dir: str | os.PathLike,
                  out_root: str | os.PathLike, config: Any, *, mpp: float | None = None,
                  classes: list[str] | None = None, min_area_um2: float = 0.0,
                  simplify_um: float = 0.0, progress: Any = None, cancel: Any = None) -> dict:
    """Predict a slide (region) and vectorise chosen classes: two core calls, no layers.

    The store goes to ``out_root/<model tag>/<region tag>/<slide>.zarr``
    (:func:`model_tag`, :func:`region_tag`), so predictions of other regions or models never
    collide; the same slide, model and region again reuses (or resumes) it.

    Parameters
    ----------
    slide : path
        The slide file.
    model_dir : path
        A model folder (``magnipath train``).
    out_root : path
        Root folder of predictions.
    config : magnipath.infer.InferConfig
        Region (level-0 box), device, batch size, tissue mask...
    mpp : float, optional
        Level-0 µm/px override of the slide.
    classes : list of str, optional
        Classes to vectorise (default: all but "Background").
    min_area_um2, simplify_um : float
        Object filters of :func:`magnipath.infer.prediction_objects` (µm², µm).
    progress, cancel : callables, optional

    Returns
    -------
    dict
        ``result`` (:class:`magnipath.infer.InferResult`) and ``objects`` (list of
        QuPathObject in level-0 pixels).
    """
    from magnipath.infer import infer_slide, prediction_objects
    from magnipath.progress import check_cancel

    out_dir = Path(out_root) / model_tag(model_dir) / region_tag(config.region)
    result = infer_slide(slide, model_dir, out_dir, config, mpp=mpp, progress=progress,
                         cancel=cancel)
    check_cancel(cancel)
    objects = prediction_objects(result.store, classes=classes, min_area_um2=min_area_um2,
                                 simplify_um=simplify_um, progress=progress, cancel=cancel)
    return {"result": result, "objects": objects}
