"""Mitosis detection in napari: core calls (worker side) and result layers (main thread).

* :func:`points_xy`: a Points layer -> level-0 ``(x, y)`` of its points on a slide;
* :func:`train_model`: :func:`magnipath.mitosis.make_tiles` then
  :func:`magnipath.mitosis.train` (the ``magnipath mitosis train`` pair);
* :func:`heatmap_layer_data`: a :class:`magnipath.mitosis.Detection` heat map
  as an Image layer over the slide. Cell ``(r, c)`` is the tile whose level-0
  box starts at ``origin + (c, r) * step`` and has side ``tile_size``; its
  centre, level-0 ``origin + (c, r) * step + tile_size / 2``, is world
  ``(that - 0.5) * mpp`` (see :mod:`._frames`), so
  ``scale = step * mpp`` and ``translate = (origin + tile_size / 2 - 0.5) * mpp``.
  Tiles skipped as glass (NaN) show as 0 (transparent in the colour map).
* :func:`detections_layer_data`: the tiles above a threshold as a Points layer
  (tile centres, class ``Mitosis``, feature ``Mitosis probability``), drawn as
  yellow rings of a tile's size (the class colour is kept for QuPath).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from shapely.geometry import Point

from magnipath._napari._layers import objects_to_layer_data
from magnipath._napari._predictions import LayerData
from magnipath._napari._to_objects import flat_parts, layer_to_objects

HEATMAP_COLORS = [[0.2, 1.0, 0.2, 0.0], [0.2, 1.0, 0.2, 1.0]]
"""Heat-map colours: transparent at probability 0, opaque green at 1 (stands out on H&E)."""
DETECTION_RING = "yellow"
"""Display colour of the detection rings (the class colour, magenta, is kept for QuPath)."""


def points_xy(layer: Any, image_layer: Any) -> np.ndarray:
    """Level-0 ``(x, y)`` of every point of a Points (or point-like Shapes) layer.

    Parameters
    ----------
    layer : napari.layers.Points
        The mitoses, in any scale and translate.
    image_layer : napari.layers.Image
        The slide they were marked on.

    Returns
    -------
    numpy.ndarray
        float64 ``(K, 2)``; polygons count by their centroid.
    """
    xy: list[tuple[float, float]] = []
    for obj in layer_to_objects(layer, image_layer):
        for part in flat_parts(obj.geometry):
            p = part if isinstance(part, Point) else part.centroid
            xy.append((float(p.x), float(p.y)))
    return np.asarray(xy, dtype=np.float64).reshape(-1, 2)


def train_model(slide: str | os.PathLike, points: np.ndarray, out: str | os.PathLike, *,
                tile_config: Any, train_config: Any, region: Any = None,
                mpp: float | None = None, overwrite: bool = False, progress: Any = None,
                cancel: Any = None) -> dict:
    """Cut labelled tiles of one slide and train the mitosis classifier into ``out``.

    Parameters
    ----------
    slide : path
    points : numpy.ndarray
        Level-0 ``(x, y)`` of the mitoses.
    out : path
        Model folder to write (``card.json``, ``model.pt``).
    tile_config : magnipath.mitosis.TileConfig
    train_config : magnipath.mitosis.MitosisTrainConfig
    region : box, optional
        Level-0 ``(x, y, w, h)`` to tile (default the whole slide).
    mpp : float, optional
        Level-0 µm/px override.
    overwrite : bool
        Replace an existing folder ``out``.

    Returns
    -------
    dict
        ``model`` (folder), ``tiles``, ``positive_tiles`` and the training ``summary``.
    """
    from magnipath.mitosis import MitosisError, MitosisSource, make_tiles, train

    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise MitosisError(f"Model folder: {out} is not empty; choose another folder or tick "
                           "'Replace an existing model'")
    tiles = make_tiles([MitosisSource(Path(slide), points=points, region=region, mpp=mpp)],
                       tile_config, progress=progress, cancel=cancel)
    if int(tiles.labels.sum()) == 0:
        raise MitosisError(f"no tile of {Path(slide).name} is positive: mark mitoses in the "
                           "Points layer (inside the region), or lower the label threshold")
    _, summary = train(tiles, None, out, train_config, progress=progress, cancel=cancel)
    return {"model": str(out), "tiles": len(tiles), "positive_tiles": int(tiles.labels.sum()),
            "summary": summary}


def heatmap_layer_data(detection: Any, mpp: float | None, name: str) -> LayerData:
    """Image layer-data tuple of a detection's heat map (see the module docstring)."""
    from napari.utils.colormaps import Colormap

    m = float(mpp) if mpp else 1.0
    step, side = float(detection.step), float(detection.tile_size)
    x0, y0 = detection.origin
    heat = np.nan_to_num(np.asarray(detection.heatmap, dtype=np.float32), nan=0.0)
    meta = {"magnipath": {"kind": "mitosis heatmap", "mpp": mpp, "origin": [x0, y0],
                          "step": step, "tile_size": side, "threshold": detection.threshold}}
    return (heat, {
        "name": name, "colormap": Colormap(HEATMAP_COLORS, name="mitosis"),
        "contrast_limits": [0.0, 1.0], "opacity": 0.6, "interpolation2d": "nearest",
        "scale": (step * m, step * m),
        "translate": ((y0 + side / 2 - 0.5) * m, (x0 + side / 2 - 0.5) * m),
        "units": ("um", "um") if mpp else ("pixel", "pixel"), "metadata": meta}, "image")


def detections_layer_data(detection: Any, threshold: float, mpp: float | None,
                          name: str) -> LayerData:
    """Points layer-data tuple of the tiles above ``threshold`` (level-0 tile centres)."""
    objects = detection.objects(threshold, as_points=True)
    layers = objects_to_layer_data(objects, mpp=mpp, name=name)
    if layers:  # rings of a tile's size, so the tile under each detection stays visible
        data, kwargs, kind = layers[0]
        kwargs.update(face_color="transparent", border_color=DETECTION_RING, symbol="ring",
                      border_width=0.15, size=float(detection.tile_size))
        return data, kwargs, kind
    from magnipath._napari._frames import vector_frame

    meta = {"magnipath": {"kind": "annotations", "mpp": mpp, "source": None,
                          "class_colors": {}, "measurements": [], "objects": {}}}
    return (np.zeros((0, 2)), {"name": name, "metadata": meta, **vector_frame(mpp)}, "points")
