"""napari writers: Shapes, Points and Labels layers -> QuPath GeoJSON.

* Shapes / Points: :func:`._to_objects.shapes_to_objects` rebuilds the QuPath
  objects (holes, multi-part objects, class names and colours, measurements,
  everything else kept in the layer's metadata); coordinates are mapped to
  level-0 pixels with :func:`._to_objects.metadata_transform`.
* Labels: the label map is vectorised with :func:`magnipath.vectorize.vectorize`
  (one polygon object per connected region, holes kept). The label value ->
  class comes from ``metadata["magnipath"]["class_map"]`` (a
  :meth:`magnipath.classes.ClassMap.to_dict`), else from ``layer.features``
  (an ``index`` column and a ``classification``/``class``/``name`` column),
  else every non-zero value ``v`` becomes class ``"Class v"`` coloured as napari
  shows it; 0 is background and is not vectorised (unless the class map names
  it). The label map's place on the slide comes from the layer's frame
  (:func:`._frames.raster_frame`) and ``metadata["magnipath"]["mpp"]``; without
  MagniPath metadata, label pixels are taken as level-0 pixels (and
  measurements in µm are then in pixels: the mpp is unknown).

Files are written atomically (temporary file, then rename).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from magnipath._errors import AnnotationError
from magnipath._napari._to_objects import (
    magnipath_metadata,
    points_to_objects,
    shapes_to_objects,
)
from magnipath.classes import ClassMap, ClassSpec
from qupath_bridge._colors import default_class_color
from qupath_bridge.errors import QuPathBridgeError
from qupath_bridge.geojson import write_geojson


def _write(objects: list, path: str) -> list[str]:
    try:
        write_geojson(objects, path)
    except QuPathBridgeError as e:
        raise AnnotationError(str(e)) from e
    return [str(path)]


def write_shapes(path: str, data: Any, attributes: dict) -> list[str]:
    """npe2 writer: a Shapes layer -> QuPath GeoJSON at ``path`` (level-0 pixels)."""
    return _write(shapes_to_objects(data, attributes), path)


def write_points(path: str, data: Any, attributes: dict) -> list[str]:
    """npe2 writer: a Points layer -> QuPath GeoJSON point objects at ``path``."""
    return _write(points_to_objects(data, attributes), path)


def _class_map_of(labels: Any, attributes: dict) -> tuple[ClassMap, list[int]]:
    """The class map of a Labels layer and the label values to vectorise."""
    meta = magnipath_metadata(attributes)
    if meta.get("class_map"):
        cmap = ClassMap.from_dict(meta["class_map"])
        return cmap, [c.index for c in cmap.classes]
    feats = attributes.get("features")
    if feats is not None and "index" in getattr(feats, "columns", ()):
        col = next((c for c in ("classification", "class", "name") if c in feats.columns), None)
        if col is not None:
            specs = []
            for idx, name in zip(feats["index"], feats[col], strict=True):
                if isinstance(name, str) and name and int(idx) != 0:
                    specs.append(ClassSpec(name, int(idx), _napari_color(attributes, int(idx))))
            if specs:
                cmap = ClassMap(tuple(specs), ignore_index=0)
                return cmap, [c.index for c in cmap.classes]
    values = [int(v) for v in np.unique(np.asarray(labels)) if v != 0]
    cmap = ClassMap(tuple(ClassSpec(f"Class {v}", v, _napari_color(attributes, v))
                          for v in values), ignore_index=0)
    return cmap, values


def _napari_color(attributes: dict, value: int) -> tuple[int, int, int]:
    cmap = attributes.get("colormap")
    if hasattr(cmap, "map"):
        rgba = np.asarray(cmap.map(np.asarray([value])), dtype=float).reshape(-1)[:3]
        if rgba.size == 3:
            return tuple(round(float(c) * 255) for c in rgba)  # type: ignore[return-value]
    return default_class_color(f"Class {value}")


def labels_to_objects(data: Any, attributes: dict) -> list:
    """QuPath objects (level-0 pixels) of a Labels layer; see the module docstring.

    Parameters
    ----------
    data : array or list of arrays
        The label map ``(y, x)`` (level 0 of a multiscale layer is used).
    attributes : dict
        The layer's state (``scale``, ``translate``, ``features``, ``metadata``...).
    """
    from magnipath.vectorize import vectorize

    labels = data[0] if isinstance(data, list | tuple) else data
    if not hasattr(labels, "shape"):
        labels = np.asarray(labels)
    if len(labels.shape) != 2:
        raise AnnotationError(f"only 2D label maps can be saved as GeoJSON; this one has "
                              f"shape {tuple(labels.shape)}")
    meta = magnipath_metadata(attributes)
    mpp = meta.get("mpp")
    if meta:
        m = float(mpp or 1.0)
        s = float(np.asarray(attributes.get("scale", (1.0, 1.0)), dtype=float)[-1])
        t = np.asarray(attributes.get("translate", (0.0, 0.0)), dtype=float)[-2:]
        d = s / m
        y0, x0 = t / m + 0.5 - d / 2
    else:
        d, x0, y0 = 1.0, 0.0, 0.0
    class_map, values = _class_map_of(labels, attributes)
    return vectorize(labels, origin=(float(x0), float(y0)), downsample=float(d),
                     slide_mpp=float(mpp or 1.0), class_map=class_map, classes=values)


def write_labels(path: str, data: Any, attributes: dict) -> list[str]:
    """npe2 writer: a Labels layer -> vectorised QuPath GeoJSON at ``path``."""
    return _write(labels_to_objects(data, attributes), str(Path(path)))
